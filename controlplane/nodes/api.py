"""Admin API for fleets, nodes, enrollment tokens and desired-state layers (/api/v1/).

Handlers are thin: an access function finds the object (404 for missing and forbidden alike), a
service function does the write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema, Status

from controlplane.accounts.access import ADMINISTER, OPERATE, VIEW, VIEW_AUDIT, access_fleet
from controlplane.desiredstate import compose as desired_state
from controlplane.errors import ERRORS
from controlplane.nodes import queries, services
from controlplane.nodes.models import (
    DesiredStateLayer,
    EnrollmentToken,
    Fleet,
    Node,
    NodeStatus,
    Rollout,
    RolloutNode,
    ToolApproval,
)
from controlplane.pagination import PageQuery, headers, offset_page
from controlplane.relay import services as escalation
from controlplane.rollouts import services as rollouts
from controlplane.schemas import In, IsoDate, IsoTime, Slug
from wire.schemas import (
    CloudBudgets,
    ComplianceMode,
    ComplianceSettings,
    Endpoints,
    JsonDict,
    Labels,
    Name,
    PhiAction,
    Regions,
    RetentionDays,
    SafeProse,
)

router = Router(tags=["fleet"])


# --- schemas ------------------------------------------------------------------------------------


Description = Annotated[SafeProse, Field(max_length=2000)]


class FleetIn(In):
    slug: Slug
    name: Name
    description: Description = ""
    poll_interval_s: Annotated[int, Field(ge=5, le=86_400)] | None = None


class FleetPatch(In):
    """Absent fields stay as they are; `poll_interval_s` null means the global default."""

    name: Name = None  # type: ignore[assignment]
    description: Description = None  # type: ignore[assignment]
    poll_interval_s: Annotated[int, Field(ge=5, le=86_400)] | None = None
    alert_p95_latency_ms: Annotated[float, Field(ge=1, le=600_000)] = Field(
        None, description="alert when the p95 latency exceeds this (ms)"
    )  # type: ignore[assignment]
    alert_error_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        None, description="alert when the error rate exceeds this fraction"
    )  # type: ignore[assignment]
    alert_memory_fraction: Annotated[float, Field(ge=0.05, le=1)] = Field(
        None, description="alert when a node uses more than this fraction of its memory"
    )  # type: ignore[assignment]


class FleetOut(Schema):
    slug: str
    name: str
    description: str
    poll_interval_s: int
    alert_p95_latency_ms: float
    alert_error_rate: float
    alert_memory_fraction: float
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


class NodePatch(In):
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


class EnrollmentTokenIn(In):
    labels: Labels = {}
    ttl_hours: Annotated[float, Field(gt=0, le=24 * 365)] | None = Field(
        24, description="hours until it expires; null: it never expires (an explicit choice)"
    )
    max_uses: Annotated[int, Field(ge=1, le=100_000)] = 1
    note: Annotated[SafeProse, Field(max_length=200)] = ""

    def service_kwargs(self) -> dict[str, Any]:
        """do_create_enrollment_token's keywords (the API and the enrollment page alike)."""
        never = self.ttl_hours is None
        return {
            "labels": self.labels,
            "ttl": None if never else timedelta(hours=self.ttl_hours),  # type: ignore[arg-type]
            "never_expires": never,
            "max_uses": self.max_uses,
            "note": self.note,
        }


class EnrollmentTokenOut(Schema):
    id: int
    fleet: str
    prefix: str
    note: str
    labels: dict[str, str]
    expires_at: datetime | None
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


class LayerIn(In):
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


class NodeFilter(PageQuery):
    fleet: str | None = None
    status: NodeStatus | None = None
    label: Annotated[str, Field(max_length=130, pattern=r"^[^=]+=[^=]*$")] | None = Field(
        None, description="key=value"
    )


class FleetFilter(PageQuery):
    fleet: str | None = None


class ApprovalFilter(FleetFilter):
    pending: bool = False


class EventFilter(PageQuery):
    kind: Annotated[str, Field(max_length=64)] | None = None


# --- fleets -------------------------------------------------------------------------------------


@router.get("/fleets", response={200: list[FleetOut], **ERRORS})
def list_fleets(request, response: HttpResponse, page: Query[PageQuery]):
    return headers(
        request,
        response,
        offset_page(queries.fleets(request.auth), limit=page.limit, offset=page.offset),
    )


