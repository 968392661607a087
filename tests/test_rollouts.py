"""Staged rollouts: waves, gates against the baseline, halt and roll back, pause, resume, abort."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.audit.models import AuditRecord
from controlplane.nodes import desired_state, layers, services
from controlplane.nodes.models import Node, Rollout, RolloutNode
from controlplane.registry import services as registry
from controlplane.rollouts import services as rollouts
from wire import schemas

from .conftest import enroll


@pytest.fixture
def fleet(alice, north, tiny_f32):
    """Four nodes on tiny:F32 (a layer), with tiny:Q4_K_M registered to roll out."""
    f32 = registry.do_register_artifact(tiny_f32, name="tiny", actor=alice)
    registry.run_quantization(registry.do_quantize(f32, ["Q4_K_M"], actor=alice)[0].pk)
    nodes = [enroll(north, f"n{i}")[0] for i in range(4)]
    layers.do_put_layer(
        north,
        name="model",
        scope="fleet",
        sections={"model": {"name": "tiny", "variant": "F32"}},
        actor=alice,
    )
    for node in nodes:
        report(node, "ok")
    return north


def report(node: Node, health: str = "ok", errors=()) -> None:
    node = Node.objects.select_related("fleet").get(pk=node.pk)
    services.do_report_state(
        node,
        schemas.ReportedStateIn(
            applied_revision=node.desired_revision,
            model_digest=node.desired_model_digest,
            health=health,
            errors=list(errors),
        ),
    )


def requests(node: Node, n: int, *, error: float = 0, latency_ms: float = 100, start_seq: int = 1):
    node = Node.objects.get(pk=node.pk)
    now = timezone.now()
    samples = []
    for i in range(n):
        seq = node.metrics_acked_seq + 1 + 3 * i
        samples += [
            {"seq": seq, "ts": now, "name": "request.latency_ms", "value": latency_ms},
            {"seq": seq + 1, "ts": now, "name": "request.error", "value": error},
            {"seq": seq + 2, "ts": now, "name": "request.escalated", "value": 0},
        ]
    services.do_ingest_metrics(node, schemas.MetricBatchIn.model_validate({"samples": samples}))


def model_of(name: str) -> str:
    return desired_state.document(Node.objects.select_related("fleet").get(name=name))["model"][
        "variant"
    ]


def later(rollout: Rollout, seconds: float = 1):
    return Rollout.objects.get(pk=rollout.pk).wave_started_at + timedelta(
        seconds=rollout.wave_wait_s + seconds
    )


def test_a_healthy_canary_proceeds_wave_by_wave_and_lands_in_the_layer(alice, fleet, admin_api):
    for node in Node.objects.all():
        requests(node, 5)
    before = dict(Node.objects.values_list("name", "desired_revision"))
    r = admin_api(alice).post(
        "/fleets/north/rollouts",
        {
            "model": {"name": "tiny", "variant": "Q4_K_M"},
            "waves": [1, "50%", "100%"],
            "wave_wait_s": 60,
        },
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["baseline"]["requests"] == 20 and body["status"] == "running"
    assert [n["wave"] for n in body["nodes"]] == [0, 1, 2, 2]
    assert [model_of(f"n{i}") for i in range(4)] == ["Q4_K_M", "F32", "F32", "F32"]
    rollout = Rollout.objects.get()

    # Inside the window with nothing wrong: wait.
    assert rollouts.do_check_rollout(rollout).last_check["verdict"] == "wait"
    report(Node.objects.get(name="n0"))
    requests(Node.objects.get(name="n0"), 5)
    rollout = rollouts.do_check_rollout(rollout, later(rollout))
    assert (rollout.status, rollout.current_wave) == ("running", 1)
    assert [model_of(f"n{i}") for i in range(4)] == ["Q4_K_M", "Q4_K_M", "F32", "F32"]
    report(Node.objects.get(name="n1"))
    rollout = rollouts.do_check_rollout(rollout, later(rollout))
    assert rollout.current_wave == 2
    for name in ("n2", "n3"):
        report(Node.objects.get(name=name))
    rollout = rollouts.do_check_rollout(rollout, later(rollout))
    assert rollout.status == "completed"
    # Each node got one new revision, in its wave; completion wrote the model into the layer and
    # changed no node's document.
    assert fleet.layers.get(name="model").sections["model"] == {"name": "tiny", "variant": "Q4_K_M"}
    after = dict(Node.objects.values_list("name", "desired_revision"))
    assert all(after[n] == before[n] + 1 for n in after)
    actions = list(
        AuditRecord.objects.filter(action__startswith="rollout.").values_list("action", flat=True)
    )
    assert actions == ["rollout.start", "rollout.wave", "rollout.wave", "rollout.complete"]


def test_a_canary_that_fails_to_load_halts_the_rollout_and_rolls_it_back(alice, fleet, admin_api):
    rollout = rollouts.do_start_rollout(
        fleet,
        model={"name": "tiny", "variant": "Q4_K_M"},
        waves=[1, "100%"],
        wave_wait_s=600,
        actor=alice,
    )
    canary = Node.objects.get(name="n0")
    f32_digest = RolloutNode.objects.get(node=canary).previous_digest
    assert model_of("n0") == "Q4_K_M"
    report(canary, "error", ["refused model 'tiny': the manifest's signature does not verify"])
    rollout = rollouts.do_check_rollout(rollout)  # a load failure halts at once, window or not
    assert rollout.status == "halted" and "1 load failure(s): n0: reports errors" in rollout.reason
    assert model_of("n0") == "F32"
    assert Node.objects.get(name="n0").desired_model_digest == f32_digest
    assert set(RolloutNode.objects.values_list("state", flat=True)) == {"rolled_back", "waiting"}
    assert AuditRecord.objects.filter(action="rollout.halt").exists()
    detail = admin_api(alice).get(f"/rollouts/{rollout.pk}").json()
    assert detail["status"] == "halted" and detail["last_check"]["verdict"] == "fail"


def test_a_canary_whose_error_rate_or_latency_regresses_halts(alice, fleet):
    for node in Node.objects.all():
        requests(node, 10, latency_ms=100)
    rollout = rollouts.do_start_rollout(
        fleet, model={"name": "tiny", "variant": "Q4_K_M"}, wave_wait_s=60, actor=alice
    )
    canary = Node.objects.get(name="n0")
    report(canary)
    requests(canary, 10, latency_ms=400)
    rollout = rollouts.do_check_rollout(rollout, later(rollout))
    assert (
        rollout.status == "halted"
        and "p95 latency 400 ms against a baseline of 100 ms" in rollout.reason
    )

    layers.do_put_layer(
        fleet,
        name="model",
        scope="fleet",
        sections={"model": {"name": "tiny", "variant": "F32"}},
        actor=alice,
    )
    rollout = rollouts.do_start_rollout(
        fleet, model={"name": "tiny", "variant": "Q4_K_M"}, wave_wait_s=60, actor=alice
    )
    report(Node.objects.get(name="n0"))
    requests(Node.objects.get(name="n0"), 10, error=1)
    rollout = rollouts.do_check_rollout(rollout)
    assert rollout.status == "halted" and rollout.reason.startswith("error rate 1.000")


def test_a_canary_that_never_applies_fails_at_the_end_of_its_window(alice, fleet):
    rollout = rollouts.do_start_rollout(
        fleet, model={"name": "tiny", "variant": "Q4_K_M"}, wave_wait_s=30, actor=alice
    )
    assert rollouts.do_check_rollout(rollout).status == "running"
    rollout = rollouts.do_check_rollout(rollout, later(rollout))
    assert rollout.status == "halted" and "had not applied revision" in rollout.reason


def test_pause_resume_and_abort(alice, olivia, fleet, admin_api):
    r = admin_api(olivia).post(
        "/fleets/north/rollouts", {"model": {"name": "tiny", "variant": "Q4_K_M"}}
    )
    rid = r.json()["id"]
    assert (
        admin_api(olivia)
        .post("/fleets/north/rollouts", {"model": {"name": "tiny", "variant": "Q4_K_M"}})
        .status_code
        == 409
    )
    assert admin_api(olivia).post(f"/rollouts/{rid}/pause").json()["status"] == "paused"
    report(Node.objects.get(name="n0"))
    rollout = rollouts.do_check_rollout(
        Rollout.objects.get(pk=rid), later(Rollout.objects.get(pk=rid))
    )
    assert (rollout.status, rollout.current_wave) == ("paused", 0)  # a paused rollout does not move
    assert admin_api(olivia).post(f"/rollouts/{rid}/pause").status_code == 409
    assert admin_api(olivia).post(f"/rollouts/{rid}/resume").json()["status"] == "running"
    r = admin_api(olivia).post(f"/rollouts/{rid}/abort")
    assert r.json()["status"] == "aborted" and model_of("n0") == "F32"
    assert admin_api(olivia).post(f"/rollouts/{rid}/resume").status_code == 409
    actions = list(
        AuditRecord.objects.filter(action__startswith="rollout.").values_list("action", flat=True)
    )
    assert actions == ["rollout.start", "rollout.pause", "rollout.resume", "rollout.abort"]


def test_bad_rollout_requests_get_clear_errors(alice, fleet, admin_api):
    api = admin_api(alice)
    r = api.post("/fleets/north/rollouts", {"model": {"name": "tiny", "variant": "q4"}})
    assert r.status_code == 400 and "invalid model: variant" in r.json()["detail"]
    r = api.post(
        "/fleets/north/rollouts",
        {"model": {"name": "tiny", "variant": "auto"}, "selector": {"site": "mars"}},
    )
    assert r.status_code == 400 and "no node of this fleet matches" in r.json()["detail"]
    r = api.post("/fleets/north/rollouts", {"model": {"name": "tiny"}, "waves": ["150%"]})
    assert r.status_code == 422


def test_wave_sizes_are_cumulative_and_always_reach_every_node():
    assert rollouts.wave_sizes([1, "25%", "100%"], 10) == [1, 3, 10]
    assert rollouts.wave_sizes(["10%"], 5) == [1, 5]
    assert rollouts.wave_sizes([5, 2], 3) == [3]


def test_the_rollout_task_checks_and_reschedules_itself(
    alice, fleet, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    with django_capture_on_commit_callbacks(execute=True):
        rollout = rollouts.do_start_rollout(
            fleet, model={"name": "tiny", "variant": "Q4_K_M"}, actor=alice
        )
    assert DBTaskResult.objects.filter(task_path__endswith="check_rollout").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert rollouts.check_rollout.call(rollout.pk) == "running"
    assert DBTaskResult.objects.filter(task_path__endswith="check_rollout").count() == 2


def test_a_full_poll_gives_a_node_the_rollouts_model_once_its_wave_starts(alice, fleet, node_api):
    canary, credential = enroll(fleet, "a0")  # sorts first: the canary
    assert node_api(credential).get("/desired-state").json()["model"]["variant"] == "F32"
    rollouts.do_start_rollout(fleet, model={"name": "tiny", "variant": "Q4_K_M"}, actor=alice)
    model = node_api(credential).get("/desired-state").json()["model"]
    assert model["variant"] == "Q4_K_M"
    assert Node.objects.get(pk=canary.pk).desired_model_digest == f"sha256:{model['sha256']}"
    assert (
        node_api(enroll(fleet, "z9")[1]).get("/desired-state").json()["model"]["variant"] == "F32"
    )
