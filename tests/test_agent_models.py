"""Real inference on generated tiny GGUF models: loading, quantization, constrained tool calls."""

from __future__ import annotations

import json

import pytest

from agents.agent import AgentRunner, step_schema
from agents.backends import BackendError, LlamaCppBackend
from agents.tools import ToolGate, registry
from controlplane.registry.quantize import quantize
from controlplane.registry.tinymodel import write_tiny_llama
from wire.schemas import AgentSpec, ToolPolicy


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    f32 = write_tiny_llama(d / "tiny-f32.gguf")
    return {"F32": f32, **{q: quantize(f32, d / f"tiny-{q}.gguf", q) for q in ("Q8_0", "Q4_K_M")}}


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M"])
def test_a_generated_model_quantized_to_each_type_loads_and_generates(models, qtype):
    assert models[qtype].stat().st_size < models["F32"].stat().st_size
    backend = LlamaCppBackend(str(models[qtype]), n_ctx=512)
    out = backend.chat([{"role": "user", "content": "hello"}], max_tokens=8, temperature=0)
    assert out.usage.completion_tokens == 8
    assert out.usage.prompt_tokens > 0
    backend.close()


def test_the_backend_measures_the_log_probability_of_what_it_generates_when_asked(models):
    """The same tokens as without (the recorder only reads the logits), and the same values as
    llama.cpp's own logprobs (which need logits_all), for every token but the last."""
    from llama_cpp import Llama

    messages = [{"role": "user", "content": "hello"}]
    backend = LlamaCppBackend(str(models["Q8_0"]), n_ctx=512)
    plain = backend.chat(messages, max_tokens=8, temperature=0)
    measured = backend.chat(messages, max_tokens=8, temperature=0, logprobs=True)
    backend.close()
    assert plain.logprob is None and measured.text == plain.text
    reference = Llama(model_path=str(models["Q8_0"]), n_ctx=512, logits_all=True, verbose=False)
    out = reference.create_chat_completion(
        messages=messages, max_tokens=8, temperature=0, logprobs=True, top_logprobs=1
    )
    values = [float(t["logprob"]) for t in out["choices"][0]["logprobs"]["content"]]
    reference.close()
    assert measured.logprob == pytest.approx(sum(values[:-1]) / len(values[:-1]), abs=1e-4)


def test_a_file_that_is_not_gguf_is_refused_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(BackendError, match="could not load"):
        LlamaCppBackend(str(bad))


def test_an_unknown_quantization_is_refused(models, tmp_path):
    with pytest.raises(ValueError, match="unknown quantization"):
        quantize(models["F32"], tmp_path / "x.gguf", "Q9_Z")


def gate(tmp_path, rules, events):
    policy = ToolPolicy.model_validate({"rules": rules})
    return ToolGate(
        policy, registry(), tmp_path, audit=lambda kind, data: events.append((kind, data))
    )


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M"])
def test_a_schema_constrained_tool_call_from_the_model_parses_and_is_enforced(
    models, qtype, tmp_path
):
    backend = LlamaCppBackend(str(models[qtype]), n_ctx=1024)
    events: list = []
    g = gate(tmp_path, {"clock": {"mode": "allow"}, "read_file": {"mode": "deny"}}, events)
    spec = AgentSpec(tools=["clock", "read_file"])
    tool_only = {"oneOf": step_schema(spec, g)["oneOf"][1:]}  # force a tool call
    for _ in range(3):
        out = backend.chat(
            [{"role": "user", "content": "what time is it"}],
            max_tokens=800,
            temperature=0.8,
            json_schema=tool_only,
        )
        call = json.loads(out.text, strict=False)  # parses: decoding was constrained to the schema
        assert call["tool"] in ("clock", "read_file")
        result = g.call("ops", spec.tools, call["tool"], call["arguments"])
        if call["tool"] == "clock":
            assert result.decision == "allowed" and "utc" in result.content
        else:
            assert result.decision == "denied" and "denied by policy" in result.content
    assert {kind for kind, _ in events} <= {"tool.allowed", "tool.denied"}
    assert len(events) == 3
    backend.close()


def test_a_router_agent_hands_the_request_to_a_specialist(models, tmp_path):
    backend = LlamaCppBackend(str(models["Q4_K_M"]), n_ctx=1024)
    specs = {
        "front": AgentSpec(
            routes={"ops": "time and files", "helper": "everything else"}, default=True
        ),
        "ops": AgentSpec(tools=["clock"], max_tokens=64),
        "helper": AgentSpec(max_tokens=8),
    }
    runner = AgentRunner(specs, backend, gate(tmp_path, {"clock": {"mode": "allow"}}, []))
    turn = runner.ask([{"role": "user", "content": "what time is it?"}])
    assert turn.agent in ("ops", "helper")
    assert turn.usage.completion_tokens > 0
    with pytest.raises(KeyError, match="no agent named"):
        runner.ask([{"role": "user", "content": "x"}], agent="nobody")
    backend.close()


def test_every_built_in_tool_compiles_to_a_grammar_llama_cpp_accepts(tmp_path):
    from llama_cpp import LlamaGrammar

    g = gate(tmp_path, {}, [])
    schema = step_schema(AgentSpec(tools=sorted(g.tools)), g)
    assert LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) is not None


def test_a_conversation_longer_than_the_context_is_refused_with_a_clear_error(models):
    from agents.backends import ContextFull

    backend = LlamaCppBackend(str(models["Q8_0"]), n_ctx=128)
    with pytest.raises(ContextFull, match="exceed context window"):
        backend.chat([{"role": "user", "content": "word " * 400}], max_tokens=8, temperature=0)
    backend.close()
