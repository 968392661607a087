"""Node status, drift, metric rollups and retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.nodes import metrics, services
from controlplane.nodes.models import MetricRollup, MetricSample, Node, NodeStatus
from wire.schemas import MetricBatchIn

pytestmark = pytest.mark.django_db


def test_status_is_derived_from_last_contact_and_the_poll_interval(north_node):
    node, _ = north_node
    now = timezone.now()
    assert node.status_at(now) == NodeStatus.NEVER
    for age, status in [
        (10, "online"),
        (59, "online"),
        (61, "stale"),
        (299, "stale"),
        (301, "offline"),
    ]:
        node.last_seen_at = now - timedelta(seconds=age)
        assert node.status_at(now) == status, age


def test_nodes_can_be_filtered_by_derived_status(north, south):
    from .conftest import enroll

    online, _ = enroll(north, "a")
    stale, _ = enroll(north, "b")
    offline, _ = enroll(south, "c")
    never, _ = enroll(south, "d")
    now = timezone.now()
    Node.objects.filter(pk=online.pk).update(last_seen_at=now)
    Node.objects.filter(pk=stale.pk).update(last_seen_at=now - timedelta(minutes=2))
    Node.objects.filter(pk=offline.pk).update(last_seen_at=now - timedelta(hours=1))
    assert [n.name for n in Node.objects.with_status("online")] == ["a"]
    assert [n.name for n in Node.objects.with_status("stale")] == ["b"]
    assert [n.name for n in Node.objects.with_status("offline")] == ["c"]
    assert [n.name for n in Node.objects.with_status("never")] == ["d"]


def batch(seqs, ts, value=1.0):
    return MetricBatchIn(
        samples=[{"seq": s, "ts": ts, "name": "latency_ms", "value": value + s} for s in seqs]
    )


def test_raw_samples_are_rolled_up_per_minute_including_late_arrivals(north_node):
    node, _ = north_node
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=3)
    services.do_ingest_metrics(node, batch(range(1, 4), minute + timedelta(seconds=5)))
    assert metrics.rollup() == 3
    services.do_ingest_metrics(
        node, batch(range(4, 6), minute + timedelta(seconds=50))
    )  # arrives late
    assert metrics.rollup() == 2
    (roll,) = MetricRollup.objects.all()
    assert roll.minute == minute
    assert (roll.count, roll.total, roll.min, roll.max) == (5, 5 + 15, 2.0, 6.0)


def test_purge_deletes_only_rolled_up_raw_samples_past_retention(north_node, settings):
    node, _ = north_node
    old = timezone.now() - timedelta(hours=settings.EDGEFLEET["METRICS_RAW_RETENTION_H"] + 1)
    services.do_ingest_metrics(node, batch(range(1, 4), old))
    assert metrics.purge() == (0, 0)  # not rolled up yet: kept
    metrics.rollup()
    services.do_ingest_metrics(node, batch(range(4, 5), timezone.now()))
    metrics.rollup()
    raw, _ = metrics.purge()
    assert raw == 3
    assert list(MetricSample.objects.values_list("seq", flat=True)) == [4]
    assert MetricRollup.objects.count() == 2


def test_maintain_reports_what_it_did(north_node):
    node, _ = north_node
    services.do_ingest_metrics(node, batch(range(1, 3), timezone.now()))
    assert metrics.maintain() == {"samples_rolled_up": 2, "raw_purged": 0, "rollups_purged": 0}
