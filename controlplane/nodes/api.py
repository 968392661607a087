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
from controlplane.errors import ERRORS
from controlplane.nodes import desired_state, layers, queries, secrets, services
from controlplane.nodes.models import (
    DesiredStateLayer,
    EnrollmentToken,
    Fleet,
    Node,
    NodeStatus,
)
from controlplane.pagination import PageQuery, headers, offset_page
from controlplane.schemas import In, IsoTime, Slug
from wire.fields import JsonDict, Labels, Name, SafeProse
from wire.schemas import (
    ComplianceMode,
    ComplianceSettings,
    Endpoints,
    PhiAction,
    Regions,
    RetentionDays,
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
    resident_models: list[str] = Field(
        description="the models the node reported loaded (several models per node)"
    )

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


class SecretIn(In):
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class SecretOut(Schema):
    """A secret's name and version; its value is never returned."""

    name: str
    version: int
    updated_at: datetime


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


# --- cloud budgets and usage ---------------------------------------------------------------------


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
    layer, changed = layers.do_put_layer(
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
    return {"nodes_changed": layers.do_delete_layer(layer, request=request, actor=request.auth)}


# --- secrets for nodes ---------------------------------------------------------------------------


@router.get("/fleets/{slug}/secrets", response={200: list[SecretOut], **ERRORS})
def list_secrets(request, slug: str):
    """The fleet's node secrets, names and versions only (a fleet has few: not paginated)."""
    return queries.secrets(access_fleet(request.auth, slug, OPERATE))


@router.put("/fleets/{slug}/secrets/{name}", response={200: SecretOut, **ERRORS})
def set_secret(request, slug: str, name: str, payload: SecretIn):
    """Set a secret for the fleet's nodes (fleet admins): shown never again; nodes whose desired
    state names it get a new revision and fetch the value."""
    fleet = access_fleet(request.auth, slug, ADMINISTER)
    return secrets.do_set_secret(fleet, name, payload.value, request=request, actor=request.auth)


@router.delete("/fleets/{slug}/secrets/{name}", response={200: dict[str, int], **ERRORS})
def delete_secret(request, slug: str, name: str):
    secret = queries.access_secret(request.auth, slug, name, ADMINISTER)
    return {"nodes_changed": secrets.do_delete_secret(secret, request=request, actor=request.auth)}


# --- tool approvals -----------------------------------------------------------------------------


# --- rollouts -----------------------------------------------------------------------------------
