"""The one way to write an audit record. Call it inside the transaction of the change."""

from __future__ import annotations

from typing import Any

from .models import AuditRecord


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
    return AuditRecord.objects.create(
        actor_user=user if (user is not None and user.is_authenticated) else None,
        actor_node=node,
        fleet=fleet,
        action=action,
        object_type=type(obj)._meta.model_name if hasattr(obj, "_meta") else type(obj).__name__,
        object_id=str(getattr(obj, "pk", "")),
        before=before,
        after=after,
        request_id=request_id,
        source_ip=source_ip,
    )
