"""Watches: `GET /api/node/v1/desired-state?wait=N`, held until something changes for the node.

A node that sends its current ETag and `wait=N` (seconds, at most EDGEFLEET_WATCH_MAX_S) is held
until its desired state changes (200 with the new document), one of its approval requests is
decided (304 with `X-Watch-Event: approval` and `X-Approval-Id`), its credential is revoked (the
full node API answers: 401 saying why), or the wait ends (304), as Consul's blocking queries do.
Every answer to a watch carries `X-Watch: 1`: a node that gets a 304 without it is talking to a
server that does not hold watches (WSGI, an old version, a full process) and polls instead.

Served under ASGI (edgefleet/asgi.py routes the path here; any poll this module does not
answer goes to Django's full handler). Each server process keeps one `Hub`: the watches it holds,
by node and by fleet, and one subscription to the channel layer group `node-watch`
(controlplane/events.py), so a change committed by any process (Redis between processes) wakes
the watches of every process. A wake-up names a fleet and its changed nodes; the hub checks the
watches concerned in one query and composes their documents with one context per fleet
(desired_state.documents), in a worker thread. Every WATCH_SWEEP_S it also re-checks every held
watch the same way (a missed wake-up, or no channel layer between processes, costs at most that
long) and records them as contacts: a held watch counts as contact for the node's status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

from asgiref.sync import sync_to_async
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections

from controlplane import tokens
from controlplane.accounts import guesses
from controlplane.events import WATCH_GROUP
from controlplane.middleware import request_id
from controlplane.nodeapi import contacts, poll
from controlplane.nodeapi.ratelimit import buckets
from controlplane.nodes import desired_state
from controlplane.nodes.models import ApprovalStatus, ToolApproval
from wire import fields

log = logging.getLogger(__name__)

GROUP_RENEW_S = 3600  # channel-layer group membership expires (channels_redis: after a day)
KNOWN_S = 10.0  # how long an admitted credential is trusted without a query (Hub.known)


@dataclass(eq=False, slots=True)
class Watch:
    target: poll.PollTarget
    token_hash: str
    etag: str  # the If-None-Match the node sent
    ip: str | None
    woken: asyncio.Future
    contact_at: float = 0.0  # time.monotonic() of the last contact recorded for it

    def wake(self, result: tuple) -> None:
        if not self.woken.done():
            self.woken.set_result(result)


def _changes(
    watching: list[tuple[str, UUID, str, str | None]],
    contact: Sequence[tuple[UUID, str | None]] = (),
    credentials: bool = True,
) -> tuple[set[str], dict]:
    """For (token hash, node id, ETag sent, address) of held watches: the hashes no longer valid
    (checked with `credentials` only), and node id -> (ETag, body, interval, target) of the nodes
    whose document changed. Records the `contact` ones (node id, address) as contacts."""
    try:
        for node_id, ip in contact:
            contacts.record(node_id, ip)
        refused: set[str] = set()
        if credentials:
            targets = poll.poll_targets(list({h for h, _, _, _ in watching}))
            refused = {h for h, _, _, _ in watching if h not in targets}
        sent = {n: etag for h, n, etag, _ in watching if h not in refused}
        documents = {}
        encoded: dict[int, str] = {}  # sections shared between nodes, encoded once
        for node_id, revision, etag, like, sections in desired_state.documents(sent):
            if etag == sent[node_id]:
                continue
            if id(sections) not in encoded:
                encoded[id(sections)] = json.dumps(sections, cls=DjangoJSONEncoder)[1:]
            interval = poll.next_poll_interval(like.poll_interval_s)
            head = json.dumps(
                {
                    "node_id": str(node_id),
                    "revision": revision,
                    "poll_interval_s": math.ceil(interval),
                }
            )
            body = (head[:-1] + ", " + encoded[id(sections)]).encode()
            digest = etag.strip('"').partition("-")[2]  # what an ETag carries of the digest
            target = poll.PollTarget(
                node_id, like.fleet_id, revision, digest, like.fleet.poll_interval_s
            )
            documents[node_id] = (etag, body, interval, target)
        return refused, documents
    finally:
        close_old_connections()


def _discard(index: dict[Any, set[Watch]], key: Any, watch: Watch) -> None:
    held = index.get(key)
    if held is not None:
        held.discard(watch)
        if not held:
            del index[key]


class Hub:
    """The watches one server process holds, and the subscription that wakes them."""

    def __init__(self) -> None:
        self.watches: set[Watch] = set()
        self.by_node: dict[UUID, set[Watch]] = {}
        self.by_fleet: dict[int, set[Watch]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: list[asyncio.Task] = []
        self.channel = ""
        self.joined_at = 0.0
        self.layer: Any = None  # the channel layer this process's loop listens on
        self.waking: set[asyncio.Task] = set()  # wake-ups being handled (kept referenced)
        # token hash -> (until, the target a watch of it was admitted with): a node that comes
        # back at once (after an answer) is admitted without a thread hop or a query. Until at
        # most KNOWN_S later: revocation drops the entry (its wake-up), the sweep re-checks
        # every held watch's credential, and expiry is seen within KNOWN_S.
        self.known: dict[str, tuple[float, poll.PollTarget]] = {}

    def admit(self, token_hash: str, if_none_match: str, ip: str | None):
        """A known credential's target when its ETag is current, the address is not blocked and
        the node is within its rate (recording the contact), as poll.admitted would; else None."""
        entry = self.known.get(token_hash)
        if entry is None or entry[0] < time.monotonic() or entry[1].etag not in if_none_match:
            return None
        target = entry[1]
        if guesses.blocked(ip) or buckets().take(target.node_id):
            return None
        contacts.record(target.node_id, ip)  # buffered: `remember` is off where it writes at once
        return target

    def remember(self, token_hash: str, target: poll.PollTarget) -> None:
        if settings.EDGEFLEET["CONTACT_FLUSH_S"] <= 0:
            return  # contacts are written in the request: not on the event loop
        if len(self.known) > 2 * settings.EDGEFLEET["MAX_WATCHES"]:
            self.known.clear()  # bounded; forgetting costs one query per node
        self.known[token_hash] = (time.monotonic() + KNOWN_S, target)

    def full(self) -> bool:
        return len(self.watches) >= settings.EDGEFLEET["MAX_WATCHES"]

    def add(self, watch: Watch) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # first watch of this process (or of a new loop, in tests)
            self.loop = loop
            self.tasks = [
                loop.create_task(self.listen(self.channel)),
                loop.create_task(self.sweep()),
            ]
            self.channel = ""
        self.watches.add(watch)
        self.by_node.setdefault(watch.target.node_id, set()).add(watch)
        self.by_fleet.setdefault(watch.target.fleet_id, set()).add(watch)

    def remove(self, watch: Watch) -> None:
        self.watches.discard(watch)
        _discard(self.by_node, watch.target.node_id, watch)
        _discard(self.by_fleet, watch.target.fleet_id, watch)

    async def join(self) -> None:
        layer = self.layer
        if layer is None:
            return
        if not self.channel:
            self.channel = await layer.new_channel()
        await layer.group_add(WATCH_GROUP, self.channel)
        self.joined_at = time.monotonic()

    async def listen(self, previous: str = "") -> None:
        layer = get_channel_layer()
        if previous and layer is not None:  # the channel of a loop that is gone (tests)
            await layer.group_discard(WATCH_GROUP, previous)
        if layer is not None and type(layer).__module__.startswith("channels_redis"):
            # Its own instance, bound to this loop (channels_redis's receive locks are per
            # instance); publishers keep the shared one. The in-memory layer must be shared.
            layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        self.layer = layer
        while True:
            try:
                await self.join()
                if layer is None:
                    return
                while True:
                    message = await layer.receive(self.channel)
                    # Its own task: an approval's wake-up does not wait behind a fleet's check.
                    task = asyncio.get_running_loop().create_task(
                        self.wake(message.get("payload") or {})
                    )
                    self.waking.add(task)
                    task.add_done_callback(self.waking.discard)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the sweep covers the gap; join again shortly
                log.warning("node watches: channel layer unavailable", exc_info=True)
                self.channel = ""
                await asyncio.sleep(1)

    async def wake(self, payload: dict[str, Any]) -> None:
        event, nodes = payload.get("event"), payload.get("nodes")
        if nodes is None:
            held = list(self.by_fleet.get(payload.get("fleet", 0), ()))
        else:
            held = [w for n in nodes for w in self.by_node.get(UUID(str(n)), ())]
        if event == "watch.desired":  # credentials are checked by the sweep and on revocation
            await self.check(held, credentials=False)
        elif event == "watch.approval":
            for w in held:
                w.wake(("approval", payload.get("approval")))
        elif event == "watch.credential":
            gone = {str(n) for n in nodes or ()}
            for h in [h for h, (_, t) in self.known.items() if str(t.node_id) in gone]:
                del self.known[h]
            for w in held:
                w.wake(("recheck",))

    async def check(self, held: list[Watch], contact: bool = False, credentials=True) -> None:
        held = [w for w in held if not w.woken.done()]
        if not held:
            return
        watching = [(w.token_hash, w.target.node_id, w.etag, w.ip) for w in held]
        # A contact per poll interval keeps a node online (within 2); a watch records one when it
        # starts, and the sweep one for each interval it is held (when waits exceed intervals).
        now = time.monotonic()
        due = [w for w in held if contact and now - w.contact_at >= w.target.poll_interval_s]
        for w in due:
            w.contact_at = now
        try:
            refused, documents = await sync_to_async(_changes, thread_sensitive=False)(
                watching, [(w.target.node_id, w.ip) for w in due], credentials
            )
        except DatabaseError:
            log.warning("node watches: could not check %d watches", len(held), exc_info=True)
            return
        for w in held:
            if w.token_hash in refused:
                self.known.pop(w.token_hash, None)
                w.wake(("recheck",))
            elif (doc := documents.get(w.target.node_id)) and doc[0] != w.etag:
                if w.token_hash in self.known:  # the node comes back with this ETag at once
                    self.known[w.token_hash] = (self.known[w.token_hash][0], doc[3])
                w.wake(("document", *doc[:3]))

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(settings.EDGEFLEET["WATCH_SWEEP_S"])
            try:
                await self.check(list(self.watches), contact=True)
                if time.monotonic() - self.joined_at > GROUP_RENEW_S:
                    await self.join()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("node watches: sweep failed", exc_info=True)


HUB = Hub()


def _body(doc: dict[str, Any], base_interval: int) -> tuple[bytes, float]:
    interval = poll.next_poll_interval(base_interval)
    doc["poll_interval_s"] = math.ceil(interval)
    return json.dumps(doc, cls=DjangoJSONEncoder).encode(), interval


def _admitted(authorization: str, if_none_match: str, ip: str | None, approval: int = 0):
    """(target, None) for a 304; (target, (ETag, body, interval)) for a changed document;
    (target, "approval") when the node's `approval` is already decided; None where the full node
    API answers (a refusal, a rate limit, a database error: 503). Composing the document here,
    on this module's bounded threads, keeps a burst of nodes with old ETags from each taking a
    Django request thread and a database connection at once."""
    try:
        target = poll.admitted(authorization, ip)
        if target is None:
            return None
        if if_none_match and target.etag in if_none_match:
            decided = (
                approval
                and ToolApproval.objects.filter(pk=approval, node_id=target.node_id)
                .exclude(decision=ApprovalStatus.PENDING)
                .exists()
            )
            return target, "approval" if decided else None
        node = desired_state.for_document(target.node_id)
        body, interval = _body(desired_state.document(node), node.poll_interval_s)
        return target, (node.etag, body, interval)
    except DatabaseError:
        return None
    finally:
        close_old_connections()


WAIT_LIMIT = 3600  # the schema's bound (node_api.py); longer than WATCH_MAX_S is shortened to it


def _wait(values: list[str]) -> float | str:
    """The wait asked for, in seconds (at most WATCH_MAX_S), or the message of a 422."""
    value = values[-1] if values else ""
    if not (value.isascii() and value.isdigit() and int(value) <= WAIT_LIMIT):
        return f"wait must be a whole number of seconds from 0 to {WAIT_LIMIT}"
    return float(min(int(value), settings.EDGEFLEET["WATCH_MAX_S"]))


async def _respond(send, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
    if body:
        headers = [*headers, ("Content-Length", str(len(body)))]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


# Requests this module hands to Django at once per process (each takes a thread and a database
# connection from a pool of DB_POOL_MAX): a burst of refusals queues here instead.
DJANGO_AT_ONCE = 8
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _bounded(app):
    async def bounded(scope, receive, send):
        loop = asyncio.get_running_loop()
        if loop not in _slots:
            _slots.clear()  # one loop per server process; a new one in tests
            _slots[loop] = asyncio.Semaphore(DJANGO_AT_ONCE)
        async with _slots[loop]:
            await app(scope, receive, send)

    return bounded


async def serve(scope, receive, send, django) -> None:
    """The desired-state path under ASGI: a 304 answered here, a watch held here; anything else
    (a refusal, a changed document at once, another method) by `django`, the full handler."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    rid = request_id(headers.get("x-request-id", ""))
    wait_s: float | str = 0.0
    # `approval`: the id of an approval the node waits for; decided already, the watch ends at once
    # (a decision between two watches would otherwise wait for the next one to end).
    approval = (query.get("approval") or ["0"])[-1]
    valid = approval.isascii() and approval.isdigit() and len(approval) <= 18  # a bigint
    problem = "" if valid else "approval must be an id"
    if "wait" in query:
        wait_s = _wait(query["wait"])
        problem = wait_s if isinstance(wait_s, str) else problem
    if problem:
        body = json.dumps(fields.error_body(422, problem)).encode()
        json_headers = [("Content-Type", "application/json"), ("X-Request-ID", rid)]
        await _respond(send, 422, json_headers, body)
        return
    watching = bool(wait_s) and scope["method"] == "GET" and not HUB.full()
    django = _bounded(_marked(django) if watching else django)
    if scope["method"] != "GET":
        await django(scope, receive, send)
        return
    ip = tokens.client_ip(tokens.scope_meta(scope))  # behind a trusted proxy: its client
    authorization = headers.get("authorization", "")
    if_none_match = headers.get("if-none-match", "")
    token_hash = tokens.hash_token(authorization[7:].strip())
    target = HUB.admit(token_hash, if_none_match, ip) if watching and approval == "0" else None
    changed = None
    if target is None:
        admitted = await sync_to_async(_admitted, thread_sensitive=False)(
            authorization, if_none_match, ip, int(approval)
        )
        if admitted is None:
            await django(scope, receive, send)
            return
        target, changed = admitted
        if watching:
            HUB.remember(token_hash, target)
    if changed == "approval" and watching:
        answer = [*poll.not_modified_headers(target, rid), ("X-Watch", "1")]
        await _respond(send, 304, [*answer, *_approval_event(approval)])
    elif isinstance(changed, tuple):
        await _document(send, changed, rid, watching)
    elif not watching:
        await _respond(send, 304, poll.not_modified_headers(target, rid))
    else:
        await hold(scope, receive, send, django, target, token_hash, ip, rid, float(wait_s))


