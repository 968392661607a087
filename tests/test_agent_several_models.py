"""Several models on one node: a router agent on a small model hands requests to a specialist on
another; each is loaded when an agent needs it and the least recently used one is unloaded when
memory runs short; the control plane resolves each, says whether they fit together, lets a
rollout change one of them, and the node page lists them. Real generated models throughout."""

from __future__ import annotations

import pytest
from django.test import Client

from agents.runtime import Runtime, StateDir
from controlplane.nodes import desired_state, layers
from controlplane.nodes.models import Node
from controlplane.registry import services as registry
from controlplane.registry.quantize import quantize
from controlplane.registry.tinymodel import write_tiny_llama

from .agent_helpers import offline_node, sha256, signed
from .conftest import enroll


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("two")
    f32 = write_tiny_llama(d / "f32.gguf")
    return quantize(f32, d / "small-Q4_K_M.gguf", "Q4_K_M"), quantize(
        f32, d / "big-Q8_0.gguf", "Q8_0"
    )


def _doc(small, big, revision: int = 1, expert_model: str = "specialist") -> dict:
    return {
        "node_id": "n",
        "revision": revision,
        "poll_interval_s": 30,
        "model": signed(
            {"name": "router-model", "url": small.as_uri(), "sha256": sha256(small), "n_ctx": 512}
        ),
        "models": {
            "specialist": signed(
                {"name": "expert-model", "url": big.as_uri(), "sha256": sha256(big), "n_ctx": 512}
            )
        },
        "agents": {
            "front": {"routes": {"expert": "anything"}, "default": True, "max_tokens": 8},
            "expert": {"model": expert_model, "max_tokens": 8, "temperature": 0},
        },
    }


def _events(runtime: Runtime, kind: str) -> list[dict]:
    batch = runtime.outbox.peek("events", 1000)
    return [e["data"] for e in (batch.items if batch else []) if e["kind"] == kind]


def _metric(runtime: Runtime, name: str) -> list[float]:
    batch = runtime.outbox.peek("metrics", 1000)
    return [m["value"] for m in (batch.items if batch else []) if m["name"] == name]


@pytest.fixture
def node(tmp_path):
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    yield runtime
    runtime.shutdown(flush_timeout_s=0)


def test_a_router_model_hands_requests_to_a_specialist_model_loaded_as_needed(
    node, two_models, monkeypatch
):
    small, big = two_models
    monkeypatch.setenv("EDGEFLEET_AGENT_MODEL_MEMORY_MB", "1")  # room for one model at a time
    node.applier.apply(_doc(small, big), '"1"')
    assert node.applier.last_error == ""
    pool = node.active.pool
    # Both were loaded once (their smoke tests); the default one last, so it is the one loaded.
    assert pool.loaded() == [""]
    assert _events(node, "model.unloaded") == [{"model": "specialist", "reason": "memory"}]

    turn = node.ask([{"role": "user", "content": "hello"}])
    assert turn.agent == "expert" and turn.usage.completion_tokens > 0
    assert pool.loaded() == ["specialist"]  # the router's model made room for the specialist's
    assert len(_metric(node, "model.swap_ms")) == 1
    # The answering model's speed, named by its sha256: what "auto"'s tokens/s floor reads.
    assert _metric(node, f"model.{sha256(big)[:12]}.tokens_per_s")
    reported = pool.report()
    assert reported["specialist"] == {
        "name": "expert-model",
        "digest": f"sha256:{sha256(big)}",
        "resident": True,
    }
    assert reported["default"]["resident"] is False


def test_with_memory_to_spare_every_model_stays_loaded_and_a_new_revision_reuses_them(
    node, two_models, monkeypatch
):
    small, big = two_models
    monkeypatch.setenv("EDGEFLEET_AGENT_MODEL_MEMORY_MB", "100000")
    node.applier.apply(_doc(small, big), '"1"')
    node.ask([{"role": "user", "content": "hello"}])
    first = node.active.pool
    assert first.loaded() == ["", "specialist"] and not _events(node, "model.unloaded")
    backends = {name: r.backend for name, r in first.resident.items()}
    node.applier.apply(_doc(small, big, revision=2), '"2"')
    assert {name: r.backend for name, r in node.active.pool.resident.items()} == backends
    assert not any(getattr(b, "closed", False) for b in backends.values())


