"""controlplane.dashboard.layers"""

from __future__ import annotations

import json
from typing import Any

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import OPERATE, VIEW, access_fleet
from controlplane.dashboard.common import CHOICES, fleet_for, page, render_page
from controlplane.forms import labels_from_text, submit
from controlplane.nodes import desired_state, queries, services
from controlplane.nodes import layers as layer_services
from controlplane.nodes.api import (
    LayerIn,
)


@page
def layers(request):
    fleet, choices = fleet_for(request, VIEW)
    ctx: dict[str, Any] = {
        "fleet": fleet,
        "choices": choices,
        "errors": {},
        "default_sections": '{\n  "routing": {}\n}',
    }
    if fleet is None:
        return render(request, "dashboard/layers.html", ctx)
    operate = access.can(request.user, fleet.pk, OPERATE)
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
    preview_node = request.GET.get("preview")
    if preview_node:
        node = queries.access_node(request.user, preview_node, VIEW)
        ctx["preview"] = {
            "node": node,
            "document": json.dumps(desired_state.document(node), indent=2),
        }
    ctx.update(
        layers=queries.layers(fleet),
        operate=operate,
        fleet_nodes=queries.nodes(request.user, fleet=fleet.slug).only("id", "name", "fleet")[
            :CHOICES
        ],
    )
    return render_page(request, "dashboard/layers.html", None, ctx, ctx["errors"])


@page
@require_POST
def layer_delete(request, slug: str, name: str):
    layer = queries.access_layer(request.user, slug, name, OPERATE)
    layer_services.do_delete_layer(layer, actor=request.user, request=request)
    return redirect(f"{reverse('dashboard:layers')}?fleet={slug}")
