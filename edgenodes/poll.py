"""The hot path: authenticate a desired-state poll in one indexed read.

One SELECT joins the credential (by its hash), the node and its fleet, refuses revoked or expired
credentials, and returns what a 304 needs: revision, digest, poll interval. The contact itself goes
to the per-worker buffer in contacts.py. Only when the SELECT matches nothing does the caller fall
back to the ordinary lookup, to say why the credential was refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import Fleet, Node, NodeCredential, etag_for


@dataclass(slots=True)
class PollTarget:
    node_id: UUID
    fleet_id: int
    desired_revision: int
    desired_digest: str
    fleet_poll_interval_s: int | None

    @property
    def poll_interval_s(self) -> int:
        return int(self.fleet_poll_interval_s or settings.EDGEFLEET["POLL_INTERVAL_S"])

    @property
    def etag(self) -> str:
        return etag_for(self.desired_revision, self.desired_digest)


def _sql() -> str:
    n, c, f = Node._meta.db_table, NodeCredential._meta.db_table, Fleet._meta.db_table
    return (
        f"SELECT {n}.id, {n}.fleet_id, {n}.desired_revision, {n}.desired_digest, "
        f"{f}.poll_interval_s "
        f"FROM {c} JOIN {n} ON {n}.id = {c}.node_id JOIN {f} ON {f}.id = {n}.fleet_id "
        f"WHERE {c}.token_hash = %s AND {c}.revoked_at IS NULL "
        f"AND ({c}.expires_at IS NULL OR {c}.expires_at > %s)"
    )


_SQL: str | None = None


def poll_target(token_hash: str) -> PollTarget | None:
    global _SQL
    if _SQL is None:
        _SQL = _sql()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_SQL, [token_hash, now])
        row = cursor.fetchone()
    if row is None:
        return None
    node_id = row[0] if isinstance(row[0], UUID) else UUID(row[0])
    return PollTarget(node_id, row[1], row[2], row[3], row[4])
