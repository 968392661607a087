"""Every read of the model registry: the access functions and lists the API and pages share, and
the variants the per-node resolver chooses from (desired_state.py reads them, once per refresh).

The registry is shared by all fleets: anyone with a role in some fleet may read it; writing
(registering, quantizing) needs the admin role in some fleet. Someone with no role sees nothing.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import QuerySet

from controlplane.accounts.access import ADMINISTER, VIEW, fleet_ids
from controlplane.errors import Forbidden, NotFound
from controlplane.registry.models import Artifact, QuantizationJob, RouterArtifact
from controlplane.registry.resolver import Variant


def access_registry(user, action: str = VIEW) -> None:
    ids = fleet_ids(user, VIEW)
    if ids is not None and not ids:
        raise NotFound("model registry not found")
    if action != VIEW:
        ids = fleet_ids(user, ADMINISTER)
        if ids is not None and not ids:
            raise Forbidden("changing the model registry needs the admin role in some fleet")


def access_artifact(user, name: str, variant: str, action: str = VIEW) -> Artifact:
    access_registry(user, action)
    artifact = Artifact.objects.select_related("source").filter(name=name, variant=variant).first()
    if artifact is None:
        raise NotFound(f"model '{name}' has no variant '{variant}'")
    return artifact


def access_quantization_job(user, job_id: int) -> QuantizationJob:
    access_registry(user, VIEW)
    job = QuantizationJob.objects.select_related("source", "result").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"quantization job {job_id} not found")
    return job


def artifacts(user, *, name: str | None = None) -> QuerySet[Artifact]:
    """Every registered artifact (model name and variant), by name, most bits per weight first."""
    access_registry(user, VIEW)
    rows = Artifact.objects.select_related("source").order_by("name", "-bits_per_weight", "id")
    if name:
        rows = rows.filter(name=name)
    return rows


def jobs(user) -> QuerySet[QuantizationJob]:
    """Quantization jobs, newest first."""
    access_registry(user, VIEW)
    return QuantizationJob.objects.select_related("source").order_by("-created_at", "-id")


def variants_of(names: list[str] | None = None) -> dict[str, list[Variant]]:
    """Registered variants by model name, most bits per weight first (one query)."""
    rows = Artifact.objects.all()
    if names is not None:
        rows = rows.filter(name__in=names)
    out: dict[str, list[Variant]] = defaultdict(list)
    for a in rows.only(
        "name",
        "variant",
        "sha256",
        "size",
        "bits_per_weight",
        "n_layer",
        "n_embd",
        "n_head",
        "n_head_kv",
        "manifest",
        "signature",
    ):
        out[a.name].append(
            Variant(
                a.name,
                a.variant,
                a.sha256,
                a.size,
                a.bits_per_weight,
                a.n_layer,
                a.n_embd,
                a.n_head,
                a.n_head_kv,
                a.manifest,
                a.signature,
            )
        )
    for vs in out.values():
        vs.sort(key=lambda v: (-v.bits_per_weight, v.variant))
    return dict(out)


def routers(user) -> QuerySet[RouterArtifact]:
    """Registered routers, newest first (without their weights)."""
    access_registry(user, VIEW)
    return RouterArtifact.objects.defer("content").order_by("-created_at", "-id")


def routers_of(versions: list[str]) -> dict[str, dict]:
    """version -> what a node needs to fetch and verify it (desired_state.py)."""
    return {
        r.version: {
            "version": r.version,
            "kind": r.kind,
            "sha256": r.sha256,
            "signature": r.signature,
            "url": f"routers/{r.sha256}",
        }
        for r in RouterArtifact.objects.filter(version__in=versions).defer("content")
    }
