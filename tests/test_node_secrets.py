"""Secrets for nodes: the API key of a node's local OpenAI-compatible server, set by a fleet admin,
shown never again, encrypted at rest, never in the audit trail, and revealed only to the nodes
whose desired state names it. End to end against llama_cpp.server started with --api_key."""

from __future__ import annotations

import json

import pytest

from agents.runtime import Runtime, StateDir
from controlplane.audit.models import AuditRecord
from controlplane.nodes import layers
from controlplane.nodes.models import Node, NodeSecret
from controlplane.registry.quantize import quantize
from controlplane.registry.tinymodel import serve_openai, write_tiny_llama

from .agent_helpers import wait_for
from .conftest import enroll as enroll_node
from .test_agent_e2e import enroll, prepare

KEY = "sk-local-8f2d1c0b9a"  # noqa: S105 - a test's key for a loopback server


@pytest.mark.parametrize(
    ("who", "lists", "sets"),
    [
        ("alice", 200, 200),
        ("fiona", 200, 200),
        ("olivia", 200, 404),
        ("carol", 404, 404),
        ("victor", 404, 404),
        ("mallory", 404, 404),
    ],
)
@pytest.mark.django_db
def test_fleet_admins_set_secrets_operators_see_their_names_and_no_one_sees_a_value(
    who, lists, sets, alice, fiona, olivia, carol, victor, mallory, north, south, admin_api
):
    people = {u.username: u for u in (alice, fiona, olivia, carol, victor, mallory)}
    api = admin_api(people[who])
    r = api.put("/fleets/north/secrets/vllm-key", {"value": KEY})
    assert r.status_code == sets, r.content
    if sets == 200:
        assert r.json()["name"] == "vllm-key" and KEY not in r.content.decode()
    else:
        admin_api(alice).put("/fleets/north/secrets/vllm-key", {"value": KEY})
    listed = api.get("/fleets/north/secrets")
    assert listed.status_code == lists
    if lists == 200:
        assert [s["name"] for s in listed.json()] == ["vllm-key"]
        assert KEY not in listed.content.decode()
    # Another fleet's secrets are not theirs to see (fiona administers north only).
    if who != "alice":
        assert api.get("/fleets/south/secrets").status_code == 404


@pytest.mark.django_db
def test_a_secret_is_stored_encrypted_and_audited_by_name_and_version_only(alice, north, admin_api):
    api = admin_api(alice)
    assert api.put("/fleets/north/secrets/vllm-key", {"value": KEY}).json()["version"] == 1
    assert api.put("/fleets/north/secrets/vllm-key", {"value": KEY + "2"}).json()["version"] == 2
    stored = bytes(NodeSecret.objects.get().ciphertext)
    assert KEY.encode() not in stored
    trail = json.dumps(list(AuditRecord.objects.values()), default=str)
    assert "secret.set" in trail and KEY not in trail
    bad = api.put("/fleets/north/secrets/Not%20a%20name", {"value": KEY})
    assert bad.status_code == 400 and "name" in bad.json()["detail"]
    assert api.put("/fleets/north/secrets/x", {"value": ""}).status_code in (400, 422)
    assert api.delete("/fleets/north/secrets/vllm-key").status_code == 200
    assert not NodeSecret.objects.exists()


@pytest.mark.django_db
def test_only_a_node_whose_desired_state_names_a_secret_gets_its_value(
    alice, north, admin_api, node_api
):
    admin_api(alice).put("/fleets/north/secrets/vllm-key", {"value": KEY})
    admin_api(alice).put("/fleets/north/secrets/other", {"value": "nope"})
    named, named_cred = enroll_node(north, "named", {"gpu": "yes"})
    _, plain_cred = enroll_node(north, "plain")
    layers.do_put_layer(
        north,
        name="vllm",
        scope="label",
        selector={"gpu": "yes"},
        sections={
            "model": {
                "name": "qwen",
                "backend": "openai",
                "base_url": "http://127.0.0.1:8000/v1",
                "api_key_secret": "vllm-key",
            }
        },
        actor=alice,
    )
    r = node_api(named_cred).get("/secrets/vllm-key")
    assert r.status_code == 200 and r.json() == {"value": KEY}
    assert r["Cache-Control"] == "no-store"
    assert node_api(named_cred).get("/secrets/other").status_code == 404
    assert node_api(plain_cred).get("/secrets/vllm-key").status_code == 404
    # The desired state carries the name and a version, never the value.
    document = admin_api(alice).get(f"/nodes/{named.pk}/desired-state").content.decode()
    assert "vllm-key" in document and KEY not in document


