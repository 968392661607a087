import json
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from controlplane.fleets.models import Fleet

__all__ = ["Fleet"]  # re-exported: the domain's models next to the fleet they belong to


class NodeStatus(models.TextChoices):
    NEVER = "never", "Never seen"
    ONLINE = "online", "Online"
    STALE = "stale", "Stale"
    OFFLINE = "offline", "Offline"
    REVOKED = "revoked", "Revoked"  # its credentials were revoked: it is refused, whatever it does


class NodeQuerySet(models.QuerySet):
    def with_status(self, status: str):
        """Nodes whose derived status is `status`. Status depends on each fleet's poll interval, so
        the cut-offs are computed per fleet (fleets are few) and OR-ed together."""
        if status == NodeStatus.REVOKED:
            return self.filter(revoked_at__isnull=False)
        self = self.filter(revoked_at__isnull=True)
        if status == NodeStatus.NEVER:
            return self.filter(last_seen_at__isnull=True)
        cfg = settings.EDGEFLEET
        now = timezone.now()
        q = Q(pk__in=[])
        for fleet in Fleet.objects.only("id", "poll_interval_s"):
            interval = fleet.effective_poll_interval_s
            online_cut = now - timedelta(seconds=interval * cfg["ONLINE_FACTOR"])
            stale_cut = now - timedelta(seconds=interval * cfg["STALE_FACTOR"])
            if status == NodeStatus.ONLINE:
                q |= Q(fleet=fleet, last_seen_at__gte=online_cut)
            elif status == NodeStatus.STALE:
                q |= Q(fleet=fleet, last_seen_at__lt=online_cut, last_seen_at__gte=stale_cut)
            else:
                q |= Q(fleet=fleet, last_seen_at__lt=stale_cut)
        return self.filter(q)

    def drifted(self):
        """Nodes whose reported revision is not their desired revision, or whose reported model
        is not the one they should run."""
        return self.filter(
            Q(reported_revision__isnull=True)
            | ~Q(reported_revision=F("desired_revision"))
            | (
                ~Q(reported_model_digest=F("desired_model_digest"))
                & (~Q(desired_model_digest="") | ~Q(model_choice=""))
            )
        )


