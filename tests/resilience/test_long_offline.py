"""A node offline for 30 days (its clock simulated): its outbox stays under its byte cap, what the
caps dropped is counted and reported to the control plane on reconnect, and the backlog drains,
every kept item stored once, while ten other nodes keep sending (their ingest latency before and
during the drain goes to the report; tests assert no times)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

from agents import outbox as outbox_module
from agents.client import ControlPlaneError, NodeClient
from agents.outbox import Outbox
from agents.telemetry import Telemetry
from wire.schemas import CompliancePolicy

from .harness import ControlPlane, database, django, report, seed, server_env, wait_for

DAYS = 30
CAP = 512 << 10  # the outbox's byte cap for this node (the default is 64 MiB)
MAX_AGE_S = 7 * 86400

STORED = """
from django.db.models import Sum
from controlplane.nodes.models import MetricSample, NodeEventRecord
node = %(node)r
samples = MetricSample.objects.filter(node_id=node)
print(json.dumps({
    "metrics": samples.exclude(name__startswith="outbox.dropped.").count(),
    "events": NodeEventRecord.objects.filter(node_id=node).count(),
    "dropped_metrics": samples.filter(name="outbox.dropped.metrics").aggregate(v=Sum("value"))["v"],
    "dropped_events": samples.filter(name="outbox.dropped.events").aggregate(v=Sum("value"))["v"],
}))
"""


def go_offline(outbox: Outbox, monkeypatch) -> dict[str, int]:
    """30 days of a node's telemetry with no control plane: four metrics every five minutes and
    an event every hour, on a simulated clock that ends now."""
    now = time.time()
    clock = [now - DAYS * 86400]
    made = {"metrics": 0, "events": 0}
    with monkeypatch.context() as m:
        m.setattr(outbox_module.time, "time", lambda: clock[0])
        while clock[0] < now:
            outbox.enqueue_many(
                "metrics",
                [{"name": f"m{k}", "value": random.random()} for k in range(4)],
            )
            made["metrics"] += 4
            if int(clock[0]) % 3600 < 300:
                outbox.enqueue("events", {"kind": "chat.answered", "data": {"n": made["events"]}})
                made["events"] += 1
            clock[0] += 300
    return made


def test_a_node_offline_for_a_month_stays_under_its_cap_counts_drops_and_drains(
    tmp_path, monkeypatch
):
    db = database(tmp_path)
    # Raw samples are kept long enough to be counted here (they are rolled up after 48 h).
    env = server_env(db.url, tmp_path / "var", EDGEFLEET_METRICS_RAW_RETENTION_H="100000")
    plane = ControlPlane(env)
    clients: list[NodeClient] = []
    try:
        credentials = list(seed(env, 11).items())
        (offline_id, offline_cred), others = credentials[0], credentials[1:]
        outbox = Outbox(tmp_path / "offline.sqlite3", max_bytes=CAP, max_age_s=MAX_AGE_S)
        made = go_offline(outbox, monkeypatch)
        stats = outbox.stats()
        assert sum(s["bytes"] for s in stats.values()) <= CAP
        for stream in ("metrics", "events"):
            assert stats[stream]["dropped"] > 0
            assert stats[stream]["dropped"] + stats[stream]["depth"] == made[stream]
        kept = {stream: stats[stream]["depth"] for stream in stats}

        plane.start()
        latencies: dict[str, list[float]] = {"before": [], "during": []}
        phase = ["before"]
        stop = threading.Event()

        def other_node(node_id: str, cred: str) -> None:
            client = NodeClient(plane.url, cred, timeout=30)
            clients.append(client)
            seq = 0
            while not stop.is_set():
                items = [
                    {"seq": seq + i, "ts": datetime.now(UTC).isoformat(), "name": "x", "value": 1}
                    for i in range(1, 21)
                ]
                started = time.perf_counter()
                client.send("metrics", items)
                latencies[phase[0]].append(time.perf_counter() - started)
                seq += 20
                time.sleep(random.uniform(0.05, 0.15))

        senders = [threading.Thread(target=other_node, args=o) for o in others]
        for t in senders:
            t.start()
        time.sleep(3)
        phase[0] = "during"
        client = NodeClient(plane.url, offline_cred, timeout=30)
        clients.append(client)
        telemetry = Telemetry(outbox, client, CompliancePolicy)
        started = time.perf_counter()

        def drained() -> bool:
            try:
                telemetry.send_once()
            except ControlPlaneError as exc:
                time.sleep(exc.retry_after or 0.5)
            return sum(s["depth"] for s in outbox.stats().values()) == 0

        wait_for(drained, 300, "the backlog to drain", every=0)
        drain_s = time.perf_counter() - started
        # Queueing the drop report at the cap may push out more of the oldest metrics: the next
        # round reports those.
        telemetry.send_once()
        final = outbox.stats()
        stop.set()
        for t in senders:
            t.join(timeout=60)
        stored = django(env, STORED % {"node": offline_id})
        # Kept items arrived once each, or were pushed out (counted) by the drop report itself.
        lost = sum(
            kept[s] - (final[s]["dropped"] - stats[s]["dropped"]) - stored[s]
            for s in ("metrics", "events")
        )
        report(
            "long offline node",
            f"{DAYS} days offline (simulated clock), outbox cap {CAP >> 10} KiB / 7 days, "
            "then reconnect beside 10 sending nodes",
            1,
            backend=db.kind,
            made=made["metrics"] + made["events"],
            dropped_by_cap=final["metrics"]["dropped"] + final["events"]["dropped"],
            dropped_reported=(stored["dropped_metrics"] or 0) + (stored["dropped_events"] or 0),
            kept=kept["metrics"] + kept["events"],
            stored=stored["metrics"] + stored["events"],
            lost=lost,
            aged_out_while_reconnecting=sum(
                final[s]["dropped"] - stats[s]["dropped"] for s in ("metrics", "events")
            ),
            drain_s=round(drain_s, 2),
            others_ingest_p99_ms_before=round(p99(latencies["before"]) * 1000, 1),
            others_ingest_p99_ms_during=round(p99(latencies["during"]) * 1000, 1),
        )
        assert lost == 0  # (the oldest may pass the age cap during the drain: counted, reported)
        assert stored["dropped_metrics"] == final["metrics"]["dropped"]  # every drop reported
        assert stored["dropped_events"] == final["events"]["dropped"]
        outbox.close()
    finally:
        for c in clients:
            c.close()
        plane.kill()
        db.close()


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))] if values else 0.0
