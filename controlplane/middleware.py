"""Guards in front of the node API: request ids, body size, and load shedding."""

from __future__ import annotations

import threading
import uuid

from django.conf import settings
from django.http import JsonResponse

NODE_API_PREFIX = "/api/node/"


class RequestIdMiddleware:
    """Give every request an id (kept from X-Request-ID when the caller sends a sane one)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request.META.get("HTTP_X_REQUEST_ID", "")
        if not (0 < len(rid) <= 64 and rid.replace("-", "").isalnum()):
            rid = uuid.uuid4().hex
        request.META["HTTP_X_REQUEST_ID"] = rid
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response


class NodeApiGuardMiddleware:
    """Refuse oversize bodies with 413 before reading them, and shed load with 429 + Retry-After
    when more node-API requests are in flight in this worker than it should hold."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.lock = threading.Lock()
        self.in_flight = 0

    def __call__(self, request):
        if not request.path.startswith(NODE_API_PREFIX):
            return self.get_response(request)
        cfg = settings.EDGEFLEET
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "invalid Content-Length header"}, status=400)
        if length > cfg["NODE_MAX_BODY_BYTES"]:
            return JsonResponse(
                {
                    "detail": f"request body of {length} bytes exceeds the limit of "
                    f"{cfg['NODE_MAX_BODY_BYTES']} bytes; send smaller batches"
                },
                status=413,
            )
        with self.lock:
            if self.in_flight >= cfg["MAX_IN_FLIGHT"]:
                response = JsonResponse(
                    {"detail": "control plane is overloaded; retry later"}, status=429
                )
                response["Retry-After"] = str(cfg["OVERLOAD_RETRY_AFTER_S"])
                return response
            self.in_flight += 1
        try:
            return self.get_response(request)
        finally:
            with self.lock:
                self.in_flight -= 1
