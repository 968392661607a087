"""Signed checkpoints anchored outside the database, so the chain's tail cannot be cut unseen.

Every signed checkpoint is appended, as one JSON line (seq, hash, ts, key id, signature), to the
anchor file (EDGEFLEET_AUDIT_ANCHOR_FILE: opened O_APPEND, fsync'd; in production on storage the
database's owner cannot rewrite) and, where EDGEFLEET_AUDIT_ANCHOR_URL is set, POSTed there as
JSON. `audit verify` reads the file back and checks the database against it (chain.check_anchors).

Anchoring never makes an audit write fail: the file is written after the commit that signed the
checkpoint, the URL by `manage.py maintain`, and whatever could not be anchored then (the disk or
the receiver briefly unavailable) is retried by every `maintain` run. `anchored_at` / `sent_at` on
the checkpoint say what was done; verify reports checkpoints not anchored yet.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from controlplane.audit import chain
from controlplane.audit.models import AuditCheckpoint

log = logging.getLogger("edgefleet")

POST_TIMEOUT_S = 5.0


def anchor_file() -> Path:
    return Path(settings.EDGEFLEET["AUDIT_ANCHOR_FILE"])


def anchor_url() -> str:
    return settings.EDGEFLEET["AUDIT_ANCHOR_URL"]


def as_checkpoint(cp: AuditCheckpoint) -> chain.Checkpoint:
    return chain.Checkpoint(cp.seq, cp.hash, cp.ts.isoformat(), cp.key_id, cp.signature)


def write(path: Path, checkpoints: Sequence[chain.Checkpoint]) -> None:
    """Append the checkpoints' lines in one write (O_APPEND: never over what is there) and fsync.
    After an interrupted write (a full disk, a crash) the file ends mid-line: the new lines then
    start on a line of their own, so the fragment never swallows a checkpoint."""
    data = "".join(chain.anchor_line(cp) + "\n" for cp in checkpoints).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def append(checkpoints: Sequence[AuditCheckpoint]) -> bool:
    """Append stored checkpoints to the anchor file and mark them anchored. False (logged, one
    line) if the file cannot be written now: `maintain` retries."""
    if not checkpoints:
        return True
    path = anchor_file()
    seqs = [cp.seq for cp in checkpoints]
    try:
        write(path, [as_checkpoint(cp) for cp in checkpoints])
    except OSError as exc:
        log.warning(
            "audit anchor: cannot append checkpoint(s) #%s to %s (%s); maintain retries",
            ", #".join(map(str, seqs)),
            path,
            exc,
        )
        return False
    AuditCheckpoint.objects.filter(seq__in=seqs, anchored_at__isnull=True).update(
        anchored_at=timezone.now()
    )
    return True


def append_on_commit(checkpoints: Sequence[AuditCheckpoint]) -> None:
    """Run after the commit that stored the checkpoints: nothing here may fail that write."""
    try:
        append(checkpoints)
    except DatabaseError as exc:  # the mark: the checkpoint stays unmarked, maintain retries
        log.warning("audit anchor: cannot mark checkpoints anchored (%s)", exc)


def send(url: str, cp: chain.Checkpoint) -> str:
    """POST one checkpoint to the anchor URL; '' on a 2xx answer, else why not."""
    request = urllib.request.Request(  # noqa: S310 - http(s) only: settings refuse the rest
        url,
        data=chain.anchor_line(cp).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as answer:  # noqa: S310
            answer.read()
            return ""
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def anchor_pending() -> dict[str, int]:
    """Anchor every checkpoint not anchored yet, oldest first: to the file, then to the URL (in
    order, stopping at the first refusal). Run by `manage.py maintain`."""
    pending = list(AuditCheckpoint.objects.filter(anchored_at__isnull=True).order_by("seq"))
    anchored = len(pending) if append(pending) else 0
    sent = 0
    url = anchor_url()
    if url:
        for cp in AuditCheckpoint.objects.filter(sent_at__isnull=True).order_by("seq"):
            why = send(url, as_checkpoint(cp))
            if why:
                log.warning(
                    "audit anchor: %s refused checkpoint #%s (%s); maintain retries",
                    url,
                    cp.seq,
                    why,
                )
                break
            AuditCheckpoint.objects.filter(pk=cp.pk).update(sent_at=timezone.now())
            sent += 1
    return {"anchored": anchored, "sent": sent}


@dataclass
class Anchors:
    """What an anchor file holds: (line number, checkpoint) in file order."""

    source: str
    exists: bool
    checkpoints: list[tuple[int, chain.Checkpoint]] = field(default_factory=list)
    problem: chain.Problem | None = None
    incomplete: int = 0  # lines an interrupted write left (their checkpoints were written again)


# Every line starts so (canonical JSON: keys sorted); a fragment of one is an interrupted write.
_LINE_START = '{"hash":"'


def read(path: Path) -> Anchors:
    """Read an anchor file; a line that is not a signed checkpoint is a problem (the file was
    edited), except the fragment an interrupted write leaves: it is counted, and its checkpoint
    was not marked anchored, so `maintain` wrote it again. A missing file holds nothing (verify
    then asks whether anything was anchored)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return Anchors(source, exists=False)
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
        return Anchors(source, True, problem=chain.Problem(None, reason, f"anchor file {source}"))
    anchors = Anchors(source, exists=True)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cp = chain.parse_anchor_line(line)
        if cp is None and line.startswith(_LINE_START) and not line.rstrip().endswith("}"):
            anchors.incomplete += 1
            continue
        if cp is None:
            anchors.problem = chain.Problem(
                None, "not a signed checkpoint (edited)", f"anchor file {source} line {number}"
            )
            return anchors
        anchors.checkpoints.append((number, cp))
    return anchors
