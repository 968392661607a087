"""Resumable uploads of model files too large for one request.

A client starts an upload (name and size), sends the file in chunks at the offsets the server asks
for, and finishes it; the file is then registered as any other (services.do_register_artifact). The
chunks are appended to a file on disk as they arrive, so a broken connection or a closed browser
loses nothing already received: the client asks for the offset and goes on from there. An upload
belongs to the person who started it; unfinished ones are removed after UPLOAD_TTL.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings

from controlplane.accounts.access import is_global_admin
from controlplane.errors import Conflict, NotFound, ServiceError, TooLarge
from controlplane.registry import services
from controlplane.registry.models import Artifact
from controlplane.schemas import refuse_unsafe

MAX_SIZE = 256 * 2**30  # bytes: the largest file an upload may announce
MAX_CHUNK = 16 * 2**20  # bytes per request
UPLOAD_TTL_S = 2 * 86_400
MAX_OPEN_PER_PERSON = 8  # unfinished uploads one person may hold (each reserves its size on disk)
COPY_BLOCK = 2**20


def _dir() -> Path:
    path = Path(settings.VAR_DIR) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _paths(upload_id: uuid.UUID) -> tuple[Path, Path]:
    base = _dir() / str(upload_id)
    return base.with_suffix(".json"), base.with_suffix(".part")


def _state(meta: dict[str, Any], part: Path) -> dict[str, Any]:
    return {
        "id": meta["id"],
        "name": meta["name"],
        "size": meta["size"],
        "offset": part.stat().st_size,
    }


def do_start_upload(*, actor, name: str, size: int, filename: str = "") -> dict[str, Any]:
    """An empty upload of `size` bytes; the caller has checked the registry write right. `name`
    "" registers under the name inside the file, else the file name's stem."""
    if not 0 < size <= MAX_SIZE:
        raise ServiceError(f"size must be between 1 byte and {MAX_SIZE} bytes", field="size")
    refuse_unsafe("name", name)
    if sum(1 for meta in _metas() if meta.get("owner") == actor.pk) >= MAX_OPEN_PER_PERSON:
        raise Conflict(
            f"you already have {MAX_OPEN_PER_PERSON} unfinished uploads: complete or abandon "
            f"one first (unfinished uploads are removed after {UPLOAD_TTL_S // 3600} hours)"
        )
    free = shutil.disk_usage(_dir()).free
    if size > free:
        raise TooLarge(f"not enough disk space for {size} bytes ({free} free)")
    upload_id = uuid.uuid4()
    meta_path, part = _paths(upload_id)
    meta = {
        "id": str(upload_id),
        "owner": actor.pk,
        "name": name,
        "filename": filename,
        "size": size,
        "at": time.time(),
    }
    part.touch()
    meta_path.write_text(json.dumps(meta))
    return _state(meta, part)


def access_upload(actor, upload_id: uuid.UUID) -> tuple[dict[str, Any], Path]:
    """An upload of `actor`'s (global admins: anyone's), or NotFound."""
    meta_path, part = _paths(upload_id)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        raise NotFound(f"upload {upload_id} not found") from None
    if meta["owner"] != actor.pk and not is_global_admin(actor):
        raise NotFound(f"upload {upload_id} not found")
    return meta, part


def upload_state(actor, upload_id: uuid.UUID) -> dict[str, Any]:
    meta, part = access_upload(actor, upload_id)
    return _state(meta, part)


def do_append(actor, upload_id: uuid.UUID, *, offset: int, stream: BinaryIO, length: int) -> dict:
    """Append `length` bytes from `stream` at `offset`, which must be where the upload stands (a
    retried chunk that already arrived is a Conflict that names the offset to go on from)."""
    meta, part = access_upload(actor, upload_id)
    if not 0 < length <= MAX_CHUNK:
        raise TooLarge(f"a chunk is 1 to {MAX_CHUNK} bytes (Content-Length); got {length}")
    with part.open("ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # one chunk at a time per upload, across workers
        current = part.stat().st_size
        if offset != current:
            raise Conflict(f"the upload stands at offset {current}, not {offset}: go on from there")
        if current + length > meta["size"]:
            raise ServiceError(
                f"the chunk ends at {current + length}, past the announced size {meta['size']}"
            )
        left = length
        while left:
            block = stream.read(min(COPY_BLOCK, left))
            if not block:
                break
            f.write(block)
            left -= len(block)
        f.flush()
        if left:  # the client stopped sending: keep what came, it resumes from the new offset
            raise ServiceError(f"the chunk ended early: {length - left} of {length} bytes arrived")
    return _state(meta, part)


def do_finish_upload(actor, upload_id: uuid.UUID, *, request=None) -> Artifact:
    """Register the complete file (its GGUF metadata is checked then) and remove the upload."""
    meta, part = access_upload(actor, upload_id)
    received = part.stat().st_size
    if received != meta["size"]:
        raise ServiceError(f"the upload is incomplete: {received} of {meta['size']} bytes")
    info = services.inspect(part)
    name = meta["name"] or info["gguf_name"] or Path(meta["filename"] or "upload").stem
    artifact = services.do_register_artifact(part, name=name, actor=actor, request=request)
    discard(upload_id)
    return artifact


def discard(upload_id: uuid.UUID) -> None:
    for path in _paths(upload_id):
        path.unlink(missing_ok=True)


def _metas() -> list[dict[str, Any]]:
    """The metadata of every unfinished upload (unreadable ones left out)."""
    metas = []
    for meta_path in _dir().glob("*.json"):
        try:
            metas.append(json.loads(meta_path.read_text()))
        except (OSError, ValueError):
            continue
    return metas


def purge(now: float | None = None) -> int:
    """Remove unfinished uploads older than UPLOAD_TTL_S (manage.py maintain)."""
    now = now or time.time()
    removed = 0
    for meta in _metas():
        if now - meta.get("at", now) > UPLOAD_TTL_S:
            discard(uuid.UUID(meta["id"]))
            removed += 1
    return removed
