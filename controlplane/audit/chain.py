"""The audit hash chain: canonical content, appending, and verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def content_of(rec) -> dict[str, Any]:
    """What the hash covers: no personal data (actors are ids, the source address is left out)."""
    if rec.actor_user_id is not None:
        actor = f"user:{rec.actor_user_id}"
    elif rec.actor_node_id is not None:
        actor = f"node:{rec.actor_node_id}"
    else:
        actor = "system"
    return {
        "seq": rec.seq, "ts": rec.ts.isoformat(), "actor": actor, "fleet": rec.fleet_id,
        "action": rec.action, "object_type": rec.object_type, "object_id": rec.object_id,
        "before": rec.before, "after": rec.after, "request_id": rec.request_id,
    }  # fmt: skip


@dataclass
class Problem:
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"record #{self.seq}" if self.seq is not None else "the chain"
        return f"{where}: {self.reason}"


def verify(records: Iterator, head=None) -> tuple[int, Problem | None]:
    """Walk records in sequence order; return (records checked, first problem or None).

    Detects an edited record (content or hash no longer links, or columns that disagree with the
    content), a deleted or inserted record (a gap or a break in the links), reordered records, and a
    tail cut below the chain head."""
    prev, expected, checked = GENESIS, 1, 0
    for rec in records:
        checked += 1
        if rec.seq != expected:
            kind = "missing (deleted)" if rec.seq > expected else "out of order or duplicated"
            return checked, Problem(
                expected, f"record {kind}: found #{rec.seq} where #{expected} belongs"
            )
        if rec.prev_hash != prev:
            return checked, Problem(
                rec.seq, "does not link to the record before it (inserted, reordered or edited)"
            )
        if link(rec.prev_hash, rec.content) != rec.hash:
            return checked, Problem(rec.seq, "content does not match its hash (edited)")
        try:
            stored = json.loads(rec.content)
        except ValueError:
            return checked, Problem(rec.seq, "content is not valid JSON (edited)")
        if stored != json.loads(canonical(content_of(rec))):
            return checked, Problem(rec.seq, "columns disagree with the hashed content (edited)")
        prev, expected = rec.hash, expected + 1
    if head is not None and head.seq > expected - 1:
        return checked, Problem(
            expected, f"chain ends at #{expected - 1} but its head says #{head.seq} (tail cut)"
        )
    if head is not None and head.seq == expected - 1 and head.hash != prev:
        return checked, Problem(
            head.seq, "the last record's hash is not the chain head's (edited or replaced)"
        )
    return checked, None


def canonical_value(value: Any) -> Any:
    """A JSON value as it will read back from the database (str() for what JSON lacks)."""
    return None if value is None else json.loads(canonical(value))
