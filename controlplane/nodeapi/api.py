"""The node API (/api/node/v1/): what edge nodes call. Handlers stay thin; services do the work."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import Query, Router, Status
from ninja.security import HttpBearer

from controlplane import signing, tokens
from controlplane.accounts import guesses
from controlplane.approvals import services as approvals_services
from controlplane.errors import NotFound, RateLimited, TooLarge, Unauthorized
from controlplane.nodeapi import contacts, poll, watch
from controlplane.nodeapi.ratelimit import buckets
from controlplane.nodes import desired_state, secrets, services
from controlplane.nodes.models import NodeCredential, ToolApproval
from controlplane.registry import artifacts
from controlplane.registry.models import RouterArtifact
from wire import fields, schemas

router = Router(tags=["node"])


class NodeAuth(HttpBearer):
    """`Authorization: Bearer efn_…`: one indexed query; revocation counts from the next request."""

    openapi_description = "Node credential from enrollment (prefix efn_)."

    def authenticate(self, request: HttpRequest, token: str):
        cred = usable_credential(token, request)
        limit_rate(cred.node_id)
        contacts.record(cred.node_id, _client_ip(request))
        request.node_credential = cred  # type: ignore[attr-defined]
        return cred.node


class NodePollAuth(NodeAuth):
    """The same credential, checked in one read (poll.py); the contact is buffered (contacts.py)."""

    def authenticate(self, request: HttpRequest, token: str):
        target = None
        if token.startswith(tokens.NODE_PREFIX) and len(token) <= 200:
            target = poll.poll_target(tokens.hash_token(token))
        if target is None:
            usable_credential(token, request)  # raises with the reason
            raise Unauthorized("node credential refused")  # raced with a rotation or revocation
        limit_rate(target.node_id)
        contacts.record(target.node_id, _client_ip(request))
        return target


def usable_credential(token: str, request) -> NodeCredential:
    """Look the credential up; raise Unauthorized saying why it is not usable, else return it.
    An unknown one from an address that guessed too many (accounts/guesses.py) gets 429; a live
    one is accepted from there too."""
    if not token.startswith(tokens.NODE_PREFIX) or len(token) > 200:
        guesses.unknown("node credential", request)
        raise Unauthorized("missing or malformed node credential")
    cred = (
        NodeCredential.objects.select_related("node__fleet")
        .filter(token_hash=tokens.hash_token(token))
        .first()
    )
    if cred is None:
        guesses.unknown("node credential", request)
        raise Unauthorized("unknown node credential")
    if cred.revoked_at is not None:
        raise Unauthorized("node credential has been revoked", code="credential_revoked")
    if cred.expires_at is not None and cred.expires_at <= timezone.now():
        raise Unauthorized(
            "node credential has expired; rotate before the overlap window ends",
            code="credential_expired",
        )
    return cred


def limit_rate(node_id) -> None:
    wait = buckets().take(node_id)
    if wait:
        raise RateLimited("too many requests from this node", retry_after=max(1, math.ceil(wait)))


def _client_ip(request: HttpRequest) -> str | None:
    return tokens.client_ip(request.META)


ERRORS = {
    400: fields.ErrorOut,
    401: fields.ErrorOut,
    413: fields.ErrorOut,
    422: fields.ErrorOut,
    429: fields.ErrorOut,
    503: fields.ErrorOut,
}


@router.post(
    "/enroll",
    auth=None,
    response={201: schemas.EnrollOut, 409: fields.ErrorOut, **ERRORS},
)
def enroll(request, payload: schemas.EnrollIn):
    """Trade an enrollment token and hardware for a node id and a credential (shown once)."""
    try:
        node, credential = services.do_enroll_node(payload, request=request)
    except guesses.UnknownSecret:
        guesses.unknown("enrollment token", request)  # after the service's rollback
        raise
    return Status(
        201,
        schemas.EnrollOut(
            node_id=str(node.pk),
            fleet=node.fleet.slug,
            credential=credential,
            poll_interval_s=node.poll_interval_s,
            signing_key=signing.public_pem(),
        ),
    )


@router.get("/signing-key", auth=NodeAuth(), response={200: schemas.SigningKeyOut, **ERRORS})
def signing_key(request):
    """The control plane's public key, for nodes enrolled before it was handed out at enrollment."""
    return schemas.SigningKeyOut(key_id=signing.key_id(), public_key=signing.public_pem())


@router.get(
    "/secrets/{name}",
    auth=NodeAuth(),
    response={200: schemas.SecretValueOut, 404: fields.ErrorOut, **ERRORS},
)
def secret(request, response: HttpResponse, name: str):
    """A fleet secret this node's desired state names (the API key of its local OpenAI-compatible
    server); 404 for any other name. Not to be cached or logged on the way."""
    response["Cache-Control"] = "no-store"
    return schemas.SecretValueOut(value=secrets.reveal(request.auth, name))


@router.get(
    "/artifacts/{sha256}",
    auth=NodeAuth(),
    response={200: None, 206: None, 404: fields.ErrorOut, 416: fields.ErrorOut, **ERRORS},
)
def download_artifact(request, sha256: str):
    """A model file from the registry, by sha256. Send `Range: bytes=N-` to resume a download:
    the answer is 206 with the rest of the file (416 if N is past its end)."""
    return artifacts.serve(request, sha256)


