"""controlplane.rollouts.queries"""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.accounts import access
from controlplane.accounts.access import VIEW
from controlplane.nodes.models import (
    Fleet,
    Rollout,
    RolloutNode,
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
