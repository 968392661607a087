"""The hot path: authenticate a desired-state poll in one indexed read, and answer the 304 early.

One SELECT joins the credential (by its hash), the node and its fleet, refuses revoked or expired
credentials, and returns what a 304 needs: revision, digest, poll interval. The contact itself goes
to the per-worker buffer in contacts.py. Only when the SELECT matches nothing does the caller fall
back to the ordinary lookup, to say why the credential was refused.

`not_modified` answers the commonest request of all, an unchanged document's 304, from the raw
request headers: edgefleet/wsgi.py and controlplane/nodeapi/watch.py call it before Django's request
handling (nine middlewares, URL resolution, ninja), which cost three times the query itself
(docs/node-api.md, "The poll's hot path"). Anything else it declines (None), and the request goes
the full way: a refusal says why, a changed document is composed, a rate limit or an overloaded
server answers 429, exactly as before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.utils import timezone

from controlplane import tokens
from controlplane.accounts import guesses
from controlplane.nodeapi import contacts
from controlplane.nodeapi.ratelimit import buckets
from controlplane.nodes.models import Fleet, Node, NodeCredential, etag_for

PATH = "/api/node/v1/desired-state"


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


def _sql(hashes: str = "= %s") -> str:
    n, c, f = Node._meta.db_table, NodeCredential._meta.db_table, Fleet._meta.db_table
    return (
        f"SELECT {n}.id, {n}.fleet_id, {n}.desired_revision, {n}.desired_digest, "
        f"{f}.poll_interval_s, {c}.token_hash "
        f"FROM {c} JOIN {n} ON {n}.id = {c}.node_id JOIN {f} ON {f}.id = {n}.fleet_id "
        f"WHERE {c}.token_hash {hashes} AND {c}.revoked_at IS NULL "
        f"AND ({c}.expires_at IS NULL OR {c}.expires_at > %s)"
    )


def _target(row) -> PollTarget:
    node_id = row[0] if isinstance(row[0], UUID) else UUID(row[0])
    return PollTarget(node_id, row[1], row[2], row[3], row[4])


_SQL: str | None = None


def poll_target(token_hash: str) -> PollTarget | None:
    global _SQL
    if _SQL is None:
        _SQL = _sql()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    if connection.vendor == "postgresql":
        # Django's cursors bind parameters client-side and send a simple query, which PostgreSQL
        # parses and plans every time; a server-side binding cursor runs it as a prepared
        # statement (after DB_PREPARE_THRESHOLD runs on a connection). Wrapped as Django wraps
        # its own: errors mapped, queries logged where Django logs them.
        connection.ensure_connection()
        wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
        with wrapper(psycopg.Cursor(connection.connection), connection) as cursor:
            cursor.execute(_SQL, [token_hash, now])
            row = cursor.fetchone()
    else:
        with connection.cursor() as cursor:
            cursor.execute(_SQL, [token_hash, now])
            row = cursor.fetchone()
    return None if row is None else _target(row)


def poll_targets(token_hashes: list[str]) -> dict[str, PollTarget]:
    """The targets of many credentials at once, by token hash; a refused one is missing."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    out: dict[str, PollTarget] = {}
    with connection.cursor() as cursor:
        for i in range(0, len(token_hashes), 500):
            chunk = token_hashes[i : i + 500]
            cursor.execute(_sql(f"IN ({', '.join(['%s'] * len(chunk))})"), [*chunk, now])
            out.update((row[5], _target(row)) for row in cursor.fetchall())
    return out


def next_poll_interval(base: int) -> float:
    """The interval to hand out, with +/- jitter so a fleet never polls in lockstep."""
    jitter = settings.EDGEFLEET["POLL_JITTER"]
    return round(base * random.uniform(1 - jitter, 1 + jitter), 1)


def admitted(
    authorization: str, ip: str | None, if_none_match: str | None = None
) -> PollTarget | None:
    """The node's target when its poll is answered right here: a live node credential, an
    address not blocked for guessing, the node within its rate and, if `if_none_match` is given,
    its current ETag sent. The contact is recorded as any poll's. None: let the full node API
    answer (and say why)."""
    if not authorization.startswith("Bearer "):
        return None
    token = authorization[7:].strip()
    if not token.startswith(tokens.NODE_PREFIX) or len(token) > 200 or guesses.blocked(ip):
        return None
    target = poll_target(tokens.hash_token(token))
    if target is None or (if_none_match is not None and target.etag not in if_none_match):
        return None
    if buckets().take(target.node_id):
        return None
    contacts.record(target.node_id, ip)
    return target


def not_modified(authorization: str, if_none_match: str, ip: str | None) -> PollTarget | None:
    """The target when this poll is answered 304 right here (`admitted` with its current ETag)."""
    return admitted(authorization, ip, if_none_match) if if_none_match else None


def answer_headers(etag: str, interval: float, rid: str) -> list[tuple[str, str]]:
    """The headers of every desired-state answer given outside Django (304 and 200 alike)."""
    return [
        ("ETag", etag),
        ("X-Poll-Interval", str(interval)),
        ("Cache-Control", "no-cache"),
        ("X-Request-ID", rid),
        ("X-Content-Type-Options", "nosniff"),
    ]


def not_modified_headers(target: PollTarget, rid: str) -> list[tuple[str, str]]:
    return answer_headers(target.etag, next_poll_interval(target.poll_interval_s), rid)
