"""The one way to write an audit record (call it inside the transaction of the change), plus
pseudonyms, signed checkpoints, verification and retention of the chain."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Min
from django.utils import timezone

from controlplane import signing

from . import chain
from .models import AuditCheckpoint, AuditHead, AuditRecord, SubjectKey

# --- pseudonyms (crypto-shredding) ----------------------------------------------------------------


def pseudonym(kind: str, ref: str) -> str:
    """The keyed pseudonym of a data subject, creating its key on first use.

    One indexed read; no cache, so a subject erased in another process never gets its old
    pseudonym back."""
    row = SubjectKey.objects.filter(kind=kind, ref=ref).values_list("pseudonym", flat=True).first()
    if row:
        return row
    key = secrets.token_bytes(32)
    value = hmac.new(key, f"{kind}:{ref}".encode(), hashlib.sha256).hexdigest()[:32]
    try:
        with transaction.atomic():
            SubjectKey.objects.create(kind=kind, ref=ref, key=key, pseudonym=value)
    except IntegrityError:  # created concurrently
        return SubjectKey.objects.values_list("pseudonym", flat=True).get(kind=kind, ref=ref)
    return value


def user_ref(user) -> str:
    return f"user:{pseudonym('user', str(user.pk))}"


def actor_of(user=None, node=None) -> str:
    if user is not None and getattr(user, "is_authenticated", False):
        return user_ref(user)
    if node is not None:
        return f"node:{node.pk}"
    return "system"


# --- appending ------------------------------------------------------------------------------------


def entry(
    action: str,
    obj: Any,
    *,
    user=None,
    node=None,
    fleet=None,
    before: dict | None = None,
    after: dict | None = None,
    request=None,
    ts=None,
) -> AuditRecord:
    """An unsaved record; `append` chains and stores it."""
    request_id = ""
    source_ip = None
    if request is not None:
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")[:64]
        source_ip = request.META.get("REMOTE_ADDR") or None
    if isinstance(obj, tuple):
        object_type, object_id = obj
    else:
        object_type = obj._meta.model_name if hasattr(obj, "_meta") else type(obj).__name__
        object_id = str(getattr(obj, "pk", ""))
    return AuditRecord(
        ts=ts or timezone.now(),
        actor=actor_of(user, node),
        fleet_id=getattr(fleet, "pk", fleet),
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=chain.canonical_value(before),
        after=chain.canonical_value(after),
        request_id=request_id,
        source_ip=source_ip,
    )


def record(action: str, obj: Any, **kwargs: Any) -> AuditRecord:
    return append([entry(action, obj, **kwargs)])[0]


def append(records: Sequence[AuditRecord]) -> list[AuditRecord]:
    """Chain and store records under one lock of the chain head (a batch costs one lock)."""
    if not records:
        return []
    every = settings.EDGEFLEET["AUDIT_CHECKPOINT_EVERY"]
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            head = AuditHead.objects.create(pk=1)
        seq, prev = head.seq, head.hash or chain.GENESIS
        due: list[tuple[int, str]] = []  # a batch may cross checkpoint boundaries: sign each
        for rec in records:
            seq += 1
            rec.seq, rec.prev_hash = seq, prev
            rec.content = chain.canonical(chain.content_of(rec))
            rec.hash = prev = chain.link(rec.prev_hash, rec.content)
            if seq - (due[-1][0] if due else head.checkpoint_seq) >= every:
                due.append((seq, prev))
        if len(records) == 1:
            records[0].save(force_insert=True)
        else:
            AuditRecord.objects.bulk_create(records, batch_size=1000)
        head.seq, head.hash = seq, prev
        fields = ["seq", "hash"]
        if due:
            AuditCheckpoint.objects.bulk_create([_checkpoint(s, h) for s, h in due])
            head.checkpoint_seq, head.checkpoint_at = due[-1][0], timezone.now()
            fields += ["checkpoint_seq", "checkpoint_at"]
        head.save(update_fields=fields)
    return list(records)


def _checkpoint(seq: int, hash_: str) -> AuditCheckpoint:
    """An unsaved checkpoint of record #seq, signed."""
    now = timezone.now()
    kid = signing.key_id()
    signature = signing.sign(chain.checkpoint_payload(seq, hash_, now.isoformat(), kid))
    return AuditCheckpoint(seq=seq, hash=hash_, ts=now, key_id=kid, signature=signature)


def _sign_checkpoint(head: AuditHead) -> AuditCheckpoint:
    cp = _checkpoint(head.seq, head.hash)
    cp.save()
    head.checkpoint_seq, head.checkpoint_at = head.seq, cp.ts
    return cp


def checkpoint(force: bool = False) -> AuditCheckpoint | None:
    """Sign the current head if it moved and the last checkpoint is older than the interval."""
    interval = timedelta(seconds=settings.EDGEFLEET["AUDIT_CHECKPOINT_INTERVAL_S"])
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.seq == head.checkpoint_seq:
            return None
        if not force and head.checkpoint_at and timezone.now() - head.checkpoint_at < interval:
            return None
        cp = _sign_checkpoint(head)
        head.save(update_fields=["checkpoint_seq", "checkpoint_at"])
        return cp


