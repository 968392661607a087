"""Admin API for fleets, nodes, enrollment tokens and desired-state layers (/api/v1/).

Handlers are thin: an access function finds the object (404 for missing and forbidden alike), a
service function does the write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from agents.schemas import (
    SECTIONS,
    CloudEndpoint,
    JsonDict,
    Labels,
    Name,
    Region,
)
from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, OPERATE, VIEW, VIEW_AUDIT
from controlplane.errors import Forbidden, ServiceError

from . import desired_state, rollouts, services
from .models import (
    DesiredStateLayer,
    EnrollmentToken,
    Fleet,
    MetricRollup,
    MetricSample,
    Node,
    NodeEventRecord,
    NodeQuerySet,
    NodeStatus,
    Rollout,
    RolloutNode,
    ToolApproval,
)

router = Router(tags=["fleet"])

Slug = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


# --- schemas ------------------------------------------------------------------------------------


class FleetIn(Schema):
    slug: Slug
    name: Name
    description: Annotated[str, Field(max_length=2000)] = ""
    poll_interval_s: Annotated[int, Field(ge=5, le=86_400)] | None = None


class FleetPatch(Schema):
    name: Name | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None
    poll_interval_s: Annotated[int, Field(ge=5, le=86_400)] | None = None


class FleetOut(Schema):
    slug: str
    name: str
    description: str
    poll_interval_s: int
    created_at: datetime

    @staticmethod
    def resolve_poll_interval_s(obj: Fleet) -> int:
        return obj.effective_poll_interval_s


class NodeOut(Schema):
    id: UUID
    fleet: str
    name: str
    labels: dict[str, str]
    hardware: dict[str, Any]
    status: str
    last_seen_at: datetime | None
    enrolled_at: datetime
    desired_revision: int
    reported_revision: int | None
    reported_model_digest: str
    reported_health: str
    reported_errors: list[str]
    in_sync: bool
    desired_model_digest: str
    model_choice: str = Field(description="why this model variant, or why none can run here")

    @staticmethod
    def resolve_fleet(obj: Node) -> str:
        return obj.fleet.slug


class NodePatch(Schema):
    name: Name | None = None
    labels: Labels | None = None


class DriftOut(Schema):
    id: UUID
    name: str
    fleet: str
    desired_revision: int
    reported_revision: int | None
    reported_health: str
    reported_errors: list[str]
    desired_model_digest: str
    reported_model_digest: str
    status: str
    reason: str

    @staticmethod
    def resolve_fleet(obj: Node) -> str:
        return obj.fleet.slug

    @staticmethod
    def resolve_reason(obj: Node) -> str:
        return obj.drift_reason


class EnrollmentTokenIn(Schema):
    labels: Labels = {}
    ttl_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 24
    max_uses: Annotated[int, Field(ge=1, le=100_000)] = 1
    note: Annotated[str, Field(max_length=200)] = ""


class EnrollmentTokenOut(Schema):
    id: int
    fleet: str
    prefix: str
    note: str
    labels: dict[str, str]
    expires_at: datetime
    max_uses: int
    uses: int
    revoked_at: datetime | None
    usable: bool

    @staticmethod
    def resolve_fleet(obj: EnrollmentToken) -> str:
        return obj.fleet.slug

    @staticmethod
    def resolve_usable(obj: EnrollmentToken) -> bool:
        return not obj.problem()


class EnrollmentTokenCreatedOut(EnrollmentTokenOut):
    token: str = Field(description="The enrollment token. Shown once; only its hash is stored.")


class LayerIn(Schema):
    scope: Literal["fleet", "label", "node"]
    selector: Labels = {}
    node: UUID | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    sections: JsonDict


class LayerOut(Schema):
    name: str
    fleet: str
    scope: str
    selector: dict[str, str]
    node: UUID | None
    priority: int
    sections: dict[str, Any]
    updated_at: datetime

    @staticmethod
    def resolve_fleet(obj: DesiredStateLayer) -> str:
        return obj.fleet.slug

    @staticmethod
    def resolve_node(obj: DesiredStateLayer) -> UUID | None:
        return obj.node_id


class LayerPutOut(Schema):
    layer: LayerOut
    nodes_changed: int


class RevokedOut(Schema):
    credentials_revoked: int


class NodeFilter(Schema):
    fleet: str | None = None
    status: NodeStatus | None = None
    label: Annotated[str, Field(max_length=130, pattern=r"^[^=]+=[^=]*$")] | None = Field(
        None, description="key=value"
    )
    limit: Annotated[int, Field(ge=1, le=1000)] = 200
    offset: Annotated[int, Field(ge=0)] = 0


# --- fleets -------------------------------------------------------------------------------------


@router.get("/fleets", response=list[FleetOut])
def list_fleets(request):
    return access.restrict(Fleet.objects.order_by("slug"), request.auth, VIEW, "id")


@router.post("/fleets", response={201: FleetOut})
def create_fleet(request, payload: FleetIn):
    if not access.is_global_admin(request.auth):
        raise Forbidden("only global admins create fleets")
    return Status(201, services.do_create_fleet(request.auth, request=request, **payload.dict()))


@router.get("/fleets/{slug}", response=FleetOut)
def get_fleet(request, slug: str):
    return access.access_fleet(request.auth, slug, VIEW)


@router.patch("/fleets/{slug}", response=FleetOut)
def update_fleet(request, slug: str, payload: FleetPatch):
    fleet = access.access_fleet(request.auth, slug, ADMINISTER)
    return services.do_update_fleet(
        request.auth, fleet, request=request, **payload.dict(exclude_unset=True)
    )


# --- compliance -----------------------------------------------------------------------------------


class CompliancePatch(Schema):
    mode: Literal["none", "hipaa", "gdpr"] | None = None
    phi_action: Literal["redact", "refuse"] | None = None
    store_content: bool | None = Field(None, description="null: the mode's default")
    allowed_regions: Annotated[list[Region], Field(max_length=64)] | None = None
    cloud_endpoints: Annotated[list[CloudEndpoint], Field(max_length=32)] | None = None
    events_retention_days: Annotated[int, Field(ge=1, le=36_500)] | None = None


class ComplianceOut(Schema):
    mode: str
    phi_action: str
    store_content: bool | None
    allowed_regions: list[str]
    cloud_endpoints: list[dict[str, Any]]
    events_retention_days: int
    effective: dict[str, Any] = Field(description="the policy as enforced and pushed to nodes")
    nodes_changed: int = 0


def _compliance_out(fleet: Fleet, nodes_changed: int = 0) -> dict[str, Any]:
    return {
        "mode": fleet.compliance_mode, "phi_action": fleet.phi_action,
        "store_content": fleet.store_content, "allowed_regions": fleet.allowed_regions,
        "cloud_endpoints": fleet.cloud_endpoints,
        "events_retention_days": fleet.events_retention.days,
        "effective": fleet.compliance_policy().model_dump(), "nodes_changed": nodes_changed,
    }  # fmt: skip


@router.get("/fleets/{slug}/compliance", response=ComplianceOut)
def get_compliance(request, slug: str):
    return _compliance_out(access.access_fleet(request.auth, slug, VIEW_AUDIT))


@router.patch("/fleets/{slug}/compliance", response=ComplianceOut)
def set_compliance(request, slug: str, payload: CompliancePatch):
    """Change the fleet's compliance mode and settings: audited, and pushed to its nodes with their
    next poll."""
    fleet = access.access_fleet(request.auth, slug, ADMINISTER)
    changes = payload.dict(exclude_unset=True)
    if "cloud_endpoints" in changes:
        changes["cloud_endpoints"] = [
            e.model_dump(exclude_none=True) for e in payload.cloud_endpoints or []
        ]
    fleet, changed = services.do_set_compliance(request.auth, fleet, request=request, **changes)
    return _compliance_out(fleet, changed)


# --- enrollment tokens --------------------------------------------------------------------------


@router.get("/fleets/{slug}/enrollment-tokens", response=list[EnrollmentTokenOut])
def list_enrollment_tokens(request, slug: str):
    fleet = access.access_fleet(request.auth, slug, OPERATE)
    return fleet.enrollment_tokens.select_related("fleet").order_by("-created_at")


@router.post("/fleets/{slug}/enrollment-tokens", response={201: EnrollmentTokenCreatedOut})
def create_enrollment_token(request, slug: str, payload: EnrollmentTokenIn):
    fleet = access.access_fleet(request.auth, slug, OPERATE)
    token, plaintext = services.do_create_enrollment_token(
        request.auth,
        fleet,
        labels=payload.labels,
        ttl=timedelta(hours=payload.ttl_hours),
        max_uses=payload.max_uses,
        note=payload.note,
        request=request,
    )
    token.token = plaintext  # type: ignore[attr-defined]
    return Status(201, token)


@router.post("/enrollment-tokens/{token_id}/revoke", response=EnrollmentTokenOut)
def revoke_enrollment_token(request, token_id: int):
    token = access.access_enrollment_token(request.auth, token_id, OPERATE)
    return services.do_revoke_enrollment_token(request.auth, token, request=request)


# --- nodes --------------------------------------------------------------------------------------


@router.get("/nodes", response=list[NodeOut])
def list_nodes(request, filters: Query[NodeFilter]):
    nodes: NodeQuerySet = access.restrict(Node.objects.select_related("fleet"), request.auth, VIEW)  # type: ignore[assignment]
    if filters.fleet:
        nodes = nodes.filter(fleet__slug=filters.fleet)
    if filters.status:
        nodes = nodes.with_status(filters.status)
    if filters.label:
        key, value = filters.label.split("=", 1)
        nodes = nodes.filter(
            pk__in=[
                pk for pk, labels in nodes.values_list("id", "labels") if labels.get(key) == value
            ]
        )
    return nodes.order_by("fleet__slug", "name")[filters.offset : filters.offset + filters.limit]


@router.get("/nodes/drift", response=list[DriftOut])
def list_drift(request, fleet: str | None = None):
    """Nodes whose reported state differs from their desired state, and why."""
    nodes = access.restrict(Node.objects.select_related("fleet").drifted(), request.auth, VIEW)
    if fleet:
        nodes = nodes.filter(fleet__slug=fleet)
    return nodes.order_by("fleet__slug", "name")[:1000]


@router.get("/nodes/{node_id}", response=NodeOut)
def get_node(request, node_id: str):
    return access.access_node(request.auth, node_id, VIEW)


@router.patch("/nodes/{node_id}", response=NodeOut)
def update_node(request, node_id: str, payload: NodePatch):
    node = access.access_node(request.auth, node_id, OPERATE)
    return services.do_update_node(
        request.auth, node, request=request, **payload.dict(exclude_unset=True)
    )


@router.post("/nodes/{node_id}/revoke", response=RevokedOut)
def revoke_node(request, node_id: str):
    """Revoke every credential of the node; its next request is answered 401."""
    node = access.access_node(request.auth, node_id, OPERATE)
    return {"credentials_revoked": services.do_revoke_node(request.auth, node, request=request)}


@router.get("/nodes/{node_id}/desired-state", response=dict[str, Any])
def preview_desired_state(request, node_id: str):
    """The document the node gets on its next poll."""
    return desired_state.document(access.access_node(request.auth, node_id, VIEW))


class MetricPoint(Schema):
    ts: datetime
    count: int
    mean: float
    min: float
    max: float


class MetricSeriesOut(Schema):
    node: UUID
    name: str
    resolution: str
    points: list[MetricPoint]


class MetricQuery(Schema):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
    since: datetime | None = Field(
        None, description="default: 1 hour ago (raw) or 7 days ago (minute)"
    )
    until: datetime | None = None
    resolution: Literal["raw", "minute"] = "raw"
    limit: Annotated[int, Field(ge=1, le=10_000)] = 2_000


class NodeEventOut(Schema):
    seq: int
    ts: datetime
    kind: str
    data: dict[str, Any]
    received_at: datetime


@router.get("/nodes/{node_id}/metrics", response=MetricSeriesOut)
def node_metrics(request, node_id: str, q: Query[MetricQuery]):
    """One metric of one node over time: raw samples (kept EDGEFLEET_METRICS_RAW_RETENTION_H) or
    per-minute rollups (kept EDGEFLEET_METRICS_ROLLUP_RETENTION_DAYS), for charts."""
    node = access.access_node(request.auth, node_id, VIEW)
    until = q.until or timezone.now()
    if q.resolution == "raw":
        since = q.since or until - timedelta(hours=1)
        rows = MetricSample.objects.filter(
            node=node, name=q.name, ts__gte=since, ts__lte=until
        ).order_by("ts")
        points = [
            {"ts": r.ts, "count": 1, "mean": r.value, "min": r.value, "max": r.value}
            for r in rows[: q.limit]
        ]
    else:
        since = q.since or until - timedelta(days=7)
        rollups = MetricRollup.objects.filter(
            node=node, name=q.name, minute__gte=since, minute__lte=until
        )
        points = [{"ts": r.minute, "count": r.count, "mean": r.total / r.count, "min": r.min, "max": r.max}
                  for r in rollups.order_by("minute")[: q.limit]]  # fmt: skip
    return {"node": node.pk, "name": q.name, "resolution": q.resolution, "points": points}


@router.get("/nodes/{node_id}/events", response=list[NodeEventOut])
def node_events(
    request, node_id: str, kind: str | None = None, limit: int = Query(200, ge=1, le=2000)
):
    """What the node reported happening (tool calls allowed/denied/approved, model swaps, failed
    applies), newest first."""
    node = access.access_node(request.auth, node_id, VIEW)
    events = NodeEventRecord.objects.filter(node=node)
    if kind:
        events = events.filter(kind=kind)
    return events.order_by("-seq")[:limit]


# --- desired-state layers -----------------------------------------------------------------------


@router.get("/fleets/{slug}/layers", response=list[LayerOut])
def list_layers(request, slug: str):
    fleet = access.access_fleet(request.auth, slug, VIEW)
    return desired_state.ordered(fleet.layers.select_related("fleet"))


@router.put("/fleets/{slug}/layers/{name}", response=LayerPutOut)
def put_layer(request, slug: str, name: str, payload: LayerIn):
    """Create or replace a layer. Sections: model, agents, tools, routing, compliance."""
    fleet = access.access_fleet(request.auth, slug, OPERATE)
    unknown = set(payload.sections) - set(SECTIONS)
    if unknown:
        raise ServiceError(f"unknown sections {sorted(unknown)}; allowed: {list(SECTIONS)}")
    if not (0 < len(name) <= 63 and name.replace("-", "").replace("_", "").isalnum()):
        raise ServiceError("layer name must be 1-63 letters, digits, '-' or '_'")
    node = None
    if payload.scope == "node":
        if payload.node is None:
            raise ServiceError("a node layer needs 'node'")
        node = access.access_node(request.auth, payload.node, OPERATE)
    if payload.scope == "label" and not payload.selector:
        raise ServiceError("a label layer needs a non-empty 'selector'")
    layer, changed = services.do_put_layer(
        request.auth,
        fleet,
        name=name,
        scope=payload.scope,
        sections=payload.sections,
        selector=payload.selector,
        node=node,
        priority=payload.priority,
        request=request,
    )
    return {"layer": layer, "nodes_changed": changed}


@router.delete("/fleets/{slug}/layers/{name}", response={200: dict[str, int]})
def delete_layer(request, slug: str, name: str):
    layer = access.access_layer(request.auth, slug, name, OPERATE)
    return {"nodes_changed": services.do_delete_layer(request.auth, layer, request=request)}


# --- tool approvals -----------------------------------------------------------------------------


class ApprovalOut(Schema):
    id: int
    fleet: str
    node: UUID
    node_name: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str

    @staticmethod
    def resolve_fleet(obj: ToolApproval) -> str:
        return obj.fleet.slug

    @staticmethod
    def resolve_node(obj: ToolApproval) -> UUID:
        return obj.node_id

    @staticmethod
    def resolve_node_name(obj: ToolApproval) -> str:
        return obj.node.name

    @staticmethod
    def resolve_decided_by(obj: ToolApproval) -> str:
        return obj.decided_by.username if obj.decided_by else ""


@router.get("/approvals", response=list[ApprovalOut])
def list_approvals(request, fleet: str | None = None, pending: bool = False):
    approvals = access.restrict(
        ToolApproval.objects.select_related("fleet", "node", "decided_by"), request.auth, VIEW
    )
    if fleet:
        approvals = approvals.filter(fleet__slug=fleet)
    if pending:
        approvals = approvals.filter(decision="pending", expires_at__gt=timezone.now())
    return approvals.order_by("-created_at")[:500]


@router.post("/approvals/{approval_id}/approve", response=ApprovalOut)
def approve(request, approval_id: int):
    approval = access.access_approval(request.auth, approval_id, OPERATE)
    return services.do_decide_approval(request.auth, approval, approve=True, request=request)


@router.post("/approvals/{approval_id}/deny", response=ApprovalOut)
def deny(request, approval_id: int):
    approval = access.access_approval(request.auth, approval_id, OPERATE)
    return services.do_decide_approval(request.auth, approval, approve=False, request=request)


# --- rollouts -----------------------------------------------------------------------------------

WaveSpec = int | Annotated[str, Field(pattern=r"^(100|[1-9]?[0-9](\.[0-9]+)?)%$")]


class GatesIn(Schema):
    max_load_failures: Annotated[int, Field(ge=0, le=100_000)] = 0
    max_error_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.05
    max_p95_ratio: Annotated[float, Field(ge=1, le=100)] = 1.5
    max_escalation_rate_increase: Annotated[float, Field(ge=0, le=1)] = 0.10


class RolloutIn(Schema):
    model: JsonDict = Field(
        description='the model section to roll out, e.g. {"name": "tiny", "variant": "auto"}'
    )
    layer: Slug = Field("model", description="the layer the model is written to on completion")
    selector: Labels = {}
    waves: Annotated[list[WaveSpec], Field(min_length=1, max_length=20)] = [1, "100%"]
    gates: GatesIn = GatesIn()
    wave_wait_s: Annotated[int, Field(ge=1, le=7 * 86_400)] = 300


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
        return list(obj.targets.select_related("node").order_by("wave", "node__name"))


@router.get("/fleets/{slug}/rollouts", response=list[RolloutOut])
def list_rollouts(request, slug: str):
    fleet = access.access_fleet(request.auth, slug, VIEW)
    return fleet.rollouts.select_related("fleet").order_by("-created_at")[:200]


@router.post("/fleets/{slug}/rollouts", response={201: RolloutDetailOut})
def start_rollout(request, slug: str, payload: RolloutIn):
    """Start a staged rollout of a model to the fleet's nodes matching `selector` (all if empty).
    The first wave (the canary) gets the model at once; see docs/models.md for the gates."""
    fleet = access.access_fleet(request.auth, slug, OPERATE)
    rollout = rollouts.do_start_rollout(
        request.auth, fleet, model=payload.model, layer=payload.layer, selector=payload.selector,
        waves=payload.waves, gates=payload.gates.dict(), wave_wait_s=payload.wave_wait_s,
        request=request,
    )  # fmt: skip
    return Status(201, rollout)


@router.get("/rollouts/{rollout_id}", response=RolloutDetailOut)
def get_rollout(request, rollout_id: int):
    return access.access_rollout(request.auth, rollout_id, VIEW)


@router.post("/rollouts/{rollout_id}/pause", response=RolloutOut)
def pause_rollout(request, rollout_id: int):
    rollout = access.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_pause_rollout(request.auth, rollout, request=request)


@router.post("/rollouts/{rollout_id}/resume", response=RolloutOut)
def resume_rollout(request, rollout_id: int):
    rollout = access.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_resume_rollout(request.auth, rollout, request=request)


@router.post("/rollouts/{rollout_id}/abort", response=RolloutOut)
def abort_rollout(request, rollout_id: int):
    """Stop and roll every updated node back to the model it ran before."""
    rollout = access.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_abort_rollout(request.auth, rollout, request=request)
