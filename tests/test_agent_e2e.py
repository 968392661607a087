"""End to end: the real control plane on loopback, a real agent runtime, a real model.

Enroll with the CLI, receive an assignment, download and verify the model, load it, answer through
the node's OpenAI-compatible endpoint (with the openai SDK), report; then lose the control plane for
a while (a real TCP proxy stops listening) and check every telemetry item arrives exactly once.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from openai import OpenAI

from agents import cli
from agents.runtime import Runtime, StateDir
from agents.server import LocalServer
from controlplane.approvals import services as approvals_services
from controlplane.nodes import layers, services
from controlplane.nodes.models import MetricSample, Node, NodeEventRecord, ToolApproval

from .agent_helpers import OnOffProxy, free_port, sha256, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def assignment(model_file, **extra):
    return {
        "model": {
            "name": "tiny",
            "url": model_file.as_uri(),
            "sha256": sha256(model_file),
            "n_ctx": 1024,
            **extra,
        },
        "agents": {
            "front": {"routes": {"ops": "time", "helper": "other"}, "default": True},
            "ops": {"tools": ["clock"], "max_tokens": 64},
            "helper": {"max_tokens": 16},
        },
        "tools": {"rules": {"clock": {"mode": "allow"}}},
    }


def prepare(north, alice, sections) -> str:
    """A fleet polled every second with `sections` assigned; returns an enrollment token."""
    north.poll_interval_s = 1
    north.save(update_fields=["poll_interval_s"])
    layers.do_put_layer(north, name="base", scope="fleet", sections=sections, actor=alice)
    return services.do_create_enrollment_token(north, actor=alice)[1]


def enroll(server_url: str, token: str, state_dir, name: str = "n") -> int:
    return cli.main(
        [
            "--state-dir",
            str(state_dir),
            "enroll",
            "--server",
            server_url,
            "--token",
            token,
            "--name",
            name,
        ]
    )


def test_a_node_enrolls_loads_its_assignment_answers_and_delivers_telemetry_exactly_once(
    live_server, north, alice, tmp_path, model_file, capsys
):
    token = prepare(north, alice, assignment(model_file))
    u = urlsplit(live_server.url)
    proxy = OnOffProxy(u.hostname, u.port)
    state_dir = tmp_path / "state"

    # enroll through the CLI, as a person would
    assert (
        cli.main(
            [
                "--state-dir",
                str(state_dir),
                "enroll",
                "--server",
                proxy.url,
                "--token",
                token,
                "--name",
                "e2e-1",
            ]
        )
        == 0
    )
    assert "Enrolled as node" in capsys.readouterr().out
    assert oct((state_dir / "node.json").stat().st_mode)[-3:] == "600"
    assert (
        cli.main(["--state-dir", str(state_dir), "enroll", "--server", proxy.url, "--token", token])
        == 2
    )

    runtime = Runtime(StateDir(state_dir), send_interval_s=0.2)
    runtime.start()
    node = Node.objects.get(name="e2e-1")
    wait_for(
        lambda: Node.objects.get(pk=node.pk).reported_revision == node.desired_revision,
        what="applied revision",
    )
    node.refresh_from_db()
    assert node.reported_health == "ok"
    assert node.reported_model_digest == f"sha256:{sha256(model_file)}"

    # answer through the local OpenAI-compatible endpoint
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    client = OpenAI(base_url=local.url + "/v1", api_key="unused")
    assert {m.id for m in client.models.list()} == {"front", "ops", "helper"}
    reply = client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "helper" and reply.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="ops", messages=[{"role": "user", "content": "time?"}], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    bad = httpx.post(local.url + "/v1/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and "bad request" in bad.json()["error"]["message"]

    # telemetry arrives
    wait_for(
        lambda: MetricSample.objects.filter(node=node, name="request.latency_ms").count() == 2,
        what="metrics",
    )
    wait_for(
        lambda: NodeEventRecord.objects.filter(node=node, kind="model.swap").exists(),
        what="model.swap event",
    )

    # the control plane goes away; the node keeps answering and buffers
    proxy.down()
    before = MetricSample.objects.filter(node=node).count()
    for _ in range(3):
        client.chat.completions.create(
            model="helper", messages=[{"role": "user", "content": "offline?"}]
        )
    time.sleep(1.0)
    assert MetricSample.objects.filter(node=node).count() == before
    assert runtime.outbox.stats()["metrics"]["depth"] > 0
    proxy.up()
    wait_for(lambda: runtime.outbox.stats()["metrics"]["depth"] == 0, what="outbox drained")
    seqs = list(
        MetricSample.objects.filter(node=node).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, len(seqs) + 1))  # every item exactly once, none lost
    assert MetricSample.objects.filter(node=node, name="request.latency_ms").count() == 5

    # cli status reads the state directory
    assert cli.main(["--state-dir", str(state_dir), "status"]) == 0
    out = capsys.readouterr().out
    assert f"applied_revision  {node.desired_revision}" in out

    local.stop()
    runtime.shutdown()


def test_a_tool_call_that_needs_approval_waits_for_an_operator(
    live_server, north, alice, olivia, tmp_path, model_file
):
    sections = assignment(model_file)
    sections["tools"] = {"rules": {"clock": {"mode": "approval", "approval_timeout_s": 30}}}
    token = prepare(north, alice, sections)
    state_dir = tmp_path / "state"
    assert enroll(live_server.url, token, state_dir) == 0
    runtime = Runtime(StateDir(state_dir), send_interval_s=0.2)
    runtime.start()
    wait_for(
        lambda: runtime.active is not None and runtime.active.runner is not None,
        what="model loaded",
    )
    gate = runtime.active.runner.gate
    results = {}
    t = threading.Thread(
        target=lambda: results.setdefault("r", gate.call("ops", ["clock"], "clock", {}))
    )
    t.start()
    approval = wait_for(
        lambda: ToolApproval.objects.filter(tool="clock").first(), what="approval request"
    )
    approvals_services.do_decide_approval(approval, approve=True, actor=olivia)
    t.join(timeout=30)
    assert results["r"].decision == "approved"
    wait_for(
        lambda: NodeEventRecord.objects.filter(kind="tool.approved").exists(),
        what="tool.approved event",
    )
    runtime.shutdown()


def test_a_model_that_fails_verification_is_refused_and_the_node_keeps_its_previous_state(
    live_server, north, alice, tmp_path, model_file
):
    token = prepare(north, alice, assignment(model_file))
    state_dir = tmp_path / "state"
    enroll(live_server.url, token, state_dir)
    runtime = Runtime(StateDir(state_dir), send_interval_s=0.2)
    runtime.start()
    node = wait_for(
        lambda: Node.objects.filter(name="n", reported_health="ok").first(), what="first apply"
    )
    good_revision = node.reported_revision
    tampered = assignment(model_file)
    tampered["model"]["sha256"] = "0" * 64
    layers.do_put_layer(north, name="base", scope="fleet", sections=tampered, actor=alice)
    node = wait_for(
        lambda: Node.objects.filter(name="n", reported_health="error").first(),
        what="refusal reported",
    )
    assert node.reported_revision == good_revision
    assert "failed verification" in node.reported_errors[0]
    assert runtime.active.revision == good_revision and runtime.active.runner is not None
    wait_for(
        lambda: NodeEventRecord.objects.filter(kind="apply.failed").exists(),
        what="apply.failed event",
    )
    runtime.shutdown()

    # a restart comes back on the last good revision
    again = Runtime(StateDir(state_dir))
    again.applier.restore()
    assert again.active.revision == good_revision
    again.shutdown()


def test_sigterm_finishes_the_current_request_flushes_the_outbox_and_exits_cleanly(
    live_server, north, alice, tmp_path, model_file
):
    import os
    import signal
    import subprocess
    import sys

    token = prepare(north, alice, assignment(model_file))
    state_dir = tmp_path / "state"
    enroll(live_server.url, token, state_dir)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agents.cli",
            "--state-dir",
            str(state_dir),
            "run",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _loaded(url), what="agent serving")
        answer = {}

        def ask():
            answer["r"] = httpx.post(
                f"{url}/v1/chat/completions",
                timeout=60,
                json={"model": "ops", "messages": [{"role": "user", "content": "time?"}]},
            )

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        t.join(timeout=60)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert "shutting down" in out
    assert answer["r"].status_code == 200
    node = Node.objects.get(name="n")
    wait_for(
        lambda: MetricSample.objects.filter(node=node, name="request.latency_ms").exists(),
        timeout=5,
        what="the request's metrics, flushed on shutdown",
    )


def _loaded(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).json()["loaded"]
    except (httpx.HTTPError, ValueError):
        return False


def test_events_accepted_before_a_sigkill_arrive_exactly_once_after_restart(
    live_server, north, alice, tmp_path, model_file
):
    import os
    import signal
    import subprocess
    import sys

    from .test_agent_outbox import WRITER

    token = prepare(north, alice, assignment(model_file))
    state_dir = tmp_path / "state"
    assert enroll(live_server.url, token, state_dir) == 0
    accepted: list[int] = []
    for _ in range(3):  # the agent is killed while enqueueing, three times
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(state_dir / "outbox.db")],
            stdout=subprocess.PIPE,
            text=True,
        )
        accepted += [int(proc.stdout.readline()) for _ in range(200)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    runtime = Runtime(StateDir(state_dir))
    runtime.telemetry.send_once()
    runtime.telemetry.send_once()  # a second delivery attempt sends nothing twice
    node = Node.objects.get(name="n")
    stored = list(
        NodeEventRecord.objects.filter(node=node, kind="tick")
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert set(accepted) <= set(stored)
    assert stored == list(range(1, len(stored) + 1))
    assert runtime.outbox.stats()["events"]["depth"] == 0
    runtime.shutdown(flush_timeout_s=0)
