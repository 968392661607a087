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
from controlplane.accounts.access import VIEW_AUDIT, fleet_ids, is_global_admin
from controlplane.accounts.services import ENDED, credentials_of, current_user
from controlplane.audit import chain
from controlplane.audit.models import AuditCheckpoint, AuditExport
from controlplane.audit.services import record, user_ref
from controlplane.compliance import queries
from controlplane.errors import ServiceError

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
YIELD_ROWS = 2000  # rows per chunk sent; the reader's access is checked again before each one


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

    body = stream(
        selected,
        fmt,
        complete=complete,
        filters=filters,
        upto_seq=upto,
        on_done=save,
        still_allowed=None if actor is None else _reader_check(actor, fleet_id, request),
    )
    return row, body


def _reader_check(actor, fleet_id: int | None, request) -> Callable[[], str]:
    """A check that the export's reader still may read what it selected: "" while they may, else
    why not. Their session or personal token must still be valid and their account active, and
    they must still audit the fleet they chose (or, with no fleet chosen, every fleet the export
    started with; a global admin must still be one)."""
    credentials = credentials_of(request, actor)
    scope = fleet_ids(actor, VIEW_AUDIT) if fleet_id is None else {fleet_id}

    def check() -> str:
        user, ended = current_user(**credentials)
        if user is None:
            return ENDED[ended]
        now = fleet_ids(user, VIEW_AUDIT)
        if now is None or (scope is not None and scope <= now):
            return ""
        return "You no longer may read the audit log of a fleet in this export."

    return check


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
    still_allowed: Callable[[], str] | None = None,
) -> Iterator[bytes]:
    """Yield the export in chunks; when it is all out, sign the manifest and hand it to on_done.

    Before each chunk `still_allowed()` is asked again (the stream may outlive the reader's access:
    a removed role, a logout, a revoked token): when it answers a reason, the export ends there
    with a last line that says so (JSON Lines: `{"error": {"code": "access_revoked", "detail":
    ...}}`; CSV: a row `#error,access_revoked,<detail>`), no manifest is signed and the chunk
    already written but not yet sent is dropped."""

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
        if count % YIELD_ROWS == 0:
            refused = still_allowed() if still_allowed is not None else ""
            if refused:
                yield _stopped(fmt, refused)
                return
            data = buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
            sha.update(data)
            yield data
    refused = still_allowed() if still_allowed is not None else ""
    if refused:
        yield _stopped(fmt, refused)
        return
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


def _stopped(fmt: str, detail: str) -> bytes:
    """The last line of an export stopped because its reader lost access."""
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(["#error", "access_revoked", detail])
        return out.getvalue().encode()
    line = {"error": {"code": "access_revoked", "detail": detail}}
    return (json.dumps(line, ensure_ascii=False) + "\n").encode()


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
