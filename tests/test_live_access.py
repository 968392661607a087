"""Access follows the person, live: an open dashboard socket and an audit export being streamed
are re-checked when the person's access changes (a role removed, lowered or granted, a logout, a
revoked token, a deactivated account) and on a timer, and are re-scoped or closed, saying why.
Events reach only those who may read them through the API (docs/permissions.md)."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from controlplane.accounts import services as accounts
from controlplane.accounts.models import Membership, Role
from controlplane.audit.models import AuditExport
from controlplane.compliance import export
from controlplane.dashboard import consumers
from controlplane.events import fleet_group
from controlplane.nodes import services
from controlplane.nodes.models import Fleet
from edgefleet.asgi import application

from .test_dashboard_browser import BrowserCase, make_user, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def open_socket(*, client: Client | None = None, token: str | None = None):
    """A socket authenticated as the dashboard's is (its session cookie) or by a personal token."""
    headers = [ORIGIN]
    if client is not None:
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        headers.append((b"cookie", cookie.encode()))
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    comm = WebsocketCommunicator(application, "/ws/events/", headers=headers)
    connected, code = await comm.connect()
    assert connected, code
    return comm


async def publish(fleet, event: str, **data):
    payload = {"event": event, "fleet": fleet.pk, **data}
    await get_channel_layer().group_send(
        fleet_group(fleet.pk), {"type": "fleet.event", "payload": payload}
    )


async def next_access_frame(comm) -> tuple[dict, list[dict]]:
    """The next `{"access": ...}` frame, and the events that came before it."""
    events: list[dict] = []
    while True:
        frame = await comm.receive_json_from(timeout=2)
        if "access" in frame:
            return frame["access"], events
        events += frame["events"]


async def events_until(comm, last: str) -> list[str]:
    """The event names received up to and including the first `last`."""
    names: list[str] = []
    while last not in names:
        frame = await comm.receive_json_from(timeout=2)
        assert "events" in frame, frame
        names += [e["event"] for e in frame["events"]]
    return names


async def heard(comm, last: str) -> set[str]:
    """The event names received up to `last` and in the 0.3 s after it (through Redis, events
    published by services and by the test may arrive in either order)."""
    names = set(await events_until(comm, last))
    while not await comm.receive_nothing(timeout=0.3):
        frame = await comm.receive_json_from(timeout=2)
        names |= {e["event"] for e in frame["events"]}
    return names


async def closed_with(comm) -> int:
    output = await comm.receive_output(timeout=2)
    assert output["type"] == "websocket.close", output
    return output["code"]


set_membership = database_sync_to_async(accounts.do_set_membership)


def test_a_viewer_removed_from_his_only_fleet_is_told_why_and_his_socket_is_closed(
    north, alice, victor
):
    session = logged_in(victor)

    async def scenario():
        comm = await open_socket(client=session)
        await publish(north, "node.metrics", node="a")
        assert await events_until(comm, "node.metrics") == ["node.metrics"]
        await set_membership(actor=alice, user=victor, fleet=north, role=None)
        access, _ = await next_access_frame(comm)
        assert access["code"] == "access_revoked" and access["reason"] == "fleet_removed"
        assert "north" in access["detail"]
        assert await closed_with(comm) == consumers.CLOSE_NO_ACCESS
        await publish(north, "node.metrics", node="a")
        assert await comm.receive_nothing(timeout=0.3)

    async_to_sync(scenario)()


