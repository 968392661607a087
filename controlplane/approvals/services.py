"""controlplane.approvals.services"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.audit.services import record
from controlplane.errors import (
    Conflict,
    RateLimited,
    ServiceError,
)
from controlplane.events import publish_on_commit, wake_on_commit
from controlplane.nodes.models import (
    ApprovalStatus,
    Node,
    ToolApproval,
)
from controlplane.schemas import refuse_unsafe
from wire import compliance, schemas


class ApprovalsFull(RateLimited):
    """A node asked for more approvals than people can answer: refused, not queued."""

    code = "approvals_full"


def _refuse_if_approvals_full(node: Node) -> None:
    """The pending approvals of `node` and of its fleet are bounded (EDGEFLEET_MAX_PENDING_
    APPROVALS_PER_NODE, _PER_FLEET): one node cannot bury the Approvals page. Retry-After is
    when the oldest pending one expires, the earliest a place may free up by itself."""
    cfg = settings.EDGEFLEET
    now = timezone.now()
    pending = ToolApproval.objects.filter(decision=ApprovalStatus.PENDING, expires_at__gt=now)
    for scope, rows, cap in (
        ("this node", pending.filter(node=node), cfg["MAX_PENDING_APPROVALS_PER_NODE"]),
        (
            "this fleet",
            pending.filter(fleet_id=node.fleet_id),
            cfg["MAX_PENDING_APPROVALS_PER_FLEET"],
        ),
    ):
        if rows.count() >= cap:
            oldest = rows.order_by("expires_at").values_list("expires_at", flat=True).first()
            wait = max(1, int(((oldest or now) - now).total_seconds()))
            raise ApprovalsFull(
                f"{scope} already has {cap} tool calls waiting for approval (the limit); "
                "the call is refused: ask again once they are decided",
                retry_after=wait,
            )


@transaction.atomic
def do_request_approval(node: Node, req: schemas.ApprovalIn, *, request=None) -> ToolApproval:
    # One request of a node at a time past this point: two at once cannot both take the last place.
    Node.objects.select_for_update().filter(pk=node.pk).first()
    _refuse_if_approvals_full(node)
    # Under HIPAA, or GDPR without opting in, the approver sees the argument names, not values.
    arguments = compliance.minimise({"arguments": req.arguments}, node.fleet.compliance_policy())
    approval = ToolApproval.objects.create(
        node=node,
        fleet_id=node.fleet_id,
        agent=req.agent,
        tool=req.tool,
        arguments=arguments.get("arguments", arguments),
        reason=req.reason,
        expires_at=timezone.now() + timedelta(seconds=req.timeout_s),
    )
    record(
        "approval.request",
        approval,
        node=node,
        fleet=node.fleet,
        after={"tool": req.tool, "agent": req.agent, "timeout_s": req.timeout_s},
        request=request,
    )
    publish_on_commit(
        node.fleet_id, "approval.requested", approval=approval.pk, node=str(node.pk), tool=req.tool
    )
    return approval


@transaction.atomic
def do_decide_approval(
    approval: ToolApproval, *, actor, approve: bool, reason: str = "", request=None
) -> ToolApproval:
    """Approve or deny a pending tool call, once; `reason` (at most 500 characters) is kept with
    the decision and in its audit record."""
    if not isinstance(reason, str) or len(reason) > 500:
        raise ServiceError("reason must be text of at most 500 characters", field="reason")
    refuse_unsafe("reason", reason, prose=True)
    approval = ToolApproval.objects.select_for_update().get(pk=approval.pk)
    if approval.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval {approval.pk} is already {approval.status}")
    approval.decision = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
    approval.decided_at = timezone.now()
    approval.decided_by = actor
    approval.decision_reason = reason.strip()
    approval.save(update_fields=["decision", "decided_at", "decided_by", "decision_reason"])
    record(
        f"approval.{approval.decision}",
        approval,
        user=actor,
        fleet=approval.fleet,
        after={
            "tool": approval.tool,
            "agent": approval.agent,
            "node": str(approval.node_id),
            "reason": approval.decision_reason,
        },
        request=request,
    )
    publish_on_commit(
        approval.fleet_id, "approval.decided", approval=approval.pk, decision=approval.decision
    )
    wake_on_commit(
        "approval", fleet=approval.fleet_id, nodes=[str(approval.node_id)], approval=approval.pk
    )
    return approval
