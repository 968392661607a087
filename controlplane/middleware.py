"""Guards in front of the node API: request ids, body size, and load shedding.

Both run sync under WSGI and async under ASGI (the dual pattern of Django's docs), so that the
async cloud relay (controlplane/relay/views.py) stays async end to end: a MiddlewareMixin
middleware runs
on a thread under ASGI, twice a request (edgefleet/asgi.py serves the relay behind these two
alone).
"""

from __future__ import annotations

import socket
import struct
import threading
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse

from wire.fields import error_body

NODE_API_PREFIX = "/api/node/"
RELAY_PATH = "/api/node/v1/chat/completions"

# This worker's listening sockets, handed over by edgefleet/gunicorn_conf.py under gunicorn.
LISTENERS: list[socket.socket] = []


def accept_queue() -> int:
    """Connections waiting to be accepted on the listen queue every worker shares: Linux reports
    its length in `tcpi_unacked` of TCP_INFO on a listening socket (one syscall). A sync worker
    holds one request at a time, so this, not its in-flight count, is what shows a stampede.
    0 where unknown (no listener handed over, a UNIX socket, another OS)."""
    queued = 0
    for sock in LISTENERS:
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            queued = max(queued, struct.unpack_from("I", info, 24)[0])
        except (OSError, AttributeError, struct.error):
            pass
    return queued


def queue_full() -> bool:
    """Whether the shared listen queue holds more connections than EDGEFLEET_MAX_QUEUED."""
    return bool(LISTENERS) and accept_queue() >= settings.EDGEFLEET["MAX_QUEUED"]


def request_id(sent: str) -> str:
    """The caller's X-Request-ID when it is sane (1-64 letters, digits, dashes), else a new one."""
    if 0 < len(sent) <= 64 and sent.replace("-", "").isalnum():
        return sent
    return uuid.uuid4().hex


def _request_id(request) -> str:
    rid = request_id(request.META.get("HTTP_X_REQUEST_ID", ""))
    request.META["HTTP_X_REQUEST_ID"] = rid
    return rid


class RequestIdMiddleware:
    """Give every request an id (kept from X-Request-ID when the caller sends a sane one)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        rid = _request_id(request)
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response

    async def __acall__(self, request):
        rid = _request_id(request)
        response = await self.get_response(request)
        response["X-Request-ID"] = rid
        return response


class NodeApiGuardMiddleware:
    """Refuse oversize bodies with 413 before reading them, and shed load with 429 + Retry-After
    when more node-API requests are in flight in this worker than it should hold, or more
    connections wait in the shared listen queue than MAX_QUEUED (a polling stampede). Relayed cloud
    calls (RELAY_PATH) are not counted: they wait on the upstream without holding a worker."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.lock = threading.Lock()
        self.in_flight = 0
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def refuse(self, request) -> tuple[JsonResponse | None, bool]:
        """(a refusal, or None; whether the request now counts as in flight)."""
        if not request.path.startswith(NODE_API_PREFIX):
            return None, False
        cfg = settings.EDGEFLEET
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(error_body(400, "invalid Content-Length header"), status=400), False
        if length > cfg["NODE_MAX_BODY_BYTES"]:
            detail = (
                f"request body of {length} bytes exceeds the limit of "
                f"{cfg['NODE_MAX_BODY_BYTES']} bytes; send smaller batches"
            )
            return JsonResponse(error_body(413, detail), status=413), False
        if request.path == RELAY_PATH:
            return None, False
        full = queue_full()
        with self.lock:
            if self.in_flight >= cfg["MAX_IN_FLIGHT"] or full:
                response = JsonResponse(
                    error_body(429, "control plane is overloaded; retry later"), status=429
                )
                response["Retry-After"] = str(cfg["OVERLOAD_RETRY_AFTER_S"])
                return response, False
            self.in_flight += 1
        return None, True

    def done(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        refusal, counted = self.refuse(request)
        if refusal is not None:
            return refusal
        try:
            return self.get_response(request)
        finally:
            if counted:
                self.done()

    async def __acall__(self, request):
        refusal, counted = self.refuse(request)
        if refusal is not None:
            return refusal
        try:
            return await self.get_response(request)
        finally:
            if counted:
                self.done()


# Features no page of the dashboard uses, switched off for every page (and any script on it)
PERMISSIONS_POLICY = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
    "display-capture=(), interest-cohort=()"
)

# Every script, style sheet, image and font of the dashboard is vendored under dashboard/static/: a
# page may
# load nothing from anywhere else, run no inline script or eval, and apply no inline style (the
# small behaviours are event listeners in dashboard/static/*.js). 'self' in connect-src covers the
# live
# websocket of the same host (ws: and wss:, CSP Level 3). No page may be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
# What is not a page (JSON, CSV, text) runs nothing and shows nothing if a browser opens it.
CONTENT_SECURITY_POLICY_NOT_A_PAGE = "default-src 'none'; frame-ancestors 'none'"


def content_security_policy(response) -> str:
    """The policy for an answer: the dashboard's strict one for HTML, none at all for the rest."""
    if response.get("Content-Type", "").startswith("text/html"):
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY_NOT_A_PAGE


class PrivateAnswersMiddleware:
    """What a signed-in person or a token holder is shown is not kept by the browser or a proxy
    (a clinic's shared computer keeps no node pages, audit rows or approval arguments in its
    cache): `Cache-Control: no-store` unless the view chose a policy of its own. A person counts
    as signed in where the view looked at `request.user` (a page that never does is public).
    Every answer also carries `Permissions-Policy` and `Content-Security-Policy` (the strict one
    of the dashboard on HTML, `default-src 'none'` on the rest), unless the view set its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = request.__dict__.get("_cached_user")
        private = "HTTP_AUTHORIZATION" in request.META or (
            user is not None and user.is_authenticated
        )
        if private and "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = PERMISSIONS_POLICY
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(response)
        return response
