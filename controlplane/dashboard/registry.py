"""controlplane.dashboard.registry"""

from __future__ import annotations

from typing import Any

from django.shortcuts import redirect
from django.urls import reverse

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER
from controlplane.dashboard.common import SHORT, page, render_page
from controlplane.forms import submit
from controlplane.nodes import queries
from controlplane.registry import queries as registry_queries
from controlplane.registry import services as registry_services
from controlplane.registry.api import QuantizeIn


@page
def models_page(request):
    artifacts = list(registry_queries.artifacts(request.user))
    running, unplaceable = queries.model_placement(request.user)
    for a in artifacts:
        a.running = running.get(f"sha256:{a.sha256}", 0)  # type: ignore[attr-defined]
    ctx: dict[str, Any] = {
        "artifacts": artifacts,
        "unplaceable": unplaceable,
        "jobs": list(registry_queries.jobs(request.user)[:SHORT]),
        "targets": registry_services.TARGETS,
        "can_write": _may_write_registry(request.user),
        "errors": {},
    }
    ctx["sources"] = [a for a in artifacts if a.variant in registry_services.QUANTIZABLE_SOURCES]
    if request.method == "POST":
        name, _, variant = request.POST.get("source", "").rpartition(":")
        source = registry_queries.access_artifact(request.user, name, variant, ADMINISTER)
        _, ctx["errors"] = submit(
            QuantizeIn,
            lambda: {"source": source.variant, "variants": request.POST.getlist("variants")},
            lambda p: registry_services.do_quantize(
                source, p.variants, actor=request.user, request=request
            ),
        )
        if not ctx["errors"]:
            return redirect(reverse("dashboard:models"))
        ctx["form"] = request.POST
    ctx["active_jobs"] = any(j.status in ("queued", "running") for j in ctx["jobs"])
    return render_page(request, "dashboard/models.html", "jobs", ctx, ctx["errors"])


def _may_write_registry(user) -> bool:
    ids = access.fleet_ids(user, ADMINISTER)
    return ids is None or bool(ids)
