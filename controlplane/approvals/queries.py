"""controlplane.approvals.queries"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from controlplane.accounts import access
from controlplane.accounts.access import VIEW
from controlplane.nodes.models import (
    ApprovalStatus,
    ToolApproval,
)


def access_approval(user, approval_id: int, action: str = VIEW) -> ToolApproval:
    return access.get(
        ToolApproval.objects.select_related("fleet", "node"),
        user,
        action,
        f"approval {approval_id} not found",
        pk=approval_id,
    )


def approvals(user, *, fleet: str | None = None, pending: bool = False) -> QuerySet[ToolApproval]:
    qs = access.restrict(
        ToolApproval.objects.select_related("fleet", "node", "decided_by"), user, VIEW
    )
    if fleet:
        qs = qs.filter(fleet__slug=fleet)
    if pending:  # a queue: the oldest first, the one that expires soonest
        qs = qs.filter(decision=ApprovalStatus.PENDING, expires_at__gt=timezone.now())
        return qs.order_by("created_at", "id")
    return qs.order_by("-created_at", "-id")
