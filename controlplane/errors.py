"""Exceptions the service layer raises, and the one mapping from them to HTTP.

The same exception gives the same status and message everywhere: the admin and node APIs answer
`{"detail": message}` (edgefleet/api.py), Django views get a plain error page from
`ServiceErrorMiddleware`. The statuses, chosen once (docs/architecture.md, "Errors"):

- 400 ServiceError: the input has the right shape but breaks a rule (a HIPAA fleet that would
  store content, an unknown section, a malformed multipart body);
- 401 Unauthorized: no, unknown, expired or revoked credentials;
- 403 Forbidden: the caller may see the object but not do this (only where hiding it is pointless,
  e.g. creating a fleet);
- 404 NotFound: missing, or not visible to the caller: the two are never told apart;
- 409 Conflict: the state forbids it now (a name taken, an approval already decided);
- 413 TooLarge, 429 RateLimited (with Retry-After);
- 422: the request does not match the schema (ninja's validation; not raised by services);
- 503 Unavailable (with Retry-After): the database cannot be reached, or the disk under the database
  or the artifacts is full (`unavailable()` recognises these). The transaction rolled back, so
  nothing was half-stored: the caller retries, an agent from its outbox.
"""

from __future__ import annotations

import errno
import logging

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin

from wire.fields import ErrorOut

log = logging.getLogger("edgefleet")


class ServiceError(Exception):
    """`field`, where the rule is about one input, lets a form show the message next to it."""

    status = 400
    code = ""  # a reason of its own (e.g. "phi_refused"); "" is the status's (ERROR_CODES)

    def __init__(self, message: str, *, field: str | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class NotFound(ServiceError):
    """Missing or not permitted: the caller cannot tell the two apart (no existence leak)."""

    status = 404


class Conflict(ServiceError):
    status = 409


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    """Used only where the caller may already see the object but not change it."""

    status = 403


class TooLarge(ServiceError):
    status = 413


class RateLimited(ServiceError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    status = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


DISK_FULL = "the control plane's storage is full; nothing was stored: retry later"


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 for a database that cannot be reached or a full disk (database or artifacts); None
    for any other error (a bug stays a 500, and is logged as one)."""
    retry = int(settings.EDGEFLEET["OVERLOAD_RETRY_AFTER_S"])
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Unavailable(DISK_FULL, retry)
    if isinstance(exc, OperationalError):
        text = f"{exc} {exc.__cause__ or ''}".lower()
        if "disk is full" in text or "no space left" in text or "could not extend" in text:
            return Unavailable(DISK_FULL, retry)
        return Unavailable("the control plane's database is unavailable: retry later", retry)
    return None


# Every admin-API operation declares these (`response={200: X, **ERRORS}`).
ERRORS: dict[int, type[ErrorOut]] = {
    code: ErrorOut for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def error_page(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    """A plain error page with the service's message (dashboard views)."""
    body = render_to_string(
        "error.html", {"status": exc.status, "message": exc.message}, request=request
    )
    response = HttpResponse(body, status=exc.status)
    if isinstance(exc, RateLimited | Unavailable):
        response["Retry-After"] = str(exc.retry_after)
    return response


class ServiceErrorMiddleware(MiddlewareMixin):
    """Turns a ServiceError escaping a Django view into its status and message, never a 500; the
    same for an unreachable database or a full disk (503)."""

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, ServiceError):
            return error_page(request, exc)
        refusal = unavailable(exc)
        if refusal is not None:
            log.error("%s %s: %s (%s)", request.method, request.path, refusal.message, exc)
            return error_page(request, refusal)
        return None
