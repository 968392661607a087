"""The node API wire contract: the one set of schemas the control plane and the edge agent share.

Plain pydantic, no Django. Every string is bounded and free of NUL bytes, numbers are finite and fit
the database columns, so a malformed or hostile payload is a 422 with a message and never reaches
the database as something it would reject with a 500.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from wire.fields import (
    MAX_SEQ,
    NAME_CHECK,
    JsonDict,
    LongStr,
    Name,
    SafeName,
    Seq,
    ShortStr,
    Strict,
    Timestamp,
    no_nul,
)


class HardwareProfile(Strict):
    """What a node says it is. Used by hardware-aware model assignment."""

    cpu_model: ShortStr = ""
    cpu_flags: Annotated[
        list[Annotated[str, Field(max_length=32), AfterValidator(no_nul)]], Field(max_length=256)
    ] = []
    cpu_cores: Annotated[int, Field(ge=0, le=4096)] = 0
    ram_mb: Annotated[int, Field(ge=0, le=1 << 32)] = 0
    gpu: ShortStr = ""
    vram_mb: Annotated[int, Field(ge=0, le=1 << 32)] = 0
    os: ShortStr = ""
    arch: Annotated[str, Field(max_length=32), AfterValidator(no_nul)] = ""
    runtime_versions: Annotated[
        dict[Annotated[str, Field(max_length=64)], ShortStr], Field(max_length=32)
    ] = {}


class EnrollIn(Strict):
    token: Annotated[str, Field(min_length=8, max_length=200), AfterValidator(no_nul)]
    name: Name
    hardware: HardwareProfile = HardwareProfile()


class EnrollOut(BaseModel):
    node_id: str
    fleet: str
    credential: str = Field(description="Shown once. Send as 'Authorization: Bearer <credential>'.")
    credential_expires_at: datetime | None = None
    poll_interval_s: int
    signing_key: str = Field(
        "",
        description="The control plane's Ed25519 public key (PEM): the node pins it and loads "
        "only models whose manifest it signed.",
    )


class SigningKeyOut(BaseModel):
    key_id: str
    public_key: str


class SecretValueOut(BaseModel):
    value: str


class RotateOut(BaseModel):
    credential: str = Field(description="The new credential, shown once.")
    old_credential_valid_until: datetime


class DesiredState(BaseModel):
    """One versioned document per node. Sections are filled by later layers of the product."""

    node_id: str
    revision: int
    poll_interval_s: int
    model: dict[str, Any] | None = None
    # More models on the same node, by the name agents give in their `model` (agents/models.py).
    models: dict[str, Any] = {}
    agents: dict[str, Any] = {}
    tools: dict[str, Any] = {}
    routing: dict[str, Any] = {}
    compliance: dict[str, Any] = {}


# --- sections of desired state --------------------------------------------------------------------

Slug = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$"), NAME_CHECK
]


class ModelAssignment(Strict):
    """Which model a node runs and how. `url` is http(s) or file://; the node verifies `sha256`."""

    name: Name
    backend: Literal["llama_cpp", "openai"] = "llama_cpp"
    url: Annotated[str, Field(max_length=2000)] = ""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    n_ctx: Annotated[int, Field(ge=64, le=1_048_576)] = 2048
    n_threads: Annotated[int, Field(ge=0, le=512)] = 0
    n_gpu_layers: Annotated[int, Field(ge=-1, le=1000)] = 0
    # Unload the model after this many seconds without a request (0: keep it loaded); the next
    # request loads it again (agents/models.py).
    idle_unload_s: Annotated[int, Field(ge=0, le=7 * 86_400)] = 0
    # For backend "openai": an OpenAI-compatible server on the node (Ollama, Foundry Local, vLLM).
    base_url: Annotated[str, Field(max_length=2000)] = ""
    remote_model: Annotated[SafeName, Field(max_length=200)] = ""
    # The API key that server wants, as the name of a fleet secret: the node fetches the value
    # (GET /api/node/v1/secrets/{name}); the control plane fills in its version, so that a new
    # value reaches nodes as a new revision. The value itself is never in a desired state.
    api_key_secret: Slug | None = None
    api_key_version: Annotated[int, Field(ge=0)] = 0
    # From the model registry: an admin writes `name` and `variant` ("auto" or a quantization such
    # as "Q4_K_M"); the control plane fills in url, sha256, the signed manifest and, for "auto",
    # why this variant was chosen for this node (or, in `error`, why none fits).
    variant: Annotated[str, Field(max_length=16, pattern=r"^(auto|[A-Z0-9_]+)$")] | None = None
    # For "auto": the variant to take where it fits (default Q4_K_M); smaller ones where it does
    # not. Full precision (F32, F16, BF16) only when named here (controlplane/registry/resolver.py).
    prefer: Annotated[str, Field(max_length=16, pattern=r"^[A-Z0-9_]+$")] | None = None
    # For "auto": skip variants that the fleet's own telemetry measured below this many tokens/s
    # on nodes of the same hardware class (unmeasured variants are not skipped).
    min_tokens_per_s: Annotated[float, Field(gt=0, le=100_000)] | None = None
    manifest: JsonDict | None = None
    signature: Annotated[str, Field(max_length=200)] | None = None
    choice: Annotated[str, Field(max_length=1000)] = ""
    error: Annotated[str, Field(max_length=1000)] = ""


