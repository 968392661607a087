"""controlplane.rollouts.queries"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from controlplane.accounts import access
from controlplane.accounts.access import VIEW
from controlplane.nodes.models import (
    Fleet,
    NodeStatus,
    Rollout,
    RolloutNode,
    RolloutNodeState,
)


def access_rollout(user, rollout_id: int, action: str = VIEW) -> Rollout:
    return access.get(
        Rollout.objects.select_related("fleet"),
        user,
        action,
        f"rollout {rollout_id} not found",
        pk=rollout_id,
    )


def rollouts(fleet: Fleet) -> QuerySet[Rollout]:
    return fleet.rollouts.select_related("fleet").order_by("-created_at", "-id")


def rollout_targets(rollout: Rollout) -> list[RolloutNode]:
    return list(rollout.targets.select_related("node").order_by("wave", "node__name"))


def wave_counts(rollout) -> list[dict[str, Any]]:
    """Per wave: how many targets succeeded, failed, are pending, and are offline now."""
    waves: dict[int, dict[str, Any]] = {}
    for t in rollout_targets(rollout):
        w = waves.setdefault(
            t.wave,
            {"wave": t.wave, "succeeded": 0, "failed": 0, "pending": 0, "offline": 0, "total": 0},
        )
        w["total"] += 1
        applied = t.node.reported_revision is not None and (
            t.target_revision is None or t.node.reported_revision >= t.target_revision
        )
        if t.state == RolloutNodeState.ROLLED_BACK or (applied and t.node.reported_errors):
            w["failed"] += 1
        elif t.state == RolloutNodeState.UPDATED and applied:
            w["succeeded"] += 1
        else:
            w["pending"] += 1
        if t.node.status in (NodeStatus.OFFLINE, NodeStatus.NEVER):
            w["offline"] += 1
    return [waves[k] for k in sorted(waves)]