@router.get(
    "/routers/{sha256}",
    auth=NodeAuth(),
    response={200: None, 404: fields.ErrorOut, **ERRORS},
)
def download_router(request, sha256: str):
    """A registered router (canonical JSON) by sha256; `X-Signature` is the control plane's
    Ed25519 signature of the body, which the node checks with its pinned key."""
    router_ = RouterArtifact.objects.filter(sha256=sha256).first()
    if router_ is None:
        raise NotFound(f"no router with sha256 {sha256[:64]}")
    response = HttpResponse(bytes(router_.content), content_type="application/json")
    response["X-Signature"] = router_.signature
    return response


@router.get(
    "/desired-state", auth=NodePollAuth(), response={200: schemas.DesiredState, 304: None, **ERRORS}
)
def get_desired_state(
    request,
    wait: int = Query(0, ge=0, le=watch.WAIT_LIMIT),
    approval: int = Query(0, ge=0, le=10**18 - 1),
):
    """The node's desired-state document. Send `If-None-Match` with the last ETag: an unchanged
    document is a 304 without a body, answered with one indexed read and without composing the
    document. `X-Poll-Interval` (seconds, jittered) says when to poll next.

    `wait` (seconds; longer than the server's EDGEFLEET_WATCH_MAX_S is shortened to it) makes it
    a watch: with the current ETag the request is held until the document changes (200), one of
    the node's approvals is decided (304 with `X-Watch-Event: approval`), its credential is
    revoked (401) or the wait ends (304). With `approval` (the id of one of its approvals) it
    ends at once if that approval is already decided. A server that holds watches (ASGI) marks
    every answer to one with `X-Watch: 1`; one that does not answers at once, as to a poll."""
    target: poll.PollTarget = request.auth
    interval = poll.next_poll_interval(target.poll_interval_s)
    etag = target.etag
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        node = desired_state.for_document(target.node_id)
        doc = desired_state.document(node)
        doc["poll_interval_s"] = math.ceil(interval)
        etag = node.etag
        response = JsonResponse(doc)
    response["ETag"] = etag
    response["X-Poll-Interval"] = str(interval)
    response["Cache-Control"] = "no-cache"
    return response


@router.post("/reported-state", auth=NodeAuth(), response={200: schemas.ReportedStateOut, **ERRORS})
def report_state(request, payload: schemas.ReportedStateIn):
    """What the node runs now: applied revision, loaded model digest, health, errors."""
    node = request.auth
    services.do_report_state(node, payload, request=request)
    return schemas.ReportedStateOut(desired_revision=node.desired_revision, in_sync=node.in_sync)


def _check_batch(size: int) -> None:
    limit = settings.EDGEFLEET["NODE_MAX_BATCH"]
    if size > limit:
        raise TooLarge(f"batch of {size} items exceeds the limit of {limit}; send smaller batches")


@router.post("/metrics", auth=NodeAuth(), response={200: schemas.AckOut, **ERRORS})
def post_metrics(request, payload: schemas.MetricBatchIn):
    """Metric samples, idempotent per (node, seq); the node may drop those up to `acked_seq`."""
    _check_batch(len(payload.samples))
    node = request.auth
    return services.do_ingest_metrics(node, payload)


@router.post("/events", auth=NodeAuth(), response={200: schemas.AckOut, **ERRORS})
def post_events(request, payload: schemas.EventBatchIn):
    """A batch of edge events (tool calls, escalations, model swaps). Idempotent per (node, seq)."""
    _check_batch(len(payload.events))
    node = request.auth
    return services.do_ingest_events(node, payload, request=request)


@router.post("/credentials/rotate", auth=NodeAuth(), response={200: schemas.RotateOut, **ERRORS})
def rotate_credential(request):
    """Issue a new credential (shown once); the one used here stays valid for the overlap window."""
    node = request.auth
    credential, valid_until = services.do_rotate_node_credential(
        node, request.node_credential, request=request
    )
    return schemas.RotateOut(credential=credential, old_credential_valid_until=valid_until)


def _approval_out(a) -> schemas.ApprovalOut:
    return schemas.ApprovalOut(
        id=a.pk,
        tool=a.tool,
        agent=a.agent,
        arguments=a.arguments,
        status=a.status,
        expires_at=a.expires_at,
        decided_by=a.decided_by.username if a.decided_by else "",
    )


@router.post("/approvals", auth=NodeAuth(), response={201: schemas.ApprovalOut, **ERRORS})
def request_approval(request, payload: schemas.ApprovalIn):
    """Ask an operator to approve a tool call. Poll `GET approvals/{id}`; expiry means deny."""
    return Status(
        201,
        _approval_out(
            approvals_services.do_request_approval(request.auth, payload, request=request)
        ),
    )


@router.get(
    "/approvals/{approval_id}",
    auth=NodeAuth(),
    response={200: schemas.ApprovalOut, 404: fields.ErrorOut, **ERRORS},
)
def get_approval(request, approval_id: int):
    approval = (
        ToolApproval.objects.select_related("decided_by")
        .filter(pk=approval_id, node=request.auth)
        .first()
    )
    if approval is None:
        raise NotFound(f"approval {approval_id} not found")
    return _approval_out(approval)
