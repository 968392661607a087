"""Admin API for the model registry (/api/v1/models, /api/v1/quantization-jobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, VIEW

from . import services
from .models import Artifact, QuantizationJob

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


class QuantizeIn(Schema):
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


@router.get("/models", response=list[ArtifactOut])
def list_models(request, name: str | None = None):
    """Every registered artifact (model name and variant), newest first."""
    access.access_registry(request.auth, VIEW)
    rows = Artifact.objects.select_related("source").order_by("name", "-bits_per_weight")
    if name:
        rows = rows.filter(name=name)
    return rows[:1000]


@router.post("/models", response={201: ArtifactOut})
def upload_model(request, file: File[UploadedFile], name: str = Form("", max_length=63)):
    """Register a GGUF file (multipart field `file`; optional `name`, else the file's own name).
    The metadata is read from the file; a file that is not valid GGUF is refused with the reason."""
    access.access_registry(request.auth, ADMINISTER)
    artifact = services.register_upload(request.auth, file, name=name, request=request)
    return Status(201, artifact)


@router.get("/models/{name}/variants/{variant}", response=ArtifactOut)
def get_model(request, name: str, variant: str):
    return access.access_artifact(request.auth, name, variant, VIEW)


@router.post("/models/{name}/quantize", response={202: list[JobOut]})
def quantize(request, name: str, payload: QuantizeIn):
    """Queue one background job per variant (llama.cpp's quantizer); follow them at
    /quantization-jobs/{id}."""
    source = access.access_artifact(request.auth, name, payload.source, ADMINISTER)
    return Status(
        202, services.do_quantize(request.auth, source, payload.variants, request=request)
    )


@router.get("/quantization-jobs/{job_id}", response=JobOut)
def get_job(request, job_id: int):
    return access.access_quantization_job(request.auth, job_id)
