"""The node API: enrollment, credentials, desired-state polling, reports, metrics and events."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.audit.models import AuditRecord
from controlplane.nodes import layers, services
from controlplane.nodes.models import (
    EnrollmentToken,
    MetricSample,
    Node,
    NodeCredential,
    NodeEventRecord,
)

from .conftest import HARDWARE, enroll

pytestmark = pytest.mark.django_db


def enroll_body(token: str, name: str = "edge-1"):
    return {"token": token, "name": name, "hardware": HARDWARE.model_dump()}


# --- enrollment -----------------------------------------------------------------------------------


def test_enrolling_with_a_valid_token_returns_a_node_id_and_a_credential_shown_once(
    north, node_api
):
    token, plaintext = services.do_create_enrollment_token(
        north, labels={"site": "oslo"}, max_uses=2, actor=None
    )
    r = node_api().post("/enroll", enroll_body(plaintext))
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["credential"].startswith("efn_")
    assert body["fleet"] == "north"
    node = Node.objects.get(pk=body["node_id"])
    assert node.labels == {"site": "oslo"}
    assert node.hardware["cpu_cores"] == 4
    cred = NodeCredential.objects.get(node=node)
    assert body["credential"] not in (cred.token_hash, cred.prefix)
    token.refresh_from_db()
    assert token.uses == 1
    assert AuditRecord.objects.filter(action="node.enroll", object_id=str(node.pk)).exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"revoked_at": timezone.now()}, "revoked"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expired"),
        ({"uses": 1}, "no uses left"),
    ],
)
def test_enrolling_with_an_unusable_token_is_refused_with_the_reason(
    north, node_api, change, message
):
    token, plaintext = services.do_create_enrollment_token(north, actor=None)
    EnrollmentToken.objects.filter(pk=token.pk).update(**change)
    r = node_api().post("/enroll", enroll_body(plaintext))
    assert r.status_code == 401
    assert message in r.json()["detail"]
    assert not Node.objects.exists()


def test_enrolling_with_an_unknown_token_is_refused(north, node_api):
    r = node_api().post("/enroll", enroll_body("efe_not-a-real-token"))
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown enrollment token"


def test_a_token_with_one_use_enrolls_exactly_one_node(north, node_api):
    _, plaintext = services.do_create_enrollment_token(north, max_uses=1, actor=None)
    assert node_api().post("/enroll", enroll_body(plaintext, "a")).status_code == 201
    assert node_api().post("/enroll", enroll_body(plaintext, "b")).status_code == 401
    assert Node.objects.count() == 1


def test_enrolling_a_second_node_with_the_same_name_in_a_fleet_is_a_conflict(north, node_api):
    _, plaintext = services.do_create_enrollment_token(north, max_uses=5, actor=None)
    node_api().post("/enroll", enroll_body(plaintext, "same"))
    r = node_api().post("/enroll", enroll_body(plaintext, "same"))
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]


@pytest.mark.parametrize(
    "body, status",
    [
        ("{not json", 400),
        ("[]", 422),
        ({"token": 5, "name": "x"}, 422),
        ({"token": "efe_abcdefgh", "name": ""}, 422),
        ({"token": "efe_abcdefgh", "name": "x", "hardware": {"cpu_cores": -1}}, 422),
        ({"token": "efe_abcdefgh", "name": "x\u0000"}, 422),
        ({"token": "efe_abcdefgh", "name": "x", "surprise": 1}, 422),
    ],
)
def test_malformed_enrollment_requests_get_a_4xx_with_a_message(north, node_api, body, status):
    r = node_api().post("/enroll", body)
    assert r.status_code == status
    assert r.json()["detail"]


# --- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer efn_unknown", "Bearer efp_wrongkind", "Basic abc"]
)
def test_requests_without_a_valid_node_credential_get_401(north_node, node_api, header):
    r = node_api().get("/desired-state", **({"Authorization": header} if header else {}))
    assert r.status_code == 401
    assert r.json()["detail"]


def test_a_revoked_node_gets_401_at_once(north_node, node_api, alice):
    node, cred = north_node
    api = node_api(cred)
    assert api.get("/desired-state").status_code == 200
    services.do_revoke_node(node, actor=alice)
    r = api.get("/desired-state")
    assert r.status_code == 401
    assert r.json()["code"] == "credential_revoked"  # what a program acts on
    assert "revoked" in r.json()["detail"]


def test_a_rotated_credential_keeps_the_old_one_working_for_the_overlap_window_only(
    north_node, node_api
):
    node, old = north_node
    r = node_api(old).post("/credentials/rotate")
    assert r.status_code == 200
    new = r.json()["credential"]
    assert new != old and new.startswith("efn_")
    assert node_api(new).get("/desired-state").status_code == 200
    assert node_api(old).get("/desired-state").status_code == 200
    NodeCredential.objects.filter(node=node, expires_at__isnull=False).update(
        expires_at=timezone.now()
    )
    r = node_api(old).get("/desired-state")
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]
    assert node_api(new).get("/desired-state").status_code == 200


# --- desired state --------------------------------------------------------------------------------


def test_polling_returns_the_document_with_an_etag_and_a_jittered_poll_interval(
    north_node, node_api
):
    node, cred = north_node
    r = node_api(cred).get("/desired-state")
    assert r.status_code == 200
    doc = r.json()
    assert doc["node_id"] == str(node.pk)
    assert doc["revision"] == 1
    assert set(doc) >= {"model", "agents", "tools", "routing", "compliance"}
    assert r["ETag"] == node.etag
    assert 27 <= float(r["X-Poll-Interval"]) <= 33
    node.refresh_from_db()
    assert node.last_seen_at is not None


def test_polling_with_the_current_etag_is_a_304_in_one_statement(north_node, node_api, settings):
    settings.EDGEFLEET = {
        **settings.EDGEFLEET,
        "CONTACT_FLUSH_S": 3600,
    }  # steady state: contact buffered
    node, cred = north_node
    api = node_api(cred)
    etag = api.get("/desired-state")["ETag"]
    with CaptureQueriesContext(connection) as queries:
        r = api.get("/desired-state", **{"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r["ETag"] == etag
    assert "X-Poll-Interval" in r
    # One SELECT: authenticates and returns revision and interval; the contact goes to the buffer.
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_a_full_poll_takes_a_bounded_number_of_queries(north_node, node_api, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "CONTACT_FLUSH_S": 3600}
    _, cred = north_node
    with CaptureQueriesContext(connection) as queries:
        assert node_api(cred).get("/desired-state").status_code == 200
    assert len(queries) == 3, [q["sql"] for q in queries]


def test_a_layer_change_reaches_only_the_nodes_whose_document_changed(north, olivia, node_api):
    oslo, oslo_cred = enroll(north, "oslo-1", {"site": "oslo"})
    bergen, bergen_cred = enroll(north, "bergen-1", {"site": "bergen"})
    etags = {
        n: node_api(c).get("/desired-state")["ETag"]
        for n, c in [("oslo", oslo_cred), ("bergen", bergen_cred)]
    }
    _, changed = layers.do_put_layer(
        north,
        name="oslo-routing",
        scope="label",
        selector={"site": "oslo"},
        sections={"routing": {"threshold": 0.7}},
        actor=olivia,
    )
    assert changed == 1
    r = node_api(oslo_cred).get("/desired-state", **{"If-None-Match": etags["oslo"]})
    assert r.status_code == 200
    assert r.json()["revision"] == 2
    assert r.json()["routing"] == {"threshold": 0.7}
    assert (
        node_api(bergen_cred)
        .get("/desired-state", **{"If-None-Match": etags["bergen"]})
        .status_code
        == 304
    )


def test_layers_compose_fleet_then_label_then_node_with_later_layers_winning(
    north, olivia, node_api
):
    node, cred = enroll(north, "n", {"site": "oslo"})
    layers.do_put_layer(
        north,
        name="base",
        scope="fleet",
        sections={
            "routing": {"mode": "local", "threshold": 0.5},
            "tools": {"rules": {"clock": {"mode": "allow"}}},
        },
        actor=olivia,
    )
    layers.do_put_layer(
        north,
        name="oslo",
        scope="label",
        selector={"site": "oslo"},
        sections={"routing": {"threshold": 0.8}},
        actor=olivia,
    )
    layers.do_put_layer(
        north,
        name="this-node",
        scope="node",
        node=node,
        sections={"tools": {"rules": {"http_get": {"mode": "deny"}}}},
        actor=olivia,
    )
    doc = node_api(cred).get("/desired-state").json()
    assert doc["routing"] == {"mode": "local", "threshold": 0.8}
    assert doc["tools"] == {"rules": {"clock": {"mode": "allow"}, "http_get": {"mode": "deny"}}}
    assert doc["revision"] == 4


def test_rewriting_a_layer_with_the_same_content_does_not_bump_the_revision(north_node, olivia):
    node, _ = north_node
    fleet = node.fleet
    layers.do_put_layer(
        fleet, name="base", scope="fleet", sections={"routing": {"threshold": 0.1}}, actor=olivia
    )
    _, changed = layers.do_put_layer(
        fleet, name="base", scope="fleet", sections={"routing": {"threshold": 0.1}}, actor=olivia
    )
    assert changed == 0
    node.refresh_from_db()
    assert node.desired_revision == 2


def test_a_slower_fleet_poll_interval_reaches_nodes_on_their_next_304(north_node, alice, node_api):
    node, cred = north_node
    api = node_api(cred)
    etag = api.get("/desired-state")["ETag"]
    services.do_update_fleet(node.fleet, poll_interval_s=300, actor=alice)
    r = api.get("/desired-state", **{"If-None-Match": etag})
    assert r.status_code == 304
    assert 270 <= float(r["X-Poll-Interval"]) <= 330


# --- reported state and drift ---------------------------------------------------------------------


def test_reporting_state_records_it_and_drift_is_queryable(north_node, node_api, alice, admin_api):
    node, cred = north_node
    drift = admin_api(alice).get("/nodes/drift").json()
    assert [d["reason"] for d in drift] == ["node has not reported any state yet"]
    r = node_api(cred).post(
        "/reported-state", {"applied_revision": 1, "model_digest": "sha256:abc", "health": "ok"}
    )
    assert r.status_code == 200
    assert r.json() == {"desired_revision": 1, "in_sync": True}
    assert admin_api(alice).get("/nodes/drift").json() == []
    r = node_api(cred).post(
        "/reported-state",
        {"applied_revision": 0, "health": "error", "errors": ["model failed to load"]},
    )
    assert r.json()["in_sync"] is False
    drift = admin_api(alice).get("/nodes/drift").json()
    assert drift[0]["reason"] == "node reports errors: model failed to load"


@pytest.mark.parametrize(
    "body",
    [
        {"applied_revision": -1},
        {"applied_revision": 1, "health": "sad"},
        {},
        {"applied_revision": 2**64},
    ],
)
def test_a_malformed_report_is_a_422(north_node, node_api, body):
    _, cred = north_node
    assert node_api(cred).post("/reported-state", body).status_code == 422


# --- metrics and events ---------------------------------------------------------------------------


def samples(start: int, n: int, name="latency_ms"):
    ts = timezone.now().isoformat()
    return [{"seq": s, "ts": ts, "name": name, "value": float(s)} for s in range(start, start + n)]


def test_metric_batches_are_acknowledged_with_a_high_water_mark(north_node, node_api):
    _, cred = north_node
    r = node_api(cred).post("/metrics", {"samples": samples(1, 50)})
    assert r.status_code == 200
    assert r.json() == {"acked_seq": 50, "accepted": 50, "duplicates": 0}
    assert MetricSample.objects.count() == 50


def test_replaying_a_metric_batch_is_harmless_even_after_the_raw_samples_were_purged(
    north_node, node_api
):
    _, cred = north_node
    api = node_api(cred)
    api.post("/metrics", {"samples": samples(1, 50)})
    r = api.post("/metrics", {"samples": samples(1, 60)})
    assert r.json() == {"acked_seq": 60, "accepted": 10, "duplicates": 50}
    MetricSample.objects.all().delete()
    r = api.post("/metrics", {"samples": samples(1, 60)})
    assert r.json() == {"acked_seq": 60, "accepted": 0, "duplicates": 60}
    assert MetricSample.objects.count() == 0


def test_events_are_stored_once_per_sequence_number(north_node, node_api):
    _, cred = north_node
    ts = timezone.now().isoformat()
    events = [
        {
            "seq": i,
            "ts": ts,
            "kind": "tool.denied",
            "data": {"tool": "http_get", "host": "evil.example"},
        }
        for i in (1, 2, 3)
    ]
    api = node_api(cred)
    assert api.post("/events", {"events": events}).json() == {
        "acked_seq": 3,
        "accepted": 3,
        "duplicates": 0,
    }
    assert api.post("/events", {"events": events}).json()["duplicates"] == 3
    assert NodeEventRecord.objects.count() == 3


def test_a_batch_over_the_item_limit_is_a_413_and_stores_nothing(north_node, node_api, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_MAX_BATCH": 10}
    _, cred = north_node
    r = node_api(cred).post("/metrics", {"samples": samples(1, 11)})
    assert r.status_code == 413
    assert "limit of 10" in r.json()["detail"]
    assert MetricSample.objects.count() == 0


def test_a_body_over_the_byte_limit_is_a_413_before_it_is_read(north_node, node_api, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_MAX_BODY_BYTES": 1000}
    _, cred = north_node
    r = node_api(cred).post("/metrics", {"samples": samples(1, 50)})
    assert r.status_code == 413
    assert "exceeds the limit" in r.json()["detail"]


@pytest.mark.parametrize(
    "sample",
    [
        {"seq": 0, "ts": "2026-01-01T00:00:00Z", "name": "x", "value": 1},
        {"seq": 1, "ts": "yesterday", "name": "x", "value": 1},
        {"seq": 1, "ts": "2026-01-01T00:00:00Z", "name": "Bad Name", "value": 1},
        {"seq": 1, "ts": "2026-01-01T00:00:00Z", "name": "x", "value": "NaN"},
        {"seq": 2**63, "ts": "2026-01-01T00:00:00Z", "name": "x", "value": 1},
        {"seq": 1, "ts": "0001-01-01T01:00:00+01:01", "name": "x", "value": 1},
        {"seq": 1, "ts": "1970-01-01T00:00:00Z", "name": "x", "value": 1},
    ],
)
def test_malformed_samples_are_a_422_and_store_nothing(north_node, node_api, sample):
    _, cred = north_node
    r = node_api(cred).post("/metrics", {"samples": [sample]})
    assert r.status_code == 422
    assert MetricSample.objects.count() == 0


def test_repeated_sequence_numbers_within_a_batch_are_a_400_a_rule_the_schema_cannot_state(
    north_node, node_api
):
    _, cred = north_node
    r = node_api(cred).post("/metrics", {"samples": samples(1, 2) + samples(1, 1)})
    assert r.status_code == 400
    assert "repeat" in r.json()["detail"]
    assert not MetricSample.objects.exists()


def test_event_data_with_a_nul_character_is_a_422(north_node, node_api):
    _, cred = north_node
    r = node_api(cred).post(
        "/events",
        {
            "events": [
                {"seq": 1, "ts": "2026-01-01T00:00:00Z", "kind": "x", "data": {"a": "b\u0000"}}
            ]
        },
    )
    assert r.status_code == 422


# --- rate limits and overload ---------------------------------------------------------------------


def test_a_node_over_its_rate_limit_gets_429_with_retry_after(north_node, node_api, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_RATE_PER_MIN": 20}
    _, cred = north_node
    api = node_api(cred)
    codes = [api.get("/desired-state").status_code for _ in range(15)]
    assert codes[0] == 200
    assert 429 in codes
    r = api.get("/desired-state")
    assert r.status_code == 429
    assert int(r["Retry-After"]) >= 1


def test_an_overloaded_worker_sheds_node_requests_with_429_and_retry_after(
    north_node, node_api, settings
):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "MAX_IN_FLIGHT": 0}
    _, cred = north_node
    r = node_api(cred).get("/desired-state")
    assert r.status_code == 429
    assert r["Retry-After"] == "15"


def test_a_long_listen_queue_sheds_node_requests_with_429_but_not_the_dashboard(
    north_node, node_api, settings, client, monkeypatch
):
    """gunicorn_conf hands the worker its listening sockets; four connections wait on this one."""
    from controlplane import middleware

    settings.EDGEFLEET = {**settings.EDGEFLEET, "MAX_QUEUED": 4}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    waiting = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    monkeypatch.setattr(middleware, "LISTENERS", [listener])
    try:
        _, cred = north_node
        assert middleware.accept_queue() == 3
        assert node_api(cred).get("/desired-state").status_code == 200
        waiting.append(socket.create_connection(listener.getsockname()))
        r = node_api(cred).get("/desired-state")
        assert (r.status_code, r["Retry-After"]) == (429, "15")
        assert client.get("/healthz").status_code == 200
    finally:
        for s in [*waiting, listener]:
            s.close()


def test_last_contact_is_buffered_and_written_in_bulk(north, node_api, settings):
    from controlplane.nodeapi import contacts

    settings.EDGEFLEET = {**settings.EDGEFLEET, "CONTACT_FLUSH_S": 3600}
    contacts.flush()
    creds = [enroll(north, f"n{i}")[1] for i in range(3)]
    for cred in creds:
        assert node_api(cred).get("/desired-state").status_code == 200
    assert not Node.objects.filter(last_seen_at__isnull=False).exists()
    assert contacts.flush() == 3
    assert Node.objects.filter(last_seen_at__isnull=False, last_seen_ip="127.0.0.1").count() == 3
    assert all(n.status == "online" for n in Node.objects.all())


def test_a_metric_batch_is_stored_with_a_bounded_number_of_queries(north_node, node_api, settings):
    settings.EDGEFLEET = {
        **settings.EDGEFLEET,
        "CONTACT_FLUSH_S": 3600,
    }  # steady state: contact buffered
    _, cred = north_node
    api = node_api(cred)
    api.post("/metrics", {"samples": samples(1, 50)})
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/metrics", {"samples": samples(51, 50)}).status_code == 200
    sql = [q["sql"] for q in queries]
    # credential lookup, one bulk INSERT, one acknowledgement UPDATE (and the savepoint)
    assert sum(s.startswith("INSERT") for s in sql) == 1
    assert sum(s.startswith("UPDATE") for s in sql) == 1, sql
    assert len([s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE"))]) == 3, sql


NODE_ENDPOINTS = [
    ("get", "/desired-state", None),
    ("post", "/reported-state", {"applied_revision": 1}),
    (
        "post",
        "/metrics",
        {"samples": [{"seq": 1, "ts": "2026-01-01T00:00:00Z", "name": "x", "value": 1}]},
    ),
    ("post", "/events", {"events": [{"seq": 1, "ts": "2026-01-01T00:00:00Z", "kind": "x"}]}),
    ("post", "/credentials/rotate", {}),
    ("post", "/approvals", {"tool": "clock", "agent": "ops"}),
    ("get", "/approvals/1", None),
    ("get", "/secrets/existing", None),
]


@pytest.mark.parametrize("credential", ["none", "unknown", "revoked", "expired"])
@pytest.mark.parametrize("method, path, body", NODE_ENDPOINTS, ids=[e[1] for e in NODE_ENDPOINTS])
def test_every_node_endpoint_refuses_a_bad_credential_with_401_and_changes_nothing(
    north_node, node_api, alice, credential, method, path, body
):
    node, cred = north_node
    if credential == "revoked":
        services.do_revoke_node(node, actor=alice)
    elif credential == "expired":
        NodeCredential.objects.filter(node=node).update(expires_at=timezone.now())
    bearer = {"none": None, "unknown": "efn_" + "x" * 43}.get(credential, cred)
    r = node_api(bearer).call(method, path, body)
    assert r.status_code == 401, r.content
    assert r.json()["detail"]
    assert not MetricSample.objects.exists() and not NodeEventRecord.objects.exists()
    assert NodeCredential.objects.filter(node=node).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_agent_client_honours_retry_after_from_the_control_plane(live_server, north, settings):
    from agents.client import ControlPlaneError, NodeClient

    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_RATE_PER_MIN": 6}
    _, cred = enroll(north, "limited")
    client = NodeClient(live_server.url, cred)
    with pytest.raises(ControlPlaneError) as caught:
        for _ in range(20):
            client.poll(None)
    assert caught.value.status == 429
    assert caught.value.retry_after and caught.value.retry_after >= 1
    client.close()


def test_metric_timestamps_are_checked_by_the_year_as_written_which_the_schema_also_states(
    north_node, node_api
):
    _, cred = north_node
    api = node_api(cred)

    def send(seq: int, ts: str):
        return api.post("/metrics", {"samples": [{"seq": seq, "ts": ts, "name": "x", "value": 1}]})

    assert send(1, "2199-12-31T23:00:00-05:00").status_code == 200  # 2200 in UTC: still accepted
    r = send(2, "1999-12-31T23:59:59Z")
    assert r.status_code == 422 and "check the node's clock" in r.content.decode()
    schema = api.get("/openapi.json").json()
    ts = schema["components"]["schemas"]["MetricSample"]["properties"]["ts"]
    assert ts["pattern"] == "^2[01][0-9]{2}-" and ts["format"] == "date-time"