# Generation parameters, bounded once for an agent's spec, a relayed request and the local API.
MaxTokens = Annotated[int, Field(ge=1, le=8192)]
Temperature = Annotated[float, Field(ge=0, le=2)]


class GenerationOptions(BaseModel):
    """What an OpenAI client may ask of a cloud model through the node (`max_tokens`,
    `temperature`), read strictly: "5" is not a max_tokens. The node's local API checks them with
    this and passes them on in the RelayIn."""

    model_config = ConfigDict(strict=True, extra="ignore")

    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None


class AgentSpec(Strict):
    role: LongStr = "You are a helpful assistant running on an edge device."
    # The model this agent runs on: "" means the node's assigned `model`; else the name of one of
    # the desired state's `models` (or its registry name). A name the node is not assigned is
    # refused at apply time with the reason, not ignored.
    model: Annotated[SafeName, Field(max_length=100)] = ""
    tools: Annotated[list[Slug], Field(max_length=64)] = []
    # As OpenAI's tool_choice: "required" makes the first step a call of one of the agent's tools
    # (an agent every request of which needs a tool: small models otherwise answer from memory,
    # a made-up time for "what time is it?"); "auto" lets the model choose.
    tool_choice: Literal["auto", "required"] = "auto"
    max_tokens: MaxTokens = 256
    temperature: Temperature = 0.2
    # A router agent hands each request to one of these specialists (name -> when to use it).
    routes: Annotated[dict[Slug, ShortStr], Field(max_length=32)] = {}
    default: bool = False
    # How long a request to this agent may wait for the node's model before it is told the node
    # is busy (a 503 with Retry-After); the answer itself is bounded by max_tokens.
    timeout_s: Annotated[int, Field(ge=1, le=3600)] = 30


class ToolRule(Strict):
    mode: Literal["allow", "deny", "approval"] = "deny"
    path_prefix: Annotated[str, Field(max_length=500)] | None = None
    hosts: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=100)] | None = (
        None
    )
    rate_per_min: Annotated[int, Field(ge=1, le=100_000)] | None = None
    approval_timeout_s: Annotated[int, Field(ge=1, le=86_400)] = 300
    # Tool settings the node needs (for example a SQLite database or a queue directory).
    settings: Annotated[dict[str, Annotated[str, Field(max_length=500)]], Field(max_length=16)] = {}


class McpServer(Strict):
    """An MCP server whose tools the node's agents may use (through the same gate as built-in
    tools). Exactly one of `command` (stdio: the node starts it; its program must be allowed on
    the node, see docs/agent.md) and `url` (streamable HTTP)."""

    command: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=32)] = []
    url: Annotated[str, Field(max_length=2000, pattern=r"^https?://")] = ""
    timeout_s: Annotated[int, Field(ge=1, le=600)] = 30

    @model_validator(mode="after")
    def one_transport(self) -> McpServer:
        if bool(self.command) == bool(self.url):
            raise ValueError("an MCP server needs exactly one of command (stdio) and url (HTTP)")
        return self


class ToolPolicy(Strict):
    default: Literal["allow", "deny", "approval"] = "deny"
    rules: Annotated[dict[Slug, ToolRule], Field(max_length=256)] = {}
    # MCP servers by name: their tools are named "<server>-<tool>" (docs/agent.md).
    mcp: Annotated[dict[Slug, McpServer], Field(max_length=16)] = {}


