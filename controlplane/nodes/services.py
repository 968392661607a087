"""Every write to nodes, fleets, tokens and desired state goes through one function here.

Each takes the acting user or node explicitly, runs in one transaction, writes its audit record in
that transaction, and publishes websocket events only on commit. The admin API, the node API, the
dashboard and the management commands all call these; none of them writes models directly.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from pydantic import ValidationError

from controlplane import tokens
from controlplane.accounts import guesses
from controlplane.accounts.access import is_global_admin
from controlplane.audit import actions as audit_actions
from controlplane.audit.services import append as audit_append
from controlplane.audit.services import entry as audit_entry
from controlplane.audit.services import pseudonym, record
from controlplane.errors import (
    Conflict,
    Forbidden,
    ServiceError,
    Unauthorized,
)
from controlplane.events import publish_on_commit, wake_on_commit
from controlplane.nodes import desired_state
from controlplane.nodes.models import (
    EnrollmentToken,
    Fleet,
    MetricSample,
    Node,
    NodeCredential,
    NodeEventRecord,
)
from controlplane.schemas import refuse_unsafe, refuse_unsafe_labels
from controlplane.unset import UNSET, Unset, given
from wire import compliance, schemas
from wire.compliance import subject_digest
from wire.schemas import ComplianceMode, ComplianceSettings, first_error


def _fleet_snapshot(fleet: Fleet) -> dict[str, Any]:
    return {
        "slug": fleet.slug,
        "name": fleet.name,
        "poll_interval_s": fleet.poll_interval_s,
        **{field: getattr(fleet, field) for field in ALERT_FIELDS},
    }


# --- fleets ---------------------------------------------------------------------------------------

POLL_INTERVAL_RANGE = (5, 86_400)
# Alert thresholds: field -> (lowest, highest) allowed.
ALERT_FIELDS = {
    "alert_p95_latency_ms": (1.0, 600_000.0),
    "alert_error_rate": (0.0, 1.0),
    "alert_memory_fraction": (0.05, 1.0),
}


def _check_fleet_fields(name: str, description: str, poll_interval_s: int | None) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise ServiceError("name must be 1-100 characters", field="name")
    refuse_unsafe("name", name)
    if not isinstance(description, str) or len(description) > 2000:
        raise ServiceError(
            "description must be text of at most 2000 characters (may be empty)",
            field="description",
        )
    refuse_unsafe("description", description, prose=True)
    lo, hi = POLL_INTERVAL_RANGE
    if poll_interval_s is not None and not lo <= poll_interval_s <= hi:
        raise ServiceError(f"poll_interval_s must be between {lo} and {hi} seconds, or null")


@transaction.atomic
def do_create_fleet(
    *,
    actor,
    slug: str,
    name: str,
    description: str = "",
    poll_interval_s: int | None = None,
    request=None,
) -> Fleet:
    """Create a fleet. Only global admins do (a fleet has no fleet to hold a role in); `actor`
    None is the system (management commands)."""
    if actor is not None and not is_global_admin(actor):
        raise Forbidden("only global admins create fleets")
    _check_fleet_fields(name, description, poll_interval_s)
    if Fleet.objects.filter(slug=slug).exists():
        raise Conflict(f"a fleet with slug '{slug}' already exists")
    fleet = Fleet.objects.create(
        slug=slug, name=name, description=description, poll_interval_s=poll_interval_s
    )
    record(
        "fleet.create",
        fleet,
        user=actor,
        fleet=fleet,
        after=_fleet_snapshot(fleet),
        request=request,
    )
    publish_on_commit(fleet.pk, "fleet.created", slug=fleet.slug)
    return fleet


@transaction.atomic
def do_update_fleet(
    fleet: Fleet,
    *,
    actor,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    poll_interval_s: int | None | Unset = UNSET,
    alert_p95_latency_ms: float | Unset = UNSET,
    alert_error_rate: float | Unset = UNSET,
    alert_memory_fraction: float | Unset = UNSET,
    request=None,
) -> Fleet:
    """Change what is given (UNSET: unchanged; a poll interval of None: the global default)."""
    before = _fleet_snapshot(fleet)
    changes = given(
        name=name,
        description=description,
        poll_interval_s=poll_interval_s,
        alert_p95_latency_ms=alert_p95_latency_ms,
        alert_error_rate=alert_error_rate,
        alert_memory_fraction=alert_memory_fraction,
    )
    for key, value in changes.items():
        setattr(fleet, key, value)
    _check_fleet_fields(fleet.name, fleet.description, fleet.poll_interval_s)
    for field, (lo, hi) in ALERT_FIELDS.items():
        value = getattr(fleet, field)
        if not isinstance(value, int | float) or not lo <= value <= hi:
            raise ServiceError(f"{field} must be between {lo:g} and {hi:g}", field=field)
    if changes:
        fleet.save(update_fields=list(changes))
    record(
        "fleet.update",
        fleet,
        user=actor,
        fleet=fleet,
        before=before,
        after=_fleet_snapshot(fleet),
        request=request,
    )
    publish_on_commit(fleet.pk, "fleet.updated", slug=fleet.slug)
    return fleet


@transaction.atomic
def do_set_compliance(
    fleet: Fleet,
    *,
    actor,
    mode: str | Unset = UNSET,
    phi_action: str | Unset = UNSET,
    store_content: bool | None | Unset = UNSET,
    allowed_regions: list[str] | Unset = UNSET,
    cloud_endpoints: list[dict[str, Any]] | Unset = UNSET,
    events_retention_days: int | None | Unset = UNSET,
    request=None,
) -> tuple[Fleet, int]:
    """Change a fleet's compliance settings (UNSET: unchanged): audited, and pushed to every node of
    the fleet with its next poll (the compliance section of its desired state). Returns (fleet,
    nodes changed)."""
    fleet = Fleet.objects.select_for_update().get(pk=fleet.pk)
    current = fleet.compliance_settings()
    changes = given(
        mode=mode,
        phi_action=phi_action,
        store_content=store_content,
        allowed_regions=allowed_regions,
        cloud_endpoints=cloud_endpoints,
        events_retention_days=events_retention_days,
    )
    merged = {**current.model_dump(), **changes}
    try:
        new = ComplianceSettings.model_validate(merged)
    except ValidationError as exc:
        raise ServiceError(f"invalid compliance settings: {first_error(exc)}") from None
    if "cloud_endpoints" in changes:  # a cloud model's name (stored ones stay readable)
        refuse_unsafe("cloud_endpoints", *(e.model for e in new.cloud_endpoints))
    if new.mode == ComplianceMode.HIPAA and new.store_content:
        raise ServiceError(
            "HIPAA mode never stores content centrally: store_content must not be true"
        )
    fleet.compliance_mode = new.mode
    fleet.phi_action = new.phi_action
    fleet.store_content = new.store_content
    fleet.allowed_regions = list(new.allowed_regions)
    fleet.cloud_endpoints = [e.model_dump(exclude_none=True) for e in new.cloud_endpoints]
    fleet.events_retention_days = new.events_retention_days
    fleet.save()
    changed = desired_state.refresh(fleet)
    record(
        "fleet.compliance",
        fleet,
        user=actor,
        fleet=fleet,
        before=current.model_dump(mode="json", exclude_none=True),
        after=new.model_dump(mode="json", exclude_none=True),
        request=request,
    )
    publish_on_commit(
        fleet.pk, "desired_state.changed", layer="compliance", nodes_changed=len(changed)
    )
    return fleet, len(changed)


# --- enrollment tokens ----------------------------------------------------------------------------


@transaction.atomic
def do_create_enrollment_token(
    fleet: Fleet,
    *,
    actor,
    labels: dict[str, str] | None = None,
    ttl: timedelta | None = None,
    never_expires: bool = False,
    max_uses: int = 1,
    note: str = "",
    request=None,
) -> tuple[EnrollmentToken, str]:
    """Returns the token and its plaintext, which is never stored and never shown again. A token
    without expiry is only made when asked for explicitly (`never_expires`), never by default."""
    if never_expires and ttl is not None:
        raise ServiceError("a token either expires after a time or never", field="ttl_hours")
    refuse_unsafe_labels("labels", labels)
    refuse_unsafe("note", note, prose=True)
    plaintext, token_hash, prefix = tokens.new_token(tokens.ENROLLMENT_PREFIX)
    ttl = ttl or timedelta(hours=settings.EDGEFLEET["ENROLLMENT_TOKEN_DEFAULT_TTL_H"])
    token = EnrollmentToken.objects.create(
        fleet=fleet,
        prefix=prefix,
        token_hash=token_hash,
        labels=labels or {},
        note=note,
        expires_at=None if never_expires else timezone.now() + ttl,
        max_uses=max_uses,
        created_by=actor if actor and actor.is_authenticated else None,
    )
    record(
        "enrollment_token.create",
        token,
        user=actor,
        fleet=fleet,
        after={
            "prefix": prefix,
            "labels": token.labels,
            "max_uses": max_uses,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
        request=request,
    )
    return token, plaintext


@transaction.atomic
def do_revoke_enrollment_token(token: EnrollmentToken, *, actor, request=None) -> EnrollmentToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record("enrollment_token.revoke", token, user=actor, fleet=token.fleet, request=request)
    return token


# --- enrollment and node credentials --------------------------------------------------------------


def _issue_credential(node: Node) -> tuple[NodeCredential, str]:
    plaintext, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
    cred = NodeCredential.objects.create(node=node, prefix=prefix, token_hash=token_hash)
    return cred, plaintext


@transaction.atomic
def do_enroll_node(enroll: schemas.EnrollIn, *, request=None) -> tuple[Node, str]:
    """Spend one use of an enrollment token; create the node and its first credential."""
    token = (
        EnrollmentToken.objects.select_for_update()
        .select_related("fleet")
        .filter(token_hash=tokens.hash_token(enroll.token))
        .first()
    )
    if token is None:
        raise guesses.UnknownSecret("unknown enrollment token")
    problem = token.problem()
    if problem:
        raise Unauthorized(problem)
    if Node.objects.filter(fleet=token.fleet, name=enroll.name).exists():
        raise Conflict(f"a node named '{enroll.name}' already exists in fleet '{token.fleet.slug}'")
    token.uses = F("uses") + 1
    token.save(update_fields=["uses"])
    node = Node(
        fleet=token.fleet,
        name=enroll.name,
        labels=dict(token.labels),
        hardware=enroll.hardware.model_dump(),
        enrolled_with=token,
    )
    try:
        with transaction.atomic():
            node.save()
    except IntegrityError as exc:  # a concurrent enrollment took the name
        raise Conflict(
            f"a node named '{enroll.name}' already exists in fleet '{token.fleet.slug}'"
        ) from exc
    desired_state.refresh(token.fleet, [node])
    _, plaintext = _issue_credential(node)
    record(
        "node.enroll",
        node,
        node=node,
        fleet=token.fleet,
        after={"name": node.name, "labels": node.labels, "token": token.prefix},
        request=request,
    )
    publish_on_commit(token.fleet_id, "node.enrolled", node=str(node.pk), name=node.name)
    return node, plaintext


@transaction.atomic
def do_rotate_node_credential(
    node: Node, current: NodeCredential, *, request=None
) -> tuple[str, datetime]:
    """The node asks for a new credential; the one it used stays valid for the overlap window."""
    overlap_until = timezone.now() + timedelta(seconds=settings.EDGEFLEET["CREDENTIAL_OVERLAP_S"])
    if current.expires_at is None or current.expires_at > overlap_until:
        current.expires_at = overlap_until
        current.save(update_fields=["expires_at"])
    _, plaintext = _issue_credential(node)
    record(
        "node.credential_rotate",
        node,
        node=node,
        fleet=node.fleet,
        after={"old": current.prefix, "old_valid_until": overlap_until.isoformat()},
        request=request,
    )
    return plaintext, overlap_until


@transaction.atomic
def do_revoke_node(node: Node, *, actor, request=None) -> int:
    """Revoke every credential of the node: its next request gets 401."""
    now = timezone.now()
    revoked = NodeCredential.objects.filter(node=node, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if node.revoked_at is None:
        node.revoked_at = now
        node.save(update_fields=["revoked_at"])
    record(
        "node.revoke",
        node,
        user=actor,
        fleet=node.fleet,
        after={"credentials_revoked": revoked},
        request=request,
    )
    publish_on_commit(node.fleet_id, "node.revoked", node=str(node.pk))
    wake_on_commit("credential", fleet=node.fleet_id, nodes=[str(node.pk)])
    return revoked


@transaction.atomic
def do_update_node(
    node: Node,
    *,
    actor,
    labels: dict[str, str] | None = None,
    name: str | None = None,
    request=None,
) -> Node:
    before = {"name": node.name, "labels": node.labels}
    if name is not None:
        refuse_unsafe("name", name)
    refuse_unsafe_labels("labels", labels)
    if name is not None and name != node.name:
        if Node.objects.filter(fleet_id=node.fleet_id, name=name).exclude(pk=node.pk).exists():
            raise Conflict(f"a node named '{name}' already exists in this fleet")
        node.name = name
    if labels is not None:
        node.labels = labels
    node.save(update_fields=["name", "labels"])
    desired_state.refresh(node.fleet, [node])
    record(
        "node.update",
        node,
        user=actor,
        fleet=node.fleet,
        before=before,
        after={"name": node.name, "labels": node.labels},
        request=request,
    )
    publish_on_commit(node.fleet_id, "node.updated", node=str(node.pk))
    return node


# --- desired state layers -------------------------------------------------------------------------


LAYER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


# --- what nodes send ------------------------------------------------------------------------------


@transaction.atomic
def do_report_state(node: Node, report: schemas.ReportedStateIn, *, request=None) -> Node:
    changed = (
        report.applied_revision != node.reported_revision
        or report.model_digest != node.reported_model_digest
        or report.health != node.reported_health
    )
    node.reported_revision = report.applied_revision
    node.reported_model_digest = report.model_digest
    node.reported_health = report.health
    node.reported_errors = report.errors
    node.reported_details = report.details
    node.reported_at = timezone.now()
    node.save(
        update_fields=[
            "reported_revision",
            "reported_model_digest",
            "reported_health",
            "reported_errors",
            "reported_details",
            "reported_at",
        ]
    )
    hardware = report.hardware.model_dump() if report.hardware else None
    if hardware is not None and hardware != node.hardware:
        # What "auto" picks depends on the memory: resolve this node's variant again.
        record(
            "node.hardware",
            node,
            node=node,
            fleet=node.fleet,
            before={"hardware": node.hardware},
            after={"hardware": hardware},
            request=request,
        )
        node.hardware = hardware
        node.save(update_fields=["hardware"])
        desired_state.refresh(node.fleet, [node])
    if changed:
        record(
            "node.report",
            node,
            node=node,
            fleet=node.fleet,
            after={
                "applied_revision": report.applied_revision,
                "model_digest": report.model_digest,
                "health": report.health,
                "errors": report.errors[:5],
            },
            request=request,
        )
        publish_on_commit(
            node.fleet_id,
            "node.reported",
            node=str(node.pk),
            revision=report.applied_revision,
            health=report.health,
            in_sync=node.in_sync,
        )
    return node


def _ingest(node: Node, field: str, model, items, to_row) -> schemas.AckOut:
    """Store a batch idempotently and acknowledge it.

    Items at or below the node's acknowledged mark were stored before (and may since have been
    purged by retention), so they are skipped: a replay is harmless forever. The unique key on
    (node, seq) guards the rest. The agent sends its outbox in sequence order, one batch at a time,
    so the mark (the largest seq stored) covers every item it has sent.
    """
    if len({item.seq for item in items}) != len(items):  # a rule JSON Schema cannot state: 400
        raise ServiceError("sequence numbers repeat within the batch", field="seq")
    mark = getattr(node, field)
    fresh = [to_row(item) for item in items if item.seq > mark]
    if fresh:
        model.objects.bulk_create(fresh, ignore_conflicts=True)
        batch_max = max(row.seq for row in fresh)
        Node.objects.filter(pk=node.pk).update(**{field: Greatest(F(field), batch_max)})
        mark = max(mark, batch_max)
        setattr(node, field, mark)
    return schemas.AckOut(acked_seq=mark, accepted=len(fresh), duplicates=len(items) - len(fresh))


@transaction.atomic
def do_ingest_metrics(node: Node, batch: schemas.MetricBatchIn) -> schemas.AckOut:
    ack = _ingest(
        node,
        "metrics_acked_seq",
        MetricSample,
        batch.samples,
        lambda s: MetricSample(node_id=node.pk, seq=s.seq, ts=s.ts, name=s.name, value=s.value),
    )
    if ack.accepted:
        # One small event per batch (the latest value of each metric): dashboards move one chart
        # point and one row, they do not refetch the fleet.
        latest = {s.name: s.value for s in batch.samples[-LIVE_METRICS_MAX:]}
        publish_on_commit(
            node.fleet_id, "node.metrics", node=str(node.pk), count=ack.accepted, latest=latest
        )
    return ack


LIVE_METRICS_MAX = 16  # samples of a batch whose values ride along with its websocket event


# Edge events that are also audit records: tool decisions, escalations, model swaps, failed applies
# (the families declared in controlplane/audit/actions.py).
AUDITED_EVENTS = tuple(audit_actions.EDGE_FAMILIES)
# Audit records never hold content (it would be personal data inside the hash), whatever the policy.
NO_CONTENT = schemas.CompliancePolicy(store_content=False)


def _event_data(
    node: Node, policy: schemas.CompliancePolicy, data: dict[str, Any], seen: dict[str, str]
) -> dict:
    """What of an event is stored: content only where the fleet's policy allows it, and the data
    subject (the end user the agent served) only as a keyed pseudonym (one lookup per subject per
    batch)."""
    data = compliance.minimise(data, policy)
    subject = data.get("subject")
    if isinstance(subject, str) and subject:
        if subject not in seen:
            seen[subject] = "subject:" + pseudonym("subject", f"{node.fleet_id}:{subject}")
        data["subject"] = seen[subject]
    return data


@transaction.atomic
def do_ingest_events(node: Node, batch: schemas.EventBatchIn, *, request=None) -> schemas.AckOut:
    """Store a batch of events; the audited kinds also enter the audit chain, in the same
    transaction and under one lock of the chain for the whole batch (never one per event)."""
    policy = node.fleet.compliance_policy()
    rows: list[NodeEventRecord] = []
    subjects: dict[str, str] = {}

    def to_row(e: schemas.NodeEvent) -> NodeEventRecord:
        row = NodeEventRecord(
            node_id=node.pk,
            seq=e.seq,
            ts=e.ts,
            kind=e.kind,
            data=_event_data(node, policy, e.data, subjects),
        )
        rows.append(row)
        return row

    ack = _ingest(node, "events_acked_seq", NodeEventRecord, batch.events, to_row)
    audited = [
        audit_entry(
            row.kind,
            ("node_event", f"{node.pk}:{row.seq}"),
            node=node,
            fleet=node.fleet_id,
            after=compliance.minimise(row.data, NO_CONTENT),
            request=request,
            edge=True,
        )
        for row in rows
        if row.kind.startswith(AUDITED_EVENTS)
    ]
    audit_append(audited)
    if ack.accepted:
        publish_on_commit(node.fleet_id, "node.events", node=str(node.pk), count=ack.accepted)
    return ack


ERASURE_NOTICE_DAYS = 30  # how long the fleet's desired state tells nodes of an erasure


def erase_subject_events(fleet: Fleet, subject: str, ref: str) -> int:
    """GDPR erasure of an edge data subject (controlplane.compliance.privacy.SUBJECT_DATA): delete
    the fleet's events that name their pseudonym, and tell the fleet's nodes (the sha256 of the
    `user` value in their compliance section) to delete the conversations they keep for them."""
    deleted, _ = NodeEventRecord.objects.filter(node__fleet=fleet, data__subject=subject).delete()
    fleet = Fleet.objects.select_for_update().get(pk=fleet.pk)  # two erasures at once
    now = timezone.now()
    # As long as nodes may keep a conversation, and at least ERASURE_NOTICE_DAYS.
    keep = max(timedelta(days=ERASURE_NOTICE_DAYS), fleet.events_retention)
    recent = [e for e in fleet.erased_subjects if datetime.fromisoformat(e["at"]) > now - keep]
    fleet.erased_subjects = [*recent, {"subject": subject_digest(ref), "at": now.isoformat()}]
    fleet.save(update_fields=["erased_subjects"])
    desired_state.refresh(fleet)
    return deleted


def purge_events(now=None) -> int:
    """Delete node events past their fleet's retention window."""
    now = now or timezone.now()
    deleted = 0
    for fleet in Fleet.objects.only("id", "events_retention_days"):
        n, _ = NodeEventRecord.objects.filter(
            node__fleet=fleet, ts__lt=now - fleet.events_retention
        ).delete()
        deleted += n
    return deleted


# --- tool approvals -------------------------------------------------------------------------------