def test_a_viewer_removed_from_one_fleet_keeps_the_other_and_stops_hearing_the_first(
    north, south, alice, victor
):
    Membership.objects.create(user=victor, fleet=south, role=Role.VIEWER)

    session = logged_in(victor)

    async def scenario():
        comm = await open_socket(client=session)
        await set_membership(actor=alice, user=victor, fleet=north, role=None)
        access, _ = await next_access_frame(comm)
        assert access["code"] == "fleet_removed" and access["fleets"] == [north.pk]
        await publish(north, "node.metrics", node="n")
        await publish(south, "node.metrics", node="s")
        frame = await comm.receive_json_from(timeout=2)
        assert [(e["fleet"], e["node"]) for e in frame["events"]] == [(south.pk, "s")]
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_person_given_a_new_fleet_hears_it_without_reconnecting(north, south, alice, victor):
    session = logged_in(victor)

    async def scenario():
        comm = await open_socket(client=session)
        await publish(south, "node.metrics", node="s")
        assert await comm.receive_nothing(timeout=0.3)
        await set_membership(actor=alice, user=victor, fleet=south, role=Role.VIEWER)
        access, _ = await next_access_frame(comm)
        assert access["code"] == "fleet_added" and access["fleets"] == [south.pk]
        await publish(south, "node.metrics", node="s")
        assert await events_until(comm, "node.metrics") == ["node.metrics"]
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_viewer_and_an_operator_never_see_membership_events_which_admins_and_compliance_do(
    north, alice, carol, olivia, victor, mallory
):
    sessions = {u.username: logged_in(u) for u in (carol, olivia, victor)}

    async def scenario():
        socket = {name: await open_socket(client=c) for name, c in sessions.items()}
        await set_membership(actor=alice, user=mallory, fleet=north, role=Role.VIEWER)
        await publish(north, "fleet.updated", slug="north")
        assert await events_until(socket["carol"], "membership.set")
        for name in ("olivia", "victor"):
            assert await heard(socket[name], "fleet.updated") == {"fleet.updated"}
        for comm in socket.values():
            await comm.disconnect()

    async_to_sync(scenario)()


def test_a_compliance_officer_lowered_to_viewer_stops_seeing_membership_events(
    north, alice, carol, mallory
):
    session = logged_in(carol)

    async def scenario():
        comm = await open_socket(client=session)
        await set_membership(actor=alice, user=carol, fleet=north, role=Role.VIEWER)
        access, _ = await next_access_frame(comm)
        assert access["code"] == "role_changed" and access["fleets"] == [north.pk]
        await set_membership(actor=alice, user=mallory, fleet=north, role=Role.VIEWER)
        await publish(north, "fleet.updated", slug="north")
        assert await heard(comm, "fleet.updated") == {"fleet.updated"}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_logging_out_closes_the_sockets_of_that_session_and_not_of_another(north, victor):
    here, elsewhere = logged_in(victor), logged_in(victor)

    async def scenario():
        ending, staying = await open_socket(client=here), await open_socket(client=elsewhere)
        await database_sync_to_async(here.logout)()
        access, _ = await next_access_frame(ending)
        assert access == {
            "code": "access_revoked",
            "reason": "session_ended",
            "detail": accounts.ENDED["session_ended"],
        }
        assert await closed_with(ending) == consumers.CLOSE_ENDED
        await publish(north, "node.metrics", node="a")
        assert await events_until(staying, "node.metrics") == ["node.metrics"]
        await staying.disconnect()

    async_to_sync(scenario)()


def test_revoking_a_personal_token_closes_the_socket_it_opened(north, victor):
    token, secret = accounts.do_create_personal_token(victor, name="wall display")

    async def scenario():
        comm = await open_socket(token=secret)
        await publish(north, "node.metrics", node="a")
        assert await events_until(comm, "node.metrics") == ["node.metrics"]
        await database_sync_to_async(accounts.do_revoke_personal_token)(victor, token)
        access, _ = await next_access_frame(comm)
        assert access["reason"] == "token_revoked"
        assert await closed_with(comm) == consumers.CLOSE_ENDED

    async_to_sync(scenario)()


def test_a_token_narrowed_to_viewer_gets_no_membership_events_although_its_user_may(
    north, alice, carol, mallory
):
    _, secret = accounts.do_create_personal_token(
        carol, name="display", role=Role.VIEWER, fleets=[north]
    )

    async def scenario():
        comm = await open_socket(token=secret)
        await set_membership(actor=alice, user=mallory, fleet=north, role=Role.VIEWER)
        await publish(north, "fleet.updated", slug="north")
        assert await heard(comm, "fleet.updated") == {"fleet.updated"}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_socket_with_an_unknown_or_revoked_token_is_refused(north, victor):
    token, secret = accounts.do_create_personal_token(victor, name="old")
    accounts.do_revoke_personal_token(victor, token)

    async def scenario():
        for bearer in (secret, "efp_not-a-token", "junk"):
            comm = WebsocketCommunicator(
                application,
                "/ws/events/",
                headers=[ORIGIN, (b"authorization", f"Bearer {bearer}".encode())],
            )
            assert await comm.connect() == (False, 4401)

    async_to_sync(scenario)()