@pytest.mark.django_db(transaction=True)
def test_a_node_runs_on_a_local_server_that_wants_an_api_key(
    live_server, north, alice, admin_api, tmp_path
):
    model = quantize(write_tiny_llama(tmp_path / "f32.gguf"), tmp_path / "q8.gguf", "Q8_0")
    server, url = serve_openai(model, api_key=KEY)
    try:
        sections = {
            "model": {
                "name": "tiny",
                "backend": "openai",
                "base_url": url,
                "remote_model": "tiny",
                "api_key_secret": "local-llm",
            },
            "agents": {"helper": {"max_tokens": 8, "default": True}},
        }
        token = prepare(north, alice, sections)
        assert enroll(live_server.url, token, tmp_path / "state", name="edge") == 0
        runtime = Runtime(StateDir(tmp_path / "state"), send_interval_s=0.2)
        runtime.start()
        try:
            failed = wait_for(
                lambda: Node.objects.filter(name="edge", reported_health="error").first(),
                60,
                "the missing secret reported",
            )
            assert "no secret 'local-llm' is set" in failed.reported_errors[0]
            admin_api(alice).put("/fleets/north/secrets/local-llm", {"value": KEY})
            wait_for(
                lambda: Node.objects.filter(name="edge", reported_health="ok").exists(),
                60,
                "the node to apply with the key",
            )
            turn = runtime.ask([{"role": "user", "content": "hello"}])
            assert turn.usage.completion_tokens > 0
            events = json.dumps(list(runtime.outbox.peek("events", 1000).items))
            assert KEY not in events
        finally:
            runtime.shutdown(flush_timeout_s=0)
        assert KEY not in (tmp_path / "state" / "applied.json").read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("who", "sees", "sets"),
    [
        ("alice", True, 302),
        ("fiona", True, 302),
        ("olivia", True, 404),
        ("carol", False, 404),
        ("victor", False, 404),
        ("mallory", False, 404),
    ],
)
@pytest.mark.django_db
def test_the_desired_state_page_sets_and_lists_secrets_under_the_same_rules(
    who, sees, sets, alice, fiona, olivia, carol, victor, mallory, north
):
    from django.test import Client

    people = {u.username: u for u in (alice, fiona, olivia, carol, victor, mallory)}
    client = Client()
    client.force_login(people[who])
    r = client.post(
        "/desired-state/north/secrets", {"secret_name": "vllm-key", "secret_value": KEY}
    )
    assert r.status_code == sets
    if sets != 302:
        client.force_login(alice)
        client.post(
            "/desired-state/north/secrets", {"secret_name": "vllm-key", "secret_value": KEY}
        )
        client.force_login(people[who])
    page = client.get("/desired-state/?fleet=north")
    html = page.content.decode()
    assert KEY not in html
    assert ("vllm-key" in html) is sees
    assert ('name="secret_value"' in html) is (sets == 302)


@pytest.mark.django_db
def test_a_bad_secret_name_on_the_page_is_a_form_error(alice, north):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    r = client.post("/desired-state/north/secrets", {"secret_name": "No Good", "secret_value": KEY})
    assert r.status_code == 400
    assert "lower-case letters" in r.content.decode() and KEY not in r.content.decode()
    assert not NodeSecret.objects.exists()