Region = Annotated[str, Field(min_length=2, max_length=32, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class CloudEndpoint(Strict):
    """A cloud LLM the control plane may forward escalations to (set per fleet by an admin).

    Nodes receive name, region and `baa` only; the URL and the API key stay on the control plane
    (the key is read from the environment variable `api_key_env` there)."""

    name: Slug
    region: Region
    baa: bool = False  # covered by a HIPAA business associate agreement
    base_url: Annotated[str, Field(max_length=2000, pattern=r"^https?://")] | None = None
    model: Annotated[str, Field(max_length=200)] = ""
    api_key_env: Annotated[str, Field(max_length=100, pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    # Or a file holding the key (a mounted secret), read on the control plane at call time.
    api_key_file: Annotated[str, Field(max_length=500, pattern=r"^/")] | None = None
    # US dollars per 1,000 prompt and completion tokens: what budgets count.
    price_in_per_1k: Annotated[float, Field(ge=0, le=1000)] = 0.0
    price_out_per_1k: Annotated[float, Field(ge=0, le=1000)] = 0.0
    timeout_s: Annotated[int, Field(ge=1, le=600)] | None = (
        None  # default EDGEFLEET_CLOUD_TIMEOUT_S
    )
    # When this endpoint fails (after its retries), the relay tries this one (policy and budget
    # checked again for it).
    fallback: Slug | None = None


class ComplianceMode(StrEnum):
    """A fleet's compliance mode: defined here once, for the wire contract, the model's choices
    (controlplane/fleets) and the admin API."""

    NONE = "none"
    HIPAA = "hipaa"
    GDPR = "gdpr"

    @property
    def label(self) -> str:
        return "None" if self is ComplianceMode.NONE else self.value.upper()


class PhiAction(StrEnum):
    REDACT = "redact"
    REFUSE = "refuse"

    @property
    def label(self) -> str:
        return self.value.capitalize()


def choices(enum: type[ComplianceMode] | type[PhiAction]) -> list[tuple[str, str]]:
    """(value, label) pairs for a Django field's `choices`."""
    return [(m.value, m.label) for m in enum]


RetentionDays = Annotated[int, Field(ge=1, le=36_500)]
Regions = Annotated[list[Region], Field(max_length=64)]
Endpoints = Annotated[list[CloudEndpoint], Field(max_length=32)]


class ComplianceSettings(Strict):
    """What an admin sets for a fleet (stored on the Fleet, changed by do_set_compliance, audited
    as this). `CompliancePolicy` is what follows from it: enforced by the control plane and pushed
    to nodes. `store_content` null means the mode's default; `events_retention_days` null, the
    global default."""

    mode: ComplianceMode = ComplianceMode.NONE
    phi_action: PhiAction = PhiAction.REDACT
    store_content: bool | None = None
    allowed_regions: Regions = []
    cloud_endpoints: Endpoints = []
    events_retention_days: RetentionDays | None = None

    @field_validator("cloud_endpoints")
    @classmethod
    def _fallbacks_name_other_endpoints(cls, endpoints: list[CloudEndpoint]) -> list[CloudEndpoint]:
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError("cloud endpoint names must be unique")
        by_name = {e.name: e for e in endpoints}
        for e in endpoints:
            seen = {e.name}
            nxt = e.fallback
            while nxt is not None:
                if nxt not in by_name:
                    raise ValueError(f"endpoint '{e.name}' falls back to unknown '{nxt}'")
                if nxt in seen:
                    raise ValueError(f"endpoint '{e.name}': its fallbacks form a loop")
                seen.add(nxt)
                nxt = by_name[nxt].fallback
        return endpoints

    def policy(self, for_node: bool = False) -> CompliancePolicy:
        """The effective policy. For nodes, endpoints carry only name, region and BAA status: URLs
        and key names stay on the control plane."""
        store = (
            self.mode == ComplianceMode.NONE if self.store_content is None else self.store_content
        )
        endpoints = [
            e.model_dump(include={"name", "region", "baa"} if for_node else None, exclude_none=True)
            for e in self.cloud_endpoints
        ]
        return CompliancePolicy(
            mode=self.mode,
            phi_action=self.phi_action,
            store_content=store and self.mode != ComplianceMode.HIPAA,
            regions=self.allowed_regions,
            endpoints=endpoints,  # type: ignore[arg-type]
        )


Limit = Annotated[float, Field(ge=0, le=1e12)] | None


class CloudBudgets(Strict):
    """A fleet's cloud spending limits (control plane only): for the whole fleet and for each of
    its nodes, per UTC day and calendar month, in US dollars and in tokens; null is no limit. The
    relay refuses an escalation that would take usage past a limit (the hard stop: the node
    answers locally) and marks answers once usage reaches `soft_fraction` of one (the warning).
    A budget never blocks local inference."""

    fleet_day_usd: Limit = None
    fleet_month_usd: Limit = None
    fleet_day_tokens: Limit = None
    fleet_month_tokens: Limit = None
    node_day_usd: Limit = None
    node_month_usd: Limit = None
    node_day_tokens: Limit = None
    node_month_tokens: Limit = None
    soft_fraction: Annotated[float, Field(ge=0.1, le=1)] = 0.8


class CompliancePolicy(Strict):
    """A fleet's compliance mode as pushed to its nodes; the control plane enforces it too.

    - hipaa: PHI may go only to endpoints with a BAA; for any other endpoint it is redacted or the
      request refused (`phi_action`). Content is never stored centrally.
    - gdpr: cloud endpoints only in `regions`; content stored centrally only if `store_content`.
    - none: endpoints on the list; content stored centrally unless `store_content` is false."""

    mode: ComplianceMode = ComplianceMode.NONE
    phi_action: PhiAction = PhiAction.REDACT
    store_content: bool = True
    regions: Regions = []
    endpoints: Endpoints = []
    # Nodes keep a session's messages this long after its last one (agents/sessions.py); null:
    # the node's default (30 days). Sent only where the fleet sets a retention.
    session_retention_days: RetentionDays | None = None
    # Data subjects erased on the control plane (sha256 of the `user` value they were served
    # as): nodes delete their conversations. Sent only while there are some.
    erased_subjects: Annotated[
        list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]], Field(max_length=10_000)
    ] = []

    def endpoint(self, name: str) -> CloudEndpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(max_length=100_000)]


class RelayIn(BaseModel):
    """A chat completion request a node sends the control plane's cloud relay
    (`POST /api/node/v1/chat/completions`): OpenAI's shape, `model` naming a cloud endpoint of the
    fleet ("cloud:<endpoint>" or "<endpoint>"). The node has applied the policy (redaction)
    already; the control plane applies it again. Fields OpenAI clients add and the relay does not
    use are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, Field(min_length=1, max_length=100)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=64)]
    max_tokens: MaxTokens = 512
    temperature: Temperature | None = None
    stream: bool = False
    agent: Slug = "edge"  # which of the node's agents asks: costs are counted per agent
    # What the node redacted, per kind (wire.phi.KINDS): the control plane counts the
    # placeholders it receives and audits a disagreement (docs/compliance.md)
    redactions: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[A-Z_]{1,32}$")],
            Annotated[int, Field(ge=0, le=1_000_000)],
        ],
        Field(max_length=32),
    ] = {}


class EscalateOut(BaseModel):
    """What the node keeps of the relay's answer."""

    content: str
    endpoint: str
    model: str
    redactions: dict[str, int] = {}
    cost_usd: float | None = None
    budget_warning: str = ""
    prompt_tokens: int = 0  # the cloud's count, as its `usage` says
    completion_tokens: int = 0


class RouterRef(Strict):
    """A registered router as a node receives it (the control plane resolves a layer's version)."""

    version: Annotated[str, Field(max_length=100)]
    kind: Literal["query", "cascade"]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    signature: Annotated[str, Field(max_length=200)]
    url: Annotated[str, Field(max_length=2000)]


class RoutingPolicy(Strict):
    """The routing section: when a node sends a request to the cloud (agents/router.py).

    - mode "local": never on its own (a caller may still name "cloud:<endpoint>");
      "query": the router scores the question and escalates above the threshold;
      "cascade": the node answers locally first, and escalates when the router, reading the
      question and the local answer, judges it unreliable, or when the answer's mean token
      log-probability is under `min_logprob`.
    - the threshold: `threshold` when given, else the one that sends `target_cloud_share` of
      queries (or reaches `target_quality`, a share of the local-to-cloud quality gap, on the
      router's held-out data).
    - `router`: in a layer, a registered router's version; nodes get it resolved (RouterRef).
    """

    mode: Literal["local", "query", "cascade"] = "local"
    endpoint: Slug | None = None
    router: RouterRef | Annotated[str, Field(max_length=100)] | None = None
    threshold: Annotated[float, Field(ge=-1, le=1)] | None = None
    target_cloud_share: Annotated[float, Field(ge=0, le=1)] | None = None
    target_quality: Annotated[float, Field(ge=0, le=1.5)] | None = None
    # Cascade: a local answer whose mean token log-probability is below this goes to the cloud
    # whatever the scorer says (rule "logprob"); the node then measures it on every answer.
    min_logprob: Annotated[float, Field(ge=-100, le=0)] | None = None
    error: Annotated[str, Field(max_length=1000)] | None = None  # why the router cannot be used


SECTION_SCHEMAS: dict[str, Any] = {
    "model": ModelAssignment,
    "tools": ToolPolicy,
    "routing": RoutingPolicy,
}


def model_digest(model: dict[str, Any] | None) -> str:
    """What a node reports as the model it runs (and the control plane expects): "sha256:<hex>"
    for a llama.cpp file, "openai:<base_url>#<model>" for a local OpenAI-compatible server, "" for
    none (or an assignment that cannot run: `error`)."""
    if not model or model.get("error"):
        return ""
    if model.get("backend") == "openai":
        return (
            f"openai:{model.get('base_url', '')}#{model.get('remote_model') or model.get('name')}"
        )
    return f"sha256:{model['sha256']}" if model.get("sha256") else ""


def first_error(exc: Any) -> str:
    """A pydantic ValidationError as one line: where, then what."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    return f"{where}: {first['msg']}"


def validate_sections(sections: dict[str, Any]) -> None:
    """Check a composed document's typed sections; raises pydantic.ValidationError."""
    if sections.get("model") is not None:
        ModelAssignment.model_validate(sections["model"])
    MODELS.validate_python(sections.get("models") or {})
    ToolPolicy.model_validate(sections.get("tools") or {})
    for spec in (sections.get("agents") or {}).values():
        AgentSpec.model_validate(spec)
    CompliancePolicy.model_validate(sections.get("compliance") or {})
    RoutingPolicy.model_validate(sections.get("routing") or {})


# --- tool approvals -------------------------------------------------------------------------------


class ApprovalIn(Strict):
    tool: Slug
    agent: Slug
    arguments: JsonDict = {}
    reason: LongStr = ""
    timeout_s: Annotated[int, Field(ge=1, le=86_400)] = 300


class ApprovalOut(BaseModel):
    id: int
    tool: str
    agent: str
    arguments: dict[str, Any]
    status: Literal["pending", "approved", "denied", "expired"]
    expires_at: datetime
    decided_by: str = ""


SECTIONS = ("model", "models", "agents", "tools", "routing", "compliance")
# Models a node runs besides its default one, by the name its agents use (at most 8).
MODELS = TypeAdapter(Annotated[dict[Slug, ModelAssignment], Field(max_length=8)])

Health = Literal["ok", "degraded", "error", "starting"]


class ReportedStateIn(Strict):
    applied_revision: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    model_digest: Annotated[str, Field(max_length=80), AfterValidator(no_nul)] = ""
    health: Health = "ok"
    errors: Annotated[list[LongStr], Field(max_length=50)] = []
    details: JsonDict = {}
    # The node's hardware as it is now (RAM added, a GPU fitted): the control plane records it
    # and resolves "auto" model variants again. Absent: unchanged.
    hardware: HardwareProfile | None = None


class ReportedStateOut(BaseModel):
    desired_revision: int
    in_sync: bool


class MetricSample(Strict):
    seq: Seq
    ts: Timestamp
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
    value: Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class NodeEvent(Strict):
    seq: Seq
    ts: Timestamp
    kind: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
    data: JsonDict = {}


class MetricBatchIn(Strict):
    samples: Annotated[list[MetricSample], Field(min_length=1)]


class EventBatchIn(Strict):
    events: Annotated[list[NodeEvent], Field(min_length=1)]


class AckOut(BaseModel):
    """`acked_seq`: every item with seq <= this has been stored durably; the node may drop them."""

    acked_seq: int
    accepted: int
    duplicates: int