@router.post("/fleets", response={201: FleetOut, **ERRORS})
def create_fleet(request, payload: FleetIn):
    return Status(
        201, services.do_create_fleet(request=request, **payload.dict(), actor=request.auth)
    )


@router.get("/fleets/{slug}", response={200: FleetOut, **ERRORS})
def get_fleet(request, slug: str):
    return access_fleet(request.auth, slug, VIEW)


@router.patch("/fleets/{slug}", response={200: FleetOut, **ERRORS})
def update_fleet(request, slug: str, payload: FleetPatch):
    fleet = access_fleet(request.auth, slug, ADMINISTER)
    return services.do_update_fleet(
        fleet, request=request, **payload.dict(exclude_unset=True), actor=request.auth
    )


# --- compliance -----------------------------------------------------------------------------------


class CompliancePatch(In):
    """Absent fields stay as they are. `store_content` null: the mode's default;
    `events_retention_days` null: the global default."""

    # Optional but never null: absent means unchanged (the service validates the result again).
    mode: ComplianceMode = None  # type: ignore[assignment]
    phi_action: PhiAction = None  # type: ignore[assignment]
    store_content: bool | None = Field(None, description="null: the mode's default")
    allowed_regions: Regions = None  # type: ignore[assignment]
    cloud_endpoints: Endpoints = None  # type: ignore[assignment]
    events_retention_days: RetentionDays | None = None


class ComplianceOut(ComplianceSettings):
    events_retention_days: int = Field(description="in effect (the global default if unset)")  # type: ignore[assignment]
    effective: dict[str, Any] = Field(description="the policy as enforced and pushed to nodes")
    nodes_changed: int = 0


def _compliance_out(fleet: Fleet, nodes_changed: int = 0) -> ComplianceOut:
    return ComplianceOut(
        **fleet.compliance_settings().model_dump(exclude={"events_retention_days"}),
        events_retention_days=fleet.events_retention.days,
        effective=fleet.compliance_policy().model_dump(mode="json"),
        nodes_changed=nodes_changed,
    )


@router.get("/fleets/{slug}/compliance", response={200: ComplianceOut, **ERRORS})
def get_compliance(request, slug: str):
    return _compliance_out(access_fleet(request.auth, slug, VIEW_AUDIT))


@router.patch("/fleets/{slug}/compliance", response={200: ComplianceOut, **ERRORS})
def set_compliance(request, slug: str, payload: CompliancePatch):
    """Change the fleet's compliance mode and settings: audited, and pushed to its nodes with their
    next poll."""
    fleet = access_fleet(request.auth, slug, ADMINISTER)
    changes = payload.model_dump(mode="json", exclude_unset=True)
    fleet, changed = services.do_set_compliance(
        fleet, request=request, **changes, actor=request.auth
    )
    return _compliance_out(fleet, changed)


class RedactionPreviewIn(In):
    text: Annotated[str, Field(min_length=1, max_length=20_000)]


class PreviewFinding(Schema):
    kind: str
    value: str


class RedactionPreviewOut(Schema):
    verdict: Literal["as_is", "redacted", "refused"] = Field(
        description="as_is: the fleet is not in HIPAA mode, its endpoints get the text as it is "
        "(`sent` shows what HIPAA mode would send); redacted: what an endpoint without a BAA "
        "receives; refused: nothing would be sent (`reason`)"
    )
    sent: str
    counts: dict[str, int]
    findings: list[PreviewFinding]
    reason: str = ""


@router.post(
    "/fleets/{slug}/compliance/redaction-preview",
    response={200: RedactionPreviewOut, **ERRORS},
)
def redaction_preview(request, response: HttpResponse, slug: str, payload: RedactionPreviewIn):
    """What a cloud endpoint without a BAA would receive of `text` from this fleet's nodes: the
    node's own detector and placeholders, run here. Nothing is stored or logged."""
    fleet = access_fleet(request.auth, slug, VIEW_AUDIT)
    preview = escalation.redaction_preview(fleet, text=payload.text)
    response["Cache-Control"] = "no-store"
    return RedactionPreviewOut(
        verdict=preview.verdict,  # type: ignore[arg-type]
        sent=preview.sent,
        counts=preview.counts,
        findings=[PreviewFinding(kind=k, value=v) for k, v in preview.findings],
        reason=preview.reason,
    )


