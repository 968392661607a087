"""Serving artifact files to nodes, with single-range requests so interrupted downloads resume."""

from __future__ import annotations

import re

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from controlplane.errors import NotFound, ServiceError
from controlplane.registry.models import Artifact
from controlplane.registry.services import storage

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
CHUNK = 1 << 20


def _stream(f, start: int, length: int):
    try:
        f.seek(start)
        while length > 0:
            block = f.read(min(CHUNK, length))
            if not block:
                break
            length -= len(block)
            yield block
    finally:
        f.close()


def serve(request: HttpRequest, sha256: str) -> HttpResponseBase:
    artifact = (
        Artifact.objects.filter(sha256=sha256).only("file", "size", "name", "variant").first()
    )
    if artifact is None or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise NotFound(f"no artifact with sha256 {sha256}")
    size = artifact.size
    f = storage().open(artifact.file, "rb")
    header = request.headers.get("Range", "")
    if not header:
        response: HttpResponseBase = FileResponse(f, content_type="application/octet-stream")
        response["Content-Length"] = str(size)
    else:
        m = _RANGE.match(header.strip())
        if m is None:
            f.close()
            raise ServiceError("only one range of the form 'bytes=START-' or 'bytes=START-END'")
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        if start >= size or end < start:
            f.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(
            _stream(f, start, end - start + 1), status=206, content_type="application/octet-stream"
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{sha256}"'
    response["Content-Disposition"] = (
        f'attachment; filename="{artifact.name}-{artifact.variant}.gguf"'
    )
    return response
