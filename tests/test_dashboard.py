"""The dashboard page, its htmx partial, and the websocket event stream."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from controlplane.events import fleet_group
from controlplane.nodes import services
from edgefleet.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def page(user, htmx=False, path="/nodes/"):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client.get(path, headers={"HX-Request": "true"} if htmx else {})


def test_the_dashboard_asks_anonymous_visitors_to_log_in(db):
    r = page(None, path="/")
    assert r.status_code == 302
    assert r["Location"].startswith("/accounts/login/")


def test_the_dashboard_shows_only_the_nodes_a_persona_may_see(
    north_node, south_node, victor, mallory, alice
):
    assert b"north-1" in page(victor).content and b"south-1" not in page(victor).content
    assert b"north-1" not in page(mallory).content
    assert b"north-1" in page(alice).content and b"south-1" in page(alice).content


def test_the_node_table_says_when_no_model_variant_fits_and_why(north_node, victor):
    from controlplane.nodes.models import Node

    node, _ = north_node
    Node.objects.filter(pk=node.pk).update(model_choice="model 'tiny': no variant fits: ...")
    body = page(victor, htmx=True).content.decode()
    assert (
        "no variant fits</span>" in body
        and 'title="model &#x27;tiny&#x27;: no variant fits' in body
    )


def test_an_htmx_refresh_gets_only_the_node_table_partial(north_node, victor):
    body = page(victor, htmx=True).content.decode()
    assert body.lstrip().startswith('<div class="table-wrap" tabindex="0" id="node-table">')
    assert "<html" not in body
    full = page(victor).content.decode()
    assert 'src="/static/vendor/htmx.min.js"' in full
    assert "hx-headers" in full and "X-CSRFToken" in full


async def connect(user):
    comm = WebsocketCommunicator(
        application, "/ws/events/", headers=[(b"origin", b"http://localhost")]
    )
    comm.scope["user"] = user
    return comm


def test_websocket_subscribers_get_events_only_for_fleets_they_may_see(
    north, south, victor, mallory
):
    async def scenario():
        seen, unseen = await connect(victor), await connect(mallory)
        # The AuthMiddlewareStack would read the session; inject the user as it would.
        for comm in (seen, unseen):
            connected, _ = await comm.connect()
            assert connected
        layer = get_channel_layer()
        await layer.group_send(
            fleet_group(north.pk), {"type": "fleet.event", "payload": {"event": "x"}}
        )
        assert await seen.receive_json_from(timeout=2) == {"events": [{"event": "x"}]}
        assert await unseen.receive_nothing(timeout=0.3)
        for comm in (seen, unseen):
            await comm.disconnect()

    async_to_sync(scenario)()


def test_a_websocket_without_a_login_is_closed(db):
    async def scenario():
        comm = WebsocketCommunicator(
            application, "/ws/events/", headers=[(b"origin", b"http://localhost")]
        )
        connected, code = await comm.connect()
        assert not connected and code == 4401

    async_to_sync(scenario)()


@pytest.mark.parametrize("message", ['{"subscribe": "south"}', "not json at all", "x" * 2_000_000])
def test_a_client_that_sends_anything_is_closed_and_the_others_keep_their_events(
    north, victor, message
):
    async def scenario():
        noisy, quiet = await connect(victor), await connect(victor)
        for comm in (noisy, quiet):
            assert (await comm.connect())[0]
        for _ in range(3):  # a flood: the first message closes the socket
            await noisy.send_to(text_data=message)
        closed = await noisy.receive_output(timeout=2)
        assert closed == {"type": "websocket.close", "code": 4400}
        await get_channel_layer().group_send(
            fleet_group(north.pk), {"type": "fleet.event", "payload": {"event": "x"}}
        )
        assert await quiet.receive_json_from(timeout=2) == {"events": [{"event": "x"}]}
        await quiet.disconnect()

    async_to_sync(scenario)()


def test_a_service_write_publishes_its_event_after_commit(north, alice, victor):
    async def scenario():
        comm = await connect(victor)
        await comm.connect()
        await database_sync_to_async(services.do_update_fleet)(
            north, poll_interval_s=45, actor=alice
        )
        frame = await comm.receive_json_from(timeout=2)
        (event,) = frame["events"]
        assert time.time() - 5 < event.pop("at") <= time.time()
        assert event == {"event": "fleet.updated", "fleet": north.pk, "slug": "north"}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_burst_of_metric_events_reaches_a_dashboard_coalesced_with_the_newest_per_node(
    north, victor
):
    async def scenario():
        comm = await connect(victor)
        await comm.connect()
        layer = get_channel_layer()
        for i in range(20):
            for node in ("a", "b"):
                payload = {"event": "node.metrics", "node": node, "latest": {"x": i}}
                await layer.group_send(
                    fleet_group(north.pk), {"type": "fleet.event", "payload": payload}
                )
        await layer.group_send(
            fleet_group(north.pk), {"type": "fleet.event", "payload": {"event": "node.revoked"}}
        )
        frames = []
        while not frames or frames[-1]["events"][-1]["event"] != "node.revoked":
            frames.append(await comm.receive_json_from(timeout=5))
        for frame in frames:  # within a frame, one metrics event per node at most
            nodes = [e["node"] for e in frame["events"] if e["event"] == "node.metrics"]
            assert len(nodes) == len(set(nodes))
        events = [e for frame in frames for e in frame["events"]]
        newest = {e["node"]: e["latest"] for e in events if e["event"] == "node.metrics"}
        assert newest == {"a": {"x": 19}, "b": {"x": 19}}
        assert len(events) < 41 and len(frames) < 41  # coalesced, fewer frames than events
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    async_to_sync(scenario)()