def test_an_agent_naming_a_model_the_node_is_not_assigned_is_refused_with_the_reason(
    node, two_models
):
    small, big = two_models
    node.applier.apply(_doc(small, big, expert_model="huge"), '"1"')
    assert node.applier.last_error == (
        "agent 'expert' asks for model 'huge', which this node is not assigned "
        "(it has: router-model, specialist)"
    )
    assert node.active is None


@pytest.mark.django_db
def test_the_control_plane_resolves_each_model_says_if_they_fit_and_a_rollout_changes_one(
    alice, north, tiny_f32
):
    for name in ("tiny", "expert"):
        f32 = registry.do_register_artifact(tiny_f32, name=name, actor=alice)
        for variant in ("Q4_K_M", "Q8_0"):
            registry.run_quantization(registry.do_quantize(f32, [variant], actor=alice)[0].pk)
    roomy, _ = enroll(north, "roomy")
    Node.objects.filter(pk=roomy.pk).update(hardware={"ram_mb": 64})
    layers.do_put_layer(
        north,
        name="base",
        scope="fleet",
        sections={
            "model": {"name": "tiny", "variant": "auto", "n_ctx": 512},
            "models": {"specialist": {"name": "expert", "variant": "Q8_0", "n_ctx": 512}},
            "agents": {"expert": {"model": "specialist"}},
        },
        actor=alice,
    )
    roomy.refresh_from_db()
    doc = desired_state.document(roomy)
    assert doc["model"]["choice"].startswith("Q4_K_M")
    specialist = doc["models"]["specialist"]
    assert specialist["url"].startswith("artifacts/") and specialist["signature"]
    assert "all 2 models fit at once" in specialist["choice"]
    Node.objects.filter(pk=roomy.pk).update(hardware={"ram_mb": 5})
    roomy.refresh_from_db()
    assert "more than the" in desired_state.document(roomy)["models"]["specialist"]["choice"]

    # A rollout of the specialist's model reaches this node: that model changes, not the default.
    ctx = desired_state.Context.load(north)
    ctx.overrides[roomy.pk] = {"name": "expert", "variant": "Q4_K_M", "n_ctx": 512}
    composed = desired_state.compose(roomy, ctx)
    assert composed["models"]["specialist"]["choice"].startswith("Q4_K_M named")
    assert composed["model"]["sha256"] == doc["model"]["sha256"]

    client = Client()
    client.force_login(alice)
    page = client.get(f"/nodes/{roomy.pk}/").content.decode()
    assert "specialist" in page


def test_a_model_idle_for_its_idle_unload_s_is_unloaded_and_loaded_again_when_asked(
    node, two_models
):
    import time

    small, big = two_models
    doc = _doc(small, big)
    doc["models"]["specialist"]["idle_unload_s"] = 60
    node.applier.apply(doc, '"1"')
    node.ask([{"role": "user", "content": "hello"}])  # the specialist answers
    pool = node.active.pool
    assert "specialist" in pool.loaded()
    assert pool.unload_idle(time.monotonic() + 30) == []  # not idle long enough
    assert pool.unload_idle(time.monotonic() + 61) == ["specialist"]
    assert pool.loaded() == [""]  # the default model has no idle_unload_s
    assert {"model": "specialist", "reason": "idle"} in _events(node, "model.unloaded")
    assert node.ask([{"role": "user", "content": "hello"}]).usage.completion_tokens > 0
    assert "specialist" in pool.loaded()


@pytest.mark.django_db
def test_the_drift_view_and_the_node_list_show_every_model_a_node_has_loaded(
    alice, north, admin_api
):
    node, _ = enroll(north, "two-models")
    reported = {
        "default": {"name": "router-model", "digest": "sha256:" + "a" * 64, "resident": True},
        "specialist": {"name": "expert-model", "digest": "sha256:" + "b" * 64, "resident": True},
        "spare": {"name": "spare-model", "digest": "sha256:" + "c" * 64, "resident": False},
    }
    Node.objects.filter(pk=node.pk).update(
        reported_details={"models": reported}, reported_revision=0
    )
    drift = {d["name"]: d for d in admin_api(alice).get("/nodes/drift").json()}
    assert drift["two-models"]["resident_models"] == ["default", "specialist"]
    client = Client()
    client.force_login(alice)
    assert "loaded: default, specialist" in client.get("/nodes/?fleet=north").content.decode()