# --- verification ---------------------------------------------------------------------------------


def as_checkpoint(cp: AuditCheckpoint) -> chain.Checkpoint:
    return chain.Checkpoint(cp.seq, cp.hash, cp.ts.isoformat(), cp.key_id, cp.signature)


def verify_all(public_pem: str | None = None) -> tuple[int, chain.Problem | None]:
    """Verify the whole stored chain against the signed checkpoints (the trusted public key is the
    control plane's own unless one is given)."""
    public = signing.load_public(public_pem or signing.public_pem())
    head = AuditHead.objects.filter(pk=1).first()
    good, problem = chain.check_checkpoints(
        (as_checkpoint(c) for c in AuditCheckpoint.objects.all()),
        lambda data, sig: signing.verify(public, data, sig),
        every=settings.EDGEFLEET["AUDIT_CHECKPOINT_EVERY"],
        head_seq=head.seq if head else 0,
        base_seq=head.base_seq if head else 0,
    )
    if problem is not None:
        return 0, problem
    try:
        return chain.verify(rows(fast=True), head, good)
    except DatabaseError:  # content that is not even JSON: the slow path names the record
        return chain.verify(rows(fast=False), head, good)


# On PostgreSQL the column check runs in the database (jsonb, in C) and only the hashes are
# computed here: that is what makes verification fast (bench/audit.py). Elsewhere it runs in Python.
_PG_ROWS = f"""
SELECT seq, prev_hash, hash, content,
       c->>'ts' IS NOT NULL AND (c->>'ts')::timestamptz = ts
       AND (c->'seq')::bigint = seq
       AND c->>'actor' = actor AND c->>'action' = action
       AND c->>'object_type' = object_type AND c->>'object_id' = object_id
       AND c->>'request_id' = request_id
       AND (c->'fleet' = 'null'::jsonb AND fleet_id IS NULL OR (c->>'fleet')::bigint = fleet_id)
       AND c->'before' = COALESCE(before, 'null'::jsonb)
       AND c->'after' = COALESCE(after, 'null'::jsonb)
FROM (SELECT *, content::jsonb AS c FROM {AuditRecord._meta.db_table}) r
ORDER BY seq
"""


def rows(fast: bool = True):
    """(seq, prev_hash, hash, content, columns agree) for every stored record, in order."""
    if fast and connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None
        with transaction.atomic(), raw.cursor(name="audit_verify") as cur:
            cur.itersize = 20_000
            cur.execute(_PG_ROWS)
            yield from cur
        return
    for rec in AuditRecord.objects.order_by("seq").iterator(chunk_size=10_000):
        yield rec.seq, rec.prev_hash, rec.hash, rec.content, chain.columns_agree(rec)


# --- retention ------------------------------------------------------------------------------------


def _maintenance(sql_pg: str, params: list) -> int:
    """Run a retention function: on PostgreSQL the only way past the append-only trigger."""
    with connection.cursor() as cur:
        cur.execute(sql_pg, params)
        return int(cur.fetchone()[0])


def purge(now=None) -> int:
    """Delete the oldest records past retention, up to a signed checkpoint, which becomes the
    chain's new base, so what remains still verifies. Returns how many records went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=retention_days())
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            return 0
        first_kept = AuditRecord.objects.filter(ts__gte=cutoff).aggregate(m=Min("seq"))["m"]
        upto = head.seq if first_kept is None else first_kept - 1
        cp = (
            AuditCheckpoint.objects.filter(seq__gt=head.base_seq, seq__lte=upto)
            .order_by("-seq")
            .first()
        )
        if cp is None:
            return 0
        if connection.vendor == "postgresql":
            removed = _maintenance("SELECT edgefleet_audit_purge(%s)", [cp.seq])
        else:
            removed, _ = AuditRecord.objects.filter(seq__lte=cp.seq).delete()
        head.base_seq, head.base_hash = cp.seq, cp.hash
        head.save(update_fields=["base_seq", "base_hash"])
        return removed


def forget_sources(now=None) -> int:
    """Clear source addresses (personal data, outside the hash) past their retention window."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.EDGEFLEET["RETENTION_SOURCE_IP_DAYS"])
    if connection.vendor == "postgresql":
        return _maintenance("SELECT edgefleet_audit_forget_sources(%s)", [cutoff])
    return AuditRecord.objects.filter(ts__lt=cutoff, source_ip__isnull=False).update(source_ip=None)


HIPAA_MIN_RETENTION_DAYS = 6 * 366


def retention_days() -> int:
    """The audit retention: the setting, but never under six years while a fleet is in HIPAA
    mode (45 CFR 164.316(b)(2))."""
    from edgenodes.models import Fleet

    days = int(settings.EDGEFLEET["AUDIT_RETENTION_DAYS"])
    if Fleet.objects.filter(compliance_mode="hipaa").exists():
        days = max(days, HIPAA_MIN_RETENTION_DAYS)
    return days
