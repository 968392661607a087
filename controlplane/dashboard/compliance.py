"""controlplane.dashboard.compliance"""

from __future__ import annotations

import json
from typing import Any

from django.shortcuts import render
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, VIEW_AUDIT, access_fleet
from controlplane.dashboard.common import fleet_for, page, render_page
from controlplane.forms import submit
from controlplane.nodes import services
from controlplane.nodes.api import (
    CompliancePatch,
)
from controlplane.nodes.models import Fleet
from controlplane.relay import services as escalation
from controlplane.relay.api import RedactionPreviewIn
from wire import phi
from wire.schemas import ComplianceMode, PhiAction


@page
def compliance(request):
    fleet, choices = fleet_for(request, VIEW_AUDIT)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if fleet is None:
        return render(request, "dashboard/compliance.html", ctx)
    if request.method == "POST":
        target = access_fleet(request.user, fleet.slug, ADMINISTER)

        def data():
            p = request.POST
            try:
                endpoints = json.loads(p.get("cloud_endpoints") or "[]")
            except json.JSONDecodeError as exc:
                raise services.ServiceError(f"not JSON: {exc}", field="cloud_endpoints") from None
            store = p.get("store_content")
            return {
                "mode": p.get("mode"),
                "phi_action": p.get("phi_action"),
                "store_content": None if store in ("", None) else store == "yes",
                "allowed_regions": [
                    r.strip() for r in p.get("allowed_regions", "").split(",") if r.strip()
                ],
                "cloud_endpoints": endpoints,
                "events_retention_days": p.get("events_retention_days") or None,
            }

        result, ctx["errors"] = submit(
            CompliancePatch,
            data,
            lambda c: services.do_set_compliance(
                target, **c.model_dump(mode="json"), actor=request.user, request=request
            ),
        )
        if result:
            fleet, ctx["nodes_changed"] = result
            ctx["fleet"] = fleet
        ctx["form"] = request.POST
    _compliance_context(request, ctx["fleet"], ctx)
    return render_page(request, "dashboard/compliance.html", None, ctx, ctx["errors"])


def _compliance_context(request, fleet: Fleet, ctx: dict[str, Any]) -> None:
    settings_ = fleet.compliance_settings()
    ctx.update(
        settings=settings_,
        endpoints_json=json.dumps(
            [e.model_dump(exclude_none=True) for e in settings_.cloud_endpoints], indent=2
        ),
        policy=json.dumps(fleet.compliance_policy().model_dump(mode="json"), indent=2),
        administer=access.can(request.user, fleet.pk, ADMINISTER),
        modes=[m.value for m in ComplianceMode],
        phi_actions=[a.value for a in PhiAction],
        phi_measured=phi.MEASURED,
    )


@page
@require_POST
def compliance_preview(request):
    """The redaction preview of the Compliance page: what an endpoint without a BAA would receive
    of a pasted text (escalation.redaction_preview; the API's POST .../redaction-preview)."""
    fleet = access_fleet(request.user, request.GET.get("fleet", ""), VIEW_AUDIT)
    preview, errors = submit(
        RedactionPreviewIn,
        {"text": request.POST.get("text", "")},
        lambda p: escalation.redaction_preview(fleet, text=p.text),
    )
    ctx: dict[str, Any] = {"fleet": fleet, "errors": {}, "preview": preview}
    ctx.update(preview_text=request.POST.get("text", ""), preview_errors=errors)
    if not request.htmx:
        _, ctx["choices"] = fleet_for(request, VIEW_AUDIT)
        _compliance_context(request, fleet, ctx)
    response = render_page(request, "dashboard/compliance.html", "preview", ctx, errors)
    response["Cache-Control"] = "no-store"  # the pasted text may hold PHI
    return response
