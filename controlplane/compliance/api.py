"""Admin API for the audit trail and privacy (/api/v1/audit/..., /api/v1/privacy/...).

Compliance officers and admins read the audit log of their fleets, export it with a signed
manifest, erase data subjects and download the records of processing. Records without a fleet
(accounts, logins, personal tokens) are visible to global admins only.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from ninja import Field, Query, Router, Schema

from controlplane import signing
from controlplane.accounts.access import ERASE, access_fleet
from controlplane.audit import actions
from controlplane.compliance import export, privacy, queries
from controlplane.errors import ERRORS, ServiceError
from controlplane.pagination import cursor_page, headers
from controlplane.schemas import In, IsoTime, Slug

router = Router(tags=["audit"])


class AuditFilter(Schema):
    fleet: Slug | None = None
    actor: Annotated[str, Field(max_length=200)] = Field(
        "", description="user:<username>, user:<pseudonym>, node:<uuid> or system"
    )
    action: Annotated[str, Field(max_length=64)] = Field(
        "", description="exact, or a prefix ending in '.'"
    )
    since: IsoTime | None = None
    until: IsoTime | None = None


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


class ErasureIn(In):
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


@router.get("/audit/records", response={200: list[AuditRecordOut], **ERRORS})
def list_records(request, response: HttpResponse, q: Query[RecordQuery]):
    """Records in chain order, `limit` after `after_seq` (the next page: `Link: rel="next"`)."""
    records, _ = queries.records(
        request.auth, fleet=q.fleet, actor=q.actor, action=q.action, since=q.since, until=q.until
    )
    page = cursor_page(
        records.select_related("fleet"),
        key="seq",
        after=q.after_seq,
        limit=q.limit,
        param="after_seq",
    )
    return queries.record_rows(headers(request, response, page))


class ActionOut(Schema):
    action: str
    label: str


@router.get("/audit/actions", response={200: list[ActionOut], **ERRORS})
def list_actions(request):
    """Every action the audit trail can hold, with its label; edge families end in '.' (filter
    with the prefix: `action=tool.`)."""
    declared = [{"action": a, "label": label} for a, label in actions.ACTIONS.items()]
    families = [{"action": p, "label": label} for p, label in actions.EDGE_FAMILIES.items()]
    return declared + families


@router.get("/audit/export", response={200: None, **ERRORS})
def export_records(request, q: Query[ExportQuery]):
    """Stream the selected records (CSV or JSON Lines). The signed manifest is ready once the body
    has been read: GET /audit/exports/{X-Export-Id}/manifest."""
    row, body = export.do_export(
        fmt=q.format,
        fleet=q.fleet,
        who=q.actor,
        action=q.action,
        since=q.since,
        until=q.until,
        request=request,
        actor=request.auth,
    )
    response = StreamingHttpResponse(body, content_type=export.FORMATS[q.format])
    response["Content-Disposition"] = f'attachment; filename="audit-{row.pk}.{q.format}"'
    response["X-Export-Id"] = str(row.pk)
    return response


@router.get("/audit/exports/{export_id}/manifest", response={200: dict[str, Any], **ERRORS})
def export_manifest(request, export_id: int):
    row = queries.access_export(request.auth, export_id)
    if row.manifest is None:
        raise ServiceError(f"export {export_id} is not complete (its download did not finish)")
    return row.manifest


@router.get("/audit/public-key", auth=None, response={200: None, **ERRORS})
def public_key(request):
    """The Ed25519 public key that signs checkpoints and export manifests (PEM)."""
    return HttpResponse(signing.public_pem(), content_type="application/x-pem-file")


@router.get("/audit/verifier.py", response={200: None, **ERRORS})
def verifier(request):
    """The stand-alone export verifier (Python + cryptography, no Django)."""
    path = Path(__file__).with_name("verify_export.py")
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename="verify_export.py",
        content_type="text/x-python",
    )


@router.post("/privacy/erasure", response={200: ErasureOut, **ERRORS})
def erase(request, payload: ErasureIn):
    if payload.kind == "user":
        pseud = privacy.do_erase_user(username=payload.ref, request=request, actor=request.auth)
    else:
        if not payload.fleet:
            raise ServiceError("'fleet' is required to erase an edge data subject")
        fleet = access_fleet(request.auth, payload.fleet, ERASE)
        pseud = privacy.do_erase_subject(fleet, payload.ref, request=request, actor=request.auth)
    return {"erased": True, "pseudonym": pseud}


@router.get("/privacy/records-of-processing", response={200: dict[str, Any], **ERRORS})
def records_of_processing(request, fleet: Slug | None = None):
    """GDPR Art. 30: the record of processing activities for the fleets you may audit."""
    return privacy.records_of_processing(queries.auditable_fleets(request.auth, fleet))
