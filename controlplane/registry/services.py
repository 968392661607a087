"""Every write to the model registry: registering artifacts and quantizing them.

Like controlplane/nodes/services.py, each `do_*` takes the acting user explicitly (None for
`manage.py`),
runs in one transaction and writes its audit record there. Quantization jobs are enqueued on the
django-tasks database backend in the same transaction, so a job exists exactly when its row does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from django_tasks import task

from controlplane import signing
from controlplane.audit.services import record
from controlplane.errors import Conflict, ServiceError
from controlplane.registry import gguf_bounds, resolver
from controlplane.registry.models import Artifact, JobStatus, QuantizationJob, RouterArtifact
from controlplane.registry.quantize import quantize
from controlplane.schemas import refuse_unsafe
from wire.manifest import sha256_file
from wire.scoring import RouterError, Scorer

# Sent inside the registering transaction. The registry sits below the fleets' domain, so it
# announces what it registered and the desired state (controlplane/nodes/desired_state.py,
# connected in controlplane/nodes/apps.py) refreshes the fleets whose layers or active rollouts
# name it: a new variant can change what "auto" picks, a new router version what a node fetches.
model_registered = Signal()  # name=: a model's name
router_registered = Signal()  # version=: a router version

log = logging.getLogger("edgefleet.registry")

# Variants a quantization job can produce, with llama.cpp's nominal bits per weight (used only to
# estimate progress while the output file grows).
TARGETS = resolver.LADDER  # what a quantization job can make, and nominal bits per weight
QUANTIZABLE_SOURCES = ("F32", "F16", "BF16")
_SLUG = re.compile(r"[^a-z0-9]+")


def storage():
    return storages["artifacts"]


def variant_name(file_type: int | None) -> str:
    import gguf

    if file_type is None:
        return "UNKNOWN"
    try:
        name = gguf.LlamaFileType(file_type).name
    except ValueError:
        return f"FT{file_type}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def inspect(path: Path) -> dict[str, Any]:
    """Read a GGUF file's metadata with the gguf package; ServiceError if it is not valid GGUF."""
    import gguf

    try:
        gguf_bounds.check(path)  # a lying header is refused before the reader believes it
        reader = gguf.GGUFReader(path)

        def field(key: str, default: Any = None) -> Any:
            f = reader.fields.get(key)
            return f.contents() if f is not None else default

        arch = field("general.architecture")
        if not arch:
            raise ValueError("it has no general.architecture")
        if not reader.tensors:
            raise ValueError("it has no tensors")
        parameters = sum(int(t.n_elements) for t in reader.tensors)
        file_type = field("general.file_type")
        info = {
            "architecture": str(arch)[:32],
            "gguf_name": str(field("general.name", ""))[:100],
            "parameters": parameters,
            "file_type": int(file_type) if file_type is not None else None,
            "context_length": int(field(f"{arch}.context_length", 0) or 0),
            "n_layer": int(field(f"{arch}.block_count", 0) or 0),
            "n_embd": int(field(f"{arch}.embedding_length", 0) or 0),
            "n_head": int(field(f"{arch}.attention.head_count", 0) or 0),
            "n_head_kv": int(field(f"{arch}.attention.head_count_kv", 0) or 0),
            "chat_template": str(field("tokenizer.chat_template", "") or ""),
        }
    except ServiceError:
        raise
    except Exception as exc:  # the gguf reader raises many kinds on a malformed file
        raise ServiceError(f"not a valid GGUF file: {exc}") from None
    info["variant"] = variant_name(info["file_type"])  # type: ignore[arg-type]
    return info


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:63] or "model"


def _store(path: Path, name: str, size: int) -> str:
    """Copy the file into artifact storage under its digest. A copy cut short (a full disk, a
    crash) is removed, and a stored file of the wrong size is replaced, so a name in storage is
    never a partial file."""
    store = storage()
    if store.exists(name) and store.size(name) == size:
        return name
    if store.exists(name):
        store.delete(name)
    try:
        with open(path, "rb") as f:
            return store.save(name, File(f))
    except BaseException:
        if store.exists(name):
            store.delete(name)
        raise


