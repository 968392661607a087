"""Admin API for the model registry (/api/v1/models, /api/v1/quantization-jobs)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from django.http import HttpResponse
from ninja import Field, File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile

from controlplane.accounts.access import ADMINISTER, VIEW
from controlplane.errors import ERRORS
from controlplane.pagination import PageQuery, headers, offset_page
from controlplane.registry import queries, services, uploads
from controlplane.registry.models import Artifact, QuantizationJob
from controlplane.schemas import In
from wire.fields import SafeName

router = Router(tags=["models"])

VariantName = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9_]+$")]


class ArtifactOut(Schema):
    name: str
    variant: str
    sha256: str
    size: int
    architecture: str
    parameters: int
    bits_per_weight: float
    context_length: int
    file_type: int | None
    has_chat_template: bool
    source: str | None
    manifest: dict
    signature: str
    created_at: datetime

    @staticmethod
    def resolve_has_chat_template(obj: Artifact) -> bool:
        return bool(obj.chat_template)

    @staticmethod
    def resolve_source(obj: Artifact) -> str | None:
        return obj.source.variant if obj.source else None


class QuantizeIn(In):
    source: VariantName = Field("F32", description="the variant to quantize from: F32, F16 or BF16")
    variants: Annotated[list[VariantName], Field(min_length=1, max_length=len(services.TARGETS))]


class JobOut(Schema):
    id: int
    model: str
    source: str
    variant: str
    status: str
    progress: float
    error: str
    result: ArtifactOut | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_model(obj: QuantizationJob) -> str:
        return obj.source.name

    @staticmethod
    def resolve_source(obj: QuantizationJob) -> str:
        return obj.source.variant


class ModelFilter(PageQuery):
    name: Annotated[str, Field(max_length=63)] = ""  # "" or absent: every model


@router.get("/models", response={200: list[ArtifactOut], **ERRORS})
def list_models(request, response: HttpResponse, filters: Query[ModelFilter]):
    """Every registered artifact (model name and variant), by name, most bits per weight first."""
    rows = queries.artifacts(request.auth, name=filters.name)
    return headers(request, response, offset_page(rows, limit=filters.limit, offset=filters.offset))


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "minLength": 1,
                        "description": "a GGUF file",
                    },
                    "name": {"type": "string", "maxLength": 63, "default": ""},
                },
            }
        }
    },
}


@router.post(
    "/models", response={201: ArtifactOut, **ERRORS}, openapi_extra={"requestBody": UPLOAD_BODY}
)
def upload_model(request, file: File[UploadedFile], name: str = Form("", max_length=63)):
    """Register a GGUF file (multipart field `file`; optional `name`, else the file's own name).
    The metadata is read from the file; a file that is not valid GGUF is refused with the reason."""
    queries.access_registry(request.auth, ADMINISTER)
    artifact = services.register_upload(file, name=name, request=request, actor=request.auth)
    return Status(201, artifact)


# --- resumable uploads (large files) ------------------------------------------------------------


class UploadIn(In):
    size: Annotated[int, Field(ge=1, le=uploads.MAX_SIZE)] = Field(description="bytes")
    name: Annotated[SafeName, Field(max_length=63)] = Field(
        "", description="register under this name ('' = the name inside the file)"
    )
    filename: Annotated[str, Field(max_length=255)] = ""


class UploadOut(Schema):
    id: UUID
    name: str
    size: int
    offset: int = Field(description="bytes received: send the next chunk from here")


CHUNK_BODY = {
    "required": True,
    "content": {
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary", "minLength": 1}
        }
    },
}


@router.post("/models/uploads", response={201: UploadOut, **ERRORS})
def start_upload(request, payload: UploadIn):
    """Start a resumable upload: then PUT its chunks (at most 16 MiB each) at `offset`, and POST
    `/complete`. A broken upload goes on from GET's `offset`; nothing received is lost."""
    queries.access_registry(request.auth, ADMINISTER)
    return Status(
        201,
        uploads.do_start_upload(
            actor=request.auth, name=payload.name, size=payload.size, filename=payload.filename
        ),
    )


@router.get("/models/uploads/{upload_id}", response={200: UploadOut, **ERRORS})
def get_upload(request, upload_id: UUID):
    return uploads.upload_state(request.auth, upload_id)


@router.put(
    "/models/uploads/{upload_id}",
    response={200: UploadOut, **ERRORS},
    openapi_extra={"requestBody": CHUNK_BODY},
)
def put_chunk(request, upload_id: UUID, offset: int = Query(..., ge=0, le=uploads.MAX_SIZE)):
    """Append the body (application/octet-stream) at `offset`, where the upload stands."""
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    return uploads.do_append(request.auth, upload_id, offset=offset, stream=request, length=length)


@router.post("/models/uploads/{upload_id}/complete", response={201: ArtifactOut, **ERRORS})
def complete_upload(request, upload_id: UUID):
    """Register the uploaded file (its GGUF metadata is read and checked now)."""
    queries.access_registry(request.auth, ADMINISTER)
    return Status(201, uploads.do_finish_upload(request.auth, upload_id, request=request))


@router.get("/models/{name}/variants/{variant}", response={200: ArtifactOut, **ERRORS})
def get_model(request, name: str, variant: str):
    return queries.access_artifact(request.auth, name, variant, VIEW)


@router.post("/models/{name}/quantize", response={202: list[JobOut], **ERRORS})
def quantize(request, name: str, payload: QuantizeIn):
    """Queue one background job per variant (llama.cpp's quantizer); follow them at
    /quantization-jobs/{id}."""
    source = queries.access_artifact(request.auth, name, payload.source, ADMINISTER)
    return Status(
        202, services.do_quantize(source, payload.variants, request=request, actor=request.auth)
    )


@router.get("/quantization-jobs/{job_id}", response={200: JobOut, **ERRORS})
def get_job(request, job_id: int):
    return queries.access_quantization_job(request.auth, job_id)


# --- routers --------------------------------------------------------------------------------------


class RouterOut(Schema):
    version: str
    kind: str
    sha256: str
    size: int
    meta: dict
    created_at: datetime


@router.get("/routers", response={200: list[RouterOut], **ERRORS})
def list_routers(request, response: HttpResponse, page: Query[PageQuery]):
    """Registered local-vs-cloud routers, newest first. A routing section names one by version."""
    rows = queries.routers(request.auth)
    return headers(request, response, offset_page(rows, limit=page.limit, offset=page.offset))


class RouterHead(In):
    bias: float
    answer: bool = False
    weights: dict[str, float] = Field(description="hashed feature index -> weight")


class RouterIn(In):
    """A router as `manage.py router train` writes it (wire/scoring.py, format 1 or 2)."""

    format: int
    norm: Literal["", "l2"] = Field("", description="feature norm (format 2): '' or 'l2'")
    kind: Literal["query", "cascade"]
    bits: Annotated[int, Field(ge=8, le=24)]
    version: Annotated[SafeName, Field(min_length=1, max_length=100)]
    strong: RouterHead
    weak: RouterHead
    quantiles: Annotated[list[float], Field(max_length=101)] = []
    pgr: Annotated[list[float], Field(max_length=101)] = []
    meta: dict[str, Any] = {}


@router.post("/routers", response={201: RouterOut, **ERRORS})
def register_router(request, payload: RouterIn):
    """Register a router: the JSON `manage.py router train` writes. It is checked, stored in
    canonical form and signed for nodes. Same version, same weights: the existing one (201)."""
    queries.access_registry(request.auth, ADMINISTER)
    raw = json.dumps(payload.model_dump()).encode()
    return Status(201, services.do_register_router(raw, actor=request.auth, request=request))
