"""controlplane.dashboard.costs"""

from __future__ import annotations

from typing import Any

from django.shortcuts import render
from django.utils import timezone

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, VIEW, access_fleet
from controlplane.dashboard.common import TOP, fleet_for, page, render_page
from controlplane.forms import submit
from controlplane.nodes import queries
from controlplane.relay import queries as relay_queries
from controlplane.relay import services as escalation
from wire.schemas import CloudBudgets

BUDGET_FIELDS = [
    (f"{scope}_{period}_{unit}", f"{label} per {period}, {'US$' if unit == 'usd' else 'tokens'}")
    for scope, label in (("fleet", "Fleet"), ("node", "Each node"))
    for period in ("day", "month")
    for unit in ("usd", "tokens")
]


@page
def costs(request):
    """Cloud cost and local tokens per node, agent and endpoint; the budgets (admins edit them);
    the share of requests that went to the cloud."""
    fleet, choices = fleet_for(request, VIEW)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if fleet is None:
        return render(request, "dashboard/costs.html", ctx)
    if request.method == "POST":
        target = access_fleet(request.user, fleet.slug, ADMINISTER)
        data = {k: request.POST.get(k) or None for k, _ in BUDGET_FIELDS}
        data["soft_fraction"] = request.POST.get("soft_fraction") or 0.8
        result, ctx["errors"] = submit(
            CloudBudgets,
            data,
            lambda b: escalation.do_set_cloud_budgets(
                target, budgets=b.model_dump(), actor=request.user, request=request
            ),
        )
        ctx["saved"] = result is not None
        if result:
            fleet = result
    since, until = relay_queries.usage_window()
    budgets = fleet.budgets()
    used = relay_queries.cloud_usage_so_far(fleet)
    ctx.update(
        fleet=fleet,
        since=since,
        budgets=[
            {
                "key": k,
                "label": label,
                "limit": getattr(budgets, k),
                "used": used[k] if k.startswith("fleet_") else None,
                "error": ctx["errors"].get(k),
            }
            for k, label in BUDGET_FIELDS
        ],
        soft_fraction=budgets.soft_fraction,
        by_node=list(relay_queries.cloud_usage(fleet, by="node", since=since, until=until)[:TOP]),
        by_agent=list(relay_queries.cloud_usage(fleet, by="agent", since=since, until=until)[:TOP]),
        by_endpoint=list(relay_queries.cloud_usage(fleet, by="endpoint", since=since, until=until)),
        local=list(relay_queries.local_tokens(fleet, since=since, until=until)[:TOP]),
        local_by_agent=list(
            relay_queries.local_tokens(fleet, by="agent", since=since, until=until)[:TOP]
        ),
        figures=queries.fleet_figures([fleet])[fleet.pk],
        routing=_routing_chart(queries.fleet_routing(fleet)),
        now=timezone.now(),
        administer=access.can(request.user, fleet.pk, ADMINISTER),
    )
    return render_page(request, "dashboard/costs.html", "usage", ctx, ctx["errors"])


def _routing_chart(routing: dict[str, Any]) -> dict[str, Any]:
    """The router's held-out PGR against cloud share as SVG points (a 300 x 150 box)."""
    curve = routing["curve"]
    top = max([1.0, *(p for _, p in curve)])
    points = " ".join(f"{x * 300:.1f},{150 - max(p, 0) / top * 150:.1f}" for x, p in curve)
    target = routing["section"].get("target_cloud_share")
    return {
        **routing,
        "points": points,
        "top": top,
        "one_y": 150 - 150 / top,
        "target_x": None if target is None else target * 300,
    }
