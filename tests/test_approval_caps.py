"""Pending tool approvals are bounded per node and per fleet: past a cap, a node's new request is
refused with a code and a Retry-After, the overview raises an alert, and the queue shows the oldest
first (issue 23: one node created 2,393 pending approvals during a fuzz run)."""

from __future__ import annotations

import pytest

from controlplane.approvals import services as approvals_services
from controlplane.nodes.models import ToolApproval
from wire.schemas import ApprovalIn

from .conftest import enroll
from .test_pages import client_for

pytestmark = pytest.mark.django_db

ASK = {"tool": "clock", "agent": "ops", "timeout_s": 600}


@pytest.fixture
def caps(settings):
    settings.EDGEFLEET = {
        **settings.EDGEFLEET,
        "MAX_PENDING_APPROVALS_PER_NODE": 3,
        "MAX_PENDING_APPROVALS_PER_FLEET": 5,
    }


def test_a_node_at_its_cap_is_refused_with_a_code_and_nothing_is_queued(caps, north_node, node_api):
    _, cred = north_node
    api = node_api(cred)
    for _ in range(3):
        assert api.post("/approvals", ASK).status_code == 201
    r = api.post("/approvals", ASK)
    assert r.status_code == 429
    assert r.json()["code"] == "approvals_full"
    assert "this node already has 3 tool calls waiting" in r.json()["detail"]
    assert 1 <= int(r["Retry-After"]) <= 600
    assert ToolApproval.objects.count() == 3


def test_a_decided_approval_frees_its_place(caps, north_node, node_api, olivia, admin_api):
    _, cred = north_node
    api = node_api(cred)
    ids = [api.post("/approvals", ASK).json()["id"] for _ in range(3)]
    assert api.post("/approvals", ASK).status_code == 429
    assert admin_api(olivia).post(f"/approvals/{ids[0]}/deny").status_code == 200
    assert api.post("/approvals", ASK).status_code == 201


def test_the_fleet_cap_holds_across_its_nodes(caps, north, node_api):
    creds = [enroll(north, f"n-{i}")[1] for i in range(3)]
    answers = [node_api(c).post("/approvals", ASK).status_code for c in creds for _ in range(2)]
    assert answers == [201] * 5 + [429]
    assert ToolApproval.objects.count() == 5


def test_another_fleet_is_not_held_back_by_a_full_one(caps, north_node, south_node, node_api):
    for _ in range(3):
        node_api(north_node[1]).post("/approvals", ASK)
    assert node_api(south_node[1]).post("/approvals", ASK).status_code == 201


def test_the_overview_alerts_when_a_node_reaches_its_cap(caps, north_node, node_api, olivia):
    node, cred = north_node
    for _ in range(3):
        node_api(cred).post("/approvals", ASK)
    page = client_for(olivia).get("/").content.decode()
    assert f"{node.name} has 3 tool calls waiting for approval, its limit" in page


def test_the_queue_shows_the_oldest_pending_approval_first(north_node, node_api, olivia, admin_api):
    _, cred = north_node
    ids = [node_api(cred).post("/approvals", ASK).json()["id"] for _ in range(3)]
    listed = admin_api(olivia).get("/approvals?pending=true").json()
    assert [a["id"] for a in listed] == ids
    page = client_for(olivia).get("/approvals/").content.decode()
    positions = [page.index(f"/approvals/{i}/approve") for i in ids]
    assert positions == sorted(positions)


def test_the_service_refuses_with_its_own_exception_and_stores_nothing(caps, north_node):
    node, _ = north_node
    ask = ApprovalIn(tool="clock", agent="ops", timeout_s=600)
    for _ in range(3):
        approvals_services.do_request_approval(node, ask)
    with pytest.raises(approvals_services.ApprovalsFull) as refused:
        approvals_services.do_request_approval(node, ask)
    assert refused.value.code == "approvals_full" and refused.value.retry_after >= 1
    assert ToolApproval.objects.count() == 3
