"""The audit trail is a hash chain; `manage.py audit verify` finds tampering, naming the record."""

from __future__ import annotations

import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from controlplane.audit import chain
from controlplane.audit import services as services_audit
from controlplane.audit.models import AuditCheckpoint, AuditHead, AuditRecord
from controlplane.nodes import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(alice, north, settings):
    # A checkpoint every 4 records: #4, #8, #12; verified as three segments #1..4, #5..8, #9..12.
    settings.EDGEFLEET = {
        **settings.EDGEFLEET,
        "AUDIT_CHECKPOINT_EVERY": 4,
        "AUDIT_VERIFY_WORKERS": 3,
        "AUDIT_VERIFY_SEGMENT_MIN": 4,
    }
    for i in range(12):
        services.do_update_fleet(north, poll_interval_s=30 + i, actor=alice)
    assert AuditRecord.objects.count() == 12
    return list(AuditRecord.objects.order_by("seq"))


def verify():
    return services_audit.verify_all()


def test_every_write_extends_the_chain_and_it_verifies(trail, capsys):
    assert [r.seq for r in trail] == list(range(1, 13))
    assert trail[0].prev_hash == chain.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(trail, trail[1:], strict=False))
    assert verify() == (12, None)
    call_command("audit", "verify")
    assert "audit trail OK: 12 records" in capsys.readouterr().out


def test_personal_data_is_kept_out_of_the_hashed_content(trail):
    assert '"actor":"user:' in trail[0].content
    assert "alice" not in trail[0].content


def raw(sql, params=()):
    with connection.cursor() as c:
        c.execute(sql, params)


def as_attacker_with_table_owner_rights():
    """On PostgreSQL the append-only trigger stops the application; a tamperer who owns the table
    can switch it off (rolled back with the test's transaction). Verification must still catch them.
    """
    if connection.vendor == "postgresql":
        raw(f"ALTER TABLE {AuditRecord._meta.db_table} DISABLE TRIGGER audit_append_only")


TABLE = AuditRecord._meta.db_table


