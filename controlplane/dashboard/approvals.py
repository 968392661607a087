"""controlplane.dashboard.approvals"""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import OPERATE, VIEW, access_fleet
from controlplane.approvals import queries as approvals_queries
from controlplane.approvals import services as approvals_services
from controlplane.dashboard.common import PAGE, page, page_number, render_page
from controlplane.errors import NotFound
from controlplane.forms import ALL
from controlplane.nodes import services
from controlplane.pagination import offset_page


@page
def approvals(request):
    pending = request.GET.get("all") != "1"
    fleet = request.GET.get("fleet") or None
    if fleet:
        access_fleet(request.user, fleet, VIEW)  # the 404 page for a fleet they cannot see
    page = offset_page(
        approvals_queries.approvals(request.user, fleet=fleet, pending=pending),
        limit=PAGE,
        offset=page_number(request),
    )
    ctx = {
        "page": page,
        "approvals": page.items,
        "pending": pending,
        "operate_ids": access.fleet_ids(request.user, OPERATE),
        "now": timezone.now(),
    }
    return render_page(request, "dashboard/approvals.html", "queue", ctx)


@page
@require_POST
def approval_decide(request, approval_id: int, decision: str):
    if decision not in ("approve", "deny"):
        raise NotFound(f"no decision '{decision}'")
    approval = approvals_queries.access_approval(request.user, approval_id, OPERATE)
    reason = request.POST.get("reason", "")
    errors: dict[str, str] = {}
    try:
        approval = approvals_services.do_decide_approval(
            approval,
            approve=decision == "approve",
            reason=reason,
            actor=request.user,
            request=request,
        )
    except services.ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = {exc.field or ALL: exc.message}
        approval.refresh_from_db()
    ctx = {"a": approval, "errors": errors, "operate_ids": access.fleet_ids(request.user, OPERATE)}
    if request.htmx:
        return render(
            request, "dashboard/approvals.html#approval-row", ctx, status=409 if errors else 200
        )
    if errors:
        return render(
            request,
            "error.html",
            {"status": 409, "message": next(iter(errors.values()))},
            status=409,
        )
    return redirect(reverse("dashboard:approvals"))
