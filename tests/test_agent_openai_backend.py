"""The OpenAI-compatible backend against a real server on loopback: llama_cpp.server, tiny model.

(No cloud or Ollama is reachable here; llama.cpp's server speaks the same protocol.)
"""

from __future__ import annotations

import json

import pytest

from agents.backends import BackendError, OpenAICompatBackend


def test_the_openai_backend_talks_to_an_openai_compatible_server(cloud_llm):
    backend = OpenAICompatBackend(cloud_llm, "tiny")
    out = backend.chat([{"role": "user", "content": "hello"}], max_tokens=8, temperature=0)
    assert out.usage.completion_tokens > 0
    backend.close()


def test_the_openai_backend_constrains_output_to_a_json_schema(cloud_llm):
    backend = OpenAICompatBackend(cloud_llm, "tiny")
    schema = {
        "type": "object",
        "properties": {"route": {"type": "string", "enum": ["ops", "helper"]}},
        "required": ["route"],
        "additionalProperties": False,
    }
    out = backend.chat(
        [{"role": "user", "content": "route me"}],
        max_tokens=32,
        temperature=0.7,
        json_schema=schema,
    )
    assert json.loads(out.text, strict=False)["route"] in ("ops", "helper")
    backend.close()


def test_an_unreachable_server_fails_the_smoke_test_with_a_clear_error():
    with pytest.raises(BackendError, match="failed the smoke test"):
        OpenAICompatBackend("http://127.0.0.1:9/v1", "tiny", timeout=2)


def test_a_node_runs_its_agents_on_a_local_openai_compatible_server(cloud_llm, tmp_path):
    from agents.runtime import Runtime, StateDir

    state = StateDir(tmp_path / "state").ensure()
    state.save_node({"server": "http://127.0.0.1:9", "node_id": "n", "credential": "efn_unused"})
    runtime = Runtime(state)
    runtime.applier.active = runtime.applier._build(
        {
            "node_id": "n",
            "revision": 3,
            "poll_interval_s": 30,
            "model": {
                "name": "tiny",
                "backend": "openai",
                "base_url": cloud_llm,
                "remote_model": "tiny",
            },
            "agents": {
                "front": {"routes": {"ops": "time"}, "default": True},
                "ops": {"tools": ["clock"], "max_tokens": 48},
            },
            "tools": {"rules": {"clock": {"mode": "allow"}}},
        }
    )
    assert runtime.active.model_digest == f"openai:{cloud_llm}#tiny"
    turn = runtime.ask([{"role": "user", "content": "what time is it?"}])
    assert turn.agent == "ops"
    assert turn.usage.completion_tokens > 0
    runtime.shutdown(flush_timeout_s=0)
