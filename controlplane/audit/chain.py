"""The audit hash chain: canonical content, links, checkpoints and verification (no Django here)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def content_of(rec) -> dict[str, Any]:
    """What the hash covers: no personal data (people are keyed pseudonyms; no source address)."""
    return {
        "seq": rec.seq,
        "ts": rec.ts.isoformat(),
        "actor": rec.actor,
        "fleet": rec.fleet_id,
        "action": rec.action,
        "object_type": rec.object_type,
        "object_id": rec.object_id,
        "before": rec.before,
        "after": rec.after,
        "request_id": rec.request_id,
    }


def checkpoint_payload(seq: int, hash_: str, ts: str, key_id: str) -> bytes:
    """The exact bytes a checkpoint signs."""
    return canonical({"seq": seq, "hash": hash_, "ts": ts, "key_id": key_id}).encode()


@dataclass
class Problem:
    seq: int | None
    reason: str
    where: str = ""  # what the problem is in, when it is not a record (an anchor file's line)

    def __str__(self) -> str:
        where = self.where or (f"record #{self.seq}" if self.seq is not None else "the chain")
        return f"{where}: {self.reason}"


@dataclass
class Checkpoint:
    seq: int
    hash: str
    ts: str
    key_id: str
    signature: str


def check_checkpoints(
    checkpoints: Iterable[Checkpoint],
    signature_ok: Callable[[bytes, str], bool],
    *,
    every: int,
    head_seq: int,
    base_seq: int = 0,
    head_checkpoint: int = 0,
) -> tuple[dict[int, Checkpoint], Problem | None]:
    """Check each checkpoint's signature, that none is missing (one at least every `every`), and
    that the one the chain head names as its newest (`head_checkpoint`) exists."""
    good: dict[int, Checkpoint] = {}
    last = base_seq
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if not signature_ok(checkpoint_payload(cp.seq, cp.hash, cp.ts, cp.key_id), cp.signature):
            return good, Problem(cp.seq, "its signed checkpoint has an invalid signature (forged)")
        if cp.seq > base_seq and cp.seq - last > every:
            return good, Problem(
                last + 1,
                f"no signed checkpoint between #{last} and #{cp.seq} (checkpoints deleted)",
            )
        good[cp.seq] = cp
        last = max(last, cp.seq)
    if head_seq - last > every:
        return good, Problem(
            last + 1, f"no signed checkpoint after #{last} for {head_seq - last} records"
        )
    if head_checkpoint and head_checkpoint not in good:
        return good, Problem(
            head_checkpoint,
            f"the chain head names signed checkpoint #{head_checkpoint} but it is not in the "
            "database (checkpoints deleted)",
        )
    return good, None


ANCHOR_FIELDS = {"seq": int, "hash": str, "ts": str, "key_id": str, "signature": str}


def anchor_line(cp: Checkpoint) -> str:
    """A checkpoint as one line of the anchor file (no newline): exactly what it signs, and the
    signature."""
    return canonical({f: getattr(cp, f) for f in ANCHOR_FIELDS})


def parse_anchor_line(text: str) -> Checkpoint | None:
    """A line of the anchor file as a checkpoint; None if it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != set(ANCHOR_FIELDS):
        return None
    if any(type(data[f]) is not kind for f, kind in ANCHOR_FIELDS.items()):
        return None
    return Checkpoint(**data)


def check_anchors(
    anchored: Sequence[tuple[int, Checkpoint]],
    stored: Mapping[int, Checkpoint],
    signature_ok: Callable[[bytes, str], bool],
    *,
    marked: Collection[int],
    last_seq: int,
    source: str,
    complete: bool = True,
) -> tuple[Problem | None, list[int]]:
    """Check the database's checkpoints against the ones anchored outside it.

    `anchored`: (line number, checkpoint) read from the anchor `source`; `stored`: the database's
    checkpoints by seq; `marked`: the seqs the database says were anchored; `last_seq`: the newest
    chained record in the database; `complete`: `source` is the anchor itself, not a copy taken
    earlier (a copy need not hold the checkpoints signed after its newest line). Returns the first
    problem, and the stored checkpoints that `source` lacks without contradicting the database
    (not anchored yet: the anchor was unavailable, `maintain` retries them; or newer than a copy).
    """
    by_seq: dict[int, Checkpoint] = {}
    for number, cp in anchored:
        where = f"anchor file {source} line {number}"
        payload = checkpoint_payload(cp.seq, cp.hash, cp.ts, cp.key_id)
        if not signature_ok(payload, cp.signature):
            return Problem(
                cp.seq,
                f"checkpoint #{cp.seq} does not verify with the trusted public key (the line "
                "was edited, or the signing key replaced)",
                where,
            ), []
        if by_seq.setdefault(cp.seq, cp) != cp:
            return Problem(cp.seq, f"a second, different checkpoint #{cp.seq} (edited)", where), []
    if by_seq and max(by_seq) > last_seq:
        return Problem(
            last_seq + 1,
            f"chain ends at #{last_seq} but signed checkpoint #{max(by_seq)} is anchored in "
            f"{source} (tail cut)",
        ), []
    for seq in sorted(by_seq):
        if seq not in stored:
            return Problem(
                seq,
                f"its signed checkpoint is anchored in {source} but missing from the database "
                "(checkpoints deleted)",
            ), []
        if stored[seq] != by_seq[seq]:
            return Problem(
                seq, f"its signed checkpoint differs from the one anchored in {source} (replaced)"
            ), []
    newest = max(by_seq, default=0)
    for seq in sorted(stored):
        if seq not in by_seq and seq in marked and (complete or seq < newest):
            return Problem(
                seq,
                f"its signed checkpoint was anchored but is not in {source} (the anchor file "
                "was truncated or edited, or is not this trail's)",
            ), []
    return None, [seq for seq in sorted(stored) if seq not in by_seq]