KINDS = [
    "edit column",
    "edit content",
    "delete",
    "reorder",
    "insert",
    "recompute",
    "truncate",
    "delete checkpoint",
    "forge checkpoint",
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", KINDS)
def test_randomized_tampering_of_every_kind_is_detected_and_named(trail, kind, seed):
    victim = random.Random(f"{kind}-{seed}").randrange(2, 11)
    as_attacker_with_table_owner_rights()
    if kind == "edit column":
        raw(f"UPDATE {TABLE} SET action = %s WHERE seq = %s", ["fleet.delete", victim])
    elif kind == "edit content":
        rec = AuditRecord.objects.get(seq=victim)
        raw(
            f"UPDATE {TABLE} SET content = %s WHERE seq = %s",
            [rec.content.replace("fleet.update", "fleet.delete"), victim],
        )
    elif kind == "delete":
        raw(f"DELETE FROM {TABLE} WHERE seq = %s", [victim])
    elif kind == "reorder":
        raw(f"UPDATE {TABLE} SET seq = -1 WHERE seq = %s", [victim])
        raw(f"UPDATE {TABLE} SET seq = %s WHERE seq = %s", [victim, victim + 1])
        raw(f"UPDATE {TABLE} SET seq = %s WHERE seq = -1", [victim + 1])
    elif kind == "insert":
        raw(f"UPDATE {TABLE} SET seq = seq + 1000 WHERE seq >= %s", [victim])
        raw(f"UPDATE {TABLE} SET seq = seq - 999 WHERE seq >= 1000")
        rec = AuditRecord.objects.get(seq=victim - 1)
        rec.pk, rec.seq, rec.action = None, victim, "forged"
        rec.content = chain.canonical(chain.content_of(rec))
        rec.prev_hash = AuditRecord.objects.get(seq=victim - 1).hash
        rec.hash = chain.link(rec.prev_hash, rec.content)
        rec.save()
    elif kind == "recompute":
        # An attacker with database access edits a record and recomputes every hash after it.
        prev = AuditRecord.objects.get(seq=victim - 1).hash
        for rec in AuditRecord.objects.filter(seq__gte=victim).order_by("seq"):
            if rec.seq == victim:
                rec.action = "nothing.happened"
            rec.prev_hash, rec.content = prev, chain.canonical(chain.content_of(rec))
            rec.hash = prev = chain.link(rec.prev_hash, rec.content)
            raw(
                f"UPDATE {TABLE} SET action=%s, prev_hash=%s, content=%s, hash=%s WHERE seq=%s",
                [rec.action, rec.prev_hash, rec.content, rec.hash, rec.seq],
            )
        # ... and rewrites the chain head to match: only the signed checkpoints betray it.
        AuditHead.objects.filter(pk=1).update(hash=prev)
    elif kind == "truncate":
        raw(f"DELETE FROM {TABLE} WHERE seq >= %s", [victim])
    elif kind == "delete checkpoint":
        AuditCheckpoint.objects.filter(seq=8).delete()
    elif kind == "forge checkpoint":
        cp = AuditCheckpoint.objects.get(seq=8)
        AuditCheckpoint.objects.filter(pk=cp.pk).update(hash=AuditRecord.objects.get(seq=7).hash)
    checked, problem = verify()
    assert problem is not None, kind
    if kind == "recompute":
        assert "recomputed" in problem.reason and problem.seq <= victim, str(problem)
    elif kind == "delete checkpoint":
        assert "checkpoints deleted" in problem.reason, str(problem)
    elif kind == "forge checkpoint":
        assert problem.seq == 8 and "invalid signature" in problem.reason, str(problem)
    elif kind == "insert":
        # The forged record links; the next one breaks, or the forged one contradicts a checkpoint.
        assert problem.seq == victim + 1 or (
            "signed checkpoint" in problem.reason and problem.seq <= victim
        ), str(problem)
    else:
        assert problem.seq == victim, (kind, str(problem))
    with pytest.raises(CommandError, match="FAILED verification"):
        call_command("audit", "verify")


def test_a_checkpoint_is_signed_every_n_records_with_a_key_outside_the_database(trail):
    assert list(AuditCheckpoint.objects.values_list("seq", flat=True)) == [4, 8, 12]
    head = AuditHead.objects.get(pk=1)
    assert head.checkpoint_seq == 12
    assert verify() == (12, None)


def test_a_checkpoint_is_signed_when_the_interval_passed_even_with_few_records(alice, north):
    from datetime import timedelta

    from django.utils import timezone

    services.do_update_fleet(north, poll_interval_s=31, actor=alice)
    assert services_audit.checkpoint() is not None  # first one: nothing signed yet
    services.do_update_fleet(north, poll_interval_s=32, actor=alice)
    assert services_audit.checkpoint() is None  # not due yet
    AuditHead.objects.filter(pk=1).update(checkpoint_at=timezone.now() - timedelta(minutes=6))
    assert services_audit.checkpoint().seq == 2


def test_verification_with_another_public_key_fails_and_names_the_checkpoint(trail, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(CommandError, match="record #4: its signed checkpoint has an invalid"):
        call_command("audit", "verify", "--public-key", str(other))


def test_retention_removes_a_prefix_up_to_a_checkpoint_and_the_rest_still_verifies(trail):
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(days=3000)
    # Records 1..9 are past retention; the last checkpoint among them is #8.
    AuditRecord.objects.filter(seq__lte=9).update(
        ts=old
    ) if connection.vendor != "postgresql" else (_backdate_on_postgresql(old))
    assert services_audit.purge() == 8
    assert AuditRecord.objects.order_by("seq").first().seq == 9
    head = AuditHead.objects.get(pk=1)
    assert (head.base_seq, head.base_hash) == (8, AuditCheckpoint.objects.get(seq=8).hash)


def _backdate_on_postgresql(old):
    """Rewriting timestamps is tampering: done as the table owner, then the chain is re-linked
    (this test is about retention, not detection)."""
    as_attacker_with_table_owner_rights()
    prev = chain.GENESIS
    for rec in AuditRecord.objects.order_by("seq"):
        if rec.seq <= 9:
            rec.ts = old
        rec.prev_hash, rec.content = prev, chain.canonical(chain.content_of(rec))
        rec.hash = prev = chain.link(rec.prev_hash, rec.content)
        rec.save()
    raw(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_append_only")


# --- concurrent writers (PostgreSQL: real commits in separate connections) ------------------------

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL-only behaviour"
)


def _in_thread(fn):
    """Run fn in another thread (its own database connection) and return its result."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def run():
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result(timeout=30)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_writer_does_not_wait_for_another_writers_commit_and_its_record_is_chained_after(
    alice, north
):
    from django.db import transaction

    services.do_update_fleet(north, poll_interval_s=40, actor=alice)
    with transaction.atomic():
        services.do_update_fleet(north, poll_interval_s=41, actor=alice)  # holds the chain head
        # Another writer appends meanwhile: it is not blocked; its record is stored pending.
        other = _in_thread(
            lambda: services_audit.record("membership.set", ("membership", "1"), user=alice).pk
        )
        assert AuditRecord.objects.get(pk=other).seq is None
    # The first writer's commit chains the pending record right after its own.
    rec = AuditRecord.objects.get(pk=other)
    update = AuditRecord.objects.filter(action="fleet.update").order_by("seq").last()
    assert rec.seq == update.seq + 1 and rec.prev_hash == update.hash
    assert services_audit.pending_count() == 0
    assert services_audit.verify_all() == (AuditRecord.objects.count(), None)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_trigger_lets_a_pending_record_be_chained_but_not_edited(alice):
    from django.db import IntegrityError, InternalError, ProgrammingError, transaction

    rec = services_audit.entry("membership.set", ("membership", "1"), user=alice)
    rec.save()  # stored pending, as under contention
    with pytest.raises((ProgrammingError, InternalError, IntegrityError)), transaction.atomic():
        raw(f"UPDATE {TABLE} SET action = 'forged' WHERE id = %s", [rec.pk])
    # A record no later writer picked up is chained by `maintain` (every second when looping).
    from edgefleet.management.commands.maintain import run_once

    assert run_once()["audit_sealed"] == 1
    assert services_audit.verify_all() == (AuditRecord.objects.count(), None)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_parallel_verification_in_segments_names_the_first_edited_record(alice, north, settings):
    settings.EDGEFLEET = {
        **settings.EDGEFLEET,
        "AUDIT_CHECKPOINT_EVERY": 4,
        "AUDIT_VERIFY_WORKERS": 3,
        "AUDIT_VERIFY_SEGMENT_MIN": 4,
    }
    for i in range(12):
        services.do_update_fleet(north, poll_interval_s=30 + i, actor=alice)
    assert services_audit.verify_all() == (12, None)
    raw(f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_append_only")
    try:
        raw(f"UPDATE {TABLE} SET action = 'fleet.delete' WHERE seq IN (6, 10)")
    finally:
        raw(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_append_only")
    checked, problem = services_audit.verify_all()
    assert problem is not None and problem.seq == 6, str(problem)
