"""The on-disk outbox: metrics and audit events survive restarts and control-plane outages.

SQLite in WAL mode. Each stream ("metrics", "events") has its own sequence numbers, assigned in the
same transaction that stores the item, so a crash can never hand out a number twice. Items are sent
in sequence order and deleted only after the control plane acknowledged them (at-least-once; the
server's unique key on (node, seq) makes delivery exactly-once in effect).

Durability: `synchronous=NORMAL` by default. In WAL mode that is crash-safe for the process (a
SIGKILL loses nothing that `enqueue` returned from); a power cut can lose the last transactions
before the OS flushed them. `durable=True` (`synchronous=FULL`) closes that too, at a cost measured
in bench/agent.py.

Caps: at most `max_bytes` of payload and items at most `max_age_s` old. What a cap drops is counted
per stream and reported (as the `outbox.dropped` metric), never silent.

A full disk: `enqueue` raises `sqlite3.OperationalError` and stores nothing (the transaction rolls
back; the file stays consistent). Telemetry counts what it could not store and reports it with the
drops once space returns (telemetry.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STREAMS = ("metrics", "events")

SCHEMA = """
CREATE TABLE IF NOT EXISTS item (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counter (
    stream TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class Batch:
    stream: str
    items: list[dict[str, Any]]

    @property
    def last_seq(self) -> int:
        return self.items[-1]["seq"]


class Outbox:
    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 64 << 20,
        max_age_s: float = 7 * 86400,
        durable: bool = False,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.lock = threading.Lock()
        self.db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.db.executescript(SCHEMA)
        for stream in STREAMS:
            self.db.execute(
                "INSERT OR IGNORE INTO counter(stream, next_seq) VALUES (?, 1)", (stream,)
            )
        (self._bytes,) = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM counter").fetchone()
        self._next_age_check = 0.0

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def enqueue(self, stream: str, item: dict[str, Any]) -> int:
        """Store one item durably and return its sequence number."""
        return self.enqueue_many(stream, [item])[-1]

    def enqueue_many(self, stream: str, items: list[dict[str, Any]]) -> list[int]:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        now = time.time()
        ts = datetime.fromtimestamp(now, UTC).isoformat()
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                (seq,) = self.db.execute(
                    "SELECT next_seq FROM counter WHERE stream = ?", (stream,)
                ).fetchone()
                rows, total = [], 0
                for i, item in enumerate(items):
                    body = json.dumps({"ts": ts, **item, "seq": seq + i}, separators=(",", ":"))
                    total += len(body)
                    rows.append((stream, seq + i, now, body))
                self.db.executemany(
                    "INSERT INTO item(stream, seq, created, body) VALUES (?, ?, ?, ?)", rows
                )
                self.db.execute(
                    "UPDATE counter SET next_seq = ?, bytes = bytes + ? WHERE stream = ?",
                    (seq + len(items), total, stream),
                )
                self._bytes += total
                self._enforce_caps(now)
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    self.db.execute("ROLLBACK")
                (self._bytes,) = self.db.execute(
                    "SELECT coalesce(sum(bytes), 0) FROM counter"
                ).fetchone()
                raise
        return list(range(seq, seq + len(items)))

    def _enforce_caps(self, now: float) -> None:
        """Drop the oldest items past the age or byte cap, counting what was dropped. The byte total
        is kept in memory and the age sweep runs at most once a second, so enqueue stays cheap."""
        if now < self._next_age_check and self._bytes <= self.max_bytes:
            return
        self._next_age_check = now + 1.0
        for stream in STREAMS:
            cur = self.db.execute(
                "DELETE FROM item WHERE stream = ? AND created < ? RETURNING length(body)",
                (stream, now - self.max_age_s),
            )
            self._count_dropped(stream, cur.fetchall())
        (total,) = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM counter").fetchone()
        self._bytes = total
        if total > self.max_bytes:
            # Free 1/64 of the cap beyond the excess, so that a full outbox does not sweep on every
            # enqueue; the oldest rows are read only as far as needed (the cursor stops early).
            excess = total - self.max_bytes + self.max_bytes // 64
            for stream in STREAMS:  # metrics go first: events are the audit trail
                rows = self.db.execute(
                    "SELECT seq, length(body) FROM item WHERE stream = ? ORDER BY seq", (stream,)
                )
                cut, freed = 0, 0
                for seq, size in rows:
                    if freed >= excess:
                        break
                    cut, freed = seq, freed + size
                rows.close()
                if cut:
                    cur = self.db.execute(
                        "DELETE FROM item WHERE stream = ? AND seq <= ? RETURNING length(body)",
                        (stream, cut),
                    )
                    self._count_dropped(stream, cur.fetchall())
                    excess -= freed
                if excess <= 0:
                    break

    def _count_dropped(self, stream: str, sizes: list[tuple[int]]) -> None:
        if sizes:
            self._bytes -= sum(s for (s,) in sizes)
            self.db.execute(
                "UPDATE counter SET dropped = dropped + ?, bytes = bytes - ? WHERE stream = ?",
                (len(sizes), sum(s for (s,) in sizes), stream),
            )

    def peek(self, stream: str, limit: int = 200) -> Batch | None:
        """The oldest items of a stream, in sequence order (not removed)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT body FROM item WHERE stream = ? ORDER BY seq LIMIT ?", (stream, limit)
            ).fetchall()
        return Batch(stream, [json.loads(b) for (b,) in rows]) if rows else None

    def ack(self, stream: str, acked_seq: int) -> int:
        """Forget every item at or below the acknowledged sequence number."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "DELETE FROM item WHERE stream = ? AND seq <= ? RETURNING length(body)",
                (stream, acked_seq),
            )
            try:
                sizes = cur.fetchall()
                freed = sum(s for (s,) in sizes)
                self.db.execute(
                    "UPDATE counter SET bytes = bytes - ? WHERE stream = ?", (freed, stream)
                )
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self._bytes -= freed
        return len(sizes)

    def stats(self) -> dict[str, dict[str, int]]:
        with self.lock:
            out = {}
            for stream, next_seq, dropped, size in self.db.execute(
                "SELECT stream, next_seq, dropped, bytes FROM counter"
            ):
                (depth,) = self.db.execute(
                    "SELECT count(*) FROM item WHERE stream = ?", (stream,)
                ).fetchone()
                out[stream] = {
                    "depth": depth,
                    "next_seq": next_seq,
                    "dropped": dropped,
                    "bytes": size,
                }
            return out
