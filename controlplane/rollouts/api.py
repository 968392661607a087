"""controlplane.rollouts.api"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema, Status

from controlplane.accounts.access import OPERATE, VIEW, access_fleet
from controlplane.errors import ERRORS
from controlplane.nodes.models import (
    Rollout,
    RolloutNode,
)
from controlplane.pagination import PageQuery, headers, offset_page
from controlplane.rollouts import queries as rollouts_queries
from controlplane.rollouts import services as rollouts
from controlplane.schemas import In, Slug
from wire.fields import JsonDict, Labels

router = Router(tags=["rollouts"])

WaveSpec = int | Annotated[str, Field(pattern=r"^(100|[1-9]?[0-9](\.[0-9]+)?)%$")]


class GatesIn(In):
    max_load_failures: Annotated[int, Field(ge=0, le=100_000)] = 0
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_p95_ratio: Annotated[float, Field(ge=1, le=100)] = 1.5
    max_escalation_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.10


class RolloutIn(In):
    model: JsonDict = Field(
        description='the model section to roll out, e.g. {"name": "tiny", "variant": "auto"}'
    )
    layer: Slug = Field("model", description="the layer the model is written to on completion")
    selector: Labels = {}
    waves: Annotated[list[WaveSpec], Field(min_length=1, max_length=20)] = [1, "100%"]
    gates: GatesIn = GatesIn()
    wave_wait_s: Annotated[int, Field(ge=1, le=7 * 86_400)] = 300

    def service_kwargs(self) -> dict[str, Any]:
        """do_start_rollout's keywords (the API and the rollouts page alike)."""
        return {**self.dict(exclude={"gates"}), "gates": self.gates.dict()}


class RolloutNodeOut(Schema):
    node: UUID
    name: str
    wave: int
    state: str
    target_revision: int | None
    previous_digest: str

    @staticmethod
    def resolve_node(obj: RolloutNode) -> UUID:
        return obj.node_id

    @staticmethod
    def resolve_name(obj: RolloutNode) -> str:
        return obj.node.name


class RolloutOut(Schema):
    id: int
    fleet: str
    model: dict[str, Any]
    layer: str
    selector: dict[str, str]
    waves: list[int | str]
    gates: dict[str, float]
    wave_wait_s: int
    status: str
    current_wave: int
    wave_started_at: datetime
    baseline: dict[str, Any]
    last_check: dict[str, Any]
    reason: str
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def resolve_fleet(obj: Rollout) -> str:
        return obj.fleet.slug


class RolloutDetailOut(RolloutOut):
    nodes: list[RolloutNodeOut]

    @staticmethod
    def resolve_nodes(obj: Rollout) -> list[RolloutNode]:
        return rollouts_queries.rollout_targets(obj)


@router.get("/fleets/{slug}/rollouts", response={200: list[RolloutOut], **ERRORS})
def list_rollouts(request, response: HttpResponse, slug: str, page: Query[PageQuery]):
    fleet = access_fleet(request.auth, slug, VIEW)
    return headers(
        request,
        response,
        offset_page(rollouts_queries.rollouts(fleet), limit=page.limit, offset=page.offset),
    )


@router.post("/fleets/{slug}/rollouts", response={201: RolloutDetailOut, **ERRORS})
def start_rollout(request, slug: str, payload: RolloutIn):
    """Start a staged rollout of a model to the fleet's nodes matching `selector` (all if empty).
    The first wave (the canary) gets the model at once; see docs/models.md for the gates."""
    fleet = access_fleet(request.auth, slug, OPERATE)
    rollout = rollouts.do_start_rollout(
        fleet, **payload.service_kwargs(), request=request, actor=request.auth
    )
    return Status(201, rollout)


@router.get("/rollouts/{rollout_id}", response={200: RolloutDetailOut, **ERRORS})
def get_rollout(request, rollout_id: int):
    return rollouts_queries.access_rollout(request.auth, rollout_id, VIEW)


@router.post("/rollouts/{rollout_id}/pause", response={200: RolloutOut, **ERRORS})
def pause_rollout(request, rollout_id: int):
    rollout = rollouts_queries.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_pause_rollout(rollout, request=request, actor=request.auth)


@router.post("/rollouts/{rollout_id}/resume", response={200: RolloutOut, **ERRORS})
def resume_rollout(request, rollout_id: int):
    rollout = rollouts_queries.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_resume_rollout(rollout, request=request, actor=request.auth)


@router.post("/rollouts/{rollout_id}/abort", response={200: RolloutOut, **ERRORS})
def abort_rollout(request, rollout_id: int):
    """Stop and roll every updated node back to the model it ran before."""
    rollout = rollouts_queries.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_abort_rollout(rollout, request=request, actor=request.auth)