@transaction.atomic
def do_register_artifact(
    path: Path, *, actor, name: str = "", source: Artifact | None = None, request=None
) -> Artifact:
    """Register the GGUF file at `path` (kept by the caller; the registry stores its own copy).

    Registering the same file again under the same name and variant returns the existing artifact;
    a different file for a name and variant already registered is a conflict."""
    info = inspect(path)
    name = slug(name or info["gguf_name"] or path.stem)
    variant = info["variant"]
    digest = sha256_file(path)
    size = path.stat().st_size
    existing = Artifact.objects.filter(name=name, variant=variant).first()
    if existing is not None:
        if existing.sha256 == digest:
            return existing
        raise Conflict(
            f"model '{name}' already has a {variant} variant with another file "
            f"(sha256 {existing.sha256[:12]}…); register this one under another name"
        )
    stored = _store(path, f"{digest[:2]}/{digest}.gguf", size)
    signed, signature = signing.sign_manifest(name=name, variant=variant, sha256=digest, size=size)
    artifact = Artifact.objects.create(
        name=name,
        variant=variant,
        sha256=digest,
        size=size,
        file=stored,
        architecture=info["architecture"],
        parameters=info["parameters"],
        bits_per_weight=round(size * 8 / max(info["parameters"], 1), 3),
        context_length=info["context_length"],
        n_layer=info["n_layer"],
        n_embd=info["n_embd"],
        n_head=info["n_head"],
        n_head_kv=info["n_head_kv"],
        file_type=info["file_type"],
        chat_template=info["chat_template"],
        source=source,
        manifest=signed,
        signature=signature,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    record(
        "artifact.register",
        artifact,
        user=actor,
        request=request,
        after={
            "name": name,
            "variant": variant,
            "sha256": digest,
            "size": size,
            "source": source.pk if source else None,
        },
    )
    model_registered.send(sender=Artifact, name=name)
    return artifact


@transaction.atomic
def do_register_router(raw: bytes, *, actor, request=None) -> RouterArtifact:
    """Register a router artifact (`manage.py router train` output): checked, stored in canonical
    form and signed. The same version with the same content returns the existing one; the same
    version with other content is a conflict. Fleets whose routing names the version get it."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise RouterError("the router artifact is not a JSON object")
        scorer = Scorer.from_dict(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServiceError(f"the router artifact is not JSON: {exc}") from None
    except RouterError as exc:
        raise ServiceError(str(exc)) from None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", scorer.version):
        raise ServiceError(
            "the router needs a version of letters, digits, '.', '_' and '-' (at most 100)"
        )
    canonical = scorer.to_bytes()
    digest = hashlib.sha256(canonical).hexdigest()
    existing = RouterArtifact.objects.filter(version=scorer.version).first()
    if existing is not None:
        if existing.sha256 == digest:
            return existing
        raise Conflict(f"router version '{scorer.version}' is registered with other weights")
    router = RouterArtifact.objects.create(
        version=scorer.version,
        kind=scorer.kind,
        sha256=digest,
        size=len(canonical),
        content=canonical,
        signature=signing.sign(canonical),
        meta=scorer.meta,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    record(
        "router.register",
        ("router", router.version),
        user=actor,
        request=request,
        after={"version": router.version, "kind": router.kind, "sha256": digest, **scorer.meta},
    )
    router_registered.send(sender=RouterArtifact, version=router.version)
    return router


def register_upload(upload, *, actor, name: str = "", request=None) -> Artifact:
    """An uploaded file (Django spools large ones to disk); small ones are written out first."""
    refuse_unsafe("name", name)
    temp_path = getattr(upload, "temporary_file_path", None)
    if temp_path is not None:
        return do_register_artifact(
            Path(temp_path()), name=name or Path(upload.name).stem, request=request, actor=actor
        )
    with tempfile.NamedTemporaryFile(suffix=".gguf") as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        return do_register_artifact(
            Path(tmp.name), name=name or Path(upload.name or "").stem, request=request, actor=actor
        )


# --- quantization ---------------------------------------------------------------------------------


@transaction.atomic
def do_quantize(
    source: Artifact, variants: list[str], *, actor, request=None
) -> list[QuantizationJob]:
    if source.variant not in QUANTIZABLE_SOURCES:
        raise ServiceError(
            f"{source} is already quantized ({source.variant}); quantize from an F32, F16 or BF16 "
            "variant"
        )
    unknown = [v for v in variants if v not in TARGETS]
    if unknown:
        raise ServiceError(f"unknown variant {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    jobs = []
    for variant in dict.fromkeys(variants):
        if Artifact.objects.filter(name=source.name, variant=variant).exists():
            raise Conflict(f"model '{source.name}' already has a {variant} variant")
        busy = QuantizationJob.objects.filter(
            source__name=source.name,
            variant=variant,
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
        ).exists()
        if busy:
            raise Conflict(
                f"a {variant} job for model '{source.name}' is already queued or running"
            )
        job = QuantizationJob.objects.create(
            source=source,
            variant=variant,
            created_by=actor if actor is not None and actor.is_authenticated else None,
        )
        job.task_id = str(quantize_artifact.enqueue(job.pk).id)
        job.save(update_fields=["task_id"])
        record(
            "artifact.quantize",
            job,
            user=actor,
            request=request,
            after={"source": str(source), "variant": variant},
        )
        jobs.append(job)
    return jobs


def _set_job(job: QuantizationJob, **fields: Any) -> None:
    for k, v in fields.items():
        setattr(job, k, v)
    QuantizationJob.objects.filter(pk=job.pk).update(**fields)


@task()
def quantize_artifact(job_id: int) -> int | None:
    """The background job (django-tasks, run by `manage.py db_worker`)."""
    return run_quantization(job_id)


def run_quantization(job_id: int) -> int | None:
    """The body of the background task: quantize, register the result, record progress and errors.
    Returns the new artifact's id."""
    job = QuantizationJob.objects.select_related("source").get(pk=job_id)
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return job.result_id
    _set_job(job, status=JobStatus.RUNNING, started_at=timezone.now(), progress=0.0)
    source = job.source
    expected = max(source.parameters * TARGETS.get(job.variant, 8.0) / 8, 1.0)
    with tempfile.TemporaryDirectory(prefix="edgefleet-quantize-") as tmp:
        src = Path(tmp) / "source.gguf"
        out = Path(tmp) / f"{job.variant}.gguf"
        try:
            with storage().open(source.file, "rb") as f_in, open(src, "wb") as f_out:
                while block := f_in.read(1 << 20):
                    f_out.write(block)
            # Progress: llama.cpp writes the output tensor by tensor, so its size tracks the work.
            failure: list[BaseException] = []

            def work() -> None:
                try:
                    quantize(src, out, job.variant, threads=settings.EDGEFLEET["QUANTIZE_THREADS"])
                except BaseException as exc:  # re-raised below, in the task's thread
                    failure.append(exc)

            worker = threading.Thread(target=work, name=f"quantize-{job.pk}")
            worker.start()
            while worker.is_alive():
                worker.join(0.5)
                with contextlib.suppress(OSError):
                    _set_job(job, progress=round(min(out.stat().st_size / expected, 0.99), 3))
            if failure:
                raise failure[0]
            artifact = do_register_artifact(
                out, name=source.name, source=source, actor=job.created_by
            )
        except Exception as exc:
            log.exception("quantization job %s failed", job.pk)
            _set_job(
                job, status=JobStatus.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
            )
            record(
                "artifact.quantize_failed",
                job,
                after={"variant": job.variant, "error": str(exc)[:500]},
            )
            return None
    _set_job(job, status=JobStatus.DONE, progress=1.0, result=artifact, finished_at=timezone.now())
    return artifact.pk
