"""Every read of fleets, nodes, tokens, layers, metrics, events, approvals and rollouts.

The admin API's handlers and the dashboard's views both read through here: querysets already
narrowed to what the user may see (controlplane/accounts/access.py), filtered in SQL and ordered,
for `controlplane.pagination` to cut into pages. The access functions (one per object type) answer
NotFound for a missing and a forbidden object alike.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from controlplane.accounts import access
from controlplane.accounts.access import VIEW
from controlplane.errors import NotFound, ServiceError

from .desired_state import ordered
from .models import (
    ApprovalStatus,
    DesiredStateLayer,
    EnrollmentToken,
    Fleet,
    MetricRollup,
    MetricSample,
    Node,
    NodeEventRecord,
    NodeQuerySet,
    Rollout,
    RolloutNode,
    ToolApproval,
)

# --- access: one function per object type ---------------------------------------------------------


def access_node(user, node_id: Any, action: str = VIEW) -> Node:
    try:
        pk = node_id if isinstance(node_id, uuid.UUID) else uuid.UUID(str(node_id))
    except ValueError:
        raise NotFound(f"node '{node_id}' not found") from None
    return access.get(
        Node.objects.select_related("fleet"), user, action, f"node '{node_id}' not found", pk=pk
    )


def access_enrollment_token(user, token_id: int, action: str = VIEW) -> EnrollmentToken:
    return access.get(
        EnrollmentToken.objects.select_related("fleet"),
        user,
        action,
        f"enrollment token {token_id} not found",
        pk=token_id,
    )


def access_layer(user, fleet_slug: str, name: str, action: str = VIEW) -> DesiredStateLayer:
    return access.get(
        DesiredStateLayer.objects.select_related("fleet"),
        user,
        action,
        f"layer '{name}' not found in fleet '{fleet_slug}'",
        fleet__slug=fleet_slug,
        name=name,
    )


def access_approval(user, approval_id: int, action: str = VIEW) -> ToolApproval:
    return access.get(
        ToolApproval.objects.select_related("fleet", "node"),
        user,
        action,
        f"approval {approval_id} not found",
        pk=approval_id,
    )


def access_rollout(user, rollout_id: int, action: str = VIEW) -> Rollout:
    return access.get(
        Rollout.objects.select_related("fleet"),
        user,
        action,
        f"rollout {rollout_id} not found",
        pk=rollout_id,
    )


# --- lists ----------------------------------------------------------------------------------------


def fleets(user, action: str = VIEW) -> QuerySet[Fleet]:
    return access.restrict(Fleet.objects.order_by("slug"), user, action)


def parse_label(label: str) -> tuple[str, str]:
    """ "key=value" (the API's schema checks the shape; pages pass what the user typed)."""
    key, sep, value = label.partition("=")
    if not sep or not key:
        raise ServiceError(f"label filter '{label}' is not key=value")
    return key, value


def nodes(
    user, *, fleet: str | None = None, status: str | None = None, label: str | None = None
) -> NodeQuerySet:
    """The nodes `user` may see, filtered in SQL: the label as a JSON key lookup that works on
    SQLite and PostgreSQL alike (no scan of every node's labels in Python)."""
    qs: NodeQuerySet = access.restrict(Node.objects.select_related("fleet"), user, VIEW)  # type: ignore[assignment]
    if fleet:
        qs = qs.filter(fleet__slug=fleet)
    if status:
        qs = qs.with_status(status)
    if label:
        key, value = parse_label(label)
        qs = qs.alias(_label=KeyTransform(key, "labels")).filter(_label=value)
    return qs.order_by("fleet__slug", "name")


def drifted_nodes(user, *, fleet: str | None = None) -> QuerySet[Node]:
    """Nodes whose reported state differs from their desired state (`Node.drift_reason`: why)."""
    qs = access.restrict(Node.objects.select_related("fleet").drifted(), user, VIEW)
    if fleet:
        qs = qs.filter(fleet__slug=fleet)
    return qs.order_by("fleet__slug", "name")


def enrollment_tokens(fleet: Fleet) -> QuerySet[EnrollmentToken]:
    return fleet.enrollment_tokens.select_related("fleet").order_by("-created_at", "-id")


def layers(fleet: Fleet) -> list[DesiredStateLayer]:
    return ordered(fleet.layers.select_related("fleet"))


def approvals(user, *, fleet: str | None = None, pending: bool = False) -> QuerySet[ToolApproval]:
    qs = access.restrict(
        ToolApproval.objects.select_related("fleet", "node", "decided_by"), user, VIEW
    )
    if fleet:
        qs = qs.filter(fleet__slug=fleet)
    if pending:
        qs = qs.filter(decision=ApprovalStatus.PENDING, expires_at__gt=timezone.now())
    return qs.order_by("-created_at", "-id")


def rollouts(fleet: Fleet) -> QuerySet[Rollout]:
    return fleet.rollouts.select_related("fleet").order_by("-created_at", "-id")


def rollout_targets(rollout: Rollout) -> list[RolloutNode]:
    return list(rollout.targets.select_related("node").order_by("wave", "node__name"))


def node_events(node: Node, *, kind: str | None = None) -> QuerySet[NodeEventRecord]:
    """What the node reported happening, newest first."""
    qs = NodeEventRecord.objects.filter(node=node)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-seq")


def metric_series(
    node: Node,
    name: str,
    *,
    resolution: str = "raw",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 2000,
) -> dict[str, Any]:
    """One metric of one node over time, for charts: raw samples (default: the last hour) or
    per-minute rollups (default: the last 7 days), each point as count/mean/min/max."""
    until = until or timezone.now()
    if resolution == "raw":
        since = since or until - timedelta(hours=1)
        samples = MetricSample.objects.filter(
            node=node, name=name, ts__gte=since, ts__lte=until
        ).order_by("ts")[:limit]
        points = [
            {"ts": r.ts, "count": 1, "mean": r.value, "min": r.value, "max": r.value}
            for r in samples
        ]
    else:
        since = since or until - timedelta(days=7)
        rollups = MetricRollup.objects.filter(
            node=node, name=name, minute__gte=since, minute__lte=until
        ).order_by("minute")[:limit]
        points = [
            {
                "ts": r.minute,
                "count": r.count,
                "mean": r.total / r.count,
                "min": r.min,
                "max": r.max,
            }
            for r in rollups
        ]
    return {"node": node.pk, "name": name, "resolution": resolution, "points": points}
