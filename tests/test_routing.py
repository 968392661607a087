"""Routing on the node: a registered, signed router reaches the node in its desired state, and
the node answers each request locally or through the cloud relay, saying which and why.

The control plane runs on loopback (live_server), the node is a real runtime with a generated
model, and the cloud is a real OpenAI-compatible server (`cloud_llm`)."""

from __future__ import annotations

import time

import pytest

from agents.router import Router
from agents.runtime import Runtime, StateDir
from controlplane.audit.models import AuditRecord
from controlplane.errors import ServiceError
from controlplane.nodes import layers, services
from controlplane.nodes.models import Node, NodeEventRecord
from controlplane.registry import services as registry
from controlplane.relay import services as escalation
from controlplane.routing.train import fit
from wire import schemas

from .agent_helpers import wait_for
from .test_agent_e2e import assignment, enroll, prepare
from .test_router import synthetic

HARD = "Question 1: what is the integral of the function number 5?"
EASY = "Question 1: what is the capital city of the country number 5?"


def registered(kind: str = "query", version: str = "synthetic-1"):
    scorer = fit(synthetic(), kind=kind, bits=12, c=1.0)
    scorer.version = version
    return registry.do_register_router(scorer.to_bytes(), actor=None)


def cloud_endpoint(fleet, admin, url: str) -> None:
    services.do_set_compliance(
        fleet,
        cloud_endpoints=[{"name": "main", "region": "eu-west-1", "base_url": url, "model": "tiny"}],
        actor=admin,
    )
    fleet.refresh_from_db()


def start(server, north, alice, tmp_path, sections) -> Runtime:
    """A node enrolled at `server` (live_server, or a URL), running with `sections` applied."""
    token = prepare(north, alice, sections)
    state = tmp_path / "state"
    assert enroll(getattr(server, "url", server), token, state) == 0
    runtime = Runtime(StateDir(state), send_interval_s=0.2)
    runtime.start()
    node = Node.objects.get()
    wait_for(
        lambda: Node.objects.get(pk=node.pk).reported_revision == node.desired_revision,
        what="applied revision",
    )
    return runtime


@pytest.mark.django_db(transaction=True)
def test_a_node_sends_hard_queries_to_the_cloud_and_answers_easy_ones_itself(
    live_server, north, alice, tmp_path, model_file, cloud_llm
):
    router = registered()
    cloud_endpoint(north, alice, cloud_llm)
    routing = {"mode": "query", "router": router.version, "endpoint": "main", "threshold": 0.3}
    runtime = start(
        live_server, north, alice, tmp_path, {**assignment(model_file), "routing": routing}
    )
    try:
        hard = runtime.ask([{"role": "user", "content": HARD}], "helper")
        assert hard.agent == "cloud:main", hard.routing.get("note")
        assert hard.routing["route"] == "cloud" and hard.routing["rule"] == "score"
        assert hard.routing["score"] > hard.routing["threshold"]
        easy = runtime.ask([{"role": "user", "content": EASY}], "helper")
        assert easy.agent == "helper" and easy.routing["route"] == "local"
        assert AuditRecord.objects.filter(action="escalation.forward").count() == 1
        # The budget stops the next escalation: the node answers locally and says why.
        escalation.do_set_cloud_budgets(north, budgets={"fleet_day_tokens": 1}, actor=alice)
        stopped = runtime.ask([{"role": "user", "content": HARD}], "helper")
        assert stopped.routing["route"] == "local" and stopped.routing["rule"] == "fallback"
        assert "budget" in stopped.routing["note"]
        again = runtime.ask([{"role": "user", "content": HARD}], "helper")
        assert again.routing["rule"] == "budget"  # no call while the budget is known exhausted
        wait_for(
            lambda: NodeEventRecord.objects.filter(kind="router.decision").count() == 4,
            what="router decisions reported",
            timeout=20,
        )
        rules = sorted(
            NodeEventRecord.objects.filter(kind="router.decision").values_list(
                "data__rule", flat=True
            )
        )
        assert rules == ["budget", "fallback", "score", "score"]
    finally:
        runtime.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_cascade_node_measures_its_answers_confidence_and_escalates_the_unsure_ones(
    live_server, north, alice, tmp_path, model_file, cloud_llm
):
    router = registered("cascade", "synthetic-cascade")
    cloud_endpoint(north, alice, cloud_llm)
    # The generated model spreads its probability thinly (about -5 per token): always unsure.
    routing = {
        "mode": "cascade",
        "router": router.version,
        "endpoint": "main",
        "threshold": 0.99,
        "min_logprob": -1.0,
    }
    runtime = start(
        live_server, north, alice, tmp_path, {**assignment(model_file), "routing": routing}
    )
    try:
        turn = runtime.ask([{"role": "user", "content": EASY}], "helper")
        assert turn.agent == "cloud:main", turn.routing
        assert turn.routing["rule"] == "logprob" and turn.routing["score"] < -1.0
        assert turn.routing["local_completion_tokens"] > 0  # the cascade paid for both
    finally:
        runtime.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_router_that_is_not_registered_keeps_the_node_local_with_the_reason(
    live_server, north, alice, tmp_path, model_file
):
    routing = {"mode": "query", "router": "nowhere", "endpoint": "main"}
    runtime = start(
        live_server, north, alice, tmp_path, {**assignment(model_file), "routing": routing}
    )
    try:
        turn = runtime.ask([{"role": "user", "content": HARD}], "helper")
        assert turn.routing["rule"] == "no-router"
        assert "router 'nowhere' is not registered" in turn.routing["note"]
    finally:
        runtime.shutdown()


