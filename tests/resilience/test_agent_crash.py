"""An agent SIGKILLed while it enqueues, 100 times over one outbox: every event whose enqueue
returned is still there (or was acknowledged by the control plane before), sequence numbers are
never reused, and the database passes SQLite's integrity check."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from agents.outbox import Outbox

from .harness import ROOT, report

KILLS = 100  # cheap enough (about 10 s) to run in full everywhere

# Enqueues events as fast as it can (one at a time and in batches), "acknowledging" the oldest now
# and then as the delivery loop does after the control plane's answer. It prints each sequence
# number after enqueue returned, and each acknowledgement before it starts.
ENQUEUE_FOREVER = """
import sys
from agents.outbox import Outbox
ob = Outbox(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    i += 1
    if i % 7:
        seqs = [ob.enqueue("events", {"kind": "tool.call", "data": {"i": i}})]
    else:
        batch = [{"kind": "tool.call", "data": {"i": i, "j": j}} for j in range(5)]
        seqs = ob.enqueue_many("events", batch)
    print("q", *seqs, flush=True)
    if i % 50 == 0:
        print("A", seqs[-1] - 100, flush=True)
        ob.ack("events", seqs[-1] - 100)
"""


def test_an_agent_killed_during_enqueue_a_hundred_times_loses_no_acknowledged_event(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    rng = random.Random(14)
    returned: set[int] = set()
    acked_up_to = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", ENQUEUE_FOREVER, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(proc.stdout,))
        reader.start()
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join()
        for line in lines:
            if not line.endswith("\n"):
                continue  # cut mid-print: its enqueue returned, but we cannot count on the number
            tag, *numbers = line.split()
            if tag == "q":
                returned.update(int(n) for n in numbers)
            elif tag == "A":
                acked_up_to = max(acked_up_to, int(numbers[0]))

    ob = Outbox(path)
    kept = {item["seq"] for item in ob.peek("events", limit=10**9).items}
    next_seq = ob.stats()["events"]["next_seq"]
    ob.close()
    lost = {s for s in returned if s > acked_up_to} - kept
    with sqlite3.connect(path) as db:
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
    report(
        "agent SIGKILL during enqueue",
        "SIGKILL of an agent process enqueueing events (single and batched) and acknowledging",
        KILLS,
        acknowledged=len(returned),
        lost=len(lost),
        integrity=integrity,
    )
    assert returned, "the agent never got to enqueue"
    assert not lost
    assert next_seq > max(returned)  # numbers are never handed out twice
    assert integrity == "ok"