# --- cloud budgets and usage ---------------------------------------------------------------------


class BudgetsOut(CloudBudgets):
    used: dict[str, float] = Field(
        description="the fleet's usage so far today and this month (fleet_day_usd, ...)"
    )


class UsageQuery(Schema):
    by: Literal["node", "agent", "endpoint", "day"] = "node"
    since: IsoDate | None = Field(None, description="first UTC day (default: 30 days ago)")
    until: IsoDate | None = Field(None, description="last UTC day (default: today)")


class UsageOut(Schema):
    key: str = Field(description="the node's name, the agent, the endpoint or the day")
    requests: int
    failures: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def _budgets_out(fleet: Fleet) -> BudgetsOut:
    used = {k: v for k, v in queries.cloud_usage_so_far(fleet).items() if k.startswith("fleet_")}
    return BudgetsOut(**fleet.budgets().model_dump(), used=used)


@router.get("/fleets/{slug}/budgets", response={200: BudgetsOut, **ERRORS})
def get_budgets(request, slug: str):
    """The fleet's cloud budgets (null: no limit) and what it used so far."""
    return _budgets_out(access_fleet(request.auth, slug, VIEW))


@router.put("/fleets/{slug}/budgets", response={200: BudgetsOut, **ERRORS})
def set_budgets(request, slug: str, payload: CloudBudgets):
    """Replace the fleet's cloud budgets (a limit left out is no limit). Audited."""
    fleet = access_fleet(request.auth, slug, ADMINISTER)
    escalation.do_set_cloud_budgets(
        fleet, budgets=payload.model_dump(), actor=request.auth, request=request
    )
    return _budgets_out(fleet)


@router.get("/fleets/{slug}/cloud-usage", response={200: list[UsageOut], **ERRORS})
def cloud_usage(
    request, response: HttpResponse, slug: str, q: Query[UsageQuery], page: Query[PageQuery]
):
    """Relayed cloud calls summed per node, agent, endpoint or day, most expensive first."""
    fleet = access_fleet(request.auth, slug, VIEW)
    since, until = queries.usage_window(q.since, q.until)
    rows = headers(
        request,
        response,
        offset_page(
            queries.cloud_usage(fleet, by=q.by, since=since, until=until),
            limit=page.limit,
            offset=page.offset,
        ),
    )
    key = queries.USAGE_GROUPS[q.by]
    return [UsageOut(key=str(r[key]), **{k: v for k, v in r.items() if k != key}) for r in rows]


class LocalUsageQuery(Schema):
    by: Literal["node", "agent"] = "node"
    since: IsoDate | None = Field(None, description="first UTC day (default: 30 days ago)")
    until: IsoDate | None = Field(None, description="last UTC day (default: today)")


class LocalUsageOut(Schema):
    key: str = Field(description="the node's name or the agent")
    tokens: int = Field(description="completion tokens generated on the nodes")
    requests: int = Field(description="answers that reported them")


@router.get("/fleets/{slug}/local-usage", response={200: list[LocalUsageOut], **ERRORS})
def local_usage(
    request, response: HttpResponse, slug: str, q: Query[LocalUsageQuery], page: Query[PageQuery]
):
    """Tokens generated locally, per node or per agent, most first (beside cloud-usage)."""
    fleet = access_fleet(request.auth, slug, VIEW)
    since, until = queries.usage_window(q.since, q.until)
    rows = queries.local_tokens(fleet, by=q.by, since=since, until=until)
    return headers(request, response, offset_page(rows, limit=page.limit, offset=page.offset))


# --- enrollment tokens --------------------------------------------------------------------------


@router.get("/fleets/{slug}/enrollment-tokens", response={200: list[EnrollmentTokenOut], **ERRORS})
def list_enrollment_tokens(request, response: HttpResponse, slug: str, page: Query[PageQuery]):
    fleet = access_fleet(request.auth, slug, OPERATE)
    tokens = queries.enrollment_tokens(fleet)
    return headers(request, response, offset_page(tokens, limit=page.limit, offset=page.offset))


