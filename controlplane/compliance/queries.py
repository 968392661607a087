"""Every read of the audit trail: the records a user may read (narrowed in SQL), the names behind
actors' pseudonyms, exports and the fleets a user may audit. Used by the API and the pages alike.

Records without a fleet (accounts, logins, personal tokens) are visible to global admins only;
pending records (not chained yet) are never listed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from controlplane.accounts import access
from controlplane.accounts.access import VIEW_AUDIT
from controlplane.audit import chain
from controlplane.audit.models import AuditExport, AuditHead, AuditRecord, SubjectKey
from controlplane.audit.services import user_ref
from controlplane.errors import NotFound
from controlplane.fleets.models import Fleet


def head_seq() -> int:
    head = AuditHead.objects.filter(pk=1).first()
    return head.seq if head else 0


def select(
    queryset: QuerySet,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    fleet_id: int | None = None,
    actor: str = "",
    action: str = "",
    upto_seq: int,
) -> QuerySet:
    qs = queryset.filter(seq__lte=upto_seq)
    if since:
        qs = qs.filter(ts__gte=since)
    if until:
        qs = qs.filter(ts__lt=until)
    if fleet_id is not None:
        qs = qs.filter(fleet_id=fleet_id)
    if actor:
        qs = qs.filter(actor=actor)
    if action:
        qs = (
            qs.filter(action__startswith=action)
            if action.endswith(".")
            else qs.filter(action=action)
        )
    return qs.order_by("seq")


def actor_filter(value: str) -> str:
    """Accept user:<username> for convenience: it becomes that person's pseudonym."""
    if value.startswith("user:") and len(value) != 37:
        user = get_user_model().objects.filter(username=value[5:]).first()
        key = user and SubjectKey.objects.filter(kind="user", ref=str(user.pk)).first()
        return f"user:{key.pseudonym}" if key else "user:unknown"
    return value


def records(
    user,
    *,
    fleet: str | None = None,
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    upto_seq: int | None = None,
) -> tuple[QuerySet[AuditRecord], int | None]:
    """(the chained records `user` may read that match the filter, ordered by seq; the fleet id
    filtered on). NotFound for a fleet the user may not audit, or when they may audit none."""
    qs = AuditRecord.objects.filter(seq__isnull=False)
    fleet_id = None
    if user is None:  # the system (manage.py): everything
        if fleet:
            found = Fleet.objects.filter(slug=fleet).first()
            if found is None:
                raise NotFound(f"fleet '{fleet}' not found")
            fleet_id = found.pk
    elif fleet:
        fleet_id = access.access_fleet(user, fleet, VIEW_AUDIT).pk
    else:
        qs = access.restrict(qs, user, VIEW_AUDIT)
        if not access.is_global_admin(user) and not access.fleet_ids(user, VIEW_AUDIT):
            raise NotFound("no audit log visible to you")
    selected = select(
        qs,
        since=since,
        until=until,
        fleet_id=fleet_id,
        actor=actor_filter(actor),
        action=action,
        upto_seq=head_seq() if upto_seq is None else upto_seq,
    )
    return selected.order_by("seq"), fleet_id


def actor_names(rows: list[AuditRecord]) -> dict[str, str]:
    """actor ("user:<pseudonym>") -> username, for the people among `rows` (two queries); an
    erased person has no name any more."""
    pseuds = {r.actor[5:] for r in rows if r.actor.startswith("user:")}
    refs = dict(SubjectKey.objects.filter(pseudonym__in=pseuds).values_list("pseudonym", "ref"))
    names = dict(
        get_user_model()
        .objects.filter(pk__in=[int(ref) for ref in refs.values()])
        .values_list("pk", "username")
    )
    return {f"user:{p}": names.get(int(ref), "") for p, ref in refs.items()}


def record_rows(rows: list[AuditRecord]) -> list[dict[str, Any]]:
    names = actor_names(rows)
    return [
        {
            "seq": r.seq,
            "ts": r.ts,
            "actor": r.actor,
            "actor_name": names.get(r.actor, ""),
            "fleet": r.fleet.slug if r.fleet_id and r.fleet else None,
            "action": r.action,
            "object_type": r.object_type,
            "object_id": r.object_id,
            "before": r.before,
            "after": r.after,
            "request_id": r.request_id,
            "source_ip": r.source_ip,
            "hash": r.hash,
        }
        for r in rows
    ]


def access_export(user, export_id: int) -> AuditExport:
    """An audit export is visible to the person who made it (and global admins)."""
    row = AuditExport.objects.filter(pk=export_id).first()
    if row is None or not (
        access.is_global_admin(user) or (user.is_authenticated and row.actor == user_ref(user))
    ):
        raise NotFound(f"export {export_id} not found")
    return row


def auditable_fleets(user, slug: str | None = None) -> list[Fleet]:
    if slug:
        return [access.access_fleet(user, slug, VIEW_AUDIT)]
    fleets = list(access.restrict(Fleet.objects.order_by("slug"), user, VIEW_AUDIT))
    if not fleets:
        raise NotFound("no fleet visible to you for auditing")
    return fleets


def check_shown(rows: list[AuditRecord]) -> str:
    """Verify what a page shows: each record's hash recomputes from its previous hash and its
    content, its columns are what was hashed, and records next to each other in the chain link.
    Returns '' or the first problem (the whole chain, with signed checkpoints: `audit verify`)."""
    by_seq = {r.seq: r for r in rows}
    for r in rows:
        if r.hash != chain.link(r.prev_hash, r.content):
            return f"record #{r.seq}: its hash does not match its content"
        if not chain.columns_agree(r):
            return f"record #{r.seq}: its columns differ from what was hashed"
        prev = by_seq.get((r.seq or 0) - 1)
        if prev is not None and r.prev_hash != prev.hash:
            return f"record #{r.seq} does not link to record #{prev.seq}"
    return ""


def changes(before: Any, after: Any) -> list[dict[str, Any]]:
    """A readable diff of two snapshots: [{field, before, after}] for each top-level field that
    differs, values as compact JSON (None where the field was absent: created or removed)."""

    def shown(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, default=str)

    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        return (
            []
            if before == after
            else [{"field": "", "before": shown(before), "after": shown(after)}]
        )
    before, after = before or {}, after or {}
    return [
        {"field": k, "before": shown(before.get(k)), "after": shown(after.get(k))}
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]


def exports_of(user) -> QuerySet[AuditExport]:
    """The exports `user` made (their manifests are theirs to download)."""
    return AuditExport.objects.filter(actor=user_ref(user)).order_by("-id")