def columns_agree(rec) -> bool:
    """The queryable columns are exactly the projection of the hashed content."""
    try:
        stored = json.loads(rec.content)
    except ValueError:
        return False
    return stored == json.loads(canonical(content_of(rec)))


def verify(
    rows: Iterable[tuple[int, str, str, str, bool]],
    head=None,
    checkpoints: Mapping[int, Checkpoint] | None = None,
    *,
    start: tuple[int, str] | None = None,
    end: int | None = None,
) -> tuple[int, Problem | None]:
    """Walk (seq, prev_hash, hash, content, columns_agree) rows in sequence order; return (rows
    checked, first problem or None).

    Detects an edited record (content or hash no longer links, or columns that disagree with the
    content), a deleted or inserted record (a gap or a break in the links), reordered records, a
    tail cut below the chain head, and (with signed checkpoints) a chain recomputed from an edited
    record onwards. The walk starts at the head's base (where retention cut the chain).

    A segment of the chain can be walked on its own: `start` is the (seq, hash) of the signed
    checkpoint it follows, `end` the last seq it must reach (None: it runs to the chain head).
    Segments anchored on checkpoints verify independently, so they can run in parallel."""
    checkpoints = checkpoints or {}
    if start is not None:
        base_seq, prev = start
    else:
        base_seq = head.base_seq if head is not None else 0
        prev = head.base_hash if head is not None and base_seq else GENESIS
        if base_seq and (base_seq not in checkpoints or checkpoints[base_seq].hash != prev):
            return 0, Problem(base_seq, "the chain's retention base is not a signed checkpoint")
    expected, checked, last_good_cp = base_seq + 1, 0, base_seq
    sha256 = hashlib.sha256
    for seq, prev_hash, hash_, content, agree in rows:
        checked += 1
        if seq != expected:
            kind = "missing (deleted)" if seq > expected else "out of order or duplicated"
            return checked, Problem(
                expected, f"record {kind}: found #{seq} where #{expected} belongs"
            )
        if prev_hash != prev:
            return checked, Problem(
                seq, "does not link to the record before it (inserted, reordered or edited)"
            )
        if sha256((prev_hash + content).encode()).hexdigest() != hash_:
            return checked, Problem(seq, "content does not match its hash (edited)")
        if not agree:
            return checked, Problem(seq, "columns disagree with the hashed content (edited)")
        cp = checkpoints.get(seq)
        if cp is not None:
            if cp.hash != hash_:
                return checked, Problem(
                    last_good_cp + 1,
                    f"the chain was rewritten and its hashes recomputed somewhere in "
                    f"#{last_good_cp + 1}..#{seq}: record #{seq} differs from its signed "
                    "checkpoint",
                )
            last_good_cp = seq
        prev, expected = hash_, expected + 1
    if end is not None:
        if expected - 1 != end:
            return checked, Problem(
                expected, f"record missing (deleted): #{expected}..#{end} are not there"
            )
        return checked, None
    if head is not None and head.seq > expected - 1:
        return checked, Problem(
            expected, f"chain ends at #{expected - 1} but its head says #{head.seq} (tail cut)"
        )
    beyond = [s for s in checkpoints if s > expected - 1]
    if beyond:
        return checked, Problem(
            expected,
            f"chain ends at #{expected - 1} but a signed checkpoint exists for "
            f"#{max(beyond)} (tail cut)",
        )
    if head is not None and head.seq == expected - 1 and head.hash != prev and head.seq:
        return checked, Problem(
            head.seq, "the last record's hash is not the chain head's (edited or replaced)"
        )
    return checked, None


def segments(
    base_seq: int, head_seq: int, anchors: Iterable[int], parts: int
) -> list[tuple[int, int]]:
    """Split #base_seq+1..#head_seq into at most `parts` (first, last) ranges that each start right
    after a signed checkpoint (an anchor), as even as the checkpoints allow."""
    points = sorted(a for a in anchors if base_seq < a < head_seq)
    cuts: list[int] = []
    for i in range(1, parts):
        target = base_seq + (head_seq - base_seq) * i // parts
        near = min(points, key=lambda a: abs(a - target), default=None)
        if near is not None and near not in cuts and (not cuts or near > cuts[-1]):
            cuts.append(near)
    bounds = [base_seq, *cuts, head_seq]
    return [(lo + 1, hi) for lo, hi in zip(bounds, bounds[1:], strict=False) if hi > lo]


def canonical_value(value: Any) -> Any:
    """A JSON value as it will read back from the database (str() for what JSON lacks)."""
    return None if value is None else json.loads(canonical(value))
