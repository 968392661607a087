"""The disk filling up, on a size-limited filesystem (tmpfs): under the control plane's database,
under its uploads and artifacts, and under a node's outbox. Each answers with a clear error (503
with Retry-After; counted telemetry on the node), stores nothing half-way, and goes on once space
returns."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from pathlib import Path

import pytest

from agents.client import ControlPlaneError, NodeClient
from agents.outbox import Outbox
from agents.telemetry import Telemetry
from controlplane.errors import DISK_FULL
from controlplane.registry.models import Artifact
from wire.schemas import CompliancePolicy

from ..test_uploads import put
from .harness import (
    ControlPlane,
    PostgresCluster,
    SmallDisk,
    can_mount,
    django,
    on_postgres,
    postgres_available,
    report,
    seed,
    server_env,
    wait_for,
)

pytestmark = pytest.mark.skipif(not can_mount(), reason="needs to mount a tmpfs (root)")

CHECK = """
from django.db import connection
from controlplane.audit import services as audit
from controlplane.nodes.models import MetricSample, NodeEventRecord
integrity = "not checked"
if connection.vendor == "sqlite":
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA integrity_check")
        (integrity,) = cursor.fetchone()
checked, problem = audit.verify_all()
print(json.dumps({
    "integrity": integrity,
    "metrics": MetricSample.objects.count(),
    "metric_seqs": MetricSample.objects.values("seq").distinct().count(),
    "events": NodeEventRecord.objects.count(),
    "audit_problem": str(problem) if problem else None,
}))
"""


def test_a_full_disk_under_sqlite_answers_503_stores_nothing_half_way_and_recovers(tmp_path):
    if on_postgres():
        pytest.skip("the SQLite leg's test; the PostgreSQL leg fills PostgreSQL's disk")
    disk = SmallDisk(tmp_path / "db", "32m")
    try:
        env = server_env(f"sqlite:///{disk.path / 'edgefleet.sqlite3'}", tmp_path / "var")
        fill_the_database_disk(env, disk, tmp_path, "sqlite", restart=lambda: False)
    finally:
        disk.close()


def test_a_full_disk_under_postgresql_answers_503_and_the_replay_completes_afterwards(tmp_path):
    if not (on_postgres() and postgres_available()):
        pytest.skip("the PostgreSQL leg's test (a private cluster on a tmpfs)")
    # Mounted straight under /tmp: the postgres user cannot enter pytest's private tmp_path.
    disk = SmallDisk(Path(tempfile.mkdtemp(prefix="edgefleet-pgdisk-")), "192m")
    cluster = None
    try:
        cluster = PostgresCluster(where=disk.path)
        env = server_env(cluster.url, tmp_path / "var")

        def restart() -> bool:
            """What its supervisor (systemd) does: start PostgreSQL again if a full WAL stopped
            it (a PANIC that recovery could not get past)."""
            if cluster.running():
                return False
            cluster.start()
            return True

        fill_the_database_disk(env, disk, tmp_path, "postgresql", restart)
    finally:
        if cluster is not None:
            cluster.close()
        disk.close()


def fill_the_database_disk(env, disk: SmallDisk, tmp_path, backend: str, restart) -> None:
    """A node sends until the database's disk is full: every refusal is a 503 that says so.
    Space returns, the node's outbox replays, and everything arrives once."""
    (_, credential), *_ = seed(env, 1).items()
    plane = ControlPlane(env).start()
    try:
        disk.fill(leave=2 << 20)
        outbox = Outbox(tmp_path / "outbox.sqlite3")
        telemetry = Telemetry(outbox, NodeClient(plane.url, credential), CompliancePolicy)
        refusals: list[tuple[int | None, str]] = []
        for i in range(20000):  # until the database cannot grow, and a little after
            telemetry.metrics({f"m{k}": i for k in range(50)})
            telemetry.event("tool.call", {"tool": "clock", "pad": "x" * 500})
            try:
                telemetry.send_once()
            except ControlPlaneError as exc:
                refusals.append((exc.status, str(exc)))
                if len(refusals) >= 5:
                    break
        assert refusals, "the disk never filled"
        assert {status for status, _ in refusals} == {503}, refusals
        if backend == "sqlite":  # PostgreSQL may also stop (a full WAL): "database unavailable"
            assert all(DISK_FULL in message for _, message in refusals)

        disk.give_back()
        restarted = restart()
        wait_for(lambda: telemetry.send_once() == 0 and outbox_empty(outbox), 120, "the drain")
        found = django(env, CHECK)
        stats = outbox.stats()
        sent = stats["metrics"]["next_seq"] - 1
        messages = sorted({m.split(": 503 ", 1)[-1] for _, m in refusals})
        report(
            "disk full under the control plane's database",
            f"{backend} on a tmpfs filled to 2 MiB free while a node sends, then freed",
            1,
            backend=backend,
            refusals=f"{len(refusals)} x 503 ({'; '.join(messages)})",
            database_restarted=restarted,
            lost=sent - found["metric_seqs"] + stats["events"]["next_seq"] - 1 - found["events"],
            integrity=found["integrity"],
            audit_problem=found["audit_problem"],
        )
        assert found["integrity"] in ("ok", "not checked")
        assert found["metrics"] == found["metric_seqs"] == sent  # all of them, once
        assert found["events"] == stats["events"]["next_seq"] - 1
        assert found["audit_problem"] is None
    finally:
        plane.kill()


