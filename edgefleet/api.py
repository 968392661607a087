"""The ninja API root: the node API (/api/node/v1/) and the admin API (/api/v1/)."""

from __future__ import annotations

import logging
import re

from django.core.exceptions import BadRequest
from django.db import OperationalError
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer, SessionAuth

from controlplane import tokens
from controlplane.accounts import guesses
from controlplane.accounts.api import router as accounts_router
from controlplane.accounts.queries import token_holder
from controlplane.approvals.api import router as approvals_router
from controlplane.compliance.api import router as audit_router
from controlplane.errors import RateLimited, ServiceError, Unauthorized, Unavailable, unavailable
from controlplane.nodeapi.api import router as node_router
from controlplane.nodes.api import router as fleet_router
from controlplane.registry.api import router as registry_router
from controlplane.relay.api import router as relay_router
from controlplane.rollouts.api import router as rollouts_router
from wire.fields import error_body

log = logging.getLogger("edgefleet")


class PersonalTokenAuth(HttpBearer):
    """`Authorization: Bearer efp_…` for automation; the token's role and fleets narrow its user."""

    openapi_description = "Personal API token (prefix efp_)."

    def authenticate(self, request: HttpRequest, token: str):
        # Looked up first: a live token is accepted even from an address blocked for guessing.
        if not token.startswith(tokens.PERSONAL_PREFIX):
            guesses.unknown("API token", request)
            raise Unauthorized("missing or malformed API token")
        pt, user = token_holder(tokens.hash_token(token))
        if pt is None:
            guesses.unknown("API token", request)
        if user is None:
            raise Unauthorized("unknown, expired or revoked API token")
        request.user = user
        return user


def _install_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ServiceError)
    def service_error(request, exc: ServiceError):
        body = error_body(exc.status, exc.message, exc.code)
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
        return api.create_response(request, error_body(401, "authentication required"), status=401)

    @api.exception_handler(ValidationError)
    def validation_error(request, exc: ValidationError):
        return api.create_response(request, error_body(422, exc.errors), status=422)

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        status = exc.status_code
        return api.create_response(request, error_body(status, str(exc)), status=status)

    @api.exception_handler(MultiPartParserError)
    def malformed_multipart(request, exc: MultiPartParserError):
        detail = f"malformed multipart body: {exc}"
        return api.create_response(request, error_body(400, detail, "malformed_body"), status=400)

    @api.exception_handler(BadRequest)
    def bad_request(request, exc: BadRequest):
        body = error_body(400, f"bad request: {exc}", "malformed_body")
        return api.create_response(request, body, status=400)


# Swagger UI, vendored (no CDN); no validator badge, which would load an image from
# validator.swagger.io (the Content-Security-Policy blocks it anyway).
DOCS = Swagger(settings={"validatorUrl": None})

node_api = NinjaAPI(
    docs=DOCS,
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
    docs=DOCS,
    title="edgefleet admin API",
    version="1",
    urls_namespace="admin-api",
    auth=[PersonalTokenAuth(), SessionAuth()],
    description=(
        "Fleets, nodes, enrollment tokens, desired state. Session or personal API token auth."
    ),
)
admin_api.add_router("/", fleet_router)
admin_api.add_router("/", relay_router)
admin_api.add_router("/", approvals_router)
admin_api.add_router("/", rollouts_router)
admin_api.add_router("/", accounts_router)
admin_api.add_router("/", audit_router)
admin_api.add_router("/", registry_router)
_install_handlers(admin_api)


def _query_names() -> dict[tuple[str, str], frozenset[str]]:
    """(OpenAPI path, method) -> the query parameters it declares, for both APIs."""
    names: dict[tuple[str, str], frozenset[str]] = {}
    for api in (node_api, admin_api):
        for path, item in api.get_openapi_schema()["paths"].items():
            for method, op in item.items():
                params = op.get("parameters", [])
                declared = frozenset(p["name"] for p in params if p.get("in") == "query")
                names[(path, method.upper())] = declared
    return names


QUERY_NAMES: dict[tuple[str, str], frozenset[str]] = {}
DJANGO_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


class ApiContractMiddleware:
    """What ninja leaves to Django, held to the APIs' contract (docs/architecture.md, "Errors"):

    - a query parameter an operation does not declare is a 422 naming it, as a wrongly typed one
      is: `?limt=5` is a typo to report, not a filter to drop silently;
    - Django's own 404 (no such path) and 405 (no such method) under /api/ are JSON with a code,
      like every other error of the APIs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and request.META.get("QUERY_STRING"):
            refusal = _unknown_query(request)
            if refusal is not None:
                return refusal
        response = self.get_response(request)
        if (
            request.path.startswith("/api/")
            and response.status_code in (404, 405)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            status = response.status_code
            detail = "no such API path" if status == 404 else f"{request.method} is not allowed"
            json_response = JsonResponse(error_body(status, detail), status=status)
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response


def _unknown_query(request) -> JsonResponse | None:
    """The 422 for query parameters the operation does not declare, or None. Only requests with a
    query string pay for it (one URL resolution): not a `process_view`, which Django would run
    on a thread of its own for every request under ASGI."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    if not QUERY_NAMES:
        QUERY_NAMES.update(_query_names())
    path = "/" + DJANGO_PARAM.sub(r"{\1}", match.route)
    declared = QUERY_NAMES.get((path, request.method or ""))
    if declared is None:  # not an operation (the OpenAPI document, the docs page)
        return None
    unknown = sorted(set(request.GET) - declared)
    if not unknown:
        return None
    errors = [
        {"type": "unknown_parameter", "loc": ["query", name], "msg": "unknown query parameter"}
        for name in unknown
    ]
    return JsonResponse(error_body(422, errors), status=422)
