"""The node knows about itself: a device timer samples the system idle or not, probes the backend,
reports `degraded` (and the dashboard shows it) when the backend stops answering, and sends its
hardware again when it changed, so "auto" resolves the variant again. Real parts: a real
llama_cpp.server as the node's OpenAI-compatible backend, a real control plane on loopback."""

from __future__ import annotations

import pytest
from django.test import Client

from agents import device
from agents.runtime import Runtime, StateDir
from controlplane.audit.models import AuditRecord
from controlplane.nodes.models import Node, NodeEventRecord
from controlplane.registry.quantize import quantize
from controlplane.registry.tinymodel import serve_openai, write_tiny_llama

from .agent_helpers import offline_node, sha256, wait_for
from .test_agent_crash import document
from .test_agent_e2e import enroll, prepare


def _metrics(runtime: Runtime) -> list[dict]:
    batch = runtime.outbox.peek("metrics", 1000)
    return batch.items if batch else []


def test_an_idle_node_sends_system_figures_on_a_timer(tmp_path, model_file):
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    runtime.applier.apply(document(1, model_file.as_uri(), sha256(model_file)), '"1"')
    runtime.device_interval_s = 0.2
    runtime.start()
    try:
        wait_for(
            lambda: sum(m["name"] == "system.cpu_pct" for m in _metrics(runtime)) >= 2,
            30,
            "two ticks with no request",
        )
        metrics = _metrics(runtime)
    finally:
        runtime.shutdown(flush_timeout_s=0)
    names = {m["name"] for m in metrics}
    assert {
        "system.cpu_pct",
        "system.mem_used_pct",
        "system.mem_available_mb",
        "system.disk_free_mb",
        "process.rss_mb",
        "queue.depth",
        "backend.up",
    } <= names
    assert not any(n.startswith("request.") for n in names)  # nobody asked anything
    up = [m["value"] for m in metrics if m["name"] == "backend.up"]
    assert set(up) == {1.0}


def test_the_hardware_profile_says_what_this_machine_is():
    profile = device.hardware_profile()
    assert profile.cpu_cores > 0 and profile.ram_mb > 0 and profile.arch
    # Without nvidia-smi (this machine) there is no GPU to report, and no error either.
    if not device.gpus():
        assert profile.gpu == "" and profile.vram_mb == 0


@pytest.mark.django_db(transaction=True)
def test_a_node_whose_backend_stops_answering_reports_degraded_and_new_hardware(
    live_server, north, alice, tmp_path
):
    model = quantize(write_tiny_llama(tmp_path / "f32.gguf"), tmp_path / "q8.gguf", "Q8_0")
    server, url = serve_openai(model)
    sections = {
        "model": {"name": "tiny", "backend": "openai", "base_url": url, "remote_model": "tiny"},
        "agents": {"helper": {"max_tokens": 8, "default": True}},
    }
    token = prepare(north, alice, sections)
    state = tmp_path / "state"
    assert enroll(live_server.url, token, state, name="edge") == 0
    runtime = Runtime(StateDir(state), send_interval_s=0.2)
    runtime.device_interval_s = 0.5
    runtime.start()
    try:
        wait_for(
            lambda: (
                Node.objects.filter(name="edge", reported_health="ok")
                .exclude(reported_model_digest="")
                .exists()
            ),
            what="the backend applied",
        )
        # The device's hardware changed since enrollment (RAM added): the control plane learns
        # it, records it, and resolves the node's model again.
        Node.objects.filter(name="edge").update(hardware={"ram_mb": 1})
        runtime.applier.hardware = None  # as if this agent had last seen the old profile
        wait_for(
            lambda: Node.objects.get(name="edge").hardware["ram_mb"] == device.ram_mb(),
            30,
            "the new hardware",
        )
        assert AuditRecord.objects.filter(action="node.hardware").count() == 1

        server.terminate()
        server.wait(timeout=30)
        node = wait_for(
            lambda: Node.objects.filter(name="edge", reported_health="degraded").first(),
            60,
            "the node to report degraded",
        )
        assert "failed a probe" in node.reported_errors[0]
        client = Client()
        client.force_login(alice)
        assert "degraded" in client.get("/nodes/").content.decode()
        assert "failed a probe" in client.get(f"/nodes/{node.pk}/").content.decode()
    finally:
        runtime.shutdown(flush_timeout_s=0)
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


POSIX_ONLY = ("resource", "fcntl", "pwd", "grp", "termios")


def test_the_agent_imports_where_posix_only_modules_are_missing():
    """On Windows `resource`, `fcntl`, `pwd`, `grp` and `termios` do not exist: every module of
    the agent and the wire contract imports without them (a None in sys.modules makes `import`
    fail as a missing module does). Running on Windows itself is untested here."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    modules = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for package in ("agents", "wire")
        for p in (root / package).rglob("*.py")
    )
    script = (
        "import sys\n"
        f"for name in {POSIX_ONLY!r}:\n"
        "    sys.modules[name] = None\n"
        "import importlib\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
def test_a_node_rotates_its_credential_when_it_is_due_and_keeps_working(
    live_server, north, alice, tmp_path, model_file, node_api
):
    from controlplane.nodes.models import NodeCredential

    from .test_agent_e2e import assignment

    token = prepare(north, alice, assignment(model_file))
    state = tmp_path / "state"
    assert enroll(live_server.url, token, state, name="edge") == 0
    first = StateDir(state).node
    assert first["credential_issued_at"] > 0
    StateDir(state).save_node({**first, "credential_issued_at": 0})  # 55 years old
    runtime = Runtime(StateDir(state), send_interval_s=0.2)
    runtime.device_interval_s = 0.3
    runtime.start()
    try:
        wait_for(
            lambda: StateDir(state).node["credential"] != first["credential"],
            30,
            "the credential to rotate",
        )
        rotated = StateDir(state).node
        assert rotated["credential_issued_at"] > 0
        # The new one works, the old one still does for the overlap, then it expires.
        assert node_api(rotated["credential"]).get("/signing-key").status_code == 200
        assert node_api(first["credential"]).get("/signing-key").status_code == 200
        old = NodeCredential.objects.filter(node__name="edge", expires_at__isnull=False)
        assert old.count() == 1
        # And the node goes on reporting with it.
        before = Node.objects.get(name="edge").last_seen_at
        wait_for(
            lambda: Node.objects.get(name="edge").last_seen_at != before,
            30,
            "a poll with the new credential",
        )
        wait_for(
            lambda: NodeEventRecord.objects.filter(kind="credential.rotated").exists(),
            30,
            "the rotation reported",
        )
        assert first["credential"] not in str(
            list(NodeEventRecord.objects.values_list("data", flat=True))
        )
    finally:
        runtime.shutdown(flush_timeout_s=0)