def outbox_empty(outbox: Outbox) -> bool:
    return all(s["depth"] == 0 for s in outbox.stats().values())


def test_a_full_disk_on_a_node_counts_and_reports_what_it_could_not_store_and_recovers(
    tmp_path,
):
    disk = SmallDisk(tmp_path / "node", "1m")
    try:
        outbox = Outbox(disk.path / "outbox.sqlite3")
        client = NodeClient("http://127.0.0.1:9", "efn_unused")  # offline: nothing is sent
        telemetry = Telemetry(outbox, client, CompliancePolicy)
        sent = 0
        while not telemetry.unstored["events"]:  # an agent's events, until the disk is full
            telemetry.event("tool.call", {"tool": "clock", "pad": "x" * 400})
            sent += 1
        for _ in range(9):  # the agent goes on serving; its events are counted, not stored
            telemetry.event("tool.call", {"tool": "clock"})
        assert telemetry.unstored["events"] == 10
        kept = outbox.stats()["events"]["depth"]
        assert kept == sent - 1
        with sqlite3.connect(disk.path / "outbox.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

        disk.resize("8m")
        telemetry.event("tool.call", {"tool": "clock"})
        telemetry._report_drops()
        items = outbox.peek("metrics").items
        report(
            "disk full under a node's outbox",
            "outbox on a 1 MiB tmpfs filled by events, then grown to 8 MiB",
            1,
            stored_before_full=kept,
            unstored_counted=telemetry.unstored["events"],
            reported=items[-1]["value"],
            integrity="ok",
        )
        assert outbox.stats()["events"]["depth"] == kept + 1
        assert items[-1] == {**items[-1], "name": "outbox.dropped.events", "value": 10.0}
        outbox.close()
    finally:
        disk.close()


@pytest.mark.django_db
def test_a_full_disk_under_uploads_and_artifacts_answers_503_and_the_upload_goes_on(
    fiona, admin_api, tiny_f32, tmp_path, settings
):
    data = tiny_f32.read_bytes()
    uploads = SmallDisk(tmp_path / "var", "2m")
    artifacts = SmallDisk(tmp_path / "artifacts", "2m")
    try:
        settings.VAR_DIR = uploads.path
        settings.STORAGES = {
            **settings.STORAGES,
            "artifacts": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(artifacts.path)},
            },
        }
        api = admin_api(fiona)
        announce = {"size": len(data), "filename": "tiny-F32.gguf"}
        # Too little room for what the upload announces: refused up front.
        r = api.post("/models/uploads", announce)
        assert r.status_code == 413 and "not enough disk space" in r.json()["detail"]
        uploads.resize("32m")
        upload = api.post("/models/uploads", announce)
        assert upload.status_code == 201, upload.content
        upload_id = upload.json()["id"]

        # The disk fills (someone else's files) in the middle of a chunk: 503, what arrived stays.
        uploads.fill(leave=1 << 20)
        r = put(api, upload_id, 0, data)
        assert r.status_code == 503 and r["Retry-After"]
        assert r.json()["detail"] == DISK_FULL
        offset = api.get(f"/models/uploads/{upload_id}").json()["offset"]
        assert 0 < offset < len(data)
        uploads.give_back()
        assert put(api, upload_id, offset, data[offset:]).status_code == 200

        # The artifacts' disk is full when the upload is registered: 503, nothing registered,
        # no partial file left in storage; once space returns, the same upload completes.
        r = api.post(f"/models/uploads/{upload_id}/complete")
        assert r.status_code == 503 and r.json()["detail"] == DISK_FULL
        assert not Artifact.objects.exists()
        assert not [p for p in artifacts.path.rglob("*") if p.is_file()]
        artifacts.resize("32m")
        r = api.post(f"/models/uploads/{upload_id}/complete")
        assert r.status_code == 201, r.content
        stored = next(p for p in artifacts.path.rglob("*.gguf"))
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == r.json()["sha256"]
        report(
            "disk full under uploads and artifacts",
            "uploads and artifact storage on 2 MiB tmpfs, a 6 MiB model uploaded, then grown",
            2,
            answers="503 storage full, then 200/201",
            partial_files_left=0,
            registered_digest_verified=True,
        )
    finally:
        uploads.close()
        artifacts.close()
