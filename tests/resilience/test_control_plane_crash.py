"""The control plane SIGKILLed at random points while 50 nodes send metrics and events, and its
PostgreSQL crashed and restarted once in the middle: after the nodes replay their outboxes, every
record is stored exactly once, the audit chain verifies and no audit record is left pending."""

from __future__ import annotations

import random
import threading
import time

from agents.client import NodeClient
from agents.outbox import Outbox
from agents.telemetry import Telemetry
from wire.schemas import CompliancePolicy

from .harness import ControlPlane, count, database, django, report, seed, server_env, wait_for

NODES = 50
KILLS = count(10, 3)

VERIFY = """
from django.db.models import Count, Max
from controlplane.audit import services as audit
from controlplane.audit.models import AuditRecord
from controlplane.nodes.models import MetricSample, NodeEventRecord
def per_node(model):
    counts = {"n": Count("id"), "distinct": Count("seq", distinct=True), "top": Max("seq")}
    rows = model.objects.values("node_id").annotate(**counts)
    return {str(r["node_id"]): [r["n"], r["distinct"], r["top"]] for r in rows}
edge = AuditRecord.objects.filter(action="tool.call")
checked, problem = audit.verify_all()
print(json.dumps({
    "metrics": per_node(MetricSample),
    "events": per_node(NodeEventRecord),
    "audited": edge.count(),
    "audited_distinct": edge.values("object_id").distinct().count(),
    "pending": audit.pending_count(),
    "verified": checked,
    "problem": str(problem) if problem else None,
}))
"""


class SimulatedNode:
    """A node's real telemetry path (outbox on disk, the node API client, the delivery loop)
    with a producer that stands in for its agents: metrics, and events of which half are audited
    (tool calls)."""

    def __init__(self, node_id: str, credential: str, url: str, where, seed: int):
        self.node_id = node_id
        self.outbox = Outbox(where / f"{node_id}.sqlite3")
        self.client = NodeClient(url, credential, timeout=10)
        self.telemetry = Telemetry(self.outbox, self.client, CompliancePolicy)
        self.rng = random.Random(seed)
        self.tool_calls = 0

    def produce(self, until: threading.Event) -> None:
        i = 0
        while not until.is_set():
            self.telemetry.metrics({"cpu.percent": self.rng.random() * 100, "tokens_per_s": 20})
            kind = "tool.call" if i % 2 else "chat.answered"
            self.telemetry.event(kind, {"tool": "clock", "n": i})
            self.tool_calls += kind == "tool.call"
            i += 1
            time.sleep(self.rng.uniform(0.05, 0.25))

    def depth(self) -> int:
        return sum(s["depth"] for s in self.outbox.stats().values())

    def enqueued(self, stream: str) -> int:
        return self.outbox.stats()[stream]["next_seq"] - 1


def test_a_control_plane_killed_ten_times_under_load_loses_and_duplicates_nothing(tmp_path):
    db = database(tmp_path)
    env = server_env(db.url, tmp_path / "var")
    rng = random.Random(1414)
    nodes: list[SimulatedNode] = []
    plane = ControlPlane(env)
    try:
        credentials = seed(env, NODES)
        plane.start()
        nodes = [
            SimulatedNode(node_id, cred, plane.url, tmp_path, seed=i)
            for i, (node_id, cred) in enumerate(credentials.items())
        ]
        producing, delivering = threading.Event(), threading.Event()
        threads = [threading.Thread(target=n.produce, args=(producing,)) for n in nodes]
        threads += [
            threading.Thread(target=n.telemetry.loop, args=(delivering, 0.2)) for n in nodes
        ]
        for t in threads:
            t.start()
        restarted_db = False
        for k in range(KILLS):
            time.sleep(rng.uniform(0.3, 2.5))
            plane.kill()
            if k == KILLS // 2 and db.kind == "postgresql":
                db.restart()
                restarted_db = True
            plane.start()
        producing.set()
        wait_for(lambda: all(n.depth() == 0 for n in nodes), 180, "every outbox to drain")
        delivering.set()
        for t in threads:
            t.join(timeout=60)
        plane.stop()

        found = django(env, VERIFY)
        sent_metrics = {n.node_id: n.enqueued("metrics") for n in nodes}
        sent_events = {n.node_id: n.enqueued("events") for n in nodes}
        tool_calls = sum(n.tool_calls for n in nodes)
        lost = sum(sent_metrics.values()) + sum(sent_events.values())
        lost -= sum(v[1] for v in found["metrics"].values()) + sum(
            v[1] for v in found["events"].values()
        )
        duplicated = sum(v[0] - v[1] for v in found["metrics"].values())
        duplicated += sum(v[0] - v[1] for v in found["events"].values())
        duplicated += found["audited"] - found["audited_distinct"]
        report(
            "control plane SIGKILL under load",
            f"SIGKILL of gunicorn and maintain at random points, {NODES} nodes sending"
            + (", PostgreSQL crashed (immediate) and restarted once" if restarted_db else ""),
            KILLS,
            backend=db.kind,
            records=sum(sent_metrics.values()) + sum(sent_events.values()),
            lost=lost,
            duplicated=duplicated,
            audit_verified=found["verified"],
            audit_problem=found["problem"],
            audit_pending=found["pending"],
        )
        for n in nodes:
            assert found["metrics"][n.node_id] == [sent_metrics[n.node_id]] * 3
            assert found["events"][n.node_id] == [sent_events[n.node_id]] * 3
            assert n.outbox.stats()["metrics"]["dropped"] == 0
        assert found["audited"] == found["audited_distinct"] == tool_calls
        assert found["problem"] is None
        assert found["pending"] == 0
    finally:
        plane.kill()
        for n in nodes:
            n.client.close()
            n.outbox.close()
        db.close()
