"""The cloud relay (POST /api/node/v1/chat/completions): policy, budgets, retries, fallbacks,
streaming and the audit of every outcome. The cloud is a real OpenAI-compatible server on
loopback (llama_cpp.server on a generated tiny model, `cloud_llm`), reached directly, through a
slow proxy, or through a proxy that is down or cuts the answer."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse
from django.test import AsyncClient, Client
from django.utils import timezone

from controlplane.audit.models import AuditRecord
from controlplane.errors import ServiceError
from controlplane.nodes import services
from controlplane.nodes.models import CloudUsage
from controlplane.relay import services as escalation

from .agent_helpers import CuttingProxy, OnOffProxy, SlowProxy, wait_for
from .conftest import enroll
from .test_pages import client_for

URL = "/api/node/v1/chat/completions"
ASK = {"role": "user", "content": "Say something."}


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "RELAY_RETRIES": 1, "RELAY_BACKOFF_S": 0.01}


def hostport(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].split("/")[0].split(":")
    return host, int(port)


def endpoints(fleet, admin, *items: dict) -> None:
    services.do_set_compliance(fleet, cloud_endpoints=list(items), actor=admin)


def cloud(name: str, base_url: str, **extra) -> dict:
    return {"name": name, "region": "eu-west-1", "base_url": base_url, "model": "tiny", **extra}


def send(credential: str | None, body: dict) -> tuple[object, bytes]:
    """The relay's response under ASGI and its whole body (an answer goes out before its
    accounting is written; reading to the end waits for that too)."""

    async def go():
        headers = {"authorization": f"Bearer {credential}"} if credential else {}
        r = await AsyncClient().post(
            URL, json.dumps(body), content_type="application/json", headers=headers
        )
        if not r.streaming:
            return r, r.content
        return r, b"".join([chunk async for chunk in r.streaming_content])

    return async_to_sync(go)()


def post(credential: str | None, body: dict) -> HttpResponse:
    r, content = send(credential, body)
    out = HttpResponse(content, status=r.status_code, headers=dict(r.items()))
    out.json = lambda: json.loads(content)  # type: ignore[attr-defined]
    return out


def stream(credential: str, body: dict) -> tuple[object, bytes]:
    return send(credential, {**body, "stream": True})


def body(model: str = "cloud:main", **extra) -> dict:
    return {"model": model, "messages": [ASK], "max_tokens": 8, "agent": "desk", **extra}


def test_a_node_gets_the_cloud_answer_with_its_cost_counted_and_audited(
    alice, north, north_node, cloud_llm
):
    node, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm, price_in_per_1k=1.0, price_out_per_1k=2.0))
    r = post(credential, body())
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["choices"][0]["message"]["role"] == "assistant"
    usage = out["usage"]
    expected = usage["prompt_tokens"] / 1000 + usage["completion_tokens"] * 2 / 1000
    assert out["edgefleet"]["endpoint"] == "main"
    assert out["edgefleet"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    row = CloudUsage.objects.get(node=node, agent="desk", endpoint="main")
    assert (row.requests, row.prompt_tokens) == (1, usage["prompt_tokens"])
    rec = AuditRecord.objects.get(action="escalation.forward")
    assert rec.after["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert rec.after["agent"] == "desk" and "Say something" not in json.dumps(rec.after)


def test_streamed_chunks_pass_through_and_end_with_done(alice, north, north_node, cloud_llm):
    node, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm))
    r, raw = stream(credential, body())
    assert r.status_code == 200 and r["Content-Type"] == "text/event-stream"
    assert r["X-Edgefleet-Endpoint"] == "main"
    events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert AuditRecord.objects.get(action="escalation.forward").after["stream"] is True
    assert CloudUsage.objects.get(node=node).completion_tokens > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream_it", [True, False])
def test_a_node_that_goes_away_after_the_first_bytes_is_still_charged(
    alice, north, north_node, cloud_llm, stream_it
):
    """Under the ASGI server a disconnect cancels the response; the accounting of a call the
    cloud already answered still runs to its end."""
    from asgiref.testing import ApplicationCommunicator

    from edgefleet.asgi import application

    node, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm))
    payload = json.dumps({**body(max_tokens=32), "stream": stream_it}).encode()
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"authorization", f"Bearer {credential}".encode()),
    ]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": URL,
        "raw_path": URL.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def read_a_little_then_leave():
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": payload})
        start = await app.receive_output(timeout=60)
        first = await app.receive_output(timeout=60)
        await app.send_input({"type": "http.disconnect"})
        await app.wait(timeout=60)
        return start["status"], first["body"]

    status, first = async_to_sync(read_a_little_then_leave)()
    assert status == 200 and first
    wait_for(lambda: CloudUsage.objects.filter(node=node).exists(), what="the usage row")
    (usage,) = CloudUsage.objects.filter(node=node)
    # Streamed: what was relayed before the node left (maybe only the role chunk) is counted.
    assert usage.requests == 1 and usage.prompt_tokens > 0
    assert stream_it or usage.completion_tokens > 0
    assert AuditRecord.objects.filter(action="escalation.forward").count() == 1


def test_a_stream_cut_by_the_upstream_ends_with_an_error_not_a_success(
    alice, north, north_node, cloud_llm
):
    node, credential = north_node
    proxy = CuttingProxy(*hostport(cloud_llm), cut_after=400)
    endpoints(north, alice, cloud("main", proxy.url + "/v1"))
    r, raw = stream(credential, body(max_tokens=64))
    proxy.down()
    text = raw.decode()
    assert "[DONE]" not in text
    assert '"error"' in text and "mid-stream" in text
    assert AuditRecord.objects.filter(action="escalation.failed").count() == 1
    assert not AuditRecord.objects.filter(action="escalation.forward").exists()


def test_a_failing_endpoint_is_retried_then_its_fallback_answers(
    alice, north, north_node, cloud_llm
):
    node, credential = north_node
    down = OnOffProxy(*hostport(cloud_llm))
    down.down()
    endpoints(
        north,
        alice,
        cloud("main", down.url + "/v1", fallback="backup"),
        cloud("backup", cloud_llm),
    )
    r = post(credential, body())
    assert r.status_code == 200, r.content
    assert (
        r.json()["edgefleet"] | {"endpoint": "backup", "fallback_from": "main"}
        == r.json()["edgefleet"]
    )
    failed = AuditRecord.objects.get(action="escalation.failed")
    assert failed.after["endpoint"] == "main" and failed.after["attempts"] == 2
    assert AuditRecord.objects.get(action="escalation.forward").after["fallback_from"] == "main"


def test_when_every_endpoint_fails_the_node_gets_a_502_with_the_reasons(
    alice, north, north_node, cloud_llm
):
    _, credential = north_node
    down = OnOffProxy(*hostport(cloud_llm))
    down.down()
    endpoints(north, alice, cloud("main", down.url + "/v1"))
    r = post(credential, body())
    assert r.status_code == 502
    assert "main: APIConnectionError after 2 attempt(s)" in r.json()["detail"]


def test_a_slow_endpoint_times_out_and_falls_back(alice, north, north_node, cloud_llm):
    _, credential = north_node
    slow = SlowProxy(*hostport(cloud_llm), delay=3)
    endpoints(
        north,
        alice,
        cloud("main", slow.url + "/v1", timeout_s=1, fallback="backup"),
        cloud("backup", cloud_llm),
    )
    r = post(credential, body())
    slow.down()
    assert r.status_code == 200, r.content
    assert r.json()["edgefleet"]["endpoint"] == "backup"
    assert "APITimeoutError" in AuditRecord.objects.get(action="escalation.failed").after["error"]


def test_a_hard_budget_refuses_the_escalation_without_calling_the_cloud(
    alice, north, north_node, cloud_llm
):
    node, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm))
    escalation.do_set_cloud_budgets(north, budgets={"node_day_tokens": 10}, actor=alice)
    r = post(credential, body())
    assert r.status_code == 429
    assert r.json()["code"] == "budget_exhausted"  # what the node acts on, not the message
    assert "node daily token budget is exhausted" in r.json()["detail"]
    assert not CloudUsage.objects.exists()
    assert AuditRecord.objects.filter(action="escalation.refused").count() == 1


def test_near_a_budget_the_answer_carries_a_warning(alice, north, north_node, cloud_llm):
    _, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm))
    escalation.do_set_cloud_budgets(
        north, budgets={"fleet_month_tokens": 30, "soft_fraction": 0.5}, actor=alice
    )
    r = post(credential, body())
    assert r.status_code == 200, r.content
    assert "fleet monthly token budget" in r.json()["edgefleet"]["budget_warning"]


def test_the_budget_is_checked_again_at_the_fallbacks_prices(alice, north, north_node, cloud_llm):
    _, credential = north_node
    endpoints(
        north,
        alice,
        cloud("main", cloud_llm, price_in_per_1k=100.0, fallback="cheap"),
        cloud("cheap", cloud_llm),
    )
    escalation.do_set_cloud_budgets(north, budgets={"fleet_day_usd": 0.5}, actor=alice)
    r = post(credential, body())
    assert r.status_code == 200, r.content
    assert r.json()["edgefleet"]["endpoint"] == "cheap"


def test_policy_refuses_an_endpoint_outside_the_allow_list(alice, north, north_node, cloud_llm):
    _, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm))
    r = post(credential, body("cloud:elsewhere"))
    assert r.status_code == 403 and "allow-list" in r.json()["detail"]
    services.do_set_compliance(north, mode="gdpr", allowed_regions=["us-east-1"], actor=alice)
    r = post(credential, body())
    assert r.status_code == 403 and "GDPR" in r.json()["detail"]
    assert AuditRecord.objects.filter(action="escalation.refused").count() == 2


@pytest.mark.parametrize(
    "credential, payload, status",
    [
        (None, body(), 401),
        ("efn_unknown", body(), 401),
        ("VALID", {"model": "cloud:main"}, 422),
        ("VALID", body(max_tokens=0), 422),
        ("VALID", {**body(), "messages": [{"role": "robot", "content": "x"}]}, 422),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(north_node, credential, payload, status):
    _, valid = north_node
    r = post(valid if credential == "VALID" else credential, payload)
    assert r.status_code == status
    assert r.json()["detail"]


def test_the_relay_answers_only_post(north_node):
    assert Client().get(URL).status_code == 405


def test_a_fallback_loop_or_an_unknown_fallback_is_refused_when_configured(alice, north):
    with pytest.raises(ServiceError, match="loop"):
        endpoints(
            north,
            alice,
            cloud("a", "http://x/v1", fallback="b"),
            cloud("b", "http://y/v1", fallback="a"),
        )
    with pytest.raises(ServiceError, match="unknown"):
        endpoints(north, alice, cloud("a", "http://x/v1", fallback="nowhere"))


def test_invalid_budgets_are_refused_with_the_field(alice, north):
    with pytest.raises(ServiceError, match="fleet_day_usd") as err:
        escalation.do_set_cloud_budgets(north, budgets={"fleet_day_usd": -1}, actor=alice)
    assert err.value.field == "fleet_day_usd"
    escalation.do_set_cloud_budgets(north, budgets={"node_month_usd": 20}, actor=alice)
    assert north.budgets().node_month_usd == 20
    assert AuditRecord.objects.filter(action="fleet.budgets").count() == 1


def test_cloud_cost_is_queryable_per_agent_and_node_and_budgets_show_their_use(
    alice, victor, north, north_node, cloud_llm, admin_api
):
    node, credential = north_node
    endpoints(north, alice, cloud("main", cloud_llm, price_out_per_1k=10.0))
    assert post(credential, body()).status_code == 200
    r = admin_api(victor).get("/fleets/north/cloud-usage?by=agent")
    assert r.status_code == 200
    (row,) = r.json()
    assert row["key"] == "desk" and row["requests"] == 1 and row["cost_usd"] > 0
    by_node = admin_api(victor).get("/fleets/north/cloud-usage?by=node").json()
    assert [r["key"] for r in by_node] == [node.name]
    budgets = admin_api(victor).get("/fleets/north/budgets").json()
    assert budgets["fleet_day_usd"] is None
    assert budgets["used"]["fleet_day_usd"] == pytest.approx(row["cost_usd"])
    r = admin_api(alice).put("/fleets/north/budgets", {"fleet_day_usd": -1})
    assert r.status_code == 422


def test_local_tokens_are_queryable_per_node_and_per_agent(alice, victor, north, admin_api):
    from agents.runtime import agent_metric
    from controlplane.nodes import metrics
    from wire.schemas import MetricBatchIn

    node, _ = enroll(north, "n1")
    now = timezone.now().isoformat()
    names = [("request.completion_tokens", 40), (agent_metric("front-desk"), 40)]
    names += [("request.completion_tokens", 2), (agent_metric("ops"), 2)]
    samples = [
        {"seq": i, "ts": now, "name": name, "value": v} for i, (name, v) in enumerate(names, 1)
    ]
    services.do_ingest_metrics(node, MetricBatchIn(samples=samples))
    metrics.rollup()
    by_agent = admin_api(victor).get("/fleets/north/local-usage?by=agent").json()
    assert by_agent == [
        {"key": "front_desk", "tokens": 40, "requests": 1},
        {"key": "ops", "tokens": 2, "requests": 1},
    ]
    by_node = admin_api(victor).get("/fleets/north/local-usage").json()
    assert by_node == [{"key": "n1", "tokens": 42, "requests": 2}]
    page = client_for(alice).get("/costs/?fleet=north").content.decode()
    assert "<code>front_desk</code>" in page
    assert admin_api(victor).get("/fleets/north/local-usage?by=day").status_code == 422


def test_an_agent_metric_name_is_valid_for_any_agent_name():
    from agents.runtime import agent_metric
    from wire.schemas import MetricSample

    for agent in ("a", "front-desk", "x" * 63):
        MetricSample(seq=1, ts=timezone.now(), name=agent_metric(agent), value=1)


def test_the_asgi_server_serves_the_relay_behind_its_own_middlewares_only(db):
    """Under ASGI the relay skips Django's thread-bound middlewares (sessions, CSRF, security
    headers...) but keeps the request id and the node API's guards."""
    from channels.testing import HttpCommunicator

    from edgefleet.asgi import application

    async def go(path: str, method: str = "GET", headers=()):
        communicator = HttpCommunicator(application, method, path, headers=list(headers))
        response = await communicator.get_response()
        response["headers"] = {k.lower(): v for k, v in response["headers"]}
        return response

    relay = async_to_sync(go)(URL, "POST")
    assert relay["status"] == 401
    assert b"x-request-id" in relay["headers"] and b"x-content-type-options" not in relay["headers"]
    too_big = async_to_sync(go)(URL, "POST", [(b"content-length", b"999999999")])
    assert too_big["status"] == 413
    assert b"x-content-type-options" in async_to_sync(go)("/healthz")["headers"]
