"""controlplane.dashboard.layers"""

from __future__ import annotations

import json
from typing import Any

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, OPERATE, VIEW, access_fleet
from controlplane.dashboard.common import CHOICES, fleet_for, page, render_page
from controlplane.fleets.models import Fleet
from controlplane.forms import labels_from_text, submit
from controlplane.nodes import desired_state, queries, services
from controlplane.nodes import layers as layer_services
from controlplane.nodes import secrets as secret_services
from controlplane.nodes.api import LayerIn, SecretIn

DEFAULT_SECTIONS = '{\n  "routing": {}\n}'


@page
def layers(request):
    fleet, choices = fleet_for(request, VIEW)
    ctx: dict[str, Any] = {
        "fleet": fleet,
        "choices": choices,
        "errors": {},
        "default_sections": DEFAULT_SECTIONS,
        "secret": request.GET.get("secret", ""),
    }
    if fleet is None:
        return render(request, "dashboard/layers.html", ctx)
    if request.method == "POST":
        access_fleet(request.user, fleet.slug, OPERATE)

        def data():
            try:
                sections = json.loads(request.POST.get("sections") or "{}")
            except json.JSONDecodeError as exc:
                raise services.ServiceError(f"not JSON: {exc}", field="sections") from None
            return {
                "scope": request.POST.get("scope"),
                "selector": labels_from_text(request.POST.get("selector", ""), "selector"),
                "node": request.POST.get("node") or None,
                "priority": request.POST.get("priority") or 0,
                "sections": sections,
            }

        result, ctx["errors"] = submit(
            LayerIn,
            data,
            lambda p: layer_services.do_put_layer(
                fleet,
                name=request.POST.get("name", ""),
                scope=p.scope,
                selector=p.selector,
                node=p.node,
                priority=p.priority,
                sections=p.sections,
                actor=request.user,
                request=request,
            ),
        )
        if result:
            ctx["saved"] = {"layer": result[0], "nodes_changed": result[1]}
        ctx["form"] = request.POST
    elif request.GET.get("edit"):
        layer = queries.access_layer(request.user, fleet.slug, request.GET["edit"], VIEW)
        ctx["form"] = {
            "name": layer.name,
            "scope": layer.scope,
            "selector": ", ".join(f"{k}={v}" for k, v in layer.selector.items()),
            "node": layer.node_id or "",
            "priority": layer.priority,
            "sections": json.dumps(layer.sections, indent=2),
        }
    return _render(request, fleet, ctx)


def _render(request, fleet, ctx: dict[str, Any]):
    """The page for `fleet` with what its forms left in `ctx` (their errors make it a 400)."""
    preview_node = request.GET.get("preview")
    if preview_node:
        node = queries.access_node(request.user, preview_node, VIEW)
        ctx["preview"] = {
            "node": node,
            "document": json.dumps(desired_state.document(node), indent=2),
        }
    ctx.update(
        layers=queries.layers(fleet),
        operate=access.can(request.user, fleet.pk, OPERATE),
        administer=access.can(request.user, fleet.pk, ADMINISTER),
        secrets=queries.secrets(fleet) if access.can(request.user, fleet.pk, OPERATE) else [],
        fleet_nodes=queries.nodes(request.user, fleet=fleet.slug).only("id", "name", "fleet")[
            :CHOICES
        ],
    )
    errors = {**ctx.get("errors", {}), **ctx.get("secret_errors", {})}
    return render_page(request, "dashboard/layers.html", None, ctx, errors)


@page
@require_POST
def secret_set(request, slug: str):
    """Set a secret for the fleet's nodes (fleet admins); its value is never shown again."""
    fleet = access_fleet(request.user, slug, ADMINISTER)
    name = request.POST.get("secret_name", "").strip()
    secret, errors = submit(
        SecretIn,
        {"value": request.POST.get("secret_value", "")},
        lambda p: secret_services.do_set_secret(
            fleet, name, p.value, actor=request.user, request=request
        ),
    )
    if secret is not None:
        return redirect(f"{reverse('dashboard:layers')}?fleet={slug}&secret={secret.name}")
    ctx: dict[str, Any] = {
        "fleet": fleet,
        "choices": list(access.restrict(Fleet.objects.order_by("slug"), request.user, VIEW)),
        "errors": {},
        "default_sections": DEFAULT_SECTIONS,
        "secret_errors": {f"secret_{k}": v for k, v in errors.items()},
        "secret_form": {"name": name},
    }
    return _render(request, fleet, ctx)


@page
@require_POST
def secret_delete(request, slug: str, name: str):
    secret = queries.access_secret(request.user, slug, name, ADMINISTER)
    secret_services.do_delete_secret(secret, actor=request.user, request=request)
    return redirect(f"{reverse('dashboard:layers')}?fleet={slug}")


@page
@require_POST
def layer_delete(request, slug: str, name: str):
    layer = queries.access_layer(request.user, slug, name, OPERATE)
    layer_services.do_delete_layer(layer, actor=request.user, request=request)
    return redirect(f"{reverse('dashboard:layers')}?fleet={slug}")
