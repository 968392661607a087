"""controlplane.dashboard.overview"""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, VIEW_AUDIT, access_fleet
from controlplane.approvals import queries as approvals_queries
from controlplane.compliance import queries as audit_queries
from controlplane.dashboard.common import RECENT, page, render_page
from controlplane.forms import submit
from controlplane.nodes import queries, services
from controlplane.nodes.api import (
    FleetPatch,
)
from controlplane.rollouts import queries as rollouts_queries


@page
def overview(request):
    fleets = list(queries.fleets(request.user))
    counts = queries.status_counts(fleets)
    figures = queries.fleet_figures(fleets)
    audit_ids = access.fleet_ids(request.user, VIEW_AUDIT)
    activity = None
    if audit_ids is None or audit_ids:
        records, _ = audit_queries.records(request.user)
        rows = list(records.select_related("fleet").order_by("-seq")[:RECENT])
        activity = audit_queries.record_rows(rows)
    ctx = {
        "fleets": [
            {
                "fleet": f,
                "counts": counts[f.pk],
                "figures": figures[f.pk],
                "administer": access.can(request.user, f.pk, ADMINISTER),
            }
            for f in fleets
        ],
        "pending_approvals": approvals_queries.approvals(request.user, pending=True).count(),
        "active_rollouts": sum(
            rollouts_queries.rollouts(f).filter(status__in=["running", "paused"]).count()
            for f in fleets
        ),
        "activity": activity,
        "events": None if activity is not None else queries.recent_events(request.user),
        "now": timezone.now(),
    }
    return render_page(request, "dashboard/overview.html", "figures", ctx)


@page
@require_POST
def fleet_alerts(request, slug: str):
    """Edit a fleet's alert thresholds (fleet admins)."""
    fleet = access_fleet(request.user, slug, ADMINISTER)

    def data():
        fields = [k for k in FleetPatch.model_fields if k.startswith("alert_")]
        return {k: request.POST[k] for k in fields if request.POST.get(k, "") != ""}

    _, errors = submit(
        FleetPatch,
        data,
        lambda p: services.do_update_fleet(
            fleet, **p.dict(exclude_unset=True), actor=request.user, request=request
        ),
    )
    if errors:
        fleet.refresh_from_db()
        ctx = {"item": {"fleet": fleet, "administer": True}, "errors": errors}
        return render(request, "dashboard/overview.html#alerts-form", ctx, status=400)
    return redirect(reverse("dashboard:overview"))