class Node(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    fleet = models.ForeignKey(Fleet, on_delete=models.PROTECT, related_name="nodes")
    name = models.CharField(max_length=100)
    labels = models.JSONField(default=dict, blank=True)
    hardware = models.JSONField(default=dict, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    enrolled_with = models.ForeignKey(
        "EnrollmentToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="nodes"
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # When an operator revoked its credentials ("Revoke credentials"): for good, since a revoked
    # node cannot rotate; enrolling again makes a new node.
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_ip = models.GenericIPAddressField(null=True, blank=True)
    # Desired state: the revision increases only when the composed document's digest changes.
    desired_revision = models.PositiveBigIntegerField(default=1)
    desired_digest = models.CharField(max_length=64, blank=True)
    # What the node reported back.
    reported_revision = models.PositiveBigIntegerField(null=True, blank=True)
    reported_model_digest = models.CharField(max_length=80, blank=True)
    reported_health = models.CharField(max_length=16, blank=True)
    reported_errors = models.JSONField(default=list, blank=True)
    reported_details = models.JSONField(default=dict, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    # The model the node should run ("sha256:…" as nodes report it; "" for none or when no variant
    # fits) and why this variant, or why none: set with the desired state by desired_state.refresh.
    desired_model_digest = models.CharField(max_length=80, blank=True)
    model_choice = models.CharField(max_length=1000, blank=True)
    # High-water marks acknowledged to the node for its metric and event streams.
    metrics_acked_seq = models.PositiveBigIntegerField(default=0)
    events_acked_seq = models.PositiveBigIntegerField(default=0)

    objects = NodeQuerySet.as_manager()
    fleet_field = "fleet_id"  # how access.restrict reaches the fleet

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fleet", "name"], name="node_name_unique_in_fleet")
        ]
        indexes = [models.Index(fields=["fleet", "last_seen_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.fleet_id})"

    @property
    def poll_interval_s(self) -> int:
        return self.fleet.effective_poll_interval_s

    def status_at(self, now=None) -> str:
        if self.revoked_at is not None:
            return NodeStatus.REVOKED
        if self.last_seen_at is None:
            return NodeStatus.NEVER
        now = now or timezone.now()
        cfg = settings.EDGEFLEET
        age = (now - self.last_seen_at).total_seconds()
        if age <= self.poll_interval_s * cfg["ONLINE_FACTOR"]:
            return NodeStatus.ONLINE
        if age <= self.poll_interval_s * cfg["STALE_FACTOR"]:
            return NodeStatus.STALE
        return NodeStatus.OFFLINE

    @property
    def status(self) -> str:
        return self.status_at()

    @property
    def in_sync(self) -> bool:
        return self.reported_revision == self.desired_revision

    @property
    def etag(self) -> str:
        return etag_for(self.desired_revision, self.desired_digest)

    @property
    def model_unplaceable(self) -> bool:
        """The assignment cannot run here (no variant fits, or none exists); `model_choice`: why."""
        return bool(self.model_choice) and not self.desired_model_digest

    @property
    def model_drifted(self) -> bool:
        return (
            bool(self.desired_model_digest)
            and self.reported_model_digest != self.desired_model_digest
        )

    @property
    def resident_models(self) -> list[str]:
        """The models the node last reported loaded (its default one as "default"), from its
        report: the drift view and the node list show them."""
        reported = (self.reported_details or {}).get("models") or {}
        return sorted(k for k, m in reported.items() if isinstance(m, dict) and m.get("resident"))

    @property
    def drift_reason(self) -> str:
        """Why the node's reported state differs from its desired state ("" if it does not)."""
        if self.model_unplaceable:
            return f"no model can run here: {self.model_choice}"
        if self.reported_revision is None:
            return "node has not reported any state yet"
        if self.reported_errors:
            return f"node reports errors: {self.reported_errors[0]}"
        if self.reported_revision < self.desired_revision:
            if self.status != NodeStatus.ONLINE:
                return f"node is {self.status} and has not applied revision {self.desired_revision}"
            return "node has not applied the latest revision yet"
        if self.model_drifted:
            return (
                f"node runs {self.reported_model_digest or 'no model'}, "
                f"not {self.desired_model_digest}"
            )
        if self.reported_revision != self.desired_revision:
            return "node reports a revision the control plane did not issue"
        return ""


def etag_for(revision: int, digest: str) -> str:
    return f'"{revision}-{digest[:16]}"'


class NodeCredential(models.Model):
    """A node's bearer credential. Several may be valid during a rotation's overlap window."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="credentials")
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… for {self.node_id}"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def default_token_expiry():
    return timezone.now() + timedelta(hours=settings.EDGEFLEET["ENROLLMENT_TOKEN_DEFAULT_TTL_H"])


class EnrollmentToken(models.Model):
    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="enrollment_tokens")
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    note = models.CharField(max_length=200, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(default=default_token_expiry, null=True, blank=True)
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    fleet_field = "fleet_id"

    def __str__(self) -> str:
        return f"{self.prefix}… → {self.fleet_id}"

    def problem(self, now=None) -> str:
        """Why this token cannot enroll a node now, or '' if it can."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "enrollment token has been revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "enrollment token has expired"
        if self.uses >= self.max_uses:
            return "enrollment token has no uses left"
        return ""


SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|authori[sz]ation|credential|cookie|private", re.I
)
SECRET_VALUES = re.compile(r"^(efp_|efn_|efe_|sk-|ghp_|xox[bp]-|AKIA)|^Bearer\s", re.I)


def mask_secrets(value, key: str = ""):
    """A copy of `value` with secrets replaced by '••••' (tool arguments shown to approvers)."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if key and SECRET_KEYS.search(key) and value not in (None, ""):
        return "••••"
    if isinstance(value, str) and SECRET_VALUES.search(value):
        return "••••"
    return value


def labels_match(labels: dict[str, str], selector: dict[str, str]) -> bool:
    """A label selector matches when every key it names has that value (an empty one: always)."""
    return all(labels.get(k) == v for k, v in selector.items())


class LayerScope(models.TextChoices):
    FLEET = "fleet", "Whole fleet"
    LABEL = "label", "Nodes matching a label selector"
    NODE = "node", "One node"


class NodeSecret(models.Model):
    """A secret a fleet's nodes need (the API key of a node's local OpenAI-compatible server),
    encrypted at rest (controlplane/nodes/secrets.py). A desired state names it; the value reaches
    only the nodes whose desired state names it, over the node API, and is never shown again,
    audited, logged or put in an event."""

    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="secrets")
    name = models.SlugField(max_length=63)
    ciphertext = models.BinaryField()
    version = models.PositiveIntegerField(default=1)  # in desired states: a change reaches nodes
    updated_at = models.DateTimeField(default=timezone.now)

    fleet_field = "fleet_id"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fleet", "name"], name="secret_name_unique_in_fleet")
        ]

    def __str__(self) -> str:
        return f"{self.fleet_id}/{self.name}"


class DesiredStateLayer(models.Model):
    """A slice of desired state. A node's document is its fleet's layers, then matching label
    layers (by priority, then name), then its own node layers, deep-merged in that order."""

    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="layers")
    name = models.SlugField(max_length=63)
    scope = models.CharField(max_length=8, choices=LayerScope.choices)
    selector = models.JSONField(default=dict, blank=True)
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.CASCADE, related_name="layers"
    )
    priority = models.IntegerField(default=0)
    sections = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    fleet_field = "fleet_id"

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["fleet", "name"], name="layer_name_unique_in_fleet")
        ]

    def __str__(self) -> str:
        return f"{self.fleet_id}/{self.name}"

    def matches(self, node: Node) -> bool:
        if self.scope == LayerScope.FLEET:
            return True
        if self.scope == LayerScope.NODE:
            return self.node_id == node.pk
        return labels_match(node.labels, self.selector)


class MetricSample(models.Model):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()
    ts = models.DateTimeField()
    name = models.CharField(max_length=64)
    value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "seq"], name="metric_seq_unique_per_node")
        ]
        indexes = [models.Index(fields=["ts"]), models.Index(fields=["node", "name", "ts"])]


class MetricRollup(models.Model):
    """Per-minute aggregate of raw samples, kept far longer than the raw samples."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=64)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField()
    total = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "name", "minute"], name="rollup_unique")
        ]
        indexes = [models.Index(fields=["minute"])]


class NodeEventRecord(models.Model):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()
    ts = models.DateTimeField()
    kind = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "seq"], name="event_seq_unique_per_node")
        ]
        indexes = [models.Index(fields=["node", "ts"])]