def policy(**extra) -> schemas.RoutingPolicy:
    return schemas.RoutingPolicy(mode="query", endpoint="main", **extra)


COMPLIANCE = schemas.CompliancePolicy()


def test_local_mode_never_escalates_and_offline_stays_local_with_a_marker():
    scorer = fit(synthetic(), kind="query", bits=12, c=1.0)
    assert Router(schemas.RoutingPolicy(), scorer).before(HARD, online=True, compliance=COMPLIANCE)
    local = Router(schemas.RoutingPolicy(), scorer).before(HARD, online=True, compliance=COMPLIANCE)
    assert local is not None and (local.route, local.rule) == ("local", "mode")
    offline = Router(policy(), scorer).before(HARD, online=False, compliance=COMPLIANCE)
    assert offline is not None and offline.rule == "offline" and "unreachable" in offline.note


def test_the_threshold_comes_from_a_target_share_or_a_quality_target():
    rows = synthetic(600)
    scorer = fit(rows, kind="query", bits=12, c=1.0)
    scorer.quantiles = [1 - i / 100 for i in range(101)]
    scorer.pgr = [min(1.0, i / 40) for i in range(101)]
    assert Router(policy(target_cloud_share=0.25), scorer).threshold() == pytest.approx(0.75)
    assert Router(policy(target_quality=0.5), scorer).threshold() == pytest.approx(0.8)
    assert Router(policy(threshold=0.1, target_cloud_share=0.9), scorer).threshold() == 0.1
    assert Router(policy(), scorer).threshold() == 0.0


def test_a_cascade_judges_the_local_answer():
    scorer = fit(synthetic(), kind="cascade", bits=12, c=1.0)
    router = Router(schemas.RoutingPolicy(mode="cascade", endpoint="main", threshold=0.2), scorer)
    assert router.before(EASY, online=True, compliance=COMPLIANCE) is None  # answer first
    assert router.after(EASY, "I think... however #### 3.5").route == "cloud"
    assert router.after(EASY, "#### 4").route == "local"


def test_a_cascade_sends_an_answer_the_local_model_was_unsure_of_to_the_cloud():
    scorer = fit(synthetic(), kind="cascade", bits=12, c=1.0)
    section = {"mode": "cascade", "endpoint": "main", "threshold": 0.2, "min_logprob": -2.0}
    router = Router(schemas.RoutingPolicy(**section), scorer)
    assert router.wants_logprobs
    unsure = router.after(EASY, "#### 4", logprob=-3.5)
    assert (unsure.route, unsure.rule, unsure.score, unsure.threshold) == (
        "cloud",
        "logprob",
        -3.5,
        -2.0,
    )
    assert router.after(EASY, "#### 4", logprob=-0.5).rule == "cascade"
    assert router.after(EASY, "#### 4", logprob=None).rule == "cascade"  # not measured
    assert not Router(schemas.RoutingPolicy(mode="cascade"), scorer).wants_logprobs


def test_a_known_exhausted_budget_keeps_requests_local_for_a_while():
    scorer = fit(synthetic(), kind="query", bits=12, c=1.0)
    router = Router(policy(threshold=-1), scorer)
    router.budget_exhausted()
    decision = router.before(HARD, online=True, compliance=COMPLIANCE)
    assert decision is not None and decision.rule == "budget"
    router.budget_blocked_until = time.monotonic() - 1
    decision = router.before(HARD, online=True, compliance=COMPLIANCE)
    assert decision is not None and decision.route == "cloud"


def test_an_invalid_routing_section_is_refused_with_the_reason(north, alice):
    with pytest.raises(ServiceError, match="invalid routing section"):
        layers.do_put_layer(
            north,
            name="r",
            scope="fleet",
            sections={"routing": {"mode": "sometimes"}},
            actor=alice,
        )


def test_the_cost_page_shows_the_fleets_router_curve_and_target(north, alice):
    from django.test import Client

    rows = synthetic(300)
    scorer = fit(rows, kind="query", bits=12, c=1.0)
    scorer.version = "curve-1"
    scorer.pgr = [min(1.0, i / 30) for i in range(101)]
    registry.do_register_router(scorer.to_bytes(), actor=None)
    layers.do_put_layer(
        north,
        name="routing",
        scope="fleet",
        sections={
            "routing": {
                "mode": "query",
                "router": "curve-1",
                "endpoint": "main",
                "target_cloud_share": 0.25,
            }
        },
        actor=alice,
    )
    client = Client()
    client.force_login(alice)
    page = client.get("/costs/?fleet=north").content.decode()
    assert "<polyline" in page and "curve-1" in page
    assert "target cloud share 25 %" in page
