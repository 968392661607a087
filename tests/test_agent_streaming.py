"""Real token streaming from the node's local API: the answer leaves as the model generates it
(llama.cpp in process and an OpenAI-compatible server on loopback), a tool-calling agent's JSON is
never shown, usage comes at the end when asked, and a client that goes away stops the generation."""

from __future__ import annotations

import json
import random
import threading

import httpx
import pytest

from agents.agent import AgentRunner, AnswerText, Cancelled, Stream
from agents.backends import OpenAICompatBackend
from agents.runtime import Runtime, StateDir
from agents.server import LocalServer
from agents.tools import ToolGate, registry
from wire.schemas import AgentSpec, ToolPolicy

from .agent_helpers import free_port, offline_node, sha256, wait_for
from .test_agent_crash import document


def _escaped_answers(n: int) -> list[str]:
    rng = random.Random(7)
    alphabet = 'ab "\\/\n\t\u00e9\u4e2d\U0001f600}{'
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(n)]


@pytest.mark.parametrize("ascii_only", [True, False])
def test_the_answer_text_of_a_json_step_is_decoded_the_same_however_the_pieces_are_cut(ascii_only):
    rng = random.Random(3)
    for text in _escaped_answers(200):
        raw = json.dumps({"answer": text}, ensure_ascii=ascii_only)
        decoder, out, at = AnswerText(), [], 0
        while at < len(raw):
            cut = at + rng.randint(1, 4)
            out.append(decoder.feed(raw[at:cut]))
            at = cut
        assert "".join(out) == text


def test_a_tool_call_streams_nothing():
    decoder = AnswerText()
    raw = json.dumps({"tool": "clock", "arguments": {"answer": "no"}})
    assert "".join(decoder.feed(c) for c in raw) == ""


@pytest.fixture
def node(tmp_path, model_file):
    """A node with no control plane, running the tiny model, its local API on loopback."""
    state = StateDir(tmp_path / "state").ensure()
    offline_node(state)
    runtime = Runtime(state)
    doc = document(1, model_file.as_uri(), sha256(model_file))
    doc["agents"]["helper"].update(max_tokens=48, temperature=0)
    doc["agents"]["long"] = {"max_tokens": 256}
    runtime.applier.apply(doc, '"1"')
    local = LocalServer(runtime, "127.0.0.1", free_port())
    local.start()
    yield runtime, local
    local.stop()
    runtime.shutdown(flush_timeout_s=0)


def _metric(runtime: Runtime, name: str) -> list[float]:
    batch = runtime.outbox.peek("metrics", 1000)
    return [m["value"] for m in (batch.items if batch else []) if m["name"] == name]


def test_a_streamed_answer_leaves_token_by_token_while_the_model_generates(node):
    """Every piece reaches the client's stream while the model is still held (the generation has
    not finished), and the pieces make the answer a plain request gets."""
    runtime, _ = node
    ask = [{"role": "user", "content": "Tell me about the edge."}]
    plain = runtime.ask(ask).answer
    pieces: list[tuple[str, bool]] = []
    held = runtime.applier.request_lock.locked
    turn = runtime.ask(ask, stream=Stream(text=lambda p: pieces.append((p, held()))))
    assert len(pieces) > 4
    assert all(generating for _, generating in pieces)
    assert "".join(p for p, _ in pieces) == turn.answer == plain


def test_the_openai_sdk_streams_a_local_answer_with_usage_at_the_end(node):
    from openai import OpenAI

    runtime, local = node
    client = OpenAI(base_url=local.url + "/v1", api_key="unused")
    ask = [{"role": "user", "content": "Tell me about the edge."}]
    whole = client.chat.completions.create(model="helper", messages=ask)
    chunks = list(
        client.chat.completions.create(
            model="helper", messages=ask, stream=True, stream_options={"include_usage": True}
        )
    )
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 4  # token by token, not the finished answer cut up
    assert "".join(texts) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    ttft = _metric(runtime, "request.ttft_ms")
    assert len(ttft) == 2 and all(t > 0 for t in ttft)


def test_a_client_that_goes_away_stops_the_generation_at_its_next_token(node):
    runtime, _ = node
    cancelled = threading.Event()
    pieces: list[str] = []

    def read(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            cancelled.set()  # the server sets it when the client disconnects

    with pytest.raises(Cancelled):
        runtime.ask(
            [{"role": "user", "content": "Go on."}],
            "long",
            stream=Stream(text=read, cancelled=cancelled),
        )
    assert len(pieces) == 3 and not runtime.applier.request_lock.locked()
    assert _metric(runtime, "request.cancelled") == [1.0]


def test_a_client_that_hangs_up_while_its_request_waits_leaves_the_queue(node):
    runtime, local = node
    runtime.applier.request_lock.acquire()  # a long generation holds the model
    body = {"stream": True, "messages": [{"role": "user", "content": "hi"}]}
    outcome: dict = {}

    def ask() -> None:
        try:
            httpx.post(
                local.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=1)
            )
        except httpx.ReadTimeout as exc:  # the client gives up and closes the connection
            outcome["gave_up"] = exc

    waiting = threading.Thread(target=ask)
    waiting.start()
    wait_for(lambda: runtime.queued == 1, 10, "the request to queue")
    waiting.join(timeout=30)
    assert "gave_up" in outcome  # nothing was answered while the model was held
    wait_for(lambda: runtime.queued == 0, 10, "the request to leave the queue")
    runtime.applier.request_lock.release()
    assert _metric(runtime, "request.cancelled") == [1.0]
    assert not _metric(runtime, "request.latency_ms")  # it never ran


def test_an_openai_compatible_backend_streams_and_a_tool_agents_json_is_never_shown(
    cloud_llm, tmp_path
):
    """Through a real OpenAI-compatible server (llama_cpp.server): what is streamed is exactly the
    answer, never the step's JSON (the tiny model's decoding is random; any step it takes obeys
    the schema)."""
    backend = OpenAICompatBackend(cloud_llm, "tiny")
    gate = ToolGate(ToolPolicy.model_validate({"default": "allow"}), registry(), tmp_path)
    specs = {
        "plain": AgentSpec(role="Be brief.", max_tokens=24, default=True),
        "ops": AgentSpec(role="Tell the time.", tools=["clock"], max_tokens=48),
    }
    runner = AgentRunner(specs, backend, gate)
    for agent in specs:
        pieces: list[str] = []
        turn = runner.ask([{"role": "user", "content": "time?"}], agent, Stream(pieces.append))
        # What was streamed is the answer (or its start, when tools' results follow it), so a
        # tool call's JSON never was: it is not part of the answer.
        assert turn.answer.startswith("".join(pieces))
    backend.close()
