"""The one way to write an audit record (call it inside the transaction of the change), plus
pseudonyms, signed checkpoints, verification and retention of the chain."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from controlplane import signing, tokens
from controlplane.audit import actions, anchors, chain
from controlplane.audit.models import AuditCheckpoint, AuditHead, AuditRecord, SubjectKey
from controlplane.fleets.models import Fleet
from wire.schemas import ComplianceMode

# --- pseudonyms (crypto-shredding) ----------------------------------------------------------------


_PSEUDONYM_SQL = f"SELECT pseudonym FROM {SubjectKey._meta.db_table} WHERE kind = %s AND ref = %s"


def pseudonym(kind: str, ref: str) -> str:
    """The keyed pseudonym of a data subject, creating its key on first use.

    One indexed read (plain SQL: it is on every append's path); no cache, so a subject erased in
    another process never gets its old pseudonym back."""
    with connection.cursor() as cur:
        cur.execute(_PSEUDONYM_SQL, [kind, ref])
        row = cur.fetchone()
    if row:
        return row[0]
    key = secrets.token_bytes(32)
    value = hmac.new(key, f"{kind}:{ref}".encode(), hashlib.sha256).hexdigest()[:32]
    try:
        with transaction.atomic():
            SubjectKey.objects.create(kind=kind, ref=ref, key=key, pseudonym=value)
    except IntegrityError:  # created concurrently
        return SubjectKey.objects.values_list("pseudonym", flat=True).get(kind=kind, ref=ref)
    return value


# Acting users' references, per process, for ACTOR_CACHE_S: a worker serves the same people and
# tokens again and again, and the lookup was a fifth of an append (bench/audit.py). Erasure drops
# the entry here; another process may use the old, now unresolvable pseudonym for up to
# ACTOR_CACHE_S, but an erased account can no longer act.
ACTOR_CACHE_S = 60.0
_actor_refs: dict[Any, tuple[float, str]] = {}


def user_ref(user) -> str:
    now = time.monotonic()
    hit = _actor_refs.get(user.pk)
    if hit is not None and now - hit[0] < ACTOR_CACHE_S:
        return hit[1]
    ref = f"user:{pseudonym('user', str(user.pk))}"
    if len(_actor_refs) >= 10_000:
        _actor_refs.clear()
    _actor_refs[user.pk] = (now, ref)
    return ref


def forget_user_ref(user_pk: Any) -> None:
    _actor_refs.pop(user_pk, None)


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
    edge: bool = False,
) -> AuditRecord:
    """An unsaved record; `append` chains and stores it. `action` must be declared in
    actions.py (`edge`: a node's event kind, in a declared family)."""
    actions.check(action, edge=edge)
    request_id = ""
    source_ip = None
    if request is not None:
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")[:64]
        source_ip = tokens.client_ip(request.META)  # behind a trusted proxy: its client
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
    """Store records in the caller's transaction and chain them.

    If the chain lock is free, the records are chained right here (a batch costs one lock). If
    another transaction holds it (concurrent writers on PostgreSQL), they are stored *pending* (no
    seq yet): a writer never waits for another writer's commit, so commits (and their fsyncs) run
    in parallel instead of one after another (bench/audit.py). Pending records are chained in
    batches by whoever next holds the lock, after its commit (`seal_pending`), and at the latest by
    `manage.py maintain` within a second."""
    if not records:
        return []
    pg = connection.vendor == "postgresql"
    with transaction.atomic():
        if pg and len(records) == 1:
            # One round trip inserts the record and tries the lock (the common, contended case).
            chained = _insert_one(records[0], try_lock=True)
            if chained:
                head = _lock_head(held=True)
                assert head is not None
                _chain(head, records)
                _seal(records)
        else:
            head_or_none = _lock_head(wait=False)
            chained = head_or_none is not None
            if head_or_none is not None:
                _chain(head_or_none, records)
            if len(records) == 1:
                _insert_one(records[0])
            else:
                AuditRecord.objects.bulk_create(records, batch_size=1000)
    if pg and chained:
        transaction.on_commit(seal_pending)
    return list(records)


_RECORD_FIELDS = [f for f in AuditRecord._meta.concrete_fields if not f.primary_key]
_INSERT_SQL = (
    f"INSERT INTO {AuditRecord._meta.db_table} "
    f"({', '.join(str(f.column) for f in _RECORD_FIELDS)}) "
    f"VALUES ({', '.join(['%s'] * len(_RECORD_FIELDS))}) RETURNING id"
)


def _insert_one(rec: AuditRecord, try_lock: bool = False) -> bool:
    """Insert one record in plain SQL (the ORM's save() cost a third of an append); with
    `try_lock`, the same statement tries the chain lock and says whether it got it."""
    sql = _INSERT_SQL + (f", pg_try_advisory_xact_lock({_CHAIN_LOCK})" if try_lock else "")
    with connection.cursor() as cur:
        cur.execute(
            sql, [f.get_db_prep_save(f.pre_save(rec, True), connection) for f in _RECORD_FIELDS]
        )
        row = cur.fetchone()
    rec.pk = row[0]
    rec._state.adding, rec._state.db = False, connection.alias
    return bool(try_lock and row[1])


# On PostgreSQL, whoever chains holds this advisory lock (for its transaction, or for a sealing
# session), then reads the head. A writer that finds it taken stores its records pending.
_CHAIN_LOCK = 0x6564676566_0001
_HEAD = AuditHead._meta.db_table
_HEAD_FIELDS = {f.name: f for f in AuditHead._meta.concrete_fields}
_HEAD_COLUMNS = ["id", "seq", "hash", "checkpoint_seq", "checkpoint_at", "base_seq", "base_hash"]


def _lock_head(wait: bool = True, held: bool = False) -> AuditHead | None:
    """The chain head, locked for this transaction; None if `wait` is false and it is busy
    (`held`: this session holds the chain lock already).

    Plain SQL: this is on every append's path, where the ORM's query building cost more than the
    database work (bench/audit.py)."""
    pg = connection.vendor == "postgresql"
    with connection.cursor() as cur:
        if pg and not held:
            cur.execute(
                f"SELECT {'pg_advisory_xact_lock' if wait else 'pg_try_advisory_xact_lock'}(%s)",
                [_CHAIN_LOCK],
            )
            if not wait and not cur.fetchone()[0]:
                return None
        cur.execute(f"SELECT {', '.join(_HEAD_COLUMNS)} FROM {_HEAD} WHERE id = 1", [])
        row = cur.fetchone()
    if row is not None:
        head = AuditHead(**dict(zip(_HEAD_COLUMNS, row, strict=True)))
        at = head.checkpoint_at  # SQLite hands back naive UTC (or text) from a raw query
        at = parse_datetime(at) if isinstance(at, str) else at
        head.checkpoint_at = timezone.make_aware(at, UTC) if at and timezone.is_naive(at) else at
        head._state.adding = False
        return head
    with transaction.atomic():  # the very first append (the lock above covers creation too)
        return AuditHead.objects.create(pk=1)


def _move_head(head: AuditHead, fields: list[str]) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {_HEAD} SET {', '.join(f'{f} = %s' for f in fields)} WHERE id = 1",
            [_HEAD_FIELDS[f].get_db_prep_save(getattr(head, f), connection) for f in fields],
        )


def _chain(head: AuditHead, records: Sequence[AuditRecord]) -> None:
    """Give records their seq and hashes after the (locked) head, sign the checkpoints that fall
    due (a batch may cross several boundaries), and move the head."""
    every = settings.EDGEFLEET["AUDIT_CHECKPOINT_EVERY"]
    seq, prev = head.seq, head.hash or chain.GENESIS
    due: list[tuple[int, str]] = []
    for rec in records:
        seq += 1
        rec.seq, rec.prev_hash = seq, prev
        rec.content = chain.canonical(chain.content_of(rec))
        rec.hash = prev = chain.link(rec.prev_hash, rec.content)
        if seq - (due[-1][0] if due else head.checkpoint_seq) >= every:
            due.append((seq, prev))
    head.seq, head.hash = seq, prev
    fields = ["seq", "hash"]
    if due:
        signed = AuditCheckpoint.objects.bulk_create([_checkpoint(s, h) for s, h in due])
        _anchor_on_commit(signed)
        head.checkpoint_seq, head.checkpoint_at = due[-1][0], timezone.now()
        fields += ["checkpoint_seq", "checkpoint_at"]
    _move_head(head, fields)


_SEAL_SQL = (  # one statement for a whole batch of pending records
    f"UPDATE {AuditRecord._meta.db_table} r SET seq = s.seq, prev_hash = s.prev_hash, "
    "content = s.content, hash = s.hash "
    "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[]) "
    "AS s(id, seq, prev_hash, content, hash) WHERE r.id = s.id AND r.seq IS NULL"
)
_ANY_PENDING_SQL = f"SELECT EXISTS (SELECT 1 FROM {AuditRecord._meta.db_table} WHERE seq IS NULL)"


def _seal(batch: Sequence[AuditRecord]) -> None:
    """Write the chain fields of stored pending records (the one update the PostgreSQL trigger
    allows)."""
    with connection.cursor() as cur:
        cur.execute(
            _SEAL_SQL,
            [[getattr(r, f) for r in batch] for f in ("pk", "seq", "prev_hash", "content", "hash")],
        )


def seal_pending(known_pending: bool = False, batch_size: int = 5000) -> int:
    """Chain committed pending records, oldest first, in batches, holding the chain lock for this
    session. Returns how many were chained.

    Runs after the commit of every append that held the lock, and every second from `maintain`.
    Gives up at once when another session holds the lock: that one looks again for pending records
    once it let go."""
    sealed = 0
    pending = AuditRecord.objects.filter(seq__isnull=True).order_by("id")
    for _ in range(10):
        if not (known_pending and not sealed) and not _any_pending():
            break
        if not _chain_lock_session(True):
            break
        try:
            while True:
                with transaction.atomic():
                    head = _lock_head(held=True)
                    assert head is not None
                    batch = list(pending[:batch_size])
                    if batch:
                        _chain(head, batch)
                        _seal(batch)
                sealed += len(batch)
                if len(batch) < batch_size:
                    break
        finally:
            _chain_lock_session(False)
        known_pending = False  # look again now the lock is free: a writer may have just missed it
    return sealed


def _chain_lock_session(take: bool) -> bool:
    """Take (without waiting) or release the chain lock for this session, outside any
    transaction: one round trip, where a transaction would cost three."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {'pg_try_advisory_lock' if take else 'pg_advisory_unlock'}(%s)",
            [_CHAIN_LOCK],
        )
        return bool(cur.fetchone()[0])


def _any_pending() -> bool:
    with connection.cursor() as cur:
        cur.execute(_ANY_PENDING_SQL, [])
        return bool(cur.fetchone()[0])


def pending_count() -> int:
    return AuditRecord.objects.filter(seq__isnull=True).count()


def _checkpoint(seq: int, hash_: str) -> AuditCheckpoint:
    """An unsaved checkpoint of record #seq, signed."""
    now = timezone.now()
    kid = signing.key_id()
    signature = signing.sign(chain.checkpoint_payload(seq, hash_, now.isoformat(), kid))
    return AuditCheckpoint(seq=seq, hash=hash_, ts=now, key_id=kid, signature=signature)


def _anchor_on_commit(signed: list[AuditCheckpoint]) -> None:
    """Once the checkpoints are committed, append them to the anchor file (a line each: nothing
    measurable next to the 1,000 records a checkpoint covers). Never before the commit: an anchor
    for a checkpoint that rolled back would contradict the database."""
    transaction.on_commit(partial(anchors.append_on_commit, signed), robust=True)


def _sign_checkpoint(head: AuditHead) -> AuditCheckpoint:
    cp = _checkpoint(head.seq, head.hash)
    cp.save()
    _anchor_on_commit([cp])
    head.checkpoint_seq, head.checkpoint_at = head.seq, cp.ts
    return cp


def checkpoint(force: bool = False) -> AuditCheckpoint | None:
    """Sign the current head if it moved and the last checkpoint is older than the interval."""
    interval = timedelta(seconds=settings.EDGEFLEET["AUDIT_CHECKPOINT_INTERVAL_S"])
    seal_pending()
    with transaction.atomic():
        head = _lock_head()
        if head is None or head.seq == head.checkpoint_seq:
            return None
        if not force and head.checkpoint_at and timezone.now() - head.checkpoint_at < interval:
            return None
        cp = _sign_checkpoint(head)
        _move_head(head, ["checkpoint_seq", "checkpoint_at"])
        return cp


# --- verification ---------------------------------------------------------------------------------


@dataclass
class Verification:
    """What `audit verify` found: records read, the first problem (None: intact), the newest
    signed checkpoint, and the anchor file's side (how many anchored checkpoints it holds; the
    database's checkpoints it does not hold yet: a warning, `maintain` retries them)."""

    checked: int
    problem: chain.Problem | None
    newest_checkpoint: int = 0
    anchor_file: str = ""
    anchor_copy: bool = False  # checked against a copy of the anchor file, not the anchor itself
    anchored: int = 0
    unanchored: list[int] = field(default_factory=list)
    incomplete_lines: int = 0


def verify_trail(
    public_pem: str | None = None, anchor_file: str | Path | None = None
) -> Verification:
    """Verify the stored chain, its signed checkpoints and the anchor file (`anchor_file`: a copy
    of it, e.g. an auditor's; default the configured file). The one verification: `manage.py
    audit verify` and `verify_all`."""
    public = signing.load_public(public_pem or signing.public_pem())

    def signature_ok(data: bytes, sig: str) -> bool:
        return signing.verify(public, data, sig)

    head = AuditHead.objects.filter(pk=1).first()
    stored = list(AuditCheckpoint.objects.order_by("seq"))
    checkpoints = {c.seq: anchors.as_checkpoint(c) for c in stored}
    newest = max(checkpoints, default=0)
    good, problem = chain.check_checkpoints(
        checkpoints.values(),
        signature_ok,
        every=settings.EDGEFLEET["AUDIT_CHECKPOINT_EVERY"],
        head_seq=head.seq if head else 0,
        base_seq=head.base_seq if head else 0,
        head_checkpoint=head.checkpoint_seq if head else 0,
    )
    if problem is not None:
        return Verification(0, problem, newest)
    checked, problem = _walk(head, good)
    path = Path(anchor_file) if anchor_file is not None else anchors.anchor_file()
    copy = anchor_file is not None and path.resolve() != anchors.anchor_file().resolve()
    result = Verification(checked, problem, newest, anchor_file=str(path), anchor_copy=copy)
    if problem is not None:
        return result
    found = anchors.read(path)
    result.anchored = len({cp.seq for _, cp in found.checkpoints})
    result.incomplete_lines = found.incomplete
    if found.problem is not None:
        result.problem = found.problem
        return result
    last_seq = AuditRecord.objects.aggregate(m=Max("seq"))["m"] or 0
    result.problem, result.unanchored = chain.check_anchors(
        found.checkpoints,
        checkpoints,
        signature_ok,
        marked={c.seq for c in stored if c.anchored_at is not None},
        last_seq=last_seq,
        source=found.source,
        complete=not copy,
    )
    return result


def verify_all(
    public_pem: str | None = None, anchor_file: str | Path | None = None
) -> tuple[int, chain.Problem | None]:
    """(records checked, first problem or None): `verify_trail` without the details."""
    result = verify_trail(public_pem, anchor_file)
    return result.checked, result.problem


def _walk(
    head: AuditHead | None, good: dict[int, chain.Checkpoint]
) -> tuple[int, chain.Problem | None]:
    """Walk the whole stored chain against the good signed checkpoints.

    The chain is cut at signed checkpoints into segments that verify independently; on
    PostgreSQL, outside a transaction, they run in parallel threads, each with its own connection
    (the column check runs in the database, the hashing here)."""
    if head is None:
        return chain.verify(rows(fast=False), None, good)
    workers = max(1, int(settings.EDGEFLEET["AUDIT_VERIFY_WORKERS"]))
    size = max(1, int(settings.EDGEFLEET["AUDIT_VERIFY_SEGMENT_MIN"]))
    parts = max(1, min(workers, (head.seq - head.base_seq) // size))
    segs = chain.segments(head.base_seq, head.seq, good, parts) or [(head.base_seq + 1, head.seq)]

    def one(i: int) -> tuple[int, chain.Problem | None]:
        lo, hi = segs[i]
        last = i == len(segs) - 1
        start = (lo - 1, good[lo - 1].hash) if i else None
        end = None if last else hi
        try:
            return chain.verify(rows(lo, end), head, good, start=start, end=end)
        except DatabaseError:  # content that is not even JSON: the slow path names the record
            return chain.verify(rows(lo, end, fast=False), head, good, start=start, end=end)

    parallel = (
        len(segs) > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block
    )
    if parallel:
        with ThreadPoolExecutor(len(segs)) as pool:
            results = list(pool.map(_own_connection(one), range(len(segs))))
    else:
        results = [one(i) for i in range(len(segs))]
    checked = 0
    for n, problem in results:
        checked += n
        if problem is not None:
            return checked, problem
    return checked, None


def _own_connection(fn):
    """Run fn in a worker thread, closing the thread's database connection afterwards."""

    def run(*args):
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return run


# On PostgreSQL the column check runs in the database (jsonb, in C) and only the hashes are
# computed here. The LATERAL subquery parses each record's content once (a plain subquery is
# flattened and parses it once per use: 4x slower).
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
FROM {AuditRecord._meta.db_table} r CROSS JOIN LATERAL (SELECT r.content::jsonb AS c OFFSET 0) j
WHERE seq >= %s AND seq <= %s
ORDER BY seq
"""


def rows(lo: int = 0, hi: int | None = None, fast: bool = True):
    """(seq, prev_hash, hash, content, columns agree) for the chained records #lo..#hi in order."""
    hi = 2**62 if hi is None else hi
    if fast and connection.vendor == "postgresql":
        yield from _pg_rows(lo, hi)
        return
    chained = AuditRecord.objects.filter(seq__gte=lo, seq__lte=hi).order_by("seq")
    for rec in chained.iterator(chunk_size=10_000):
        yield rec.seq, rec.prev_hash, rec.hash, rec.content, chain.columns_agree(rec)


def _pg_rows(lo: int, hi: int):
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    with transaction.atomic(), raw.cursor(name="audit_verify") as cur:
        cur.itersize = 20_000
        cur.execute(_PG_ROWS, (lo, hi))
        yield from cur


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
        head = _lock_head()
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
        _move_head(head, ["base_seq", "base_hash"])
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
    days = int(settings.EDGEFLEET["AUDIT_RETENTION_DAYS"])
    if Fleet.objects.filter(compliance_mode=ComplianceMode.HIPAA).exists():
        days = max(days, HIPAA_MIN_RETENTION_DAYS)
    return days