async def _document(send, changed: tuple[str, bytes, float], rid: str, watching: bool) -> None:
    etag, body, interval = changed
    headers = [("Content-Type", "application/json"), *poll.answer_headers(etag, interval, rid)]
    await _respond(send, 200, [*headers, ("X-Watch", "1")] if watching else headers, body)


def _approval_event(approval) -> list[tuple[str, str]]:
    return [("X-Watch-Event", "approval"), ("X-Approval-Id", str(approval))]


def _marked(app):
    """`app` with `X-Watch: 1` added to its answer: this server holds watches."""

    async def marked(scope, receive, send):
        async def send_marked(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-watch", b"1")]}
            await send(message)

        await app(scope, receive, send_marked)

    return marked


async def hold(scope, receive, send, django, target, token_hash, ip, rid, wait_s: float) -> None:
    first = await receive()  # the (empty) body of the GET
    watch = Watch(
        target=target,
        token_hash=token_hash,
        etag=target.etag,
        ip=ip,
        woken=asyncio.get_running_loop().create_future(),
        contact_at=time.monotonic(),  # poll.admitted recorded one
    )
    HUB.add(watch)
    gone = asyncio.ensure_future(_until_disconnect(receive))
    try:
        # Up to 1/16 more, as Consul does: watches that began together do not all end together.
        await asyncio.wait(
            {watch.woken, gone},
            timeout=wait_s * random.uniform(1, 1.0625),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        HUB.remove(watch)
    if gone.done():
        return  # the node hung up; nothing to answer
    gone.cancel()
    result = watch.woken.result() if watch.woken.done() else None
    answer = [*poll.not_modified_headers(target, rid), ("X-Watch", "1")]
    if result is None:
        await _respond(send, 304, answer)
    elif result[0] == "approval":
        await _respond(send, 304, [*answer, *_approval_event(result[1])])
    elif result[0] == "document":
        await _document(send, result[1:], rid, True)
    else:  # the credential may have been revoked: the full node API says so, or answers anew
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await django(scope, replay, send)
