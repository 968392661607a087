"""Guessing bearer secrets: node credentials, enrollment tokens and personal API tokens.

Every unknown secret presented is recorded (a TokenFailure row: kind, address, time; nothing of the
secret). An address that presented TOKEN_FAILURE_LIMIT unknown secrets within
TOKEN_FAILURE_WINDOW_S gets 429 with Retry-After for its *unknown* secrets until the window passes,
without a row each. The block starts with one `auth.guessing` audit record, not one per guess.

A secret is always looked up first (one indexed query by its hash, which the request pays anyway),
and a right one is accepted from a blocked address too: behind a proxy or a site's NAT, one
guesser must not lock out every node and person sharing its address. Guessing a 256-bit secret
is not the threat the block defends against; it keeps a guesser's noise out of the database,
the audit trail and the logs.

Known secrets that are revoked or expired do not count: a node left polling with a revoked
credential must not mark its site's address as a guesser.

The address is `controlplane.tokens.client_ip`: REMOTE_ADDR, or behind a trusted proxy
(EDGEFLEET_TRUSTED_PROXIES) the client that proxy saw. The block is held in each worker's memory;
another worker blocks the address at its next unknown secret from it, counting the shared rows.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.accounts.models import TokenFailure
from controlplane.audit.services import record
from controlplane.errors import RateLimited, Unauthorized
from controlplane.tokens import client_ip, throttle_address

_blocked: dict[str, float] = {}  # address -> time.monotonic() at which its block ends


class UnknownSecret(Unauthorized):
    """The secret matches nothing (as opposed to one that is revoked or expired)."""


def _refusal(ends: float) -> RateLimited:
    return RateLimited(
        "too many unknown tokens from this address; retry later",
        retry_after=max(1, math.ceil(ends - time.monotonic())),
    )


def _block_end(ip: str) -> float | None:
    ends = _blocked.get(ip)
    if ends is None:
        return None
    if ends > time.monotonic():
        return ends
    _blocked.pop(ip, None)
    return None


def blocked(ip: str | None) -> bool:
    """Whether this address is blocked for guessing now (its unknown secrets get 429)."""
    return bool(_blocked) and _block_end(throttle_address(ip) or "") is not None


def unknown(kind: str, request) -> None:
    """Count an unknown `kind` secret from the request's address; raise RateLimited while the
    address is blocked or once it has guessed too often (the caller raises its own 401
    otherwise). Call it only after the lookup found nothing. The audit record's source address
    is purged with the others (EDGEFLEET_RETENTION_SOURCE_IP_DAYS)."""
    ip = throttle_address(client_ip(request.META))
    ends = _block_end(ip or "")
    if ends is not None:
        raise _refusal(ends)  # already counted: no row, no record per further guess
    cfg = settings.EDGEFLEET
    window = cfg["TOKEN_FAILURE_WINDOW_S"]
    with transaction.atomic():
        TokenFailure.objects.create(kind=kind, ip=ip)
        since = timezone.now() - timedelta(seconds=window)
        failures = TokenFailure.objects.filter(ip=ip, ts__gte=since).count()
        if failures < cfg["TOKEN_FAILURE_LIMIT"]:
            return
        if failures == cfg["TOKEN_FAILURE_LIMIT"]:
            record(
                "auth.guessing",
                ("token", kind),
                after={"kind": kind, "failures": failures, "window_s": window},
                request=request,
            )
    ends = time.monotonic() + window
    _blocked[ip or ""] = ends
    raise _refusal(ends)


def purge(now=None) -> int:
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.EDGEFLEET["RETENTION_LOGIN_FAILURES_DAYS"])
    deleted, _ = TokenFailure.objects.filter(ts__lt=cutoff).delete()
    return deleted
