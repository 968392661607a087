"""The desired-state poll's fast paths and the watch (`?wait=N`): WSGI (edgefleet/wsgi.py) and
ASGI (controlplane/nodeapi/watch.py), each against the full node API's answers.

The ASGI tests run the real application in this process's event loop and make their changes
through the services on a worker thread (as an admin's request under the same server would), so
wake-ups travel through the configured channel layer: in memory here, Redis on CI's second leg.
"""

from __future__ import annotations

import asyncio
import time
from io import BytesIO

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane import tokens
from controlplane.approvals import services as approvals_services
from controlplane.nodeapi import contacts, watch
from controlplane.nodes import layers, services
from controlplane.nodes.models import Node
from edgefleet.asgi import application as asgi_application
from edgefleet.wsgi import application as wsgi_application
from wire import schemas

from .conftest import enroll

pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/api/node/v1/desired-state"


# --- WSGI: the 304 before Django ----------------------------------------------------------------


def wsgi_get(credential: str, etag: str = "", query: str = "", ip: str = "127.0.0.1"):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": PATH,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": ip,
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": f"Bearer {credential}",
        "HTTP_IF_NONE_MATCH": etag,
        "wsgi.input": BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": BytesIO(),
    }
    answer = {}

    def start_response(status, headers):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    answer["body"] = b"".join(wsgi_application(environ, start_response))
    return answer


def test_a_current_poll_is_answered_304_with_one_query_before_django(north_node):
    node, credential = north_node
    with CaptureQueriesContext(connection) as queries:
        r = wsgi_get(credential, node.etag)
    assert r["status"] == 304 and r["body"] == b""
    assert r["headers"]["ETag"] == node.etag
    assert float(r["headers"]["X-Poll-Interval"]) > 0 and r["headers"]["X-Request-ID"]
    # A batched write (executemany: contacts another test left pending) is logged without its SQL.
    reads = [q["sql"] for q in queries.captured_queries if (q["sql"] or "").startswith("SELECT")]
    assert len(reads) == 1  # (the tests write each contact at once: CONTACT_FLUSH_S=0)


def test_a_poll_with_an_old_etag_gets_the_document_from_the_full_api(north_node):
    node, credential = north_node
    r = wsgi_get(credential, '"0-old"')
    assert r["status"] == 200 and b'"revision"' in r["body"]


def test_refusals_on_the_fast_path_still_say_why(alice, north_node):
    node, credential = north_node
    services.do_revoke_node(node, actor=alice)
    r = wsgi_get(credential, node.etag)
    assert r["status"] == 401 and b"revoked" in r["body"]
    assert wsgi_get("efn_nonsense", node.etag)["status"] == 401


