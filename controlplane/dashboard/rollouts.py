"""controlplane.dashboard.rollouts"""

from __future__ import annotations

from typing import Any

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import OPERATE, VIEW, access_fleet
from controlplane.dashboard.common import PAGE, fleet_for, page, page_number, render_page
from controlplane.errors import NotFound
from controlplane.forms import labels_from_text, submit
from controlplane.pagination import offset_page
from controlplane.registry import queries as registry_queries
from controlplane.rollouts import queries as rollouts_queries
from controlplane.rollouts import services as rollouts
from controlplane.rollouts.api import RolloutIn
from controlplane.rollouts.queries import wave_counts


@page
def rollouts_page(request):
    fleet, choices = fleet_for(request, VIEW)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if fleet is None:
        return render(request, "dashboard/rollouts.html", ctx)
    if request.method == "POST":
        access_fleet(request.user, fleet.slug, OPERATE)

        def data():
            waves = [
                int(w) if w.strip().isdigit() else w.strip()
                for w in request.POST.get("waves", "1, 100%").split(",")
                if w.strip()
            ]
            return {
                "model": {
                    "name": request.POST.get("model", ""),
                    "variant": request.POST.get("variant") or "auto",
                },
                "layer": request.POST.get("layer") or "model",
                "selector": labels_from_text(request.POST.get("selector", ""), "selector"),
                "waves": waves,
                "gates": {
                    "max_error_rate_increase": request.POST.get("max_error_rate_increase") or 0.05,
                    "max_p95_ratio": request.POST.get("max_p95_ratio") or 1.5,
                },
                "wave_wait_s": request.POST.get("wave_wait_s") or 300,
            }

        started, ctx["errors"] = submit(
            RolloutIn,
            data,
            lambda p: rollouts.do_start_rollout(
                fleet, **p.service_kwargs(), actor=request.user, request=request
            ),
        )
        if started:
            return redirect(reverse("dashboard:rollout", args=[started.pk]))
        ctx["form"] = request.POST
    page = offset_page(rollouts_queries.rollouts(fleet), limit=PAGE, offset=page_number(request))
    ctx.update(
        page=page,
        rollouts=page.items,
        operate=access.can(request.user, fleet.pk, OPERATE),
        models=sorted({a.name for a in registry_queries.artifacts(request.user)}),
    )
    return render_page(request, "dashboard/rollouts.html", None, ctx, ctx["errors"])


@page
def rollout(request, rollout_id: int):
    r = rollouts_queries.access_rollout(request.user, rollout_id, VIEW)
    ctx = {
        "rollout": r,
        "waves": wave_counts(r),
        "operate": access.can(request.user, r.fleet_id, OPERATE),
    }
    return render_page(request, "dashboard/rollout.html", "progress", ctx)


ROLLOUT_ACTIONS = {
    "pause": rollouts.do_pause_rollout,
    "resume": rollouts.do_resume_rollout,
    "abort": rollouts.do_abort_rollout,
}


@page
@require_POST
def rollout_action(request, rollout_id: int, action: str):
    if action not in ROLLOUT_ACTIONS:
        raise NotFound(f"no rollout action '{action}'")
    r = rollouts_queries.access_rollout(request.user, rollout_id, OPERATE)
    ROLLOUT_ACTIONS[action](r, actor=request.user, request=request)
    return redirect(reverse("dashboard:rollout", args=[r.pk]))
