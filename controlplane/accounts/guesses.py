"""Guessing bearer secrets: node credentials, enrollment tokens and personal API tokens.

Every unknown secret presented is recorded (a TokenFailure row: kind, address, time; nothing of the
secret). An address that presented TOKEN_FAILURE_LIMIT unknown secrets within
TOKEN_FAILURE_WINDOW_S is refused with 429 and Retry-After for *every* secret until the window
passes, checked before any lookup, so a guess that happens to be right teaches nothing either.
The block starts with one `auth.guessing` audit record, not one per guess.

Known secrets that are revoked or expired do not count: a node left polling with a revoked
credential must not lock out the other nodes behind its site's address.

The block is held in each worker's memory (a dictionary lookup on the request path); another
worker blocks the address at its next unknown secret from it, counting the shared rows.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.audit.services import record
from controlplane.errors import RateLimited, Unauthorized

from .models import TokenFailure

_blocked: dict[str, float] = {}  # address -> time.monotonic() at which its block ends


class UnknownSecret(Unauthorized):
    """The secret matches nothing (as opposed to one that is revoked or expired)."""


def _refusal(ends: float) -> RateLimited:
    return RateLimited(
        "too many unknown tokens from this address; retry later",
        retry_after=max(1, math.ceil(ends - time.monotonic())),
    )


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _block_end(ip: str) -> float | None:
    ends = _blocked.get(ip)
    if ends is None:
        return None
    if ends > time.monotonic():
        return ends
    _blocked.pop(ip, None)
    return None


def blocked(ip: str | None) -> bool:
    """Whether this address is refused for guessing now (the request path's dictionary lookup)."""
    return bool(_blocked) and _block_end(ip or "") is not None


def refuse_if_blocked(request) -> None:
    ends = _block_end(_ip(request) or "")
    if ends is not None:
        raise _refusal(ends)


def unknown(kind: str, request) -> None:
    """Record an unknown `kind` secret from the request's address; raise RateLimited once the
    address has guessed too often (the caller raises its own 401 otherwise). The audit record's
    source address is purged with the others (EDGEFLEET_RETENTION_SOURCE_IP_DAYS)."""
    ip = _ip(request)
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
