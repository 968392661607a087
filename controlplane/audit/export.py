"""Audit export for compliance officers: CSV or JSON Lines, streamed in constant memory, with a
manifest signed by the control plane (file sha256, record range, the checkpoints inside it).

`verify_export.py` (stand-alone: Python and `cryptography`, no Django) checks an export offline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from controlplane import signing

from . import chain
from .models import AuditCheckpoint, AuditHead

FIELDS = [
    "seq", "ts", "actor", "fleet", "action", "object_type", "object_id", "request_id",
    "prev_hash", "hash", "content",
]  # fmt: skip
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
CHUNK = 5000


def head_seq() -> int:
    head = AuditHead.objects.filter(pk=1).first()
    return head.seq if head else 0


def select(
    queryset: QuerySet,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    fleet_id: int | None = None,
    actor: str = "",
    action: str = "",
    upto_seq: int,
) -> QuerySet:
    qs = queryset.filter(seq__lte=upto_seq)
    if since:
        qs = qs.filter(ts__gte=since)
    if until:
        qs = qs.filter(ts__lt=until)
    if fleet_id is not None:
        qs = qs.filter(fleet_id=fleet_id)
    if actor:
        qs = qs.filter(actor=actor)
    if action:
        qs = (
            qs.filter(action__startswith=action)
            if action.endswith(".")
            else qs.filter(action=action)
        )
    return qs.order_by("seq")


def _rows(qs: QuerySet) -> Iterator[tuple]:
    return qs.values_list(
        "seq", "ts", "actor", "fleet_id", "action", "object_type", "object_id", "request_id",
        "prev_hash", "hash", "content",
    ).iterator(chunk_size=CHUNK)  # fmt: skip


def stream(
    qs: QuerySet, fmt: str, *, complete: bool, filters: dict[str, Any], upto_seq: int,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[bytes]:  # fmt: skip
    """Yield the export in chunks; when it is all out, sign the manifest and hand it to on_done."""
    sha = hashlib.sha256()
    count, first, last = 0, None, None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(FIELDS)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for row in _rows(qs):
        seq, ts = row[0], row[1].isoformat()
        values = (seq, ts, *row[2:])
        if writer is not None:
            writer.writerow(["" if v is None else v for v in values])
        else:
            buf.write(dumps(dict(zip(FIELDS, values, strict=True))))
            buf.write("\n")
        count += 1
        first = seq if first is None else first
        last = seq
        if count % 2000 == 0:
            data = buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
            sha.update(data)
            yield data
    data = buf.getvalue().encode()
    sha.update(data)
    yield data
    manifest = build_manifest(
        format=fmt, file_sha256=sha.hexdigest(), records=count, first_seq=first, last_seq=last,
        complete=complete, filters=filters, upto_seq=upto_seq,
    )  # fmt: skip
    if on_done is not None:
        on_done(manifest)


def build_manifest(*, first_seq, last_seq, **fields: Any) -> dict[str, Any]:
    cps = []
    if first_seq is not None:
        cps = [
            {"seq": c.seq, "hash": c.hash, "ts": c.ts.isoformat(), "key_id": c.key_id,
             "signature": c.signature}
            for c in AuditCheckpoint.objects.filter(seq__gte=first_seq, seq__lte=last_seq)
        ]  # fmt: skip
    body = {
        "version": 1,
        "created_at": timezone.now().isoformat(),
        "first_seq": first_seq,
        "last_seq": last_seq,
        "fields": FIELDS,
        "checkpoints": cps,
        "key_id": signing.key_id(),
        "public_key": signing.public_pem(),
        **fields,
    }
    return {"manifest": body, "signature": signing.sign(chain.canonical(body).encode())}
