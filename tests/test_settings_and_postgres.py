"""Settings behaviour and the PostgreSQL-only guarantees (run when DATABASE_URL is PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from django.db import connection, connections

from controlplane.errors import ServiceError
from controlplane.nodes import services
from controlplane.nodes.models import EnrollmentToken, Node
from wire.schemas import EnrollIn

from .conftest import HARDWARE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_check(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_production_mode_refuses_to_start_without_a_real_secret_key():
    r = run_check({"EDGEFLEET_PRODUCTION": "1", "SECRET_KEY": ""})
    assert r.returncode != 0
    assert "SECRET_KEY is missing or too weak" in r.stderr


def test_production_mode_starts_with_a_real_secret_key():
    r = run_check(
        {
            "EDGEFLEET_PRODUCTION": "1",
            "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-value",
        }
    )
    assert r.returncode == 0, r.stderr


def test_a_bare_checkout_runs_on_sqlite_and_the_in_memory_channel_layer():
    from django.conf import settings

    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set")
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_redis_url_selects_the_redis_channel_layer():
    from django.conf import settings

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


def test_a_socket_waiting_on_redis_longer_than_the_blocking_pop_keeps_waiting():
    """channels_redis blocks 5 s per pop; redis-py 8's default read timeout is also 5 s."""
    import asyncio

    from channels.layers import get_channel_layer

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")

    async def wait_idle() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        with pytest.raises(asyncio.TimeoutError):  # ours, not redis.exceptions.TimeoutError
            await asyncio.wait_for(layer.receive(channel), timeout=12)

    asyncio.run(wait_idle())


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL-only behaviour"
)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_enrollments_never_spend_a_token_beyond_its_use_limit(north):
    _, plaintext = services.do_create_enrollment_token(north, max_uses=3, actor=None)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(i: int):
        barrier.wait()
        try:
            services.do_enroll_node(EnrollIn(token=plaintext, name=f"n{i}", hardware=HARDWARE))
            results.append("ok")
        except ServiceError as exc:
            results.append(exc.message)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 3
    assert Node.objects.count() == 3
    assert EnrollmentToken.objects.get().uses == 3


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_batch_store_each_sample_once(north_node):
    from django.utils import timezone

    from controlplane.nodes.models import MetricSample
    from wire.schemas import MetricBatchIn

    node, _ = north_node
    batch = MetricBatchIn(
        samples=[{"seq": s, "ts": timezone.now(), "name": "x", "value": 1.0} for s in range(1, 51)]
    )
    barrier = threading.Barrier(6)

    def send():
        barrier.wait()
        try:
            services.do_ingest_metrics(Node.objects.get(pk=node.pk), batch)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert MetricSample.objects.filter(node=node).count() == 50
    node.refresh_from_db()
    assert node.metrics_acked_seq == 50


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_audit_writers_keep_the_chain_intact(north, alice):
    from controlplane.audit.models import AuditRecord
    from controlplane.audit.services import verify_all
    from controlplane.nodes.models import Fleet

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(i: int):
        barrier.wait()
        try:
            fleet = Fleet.objects.get(pk=north.pk)
            for j in range(25):
                services.do_update_fleet(fleet, poll_interval_s=10 + i * 100 + j, actor=alice)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert AuditRecord.objects.filter(action="fleet.update").count() == 200
    checked, problem = verify_all()
    assert problem is None, str(problem)
    assert checked == AuditRecord.objects.count()
