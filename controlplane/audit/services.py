"""The one way to write an audit record. Call it inside the transaction of the change."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import chain
from .models import AuditHead, AuditRecord


def record(
    action: str,
    obj: Any,
    *,
    user=None,
    node=None,
    fleet=None,
    before: dict | None = None,
    after: dict | None = None,
    request=None,
) -> AuditRecord:
    request_id = ""
    source_ip = None
    if request is not None:
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")[:64]
        source_ip = request.META.get("REMOTE_ADDR") or None
    rec = AuditRecord(
        actor_user=user if (user is not None and user.is_authenticated) else None,
        actor_node=node,
        fleet=fleet,
        action=action,
        object_type=type(obj)._meta.model_name if hasattr(obj, "_meta") else type(obj).__name__,
        object_id=str(getattr(obj, "pk", "")),
        before=chain.canonical_value(before),
        after=chain.canonical_value(after),
        request_id=request_id,
        source_ip=source_ip,
    )
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(
            pk=1
        ).first() or AuditHead.objects.create(pk=1)
        rec.seq = head.seq + 1
        rec.prev_hash = head.hash or chain.GENESIS
        rec.content = chain.canonical(chain.content_of(rec))
        rec.hash = chain.link(rec.prev_hash, rec.content)
        rec.save()
        AuditHead.objects.filter(pk=1).update(seq=rec.seq, hash=rec.hash)
    return rec