class RollupCursor(models.Model):
    """Singleton: raw samples with id <= `last_sample_id` have been folded into rollups. Cursoring
    on
    the id (arrival order), not on the sample time, folds in samples that arrive late from a node
    that
    was offline for hours."""

    last_sample_id = models.BigIntegerField(default=0)


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"


class ToolApproval(models.Model):
    """A node asks whether an agent may run a tool call that policy marks "approval"."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="approvals")
    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="+")
    agent = models.CharField(max_length=63)
    tool = models.CharField(max_length=63)
    arguments = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    decision = models.CharField(
        max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    fleet_field = "fleet_id"

    class Meta:
        indexes = [models.Index(fields=["fleet", "decision", "created_at"])]

    def __str__(self) -> str:
        return f"{self.tool} for {self.agent} on {self.node_id}: {self.status}"

    @property
    def masked_arguments(self) -> str:
        """The arguments as the approver sees them: values under secret-looking keys, and values
        that look like credentials, are masked."""
        return json.dumps(mask_secrets(self.arguments), indent=2, ensure_ascii=False)

    @property
    def status(self) -> str:
        """Expiry means deny: a pending request past its deadline reads as expired (derived)."""
        if self.decision == ApprovalStatus.PENDING and self.expires_at <= timezone.now():
            return ApprovalStatus.EXPIRED
        return self.decision


class CloudUsage(models.Model):
    """Cloud calls relayed for one node's agent to one endpoint on one UTC day: what budgets and
    the cost page count. One row per (node, agent, endpoint, day), incremented in place."""

    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="+")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    agent = models.CharField(max_length=63)
    endpoint = models.CharField(max_length=63)
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)

    fleet_field = "fleet_id"

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["node", "agent", "endpoint", "day"], name="cloud_usage_once_per_day"
            )
        ]
        indexes = [models.Index(fields=["fleet", "day"])]


class RolloutStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    HALTED = "halted", "Halted by a failing gate (rolled back)"
    ABORTED = "aborted", "Aborted (rolled back)"
    COMPLETED = "completed", "Completed"


ACTIVE_ROLLOUT = (RolloutStatus.RUNNING, RolloutStatus.PAUSED)


class Rollout(models.Model):
    """A staged change of the model a fleet's nodes run (controlplane/rollouts/services.py).

    While it is active, nodes of the waves reached so far run `model` instead of what their layers
    say; the others keep their layers' model. When the last wave passes its gates, `model` is
    written into the layer `layer` and the rollout completes (no node's document changes at that
    moment). A failing gate or an abort rolls the updated nodes back to their layers' model."""

    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="rollouts")
    model = models.JSONField()
    layer = models.SlugField(max_length=63)
    selector = models.JSONField(default=dict, blank=True)
    waves = models.JSONField()
    gates = models.JSONField()
    wave_wait_s = models.PositiveIntegerField(default=300)
    status = models.CharField(
        max_length=10, choices=RolloutStatus.choices, default=RolloutStatus.RUNNING
    )
    current_wave = models.PositiveIntegerField(default=0)
    wave_started_at = models.DateTimeField(default=timezone.now)
    baseline = models.JSONField(default=dict)
    last_check = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    fleet_field = "fleet_id"

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fleet"],
                condition=Q(status__in=["running", "paused"]),
                name="one_active_rollout_per_fleet",
            )
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.model.get('name')} in {self.fleet_id}: {self.status}"


class RolloutNodeState(models.TextChoices):
    WAITING = "waiting", "Waiting for its wave"
    UPDATED = "updated", "Runs the rollout's model"
    ROLLED_BACK = "rolled_back", "Rolled back"


class RolloutNode(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="targets")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    wave = models.PositiveIntegerField()
    state = models.CharField(
        max_length=12, choices=RolloutNodeState.choices, default=RolloutNodeState.WAITING
    )
    # The revision that carried the rollout's model to the node, and what it ran before.
    target_revision = models.PositiveBigIntegerField(null=True, blank=True)
    previous_digest = models.CharField(max_length=80, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rollout", "node"], name="rollout_node_unique")
        ]
        indexes = [models.Index(fields=["node", "state"])]
