"""Every node restarting at once: a polling stampede against the real server (gunicorn sync
workers with the project's config). The server sheds what its listen queue cannot hold with 429 and
Retry-After, the nodes come back spread over [R, 2R] (agents.client.retry_wait, the agent's own
rule), the backlog clears and no request fails with a 5xx or a refused connection."""

from __future__ import annotations

import threading
import time
from collections import Counter

from agents.client import ControlPlaneError, NodeClient, retry_wait

from .harness import ControlPlane, count, database, report, seed, server_env

NODES = count(1000, 400)


def test_every_node_restarting_at_once_is_shed_with_retry_after_and_then_served(tmp_path):
    db = database(tmp_path)
    env = server_env(
        db.url,
        tmp_path / "var",
        EDGEFLEET_MAX_QUEUED="16",
        EDGEFLEET_OVERLOAD_RETRY_AFTER_S="2",
    )
    plane = ControlPlane(env, workers=2)
    try:
        credentials = list(seed(env, NODES).values())
        plane.start()
        start = threading.Barrier(NODES + 1)
        outcomes: Counter[str] = Counter()
        attempts: list[int] = []
        served_at: list[float] = []
        lock = threading.Lock()

        def node(credential: str) -> None:
            client = NodeClient(plane.url, credential, timeout=60)
            start.wait()
            attempt = 0
            try:
                while True:
                    attempt += 1
                    try:
                        client.poll(None)
                    except ControlPlaneError as exc:
                        kind = f"{exc.status} with Retry-After" if exc.retry_after else exc.status
                        with lock:
                            outcomes[str(kind or "no answer")] += 1
                        time.sleep(retry_wait(exc, attempt))
                        continue
                    with lock:
                        outcomes["200"] += 1
                        attempts.append(attempt)
                        served_at.append(time.monotonic())
                    return
            finally:
                client.close()

        threads = [threading.Thread(target=node, args=(c,)) for c in credentials]
        for t in threads:
            t.start()
        start.wait()
        began = time.monotonic()
        for t in threads:
            t.join(timeout=300)
        cleared_s = max(served_at) - began
        report(
            "polling stampede",
            f"{NODES} nodes polling at the same instant (gunicorn sync, 2 workers, "
            "EDGEFLEET_MAX_QUEUED=16, Retry-After 2 s)",
            1,
            backend=db.kind,
            outcomes=dict(outcomes),
            served=len(attempts),
            most_attempts=max(attempts),
            cleared_s=round(cleared_s, 1),
            server_errors=sum(n for k, n in outcomes.items() if k.startswith("5")),
        )
        assert len(attempts) == NODES  # everyone served in the end
        assert set(outcomes) <= {"200", "429 with Retry-After"}  # no 5xx, nothing refused
        assert outcomes["429 with Retry-After"] > 0  # the server did shed
    finally:
        plane.kill()
        db.close()


def test_nodes_told_to_retry_after_r_seconds_come_back_spread_over_r_to_2r():
    shed = ControlPlaneError("429 overloaded", status=429, retry_after=15)
    waits = [retry_wait(shed, attempt=1) for _ in range(2000)]
    assert min(waits) >= 15 and max(waits) <= 30
    assert len({round(w) for w in waits}) == 16  # spread across the whole window
    unreachable = ControlPlaneError("cannot reach the control plane")
    assert all(0 <= retry_wait(unreachable, attempt=10) <= 60 for _ in range(100))
