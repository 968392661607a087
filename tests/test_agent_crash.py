"""A crash in the middle of an apply leaves the node on its previous state after restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from agents.runtime import Runtime, StateDir
from controlplane.registry.quantize import quantize
from controlplane.registry.tinymodel import write_tiny_llama

from .agent_helpers import offline_node, sha256, signed

APPLY_AND_HANG = """
import json, sys
from agents.runtime import Runtime, StateDir
runtime = Runtime(StateDir(sys.argv[1]))
runtime.applier.restore()
print("applying", flush=True)
runtime.applier.apply(json.loads(sys.argv[2]), '"2-new"')
print("applied", flush=True)
"""


def document(revision: int, model_url: str, digest: str) -> dict:
    return {
        "node_id": "n",
        "revision": revision,
        "poll_interval_s": 30,
        "model": signed({"name": "tiny", "url": model_url, "sha256": digest, "n_ctx": 512}),
        "agents": {"helper": {"max_tokens": 8, "default": True}},
    }


def test_a_sigkill_during_an_apply_restarts_on_the_previous_revision(tmp_path):
    model = quantize(write_tiny_llama(tmp_path / "f32.gguf"), tmp_path / "q8.gguf", "Q8_0")
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    first = Runtime(state)
    first.applier.apply(document(1, model.as_uri(), sha256(model)), '"1-old"')
    assert first.active.revision == 1
    first.shutdown(flush_timeout_s=0)

    # Revision 2's model comes from a server that accepts the connection and never answers.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/model.gguf"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            APPLY_AND_HANG,
            str(state.path),
            json.dumps(document(2, url, "a" * 64)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "applying"
    time.sleep(1.0)  # inside the download
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    hang.close()

    restarted = Runtime(state)
    restarted.applier.restore()
    assert restarted.active.revision == 1
    assert restarted.active.model_digest == f"sha256:{sha256(model)}"
    assert restarted.applier.etag == '"1-old"'  # so the next poll asks for revision 2 again
    assert restarted.ask([{"role": "user", "content": "still there?"}]).usage.completion_tokens > 0
    restarted.shutdown(flush_timeout_s=0)


def test_an_agent_asking_for_a_model_the_node_does_not_run_is_refused_with_the_reason(tmp_path):
    model = quantize(write_tiny_llama(tmp_path / "f32.gguf"), tmp_path / "q8.gguf", "Q8_0")
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    doc = document(1, model.as_uri(), sha256(model))
    doc["agents"]["helper"]["model"] = "llama-70b"
    runtime.applier.apply(doc, '"1"')
    assert runtime.active is None
    assert (
        "asks for model 'llama-70b', which this node is not assigned (it has: tiny)"
        in runtime.applier.last_error
    )
    doc["agents"]["helper"]["model"] = "tiny"
    runtime.applier.apply(doc, '"1"')
    assert runtime.active.revision == 1
    runtime.shutdown(flush_timeout_s=0)
