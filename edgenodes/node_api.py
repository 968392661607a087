"""The node API (/api/node/v1/): what edge nodes call. Handlers stay thin; services do the work."""

from __future__ import annotations

import math
import random

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import Router, Status
from ninja.security import HttpBearer

from agents import schemas
from controlplane import tokens
from controlplane.errors import RateLimited, TooLarge, Unauthorized

from . import desired_state, services
from .models import NodeCredential
from .ratelimit import TokenBuckets

router = Router(tags=["node"])
_buckets: TokenBuckets | None = None


def buckets() -> TokenBuckets:
    global _buckets
    rate = int(settings.EDGEFLEET["NODE_RATE_PER_MIN"])
    if _buckets is None or _buckets.rate_per_min != rate:
        _buckets = TokenBuckets(rate)
    return _buckets


class NodeAuth(HttpBearer):
    """`Authorization: Bearer efn_…`. One indexed query; revocation takes effect on the next request."""

    openapi_description = "Node credential from enrollment (prefix efn_)."

    def authenticate(self, request: HttpRequest, token: str):
        if not token.startswith(tokens.NODE_PREFIX) or len(token) > 200:
            raise Unauthorized("missing or malformed node credential")
        cred = (
            NodeCredential.objects.select_related("node__fleet")
            .filter(token_hash=tokens.hash_token(token))
            .first()
        )
        if cred is None:
            raise Unauthorized("unknown node credential")
        if cred.revoked_at is not None:
            raise Unauthorized("node credential has been revoked")
        if cred.expires_at is not None and cred.expires_at <= timezone.now():
            raise Unauthorized("node credential has expired; rotate before the overlap window ends")
        wait = buckets().take(cred.node_id)
        if wait:
            raise RateLimited(
                "too many requests from this node", retry_after=max(1, math.ceil(wait))
            )
        request.node_credential = cred  # type: ignore[attr-defined]
        return cred.node


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def next_poll_interval(base: int) -> float:
    """The interval to hand out, with +/- jitter so a fleet never polls in lockstep."""
    jitter = settings.EDGEFLEET["POLL_JITTER"]
    return round(base * random.uniform(1 - jitter, 1 + jitter), 1)


ERRORS = {
    400: schemas.ErrorOut,
    401: schemas.ErrorOut,
    413: schemas.ErrorOut,
    422: schemas.ErrorOut,
    429: schemas.ErrorOut,
}


@router.post(
    "/enroll",
    auth=None,
    response={201: schemas.EnrollOut, 409: schemas.ErrorOut, **ERRORS},
)
def enroll(request, payload: schemas.EnrollIn):
    """Trade an enrollment token and a hardware profile for a node id and a credential (shown once)."""
    node, credential = services.do_enroll_node(payload, request=request)
    return Status(
        201,
        schemas.EnrollOut(
            node_id=str(node.pk),
            fleet=node.fleet.slug,
            credential=credential,
            poll_interval_s=node.poll_interval_s,
        ),
    )


@router.get(
    "/desired-state", auth=NodeAuth(), response={200: schemas.DesiredState, 304: None, **ERRORS}
)
def get_desired_state(request):
    """The node's desired-state document. Send `If-None-Match` with the last ETag: an unchanged
    document is a 304 without a body, answered without composing the document. `X-Poll-Interval`
    (seconds, jittered) says when to poll next."""
    node = request.auth
    services.touch_node(node, _client_ip(request))
    interval = next_poll_interval(node.poll_interval_s)
    etag = node.etag
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        doc = desired_state.document(node)
        doc["poll_interval_s"] = math.ceil(interval)
        response = JsonResponse(doc)
    response["ETag"] = etag
    response["X-Poll-Interval"] = str(interval)
    response["Cache-Control"] = "no-cache"
    return response


@router.post("/reported-state", auth=NodeAuth(), response={200: schemas.ReportedStateOut, **ERRORS})
def report_state(request, payload: schemas.ReportedStateIn):
    """What the node runs now: applied revision, loaded model digest, health, errors."""
    node = request.auth
    services.touch_node(node, _client_ip(request))
    services.do_report_state(node, payload, request=request)
    return schemas.ReportedStateOut(desired_revision=node.desired_revision, in_sync=node.in_sync)


def _check_batch(size: int) -> None:
    limit = settings.EDGEFLEET["NODE_MAX_BATCH"]
    if size > limit:
        raise TooLarge(f"batch of {size} items exceeds the limit of {limit}; send smaller batches")


@router.post("/metrics", auth=NodeAuth(), response={200: schemas.AckOut, **ERRORS})
def post_metrics(request, payload: schemas.MetricBatchIn):
    """A batch of metric samples. Idempotent per (node, seq); `acked_seq` is what the node may drop."""
    _check_batch(len(payload.samples))
    node = request.auth
    services.touch_node(node, _client_ip(request))
    return services.do_ingest_metrics(node, payload)


@router.post("/events", auth=NodeAuth(), response={200: schemas.AckOut, **ERRORS})
def post_events(request, payload: schemas.EventBatchIn):
    """A batch of edge events (tool calls, escalations, model swaps). Idempotent per (node, seq)."""
    _check_batch(len(payload.events))
    node = request.auth
    services.touch_node(node, _client_ip(request))
    return services.do_ingest_events(node, payload)


@router.post("/credentials/rotate", auth=NodeAuth(), response={200: schemas.RotateOut, **ERRORS})
def rotate_credential(request):
    """Issue a new credential (shown once); the one used for this call stays valid for the overlap window."""
    node = request.auth
    credential, valid_until = services.do_rotate_node_credential(
        node, request.node_credential, request=request
    )
    return schemas.RotateOut(credential=credential, old_credential_valid_until=valid_until)