@router.post(
    "/fleets/{slug}/enrollment-tokens", response={201: EnrollmentTokenCreatedOut, **ERRORS}
)
def create_enrollment_token(request, slug: str, payload: EnrollmentTokenIn):
    fleet = access_fleet(request.auth, slug, OPERATE)
    token, plaintext = services.do_create_enrollment_token(
        fleet, **payload.service_kwargs(), request=request, actor=request.auth
    )
    token.token = plaintext  # type: ignore[attr-defined]
    return Status(201, token)


@router.post("/enrollment-tokens/{token_id}/revoke", response={200: EnrollmentTokenOut, **ERRORS})
def revoke_enrollment_token(request, token_id: int):
    token = queries.access_enrollment_token(request.auth, token_id, OPERATE)
    return services.do_revoke_enrollment_token(token, request=request, actor=request.auth)


# --- nodes --------------------------------------------------------------------------------------


@router.get("/nodes", response={200: list[NodeOut], **ERRORS})
def list_nodes(request, response: HttpResponse, filters: Query[NodeFilter]):
    nodes = queries.nodes(
        request.auth, fleet=filters.fleet, status=filters.status, label=filters.label
    )
    return headers(
        request, response, offset_page(nodes, limit=filters.limit, offset=filters.offset)
    )


@router.get("/nodes/drift", response={200: list[DriftOut], **ERRORS})
def list_drift(request, response: HttpResponse, filters: Query[FleetFilter]):
    """Nodes whose reported state differs from their desired state, and why."""
    nodes = queries.drifted_nodes(request.auth, fleet=filters.fleet)
    return headers(
        request, response, offset_page(nodes, limit=filters.limit, offset=filters.offset)
    )


@router.get("/nodes/{node_id}", response={200: NodeOut, **ERRORS})
def get_node(request, node_id: str):
    return queries.access_node(request.auth, node_id, VIEW)


@router.patch("/nodes/{node_id}", response={200: NodeOut, **ERRORS})
def update_node(request, node_id: str, payload: NodePatch):
    node = queries.access_node(request.auth, node_id, OPERATE)
    return services.do_update_node(
        node, request=request, **payload.dict(exclude_unset=True), actor=request.auth
    )


@router.post("/nodes/{node_id}/revoke", response={200: RevokedOut, **ERRORS})
def revoke_node(request, node_id: str):
    """Revoke every credential of the node; its next request is answered 401."""
    node = queries.access_node(request.auth, node_id, OPERATE)
    return {
        "credentials_revoked": services.do_revoke_node(node, request=request, actor=request.auth)
    }


@router.get("/nodes/{node_id}/desired-state", response={200: dict[str, Any], **ERRORS})
def preview_desired_state(request, node_id: str):
    """The document the node gets on its next poll."""
    return desired_state.document(queries.access_node(request.auth, node_id, VIEW))


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
    since: IsoTime | None = Field(
        None, description="default: 1 hour ago (raw) or 7 days ago (minute)"
    )
    until: IsoTime | None = None
    resolution: Literal["raw", "minute"] = "raw"
    limit: Annotated[int, Field(ge=1, le=10_000)] = 2_000


class NodeEventOut(Schema):
    seq: int
    ts: datetime
    kind: str
    data: dict[str, Any]
    received_at: datetime


@router.get("/nodes/{node_id}/metrics", response={200: MetricSeriesOut, **ERRORS})
def node_metrics(request, node_id: str, q: Query[MetricQuery]):
    """One metric of one node over time: raw samples (kept EDGEFLEET_METRICS_RAW_RETENTION_H) or
    per-minute rollups (kept EDGEFLEET_METRICS_ROLLUP_RETENTION_DAYS), for charts."""
    node = queries.access_node(request.auth, node_id, VIEW)
    return queries.metric_series(
        node, q.name, resolution=q.resolution, since=q.since, until=q.until, limit=q.limit
    )


@router.get("/nodes/{node_id}/events", response={200: list[NodeEventOut], **ERRORS})
def node_events(request, response: HttpResponse, node_id: str, filters: Query[EventFilter]):
    """What the node reported happening (tool calls allowed/denied/approved, model swaps, failed
    applies), newest first."""
    node = queries.access_node(request.auth, node_id, VIEW)
    events = queries.node_events(node, kind=filters.kind)
    return headers(
        request, response, offset_page(events, limit=filters.limit, offset=filters.offset)
    )