def test_guessing_tokens_on_the_socket_counts_as_guessing_on_the_api(north, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "TOKEN_FAILURE_LIMIT": 2}

    async def scenario():
        codes = []
        for _ in range(3):
            bearer = (b"authorization", b"Bearer efp_a-guess")
            comm = WebsocketCommunicator(application, "/ws/events/", headers=[ORIGIN, bearer])
            codes.append((await comm.connect())[1])
        assert codes == [4401, consumers.CLOSE_RATE_LIMITED, consumers.CLOSE_RATE_LIMITED]

    async_to_sync(scenario)()


def test_deactivating_an_account_closes_its_sockets(north, victor):
    session = logged_in(victor)

    async def scenario():
        comm = await open_socket(client=session)
        victor.is_active = False
        await database_sync_to_async(victor.save)(update_fields=["is_active"])
        access, _ = await next_access_frame(comm)
        assert access["reason"] == "account_disabled"
        assert await closed_with(comm) == consumers.CLOSE_ENDED

    async_to_sync(scenario)()


def test_the_timer_finds_a_change_that_announced_nothing(north, victor, monkeypatch):
    monkeypatch.setattr(consumers, "REJOIN_S", 0.1)

    session = logged_in(victor)

    async def scenario():
        comm = await open_socket(client=session)
        # Straight in the database: no service, so no access.changed message.
        await database_sync_to_async(Membership.objects.filter(user=victor).delete)()
        access, _ = await next_access_frame(comm)
        assert access["reason"] == "fleet_removed"
        assert await closed_with(comm) == consumers.CLOSE_NO_ACCESS

    async_to_sync(scenario)()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_audit_export_stops_with_a_last_line_when_its_reader_loses_access(
    north, alice, carol, monkeypatch, fmt
):
    monkeypatch.setattr(export, "YIELD_ROWS", 1, raising=False)
    for seconds in (31, 32, 33):
        services.do_update_fleet(north, poll_interval_s=seconds, actor=alice)
    client = logged_in(carol)
    response = client.get(f"/api/v1/audit/export?fleet=north&format={fmt}")
    assert response.status_code == 200
    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert b"fleet.update" in first
    accounts.do_set_membership(actor=alice, user=carol, fleet=north, role=None)
    last = b"".join(chunks).decode().splitlines()[-1]
    if fmt == "jsonl":
        assert json.loads(last)["error"]["code"] == "access_revoked"
    else:
        assert last.startswith("#error,access_revoked,")
    row = AuditExport.objects.get(pk=int(response["X-Export-Id"]))
    assert row.manifest is None  # not signed: it did not finish


def test_an_audit_export_whose_reader_keeps_access_finishes_and_is_signed(
    north, alice, carol, monkeypatch
):
    monkeypatch.setattr(export, "YIELD_ROWS", 1, raising=False)
    services.do_update_fleet(north, poll_interval_s=31, actor=alice)
    response = logged_in(carol).get("/api/v1/audit/export?fleet=north&format=jsonl")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert all("error" not in json.loads(line) for line in lines)
    assert AuditExport.objects.get(pk=int(response["X-Export-Id"])).manifest is not None


@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromedriver (scripts/install-browser.sh)",
)
class LiveAccessInABrowser(BrowserCase):
    def test_a_viewer_removed_from_his_fleet_reads_why_his_page_stopped_updating(self):
        from selenium.webdriver.common.by import By

        alice = make_user("alice", is_superuser=True, is_staff=True)
        victor = make_user("victor")
        north = Fleet.objects.create(slug="north", name="North clinics")
        Membership.objects.create(user=victor, fleet=north, role=Role.VIEWER)
        _, secret = accounts.do_create_personal_token(alice, name="admin script")
        d = self.driver
        self.log_in("victor")
        d.get(self.live_server_url + "/nodes/")
        assert wait_until(lambda: d.find_element(By.ID, "socket").text == "live")
        r = httpx.delete(
            f"{self.live_server_url}/api/v1/fleets/north/members/victor",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert r.status_code == 204, r.text
        assert wait_until(lambda: d.find_element(By.ID, "socket").text == "closed")
        notice = d.find_element(By.ID, "live-notice").text
        assert notice == "Live updates stopped: You no longer have access to fleet north."
        time.sleep(1.5)  # no reconnect loop: the socket stays closed
        assert d.find_element(By.ID, "socket").text == "closed"
        self.check_page("live-access-ended")