def test_a_node_over_its_rate_is_refused_on_the_fast_path_too(north_node, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_RATE_PER_MIN": 10}
    node, credential = north_node
    statuses = [wsgi_get(credential, node.etag)["status"] for _ in range(12)]
    assert statuses[0] == 304 and statuses[-1] == 429


def test_a_fast_poll_counts_as_contact(north_node):
    node, credential = north_node
    wsgi_get(credential, node.etag, ip="10.1.2.3")
    contacts.flush()
    node.refresh_from_db()
    assert node.last_seen_at is not None and node.last_seen_ip == "10.1.2.3"


def test_the_wsgi_server_answers_a_watch_at_once_and_without_x_watch(north_node):
    node, credential = north_node
    r = wsgi_get(credential, node.etag, query="wait=30")
    assert r["status"] == 304 and "X-Watch" not in r["headers"]


# --- ASGI: polls and watches --------------------------------------------------------------------


class Call:
    """One request to the ASGI application, which may be held."""

    def __init__(self, credential: str, etag: str = "", query: str = "wait=30"):
        headers = [(b"authorization", f"Bearer {credential}".encode()), (b"host", b"testserver")]
        if etag:
            headers.append((b"if-none-match", etag.encode()))
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": query.encode(),
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.communicator = ApplicationCommunicator(asgi_application, scope)

    async def start(self) -> Call:
        await self.communicator.send_input({"type": "http.request", "body": b""})
        return self

    async def answer(self, timeout: float = 5) -> dict:
        start = await self.communicator.receive_output(timeout)
        body = await self.communicator.receive_output(timeout)
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return {"status": start["status"], "headers": headers, "body": body.get("body", b"")}


async def held(count: int = 1, timeout: float = 5) -> None:
    """Until this process holds `count` watches."""
    deadline = time.monotonic() + timeout
    while len(watch.HUB.watches) < count:
        assert time.monotonic() < deadline, "the watch was not held"
        await asyncio.sleep(0.01)


def run(scenario):
    return async_to_sync(scenario)()


def test_a_current_poll_under_asgi_is_answered_304_without_holding_it(north_node):
    node, credential = north_node

    async def scenario():
        return await (await Call(credential, node.etag, query="").start()).answer()

    r = run(scenario)
    assert r["status"] == 304 and "x-watch" not in r["headers"]
    assert r["headers"]["etag"] == node.etag


def test_an_admin_change_wakes_the_watch_with_the_new_document(alice, north):
    node, credential = enroll(north, "north-1", {"site": "oslo"})
    other, other_credential = enroll(north, "north-2", {"site": "bergen"})

    async def scenario():
        mine = await Call(credential, node.etag).start()
        theirs = await Call(other_credential, other.etag, query="wait=1").start()
        await held(2)
        await sync_to_async(layers.do_put_layer)(
            north,
            actor=alice,
            name="oslo",
            scope="label",
            selector={"site": "oslo"},
            sections={"routing": {"threshold": 0.7}},
        )
        answer = await mine.answer()  # within 5 s: woken, not timed out (it waits up to 30 s)
        return answer, await theirs.answer()

    answer, unaffected = run(scenario)
    assert answer["status"] == 200 and answer["headers"]["x-watch"] == "1"
    document = schemas.DesiredState.model_validate_json(answer["body"])
    assert document.routing["threshold"] == 0.7
    node.refresh_from_db()
    assert answer["headers"]["etag"] == node.etag and document.revision == node.desired_revision
    assert unaffected["status"] == 304 and unaffected["headers"]["x-watch"] == "1"


def test_a_watch_ends_with_304_when_the_wait_passes(north_node):
    node, credential = north_node

    async def scenario():
        return await (await Call(credential, node.etag, query="wait=1").start()).answer()

    r = run(scenario)
    assert r["status"] == 304 and r["headers"]["x-watch"] == "1"
    assert r["headers"]["etag"] == node.etag and not watch.HUB.watches


def test_a_decided_approval_wakes_the_nodes_watch(alice, north_node):
    node, credential = north_node
    approval = approvals_services.do_request_approval(
        node, schemas.ApprovalIn(tool="shell", agent="ops", arguments={})
    )

    async def scenario():
        call = await Call(credential, node.etag).start()
        await held()
        await sync_to_async(approvals_services.do_decide_approval)(
            approval, actor=alice, approve=True
        )
        return await call.answer()

    r = run(scenario)
    assert r["status"] == 304 and r["headers"]["x-watch-event"] == "approval"
    assert r["headers"]["x-approval-id"] == str(approval.pk)


def test_a_revoked_credential_ends_its_watch_with_401_saying_why(alice, north_node):
    node, credential = north_node

    async def scenario():
        call = await Call(credential, node.etag).start()
        await held()
        await sync_to_async(services.do_revoke_node)(node, actor=alice)
        return await call.answer()

    r = run(scenario)
    assert r["status"] == 401 and b"revoked" in r["body"]


def test_a_watch_with_an_old_etag_gets_the_document_at_once(north_node):
    node, credential = north_node

    async def scenario():
        return await (await Call(credential, '"0-old"').start()).answer()

    r = run(scenario)
    assert r["status"] == 200 and r["headers"]["x-watch"] == "1"


def test_a_change_made_without_a_wake_up_is_found_by_the_sweep(north_node, settings):
    """A change from a process that shares no channel layer with this one (no Redis)."""
    settings.EDGEFLEET = {**settings.EDGEFLEET, "WATCH_SWEEP_S": 0.2}
    node, credential = north_node
    watch.HUB.loop = None  # restart the sweep at this interval

    async def scenario():
        call = await Call(credential, node.etag).start()
        await held()
        await sync_to_async(Node.objects.filter(pk=node.pk).update)(
            desired_revision=node.desired_revision + 1
        )
        return await call.answer()

    r = run(scenario)
    assert r["status"] == 200 and r["headers"]["etag"] != node.etag


def test_a_watch_held_longer_than_the_poll_interval_counts_as_contact(north, settings):
    """Held past its node's poll interval (1 s here), a watch is recorded as contact again."""
    settings.EDGEFLEET = {**settings.EDGEFLEET, "WATCH_SWEEP_S": 0.2}
    north.poll_interval_s = 1
    north.save()
    node, credential = enroll(north, "north-1")
    watch.HUB.loop = None

    async def scenario():
        call = await Call(credential, node.etag, query="wait=3").start()
        await held()
        await sync_to_async(contacts.flush)()
        await sync_to_async(Node.objects.filter(pk=node.pk).update)(last_seen_at=None)
        await asyncio.sleep(1.6)
        await sync_to_async(contacts.flush)()
        seen = await sync_to_async(lambda: Node.objects.get(pk=node.pk).last_seen_at)()
        await call.answer()
        return seen

    assert run(scenario) is not None


@pytest.mark.parametrize(
    "wait", ["soon", "-1", "3601", "1.5", "30&approval=x", "30&approval=" + "9" * 40]
)
def test_a_malformed_wait_or_approval_gets_422_with_a_message(north_node, wait):
    node, credential = north_node

    async def scenario():
        return await (await Call(credential, node.etag, query=f"wait={wait}").start()).answer()

    r = run(scenario)
    assert r["status"] == 422 and b" must be " in r["body"]


def test_a_wait_longer_than_the_servers_limit_is_shortened_to_it(north_node, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "WATCH_MAX_S": 1}
    node, credential = north_node

    async def scenario():
        # answered within the 5 s the test waits: the hour asked for was shortened to 1 s
        return await (await Call(credential, node.etag, query="wait=3600").start()).answer()

    r = run(scenario)
    assert r["status"] == 304 and r["headers"]["x-watch"] == "1"


def test_a_process_holding_its_most_watches_answers_a_watch_as_a_poll(north_node, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "MAX_WATCHES": 0}
    node, credential = north_node

    async def scenario():
        return await (await Call(credential, node.etag).start()).answer()

    r = run(scenario)
    assert r["status"] == 304 and "x-watch" not in r["headers"]


def test_a_node_that_hangs_up_leaves_no_watch_behind(north_node):
    node, credential = north_node

    async def scenario():
        call = await Call(credential, node.etag).start()
        await held()
        await call.communicator.send_input({"type": "http.disconnect"})
        for _ in range(100):
            if not watch.HUB.watches:
                return True
            await asyncio.sleep(0.01)
        return False

    assert run(scenario)


def test_many_watches_are_checked_in_one_query_per_fleet(alice, north, settings):
    """A fleet-wide change wakes every watch of the fleet with one credential query and one
    document context, not one round of queries per node."""
    settings.EDGEFLEET = {**settings.EDGEFLEET, "CONTACT_FLUSH_S": 60}  # contacts buffered
    nodes = [enroll(north, f"n-{i}") for i in range(30)]
    watching = [(tokens.hash_token(c), n.pk, n.etag, None) for n, c in nodes]
    Node.objects.filter(fleet=north).update(desired_revision=99)
    with CaptureQueriesContext(connection) as queries:
        refused, documents = watch._changes(watching)
    assert not refused and len(documents) == 30
    # credentials; the nodes' revisions; one node per distinct document; its fleet's layers and
    # rollouts: the same five for 30 nodes as for 30,000
    assert len(queries) == 5


def test_a_node_watching_again_is_admitted_from_memory_until_its_credential_is_revoked(
    alice, north_node, settings
):
    """Contacts buffered (as in production): a credential admitted once is trusted for a few
    seconds without a query; revoking it drops it at once, and its next watch gets 401."""
    settings.EDGEFLEET = {**settings.EDGEFLEET, "CONTACT_FLUSH_S": 60}
    node, credential = north_node
    token_hash = tokens.hash_token(credential)

    async def scenario():
        first = await (await Call(credential, node.etag, query="wait=1").start()).answer()
        remembered = token_hash in watch.HUB.known
        again = await Call(credential, node.etag).start()
        await held()
        await sync_to_async(services.do_revoke_node)(node, actor=alice)
        ended = await again.answer()
        after = await (await Call(credential, node.etag).start()).answer()
        return first, remembered, ended, after, token_hash in watch.HUB.known

    first, remembered, ended, after, still_known = run(scenario)
    assert first["status"] == 304 and remembered
    assert ended["status"] == 401 and after["status"] == 401 and not still_known


def test_a_watch_for_an_approval_decided_before_it_began_ends_at_once(alice, north_node):
    """A decision that lands between two watches is not missed: the watch names the approval."""
    node, credential = north_node
    approval = approvals_services.do_request_approval(
        node, schemas.ApprovalIn(tool="shell", agent="ops", arguments={})
    )
    approvals_services.do_decide_approval(approval, actor=alice, approve=False)

    async def scenario():
        query = f"wait=30&approval={approval.pk}"
        return await (await Call(credential, node.etag, query=query).start()).answer()

    r = run(scenario)
    assert r["status"] == 304 and r["headers"]["x-watch-event"] == "approval"
    assert r["headers"]["x-approval-id"] == str(approval.pk)


def test_a_watch_for_an_approval_still_pending_is_held(north_node):
    node, credential = north_node
    approval = approvals_services.do_request_approval(
        node, schemas.ApprovalIn(tool="shell", agent="ops", arguments={})
    )

    async def scenario():
        query = f"wait=1&approval={approval.pk}"
        return await (await Call(credential, node.etag, query=query).start()).answer()

    r = run(scenario)
    assert r["status"] == 304 and "x-watch-event" not in r["headers"]