# --- desired-state layers -----------------------------------------------------------------------


@router.get("/fleets/{slug}/layers", response={200: list[LayerOut], **ERRORS})
def list_layers(request, slug: str):
    """Every layer of the fleet, in composition order (a fleet has few: not paginated)."""
    return queries.layers(access_fleet(request.auth, slug, VIEW))


@router.put("/fleets/{slug}/layers/{name}", response={200: LayerPutOut, **ERRORS})
def put_layer(request, slug: str, name: str, payload: LayerIn):
    """Create or replace a layer. Sections: model, agents, tools, routing (compliance is set per
    fleet)."""
    fleet = access_fleet(request.auth, slug, OPERATE)
    layer, changed = services.do_put_layer(
        fleet,
        name=name,
        scope=payload.scope,
        sections=payload.sections,
        selector=payload.selector,
        node=payload.node,
        priority=payload.priority,
        request=request,
        actor=request.auth,
    )
    return {"layer": layer, "nodes_changed": changed}


@router.delete("/fleets/{slug}/layers/{name}", response={200: dict[str, int], **ERRORS})
def delete_layer(request, slug: str, name: str):
    layer = queries.access_layer(request.auth, slug, name, OPERATE)
    return {"nodes_changed": services.do_delete_layer(layer, request=request, actor=request.auth)}


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
    decision_reason: str

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


@router.get("/approvals", response={200: list[ApprovalOut], **ERRORS})
def list_approvals(request, response: HttpResponse, filters: Query[ApprovalFilter]):
    approvals = queries.approvals(request.auth, fleet=filters.fleet, pending=filters.pending)
    return headers(
        request, response, offset_page(approvals, limit=filters.limit, offset=filters.offset)
    )


class DecisionIn(In):
    reason: Annotated[SafeProse, Field(max_length=500)] = ""


@router.post("/approvals/{approval_id}/approve", response={200: ApprovalOut, **ERRORS})
def approve(request, approval_id: int, payload: DecisionIn | None = None):
    approval = queries.access_approval(request.auth, approval_id, OPERATE)
    reason = payload.reason if payload else ""
    return services.do_decide_approval(
        approval, approve=True, reason=reason, request=request, actor=request.auth
    )


@router.post("/approvals/{approval_id}/deny", response={200: ApprovalOut, **ERRORS})
def deny(request, approval_id: int, payload: DecisionIn | None = None):
    approval = queries.access_approval(request.auth, approval_id, OPERATE)
    reason = payload.reason if payload else ""
    return services.do_decide_approval(
        approval, approve=False, reason=reason, request=request, actor=request.auth
    )


# --- rollouts -----------------------------------------------------------------------------------

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
        return queries.rollout_targets(obj)


@router.get("/fleets/{slug}/rollouts", response={200: list[RolloutOut], **ERRORS})
def list_rollouts(request, response: HttpResponse, slug: str, page: Query[PageQuery]):
    fleet = access_fleet(request.auth, slug, VIEW)
    return headers(
        request,
        response,
        offset_page(queries.rollouts(fleet), limit=page.limit, offset=page.offset),
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
    return queries.access_rollout(request.auth, rollout_id, VIEW)


@router.post("/rollouts/{rollout_id}/pause", response={200: RolloutOut, **ERRORS})
def pause_rollout(request, rollout_id: int):
    rollout = queries.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_pause_rollout(rollout, request=request, actor=request.auth)


@router.post("/rollouts/{rollout_id}/resume", response={200: RolloutOut, **ERRORS})
def resume_rollout(request, rollout_id: int):
    rollout = queries.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_resume_rollout(rollout, request=request, actor=request.auth)


@router.post("/rollouts/{rollout_id}/abort", response={200: RolloutOut, **ERRORS})
def abort_rollout(request, rollout_id: int):
    """Stop and roll every updated node back to the model it ran before."""
    rollout = queries.access_rollout(request.auth, rollout_id, OPERATE)
    return rollouts.do_abort_rollout(rollout, request=request, actor=request.auth)
