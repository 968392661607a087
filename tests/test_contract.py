"""The read layer and the write contract: every caller gets the service's rule and message, reads
filter in SQL and paginate one way, errors map to one status each, every write is audited under a
declared action, and no dashboard view answers 500 for a missing or forbidden object."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from controlplane.accounts.services import do_create_personal_token
from controlplane.audit import actions
from controlplane.audit.models import AuditRecord
from controlplane.audit.services import record, user_ref
from controlplane.compliance.privacy import do_erase_user
from controlplane.errors import Forbidden, NotFound, ServiceError
from controlplane.nodes import layers, queries, services
from controlplane.nodes.models import EnrollmentToken, Fleet, Node

from .conftest import enroll

pytestmark = pytest.mark.django_db


def audited(action: str, obj_id, actor: str) -> AuditRecord:
    return AuditRecord.objects.get(action=action, object_id=str(obj_id), actor=actor)


def test_every_write_through_the_admin_api_leaves_its_audit_record(
    alice, olivia, north, north_node, admin_api, node_api
):
    node, credential = north_node
    r = admin_api(alice).post("/fleets", {"slug": "east", "name": "East"})
    assert r.status_code == 201
    east = audited("fleet.create", Fleet.objects.get(slug="east").pk, user_ref(alice))
    assert east.after["slug"] == "east" and east.fleet_id is not None

    api = admin_api(olivia)
    assert (
        api.put("/fleets/north/layers/base", {"scope": "fleet", "sections": {}}).status_code == 200
    )
    put = AuditRecord.objects.get(action="layer.put", actor=user_ref(olivia))
    assert put.before is None and put.after["name"] == "base" and put.fleet_id == north.pk
    assert api.delete("/fleets/north/layers/base").status_code == 200
    deleted = AuditRecord.objects.get(action="layer.delete", actor=user_ref(olivia))
    assert deleted.before["name"] == "base" and deleted.fleet_id == north.pk

    assert api.patch(f"/nodes/{node.pk}", {"name": "north-renamed"}).status_code == 200
    update = audited("node.update", node.pk, user_ref(olivia))
    assert update.before["name"] == "north-1" and update.after["name"] == "north-renamed"

    token = EnrollmentToken.objects.filter(fleet=north).first()
    assert api.post(f"/enrollment-tokens/{token.pk}/revoke").status_code == 200
    assert audited("enrollment_token.revoke", token.pk, user_ref(olivia)).fleet_id == north.pk

    rotated = node_api(credential).post("/credentials/rotate")
    assert rotated.status_code == 200
    rotate = audited("node.credential_rotate", node.pk, f"node:{node.pk}")
    assert credential.startswith(rotate.after["old"]) and rotate.after["old_valid_until"]

    assert api.post(f"/nodes/{node.pk}/revoke").status_code == 200
    revoke = audited("node.revoke", node.pk, user_ref(olivia))
    assert revoke.after["credentials_revoked"] == 2  # the rotated one and its successor


def test_an_undeclared_audit_action_is_refused_and_the_declared_ones_are_listed(
    alice, north, admin_api
):
    with pytest.raises(ValueError, match="undeclared audit action 'fleet.creat'"):
        record("fleet.creat", north, user=alice)
    listed = {a["action"]: a["label"] for a in admin_api(alice).get("/audit/actions").json()}
    assert listed["layer.put"] == "Desired-state layer written"
    assert listed["tool."] == actions.EDGE_FAMILIES["tool."]
    assert set(actions.ACTIONS) <= set(listed)


def test_the_services_hold_the_rules_for_every_caller_not_just_the_api(alice, olivia, north, south):
    # The rollout completion and demo_setup call do_put_layer directly: same rules, same message.
    with pytest.raises(ServiceError, match=r"unknown sections \['nonsense'\]"):
        layers.do_put_layer(north, name="x", scope="fleet", sections={"nonsense": {}}, actor=None)
    with pytest.raises(ServiceError, match="layer name must be"):
        layers.do_put_layer(north, name="bad name", scope="fleet", sections={}, actor=None)
    with pytest.raises(ServiceError, match="a label layer needs a non-empty 'selector'"):
        layers.do_put_layer(north, name="x", scope="label", sections={}, actor=None)
    other, _ = enroll(south, "south-1")
    with pytest.raises(NotFound, match="not found in fleet 'north'"):
        layers.do_put_layer(north, name="x", scope="node", node=other, sections={}, actor=None)
    with pytest.raises(Forbidden, match="only global admins create fleets"):
        services.do_create_fleet(slug="east", name="East", actor=olivia)
    with pytest.raises(ServiceError, match="description must be text"):
        services.do_update_fleet(north, description=None, actor=alice)  # type: ignore[arg-type]
    with pytest.raises(ServiceError, match="invalid compliance settings: mode"):
        services.do_set_compliance(north, mode=None, actor=alice)  # type: ignore[arg-type]
    with pytest.raises(ServiceError, match="you cannot erase your own account"):
        do_erase_user(username="alice", actor=alice)
    with pytest.raises(Forbidden, match="only global admins erase accounts"):
        do_erase_user(username="alice", actor=olivia)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"description": None}, None),  # schema: not null (422), never the old 500
        ({"name": None}, None),
    ],
)
def test_nulls_the_fuzz_found_are_refused_with_a_message_not_a_500(
    alice, north, admin_api, body, message
):
    r = admin_api(alice).patch("/fleets/north", body)
    assert r.status_code == 422 and r.json()["detail"]
    r = admin_api(alice).patch("/fleets/north/compliance", {"mode": None})
    assert r.status_code == 422 and r.json()["detail"]
    r = admin_api(alice).patch("/fleets/north", {"poll_interval_s": None})
    assert r.status_code == 200  # null there means the global default


def test_a_multipart_upload_without_a_boundary_is_a_400_not_a_500(alice):
    _, token = do_create_personal_token(alice, name="upload")
    r = Client().post(
        "/api/v1/models",
        data=b"x",
        content_type="multipart/form-data",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 400 and "multipart" in r.json()["detail"].lower()


def test_lists_paginate_with_a_total_and_a_next_link(alice, north, admin_api):
    for i in range(3):
        enroll(north, f"n-{i}")
    r = admin_api(alice).get("/nodes?limit=2")
    assert [n["name"] for n in r.json()] == ["n-0", "n-1"]
    assert r["X-Total-Count"] == "3"
    assert r["Link"] == '</api/v1/nodes?limit=2&offset=2>; rel="next"'
    last = admin_api(alice).get("/nodes?limit=2&offset=2")
    assert [n["name"] for n in last.json()] == ["n-2"] and not last.has_header("Link")


def test_the_audit_log_pages_by_cursor(alice, north, admin_api):
    for i in range(3):
        services.do_update_fleet(north, poll_interval_s=10 + i, actor=alice)
    first = admin_api(alice).get("/audit/records?action=fleet.update&limit=2")
    seqs = [r["seq"] for r in first.json()]
    assert len(seqs) == 2 and f"after_seq={seqs[-1]}" in first["Link"]
    rest = admin_api(alice).get(f"/audit/records?action=fleet.update&limit=2&after_seq={seqs[-1]}")
    assert len(rest.json()) == 1 and not rest.has_header("Link")


def test_a_label_filter_runs_in_sql_with_any_key_the_schema_allows(alice, north, south):
    enroll(north, "a", {"topology.kubernetes.io/zone": "eu-1", "x__y": "1"})
    enroll(north, "b", {"topology.kubernetes.io/zone": "eu-2"})
    enroll(south, "c", {"topology.kubernetes.io/zone": "eu-1"})
    with CaptureQueriesContext(connection) as ctx:
        found = list(queries.nodes(alice, label="topology.kubernetes.io/zone=eu-1"))
    assert sorted(n.name for n in found) == ["a", "c"]
    assert len(ctx.captured_queries) == 1  # one query, whatever the fleet's size
    assert [n.name for n in queries.nodes(alice, label="x__y=1")] == ["a"]
    assert list(queries.nodes(alice, label="missing=")) == []


@pytest.mark.parametrize(
    "query, status, text",
    [
        ("?fleet=south", 404, "fleet &#x27;south&#x27; not found"),
        ("?fleet=nowhere", 404, "fleet &#x27;nowhere&#x27; not found"),
        ("?label=no-equals-sign", 400, "is not key=value"),
    ],
)
def test_a_dashboard_view_answers_a_missing_or_forbidden_object_with_its_error_page(
    olivia, south, query, status, text
):
    client = Client()
    client.force_login(olivia)
    r = client.get("/nodes/" + query)
    assert r.status_code == status and text in r.content.decode()
    assert b"Back to the dashboard" in r.content


def test_the_dashboard_filters_by_fleet_and_label_through_the_read_layer(alice, north, south):
    enroll(north, "oslo-1", {"site": "oslo"})
    enroll(south, "bergen-1", {"site": "bergen"})
    client = Client()
    client.force_login(alice)
    body = client.get("/nodes/?label=site=oslo").content.decode()
    assert "oslo-1" in body and "bergen-1" not in body
    body = client.get("/nodes/?fleet=south").content.decode()
    assert "bergen-1" in body and "oslo-1" not in body
    assert Node.objects.count() == 2
