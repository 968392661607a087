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

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from controlplane import signing
from controlplane.accounts.access import is_global_admin
from controlplane.errors import ServiceError

from . import chain, queries
from .models import AuditCheckpoint, AuditExport
from .services import record, user_ref

FIELDS = [
    "seq",
    "ts",
    "actor",
    "fleet",
    "action",
    "object_type",
    "object_id",
    "request_id",
    "prev_hash",
    "hash",
    "content",
]
COLUMNS = ["fleet_id" if f == "fleet" else f for f in FIELDS]  # what each field is read from
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
CHUNK = 5000


@transaction.atomic
def do_export(
    *,
    actor,
    fmt: str,
    fleet: str | None = None,
    who: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    via: str = "api",
    request=None,
) -> tuple[AuditExport, Iterator[bytes]]:
    """Start an export of the records `actor` may read (None: the system, e.g. `manage.py audit
    export`, reads all): its row and audit record are written now, in one transaction; the body is
    streamed by the caller, and the signed manifest is stored on the row once it is all out.
    The export is `complete` (the whole chain) only with no filter and by someone who sees it all.
    """
    if fmt not in FORMATS:
        raise ServiceError(f"unknown format '{fmt}'; allowed: {sorted(FORMATS)}")
    upto = queries.head_seq()
    selected, fleet_id = queries.records(
        actor, fleet=fleet, actor=who, action=action, since=since, until=until, upto_seq=upto
    )
    filters = {
        "fleet": fleet,
        "actor": who,
        "action": action,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    sees_all = actor is None or is_global_admin(actor)
    complete = not (fleet or who or action or since or until) and sees_all
    row = AuditExport.objects.create(
        actor=user_ref(actor) if actor else "system", fmt=fmt, filters=filters
    )
    record(
        "audit.export",
        row,
        user=actor,
        fleet=fleet_id,
        after={"format": fmt, "filters": filters, "upto_seq": upto, "via": via},
        request=request,
    )

    def save(manifest: dict[str, Any]) -> None:
        AuditExport.objects.filter(pk=row.pk).update(manifest=manifest)

    body = stream(selected, fmt, complete=complete, filters=filters, upto_seq=upto, on_done=save)
    return row, body


def _rows(qs: QuerySet) -> Iterator[tuple]:
    return qs.values_list(*COLUMNS).iterator(chunk_size=CHUNK)


def stream(
    qs: QuerySet,
    fmt: str,
    *,
    complete: bool,
    filters: dict[str, Any],
    upto_seq: int,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[bytes]:
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
        format=fmt,
        file_sha256=sha.hexdigest(),
        records=count,
        first_seq=first,
        last_seq=last,
        complete=complete,
        filters=filters,
        upto_seq=upto_seq,
    )
    if on_done is not None:
        on_done(manifest)


def build_manifest(*, first_seq, last_seq, **fields: Any) -> dict[str, Any]:
    cps = []
    if first_seq is not None:
        cps = [
            {
                "seq": c.seq,
                "hash": c.hash,
                "ts": c.ts.isoformat(),
                "key_id": c.key_id,
                "signature": c.signature,
            }
            for c in AuditCheckpoint.objects.filter(seq__gte=first_seq, seq__lte=last_seq)
        ]
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
