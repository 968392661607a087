"""The on-disk outbox: durable, capped with counted drops, and safe under SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from agents.outbox import Outbox


def test_items_survive_reopening_and_leave_only_when_acknowledged(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    assert ob.enqueue_many("events", [{"kind": "a"}, {"kind": "b"}, {"kind": "c"}]) == [1, 2, 3]
    ob.close()
    ob = Outbox(tmp_path / "o.db")
    assert [i["seq"] for i in ob.peek("events").items] == [1, 2, 3]
    assert ob.ack("events", 2) == 2
    assert [i["kind"] for i in ob.peek("events").items] == ["c"]
    assert ob.enqueue("events", {"kind": "d"}) == 4  # numbers are never reused
    assert ob.stats()["events"]["depth"] == 2


def test_streams_have_their_own_sequence_numbers(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    assert ob.enqueue("metrics", {"name": "x", "value": 1.0}) == 1
    assert ob.enqueue("events", {"kind": "x"}) == 1


def test_the_byte_cap_drops_the_oldest_metrics_first_and_counts_them(tmp_path):
    ob = Outbox(tmp_path / "o.db", max_bytes=3000)
    ob.enqueue("events", {"kind": "tool.denied", "data": {"tool": "http_get"}})
    for i in range(100):
        ob.enqueue("metrics", {"name": "latency_ms", "value": float(i)})
    stats = ob.stats()
    assert stats["metrics"]["dropped"] > 0
    assert stats["metrics"]["dropped"] + stats["metrics"]["depth"] == 100
    assert stats["events"] == {**stats["events"], "depth": 1, "dropped": 0}
    assert ob.peek("metrics").items[-1]["value"] == 99.0  # the newest are kept


def test_the_age_cap_drops_old_items_and_counts_them(tmp_path):
    ob = Outbox(tmp_path / "o.db", max_age_s=0.2)
    ob.enqueue("events", {"kind": "old"})
    time.sleep(1.1)
    ob.enqueue("events", {"kind": "new"})
    assert [i["kind"] for i in ob.peek("events").items] == ["new"]
    assert ob.stats()["events"]["dropped"] == 1


WRITER = """
import sys
from agents.outbox import Outbox
ob = Outbox(sys.argv[1])
i = 0
while True:
    seq = ob.enqueue("events", {"kind": "tick", "data": {"i": i}})
    print(seq, flush=True)
    i += 1
"""


def test_an_item_enqueue_returned_survives_sigkill_and_numbers_stay_gapless(tmp_path):
    path = tmp_path / "o.db"
    accepted: list[int] = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(300):
            accepted.append(int(proc.stdout.readline()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ob = Outbox(path)
    stored = [i["seq"] for i in ob.peek("events", 100_000).items]
    assert set(accepted) <= set(stored)
    assert stored == list(range(1, len(stored) + 1))  # no gaps, no repeats
