"""Admin API for the audit trail and privacy (/api/v1/audit/..., /api/v1/privacy/...).

Compliance officers and admins read the audit log of their fleets, export it with a signed
manifest, erase data subjects and download the records of processing. Records without a fleet
(accounts, logins, personal tokens) are visible to global admins only.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from ninja import Field, Query, Router, Schema

from controlplane import signing
from controlplane.accounts import access
from controlplane.accounts.access import ERASE, VIEW_AUDIT
from controlplane.errors import Forbidden, NotFound, ServiceError

from . import export, privacy, services
from .models import AuditExport, AuditRecord, SubjectKey

router = Router(tags=["audit"])

Slug = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class AuditFilter(Schema):
    fleet: Slug | None = None
    actor: Annotated[str, Field(max_length=200)] = Field(
        "", description="user:<username>, user:<pseudonym>, node:<uuid> or system"
    )
    action: Annotated[str, Field(max_length=64)] = Field(
        "", description="exact, or a prefix ending in '.'"
    )
    since: datetime | None = None
    until: datetime | None = None


class RecordQuery(AuditFilter):
    after_seq: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class AuditRecordOut(Schema):
    seq: int
    ts: datetime
    actor: str
    actor_name: str = ""
    fleet: str | None
    action: str
    object_type: str
    object_id: str
    before: Any = None
    after: Any = None
    request_id: str
    source_ip: str | None
    hash: str


class ExportQuery(AuditFilter):
    format: Literal["csv", "jsonl"] = "jsonl"


class ErasureIn(Schema):
    kind: Literal["user", "subject"] = Field(
        description="user: a person with an account (global admins); subject: an end user a "
        "fleet's agents served, as the node reported them"
    )
    ref: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="the username, or the subject's identifier as the edge knew it"
    )
    fleet: Slug | None = Field(None, description="required for kind 'subject'")


class ErasureOut(Schema):
    erased: bool
    pseudonym: str


def _scope(request, q: AuditFilter):
    """(queryset of records the caller may read, narrowed by the filter; fleet id or None)."""
    user = request.auth
    qs = AuditRecord.objects.filter(seq__isnull=False)  # pending records are not chained yet
    fleet_id = None
    if q.fleet:
        fleet_id = access.access_fleet(user, q.fleet, VIEW_AUDIT).pk
    else:
        qs = access.restrict(qs, user, VIEW_AUDIT)
        if not access.is_global_admin(user) and not access.fleet_ids(user, VIEW_AUDIT):
            raise NotFound("no audit log visible to you")
    return qs, fleet_id


def _actor(value: str) -> str:
    """Accept user:<username> for convenience: it becomes that person's pseudonym."""
    if value.startswith("user:") and len(value) != 37:
        user = get_user_model().objects.filter(username=value[5:]).first()
        key = user and SubjectKey.objects.filter(kind="user", ref=str(user.pk)).first()
        return f"user:{key.pseudonym}" if key else "user:unknown"
    return value


@router.get("/audit/records", response=list[AuditRecordOut])
def list_records(request, q: Query[RecordQuery]):
    qs, fleet_id = _scope(request, q)
    qs = export.select(
        qs.select_related("fleet"), since=q.since, until=q.until, fleet_id=fleet_id,
        actor=_actor(q.actor), action=q.action, upto_seq=export.head_seq(),
    ).filter(seq__gt=q.after_seq)[: q.limit]  # fmt: skip
    records = list(qs)
    pseuds = {r.actor[5:] for r in records if r.actor.startswith("user:")}
    users = dict(SubjectKey.objects.filter(pseudonym__in=pseuds).values_list("pseudonym", "ref"))
    names = dict(
        get_user_model().objects.filter(pk__in=users.values()).values_list("pk", "username")
    )
    out = []
    for r in records:
        ref = users.get(r.actor[5:]) if r.actor.startswith("user:") else None
        out.append({
            "seq": r.seq, "ts": r.ts, "actor": r.actor,
            "actor_name": names.get(int(ref), "") if ref else "",
            "fleet": r.fleet.slug if r.fleet_id and r.fleet else None,
            "action": r.action, "object_type": r.object_type, "object_id": r.object_id,
            "before": r.before, "after": r.after, "request_id": r.request_id,
            "source_ip": r.source_ip, "hash": r.hash,
        })  # fmt: skip
    return out


