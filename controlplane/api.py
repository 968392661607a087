"""The ninja API root: the node API (/api/node/v1/) and the admin API (/api/v1/)."""

from __future__ import annotations

import logging

from django.core.exceptions import BadRequest
from django.db import OperationalError
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from controlplane import tokens
from controlplane.accounts import guesses
from controlplane.accounts.api import router as accounts_router
from controlplane.accounts.models import PersonalToken
from controlplane.audit.api import router as audit_router
from controlplane.errors import RateLimited, ServiceError, Unauthorized, Unavailable, unavailable
from edgenodes.api import router as fleet_router
from edgenodes.node_api import router as node_router
from edgenodes.registry.api import router as registry_router

log = logging.getLogger("edgefleet")


class PersonalTokenAuth(HttpBearer):
    """`Authorization: Bearer efp_…` for automation; the token's role and fleets narrow its user."""

    openapi_description = "Personal API token (prefix efp_)."

    def authenticate(self, request: HttpRequest, token: str):
        guesses.refuse_if_blocked(request)
        if not token.startswith(tokens.PERSONAL_PREFIX):
            guesses.unknown("API token", request)
            raise Unauthorized("missing or malformed API token")
        pt = (
            PersonalToken.objects.select_related("user")
            .prefetch_related("fleets")
            .filter(token_hash=tokens.hash_token(token))
            .first()
        )
        if pt is None:
            guesses.unknown("API token", request)
        if pt is None or not pt.is_usable(timezone.now()) or not pt.user.is_active:
            raise Unauthorized("unknown, expired or revoked API token")
        user = pt.user
        user.token_scope = (pt.role, {f.pk for f in pt.fleets.all()})  # type: ignore[attr-defined]
        request.user = user
        return user


def _install_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ServiceError)
    def service_error(request, exc: ServiceError):
        body = {"detail": exc.message}
        code = getattr(exc, "code", "")  # a machine-readable reason (controlplane/errors.py)
        if code:
            body["code"] = code
        response = api.create_response(request, body, status=exc.status)
        if isinstance(exc, RateLimited | Unavailable):
            response["Retry-After"] = str(exc.retry_after)
        return response

    @api.exception_handler(OperationalError)
    @api.exception_handler(OSError)
    def storage_error(request, exc: Exception):
        """An unreachable database or a full disk: 503 + Retry-After (controlplane/errors.py)."""
        refusal = unavailable(exc)
        if refusal is None:
            raise exc
        log.error("%s %s: %s (%s)", request.method, request.path, refusal.message, exc)
        return service_error(request, refusal)

    @api.exception_handler(AuthenticationError)
    def auth_error(request, exc):
        return api.create_response(request, {"detail": "authentication required"}, status=401)

    @api.exception_handler(ValidationError)
    def validation_error(request, exc: ValidationError):
        return api.create_response(request, {"detail": exc.errors}, status=422)

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)

    @api.exception_handler(MultiPartParserError)
    def malformed_multipart(request, exc: MultiPartParserError):
        detail = f"malformed multipart body: {exc}"
        return api.create_response(request, {"detail": detail}, status=400)

    @api.exception_handler(BadRequest)
    def bad_request(request, exc: BadRequest):
        return api.create_response(request, {"detail": f"bad request: {exc}"}, status=400)


node_api = NinjaAPI(
    title="edgefleet node API",
    version="1",
    urls_namespace="node-api",
    description=(
        "What edge nodes call: enroll, poll desired state, report state, send metrics and events."
    ),
)
node_api.add_router("/", node_router)
_install_handlers(node_api)

admin_api = NinjaAPI(
    title="edgefleet admin API",
    version="1",
    urls_namespace="admin-api",
    auth=[PersonalTokenAuth(), SessionAuth()],
    description=(
        "Fleets, nodes, enrollment tokens, desired state. Session or personal API token auth."
    ),
)
admin_api.add_router("/", fleet_router)
admin_api.add_router("/", accounts_router)
admin_api.add_router("/", audit_router)
admin_api.add_router("/", registry_router)
_install_handlers(admin_api)
