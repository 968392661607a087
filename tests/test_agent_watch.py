"""The agent against the control plane under a real ASGI server (uvicorn, in this process): it
watches instead of polling, gets an admin's change and an approval decision as they happen, stops
without waiting out a held watch, and polls where the server does not hold watches (WSGI)."""

from __future__ import annotations

import threading

import httpx
import pytest

from agents import cli
from agents.runtime import Runtime, StateDir
from controlplane.accounts.services import do_create_personal_token
from controlplane.nodeapi.watch import HUB
from controlplane.nodes import services
from controlplane.nodes.models import ToolApproval

from .agent_helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def agent(server_url: str, north, alice, tmp_path, **runtime) -> Runtime:
    """An agent enrolled through the CLI, polling every 60 s unless it watches."""
    north.poll_interval_s = 60
    north.save()
    token = services.do_create_enrollment_token(north, actor=alice)[1]
    state = tmp_path / "state"
    argv = ["--state-dir", str(state), "enroll", "--server", server_url, "--token", token]
    assert cli.main([*argv, "--name", "w"]) == 0
    return Runtime(StateDir(state), **runtime)


def test_a_watching_agent_gets_an_admin_change_without_waiting_for_its_poll_interval(
    asgi_server, north, alice, tmp_path
):
    runtime = agent(asgi_server, north, alice, tmp_path)
    runtime.start()
    try:
        wait_for(lambda: runtime.applier.etag is not None, 30, "the first document")
        before = runtime.applier.etag
        _, api_token = do_create_personal_token(alice, name="t")
        r = httpx.put(
            f"{asgi_server}/api/v1/fleets/north/layers/routing",
            headers={"Authorization": f"Bearer {api_token}"},
            json={"scope": "fleet", "sections": {"routing": {"threshold": 0.6}}},
        )
        assert r.status_code == 200, r.text
        # The poll interval is 60 s: only a watch brings the change this soon.
        wait_for(lambda: runtime.applier.etag != before, 20, "the change to reach the agent")
        assert runtime.applier.watching()
    finally:
        runtime.shutdown(flush_timeout_s=20)
    # Shutdown did not wait out the held watch (a daemon thread's read on a socket).
    alive = [t.name for t in runtime.threads if t.is_alive()]
    assert alive == [] or (alive == ["poll"] and runtime.applier.in_watch)


def test_an_approval_decision_reaches_a_waiting_agent_through_its_watch(
    asgi_server, north, alice, tmp_path
):
    runtime = agent(asgi_server, north, alice, tmp_path)
    runtime.start()
    looks = []
    look = runtime.client.approval
    runtime.client.approval = lambda approval_id: looks.append(approval_id) or look(approval_id)
    try:
        wait_for(lambda: runtime.applier.etag is not None, 30, "the first document")
        decision = {}
        waiter = threading.Thread(
            target=lambda: decision.update(ok=runtime.approvals("clock", "ops", {}, 120))
        )
        waiter.start()
        wait_for(lambda: ToolApproval.objects.exists(), 20, "the approval request")
        wait_for(lambda: len(looks) == 1 and len(HUB.watches) >= 2, 20, "the agent to watch")
        _, api_token = do_create_personal_token(alice, name="t")
        approval = ToolApproval.objects.get()
        r = httpx.post(
            f"{asgi_server}/api/v1/approvals/{approval.pk}/approve",
            headers={"Authorization": f"Bearer {api_token}"},
            json={},
        )
        assert r.status_code == 200, r.text
        waiter.join(timeout=20)
        assert decision == {"ok": True}
        assert len(looks) == 2  # asked before watching and once woken, not every second
    finally:
        runtime.shutdown(flush_timeout_s=20)


def test_an_agent_polls_where_the_server_does_not_hold_watches(live_server, north, alice, tmp_path):
    runtime = agent(live_server.url, north, alice, tmp_path)
    runtime.applier.poll_once()  # the first document
    assert runtime.applier.etag is not None and runtime.applier.watching()
    # a watch, answered at once by WSGI without X-Watch: poll for a while
    runtime.applier.poll_once()
    assert not runtime.applier.watching()