@router.get("/audit/export", response={200: None})
def export_records(request, q: Query[ExportQuery]):
    """Stream the selected records (CSV or JSON Lines). The signed manifest is ready once the body
    has been read: GET /audit/exports/{X-Export-Id}/manifest."""
    qs, fleet_id = _scope(request, q)
    upto = export.head_seq()
    filters = {
        "fleet": q.fleet, "actor": q.actor, "action": q.action,
        "since": q.since.isoformat() if q.since else None,
        "until": q.until.isoformat() if q.until else None,
    }  # fmt: skip
    complete = not (q.fleet or q.actor or q.action) and access.is_global_admin(request.auth)
    selected = export.select(qs, since=q.since, until=q.until, fleet_id=fleet_id,
                             actor=_actor(q.actor), action=q.action, upto_seq=upto)  # fmt: skip
    with transaction.atomic():
        row = AuditExport.objects.create(
            actor=services.user_ref(request.auth), fmt=q.format, filters=filters
        )
        services.record("audit.export", row, user=request.auth, fleet=fleet_id,
                        after={"format": q.format, "filters": filters, "upto_seq": upto},
                        request=request)  # fmt: skip

    def save(manifest: dict[str, Any]) -> None:
        AuditExport.objects.filter(pk=row.pk).update(manifest=manifest)

    body = export.stream(selected, q.format, complete=complete, filters=filters,
                         upto_seq=upto, on_done=save)  # fmt: skip
    response = StreamingHttpResponse(body, content_type=export.FORMATS[q.format])
    response["Content-Disposition"] = f'attachment; filename="audit-{row.pk}.{q.format}"'
    response["X-Export-Id"] = str(row.pk)
    return response


@router.get("/audit/exports/{export_id}/manifest", response=dict[str, Any])
def export_manifest(request, export_id: int):
    row = access.access_export(request.auth, export_id)
    if row.manifest is None:
        raise ServiceError(f"export {export_id} is not complete (its download did not finish)")
    return row.manifest


@router.get("/audit/public-key", auth=None, response={200: None})
def public_key(request):
    """The Ed25519 public key that signs checkpoints and export manifests (PEM)."""
    return HttpResponse(signing.public_pem(), content_type="application/x-pem-file")


@router.get("/audit/verifier.py", response={200: None})
def verifier(request):
    """The stand-alone export verifier (Python + cryptography, no Django)."""
    path = Path(__file__).with_name("verify_export.py")
    return FileResponse(path.open("rb"), as_attachment=True, filename="verify_export.py",
                        content_type="text/x-python")  # fmt: skip


@router.post("/privacy/erasure", response=ErasureOut)
def erase(request, payload: ErasureIn):
    user = request.auth
    if payload.kind == "user":
        if not access.is_global_admin(user):
            raise Forbidden("only global admins erase accounts")
        target = get_user_model().objects.filter(username=payload.ref).first()
        if target is None:
            raise NotFound(f"user '{payload.ref}' not found")
        if target.pk == user.pk:
            raise ServiceError("you cannot erase your own account")
        return {"erased": True, "pseudonym": privacy.do_erase_user(user, target, request=request)}
    if not payload.fleet:
        raise ServiceError("'fleet' is required to erase an edge data subject")
    fleet = access.access_fleet(user, payload.fleet, ERASE)
    pseud = privacy.do_erase_subject(user, fleet, payload.ref, request=request)
    return {"erased": True, "pseudonym": pseud}


@router.get("/privacy/records-of-processing", response=dict[str, Any])
def records_of_processing(request, fleet: Slug | None = None):
    """GDPR Art. 30: the record of processing activities for the fleets you may audit."""
    from edgenodes.models import Fleet

    if fleet:
        fleets = [access.access_fleet(request.auth, fleet, VIEW_AUDIT)]
    else:
        fleets = list(
            access.restrict(Fleet.objects.order_by("slug"), request.auth, VIEW_AUDIT, "id")
        )
        if not fleets:
            raise NotFound("no fleet visible to you for auditing")
    return privacy.records_of_processing(fleets)
