"""Agents: a role, a model, permitted tools; a router agent in front of specialists.

Small models produce malformed tool calls, so each step is decoded under a JSON schema built from
the agent's tools (llama.cpp grammars through llama-cpp-python, `response_format` on
OpenAI-compatible servers): the model can only emit `{"answer": "..."}` or `{"tool": "<one of its
tools>", "arguments": {...that tool's schema...}}`. Arguments are still validated by the ToolGate
before any tool runs (the schema constrains the shape; the gate enforces policy and constraints).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.backends import Backend, ContextFull, Usage
from agents.models import ModelPool
from agents.tools import ToolGate
from wire import schemas
from wire.schemas import AgentSpec

MAX_STEPS = 4  # model steps a request may take (each a tool call or the answer)
TIME_BUDGET_S = 120.0  # wall time a request may spend in the model and tools, approvals not counted


GRAMMAR_MAX_LENGTH = 64


def for_grammar(schema: Any) -> Any:
    """llama.cpp expands `maxLength: N` into N nested optional rules and fails to parse the grammar
    for large N, so decoding caps string lengths at GRAMMAR_MAX_LENGTH (and ignores `pattern`); the
    ToolGate still validates the arguments against the full schema before any tool runs."""
    if isinstance(schema, dict):
        out = {k: for_grammar(v) for k, v in schema.items() if k != "pattern"}
        if out.get("type") == "string":
            out["maxLength"] = min(out.get("maxLength", GRAMMAR_MAX_LENGTH), GRAMMAR_MAX_LENGTH)
        return out
    if isinstance(schema, list):
        return [for_grammar(v) for v in schema]
    return schema


def step_schema(spec: AgentSpec, gate: ToolGate, must_call: bool = False) -> dict[str, Any]:
    """The JSON a step may be: the answer, or a call of one of the agent's tools (only a call
    when `must_call`: the first step of an agent with tool_choice "required")."""
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    options = [answer]
    for name in spec.tools:
        tool = gate.tools.get(name)
        if tool is not None:
            options.append(
                {
                    "type": "object",
                    "properties": {
                        "tool": {"const": name},
                        "arguments": for_grammar(tool.parameters),
                    },
                    "required": ["tool", "arguments"],
                    "additionalProperties": False,
                }
            )
    if must_call and len(options) > 1:
        options = options[1:]
    return options[0] if len(options) == 1 else {"oneOf": options}


def route_schema(spec: AgentSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"route": {"type": "string", "enum": list(spec.routes)}},
        "required": ["route"],
        "additionalProperties": False,
    }


def system_prompt(spec: AgentSpec, gate: ToolGate) -> str:
    """The role, then the agent's tools in the OpenAI tools format (as tool-calling chat templates
    of local models present them) and the reply protocol the grammar enforces."""
    lines = [spec.role]
    tools = [gate.tools[t].openai_spec() for t in spec.tools if t in gate.tools]
    if tools:
        lines.append("Tools: " + json.dumps(tools, separators=(",", ":")))
        lines.append(
            'Reply with JSON: {"answer": "..."} or {"tool": "<name>", "arguments": {...}}.'
        )
    return "\n".join(lines)


class Cancelled(Exception):
    """The client went away: the generation stops at its next token."""


@dataclass
class Stream:
    """Where a streamed answer goes as it is generated: `text` gets each piece of the answer the
    person reads (never a tool call's JSON), `routing` the routing decision when it is made before
    generation. `cancelled` set (the client went away) stops the generation at the next token.
    `first_at - started` is the time to first token a client sees (perf_counter)."""

    text: Callable[[str], None] = lambda piece: None
    routing: Callable[[dict[str, Any]], None] = lambda meta: None
    cancelled: Any = None  # a threading.Event
    started: float = field(default_factory=time.perf_counter)  # when the request arrived
    first_at: float = 0.0

    def piece(self, text: str) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled("the client went away")
        if text:
            self.first_at = self.first_at or time.perf_counter()
            self.text(text)


_ANSWER_START = re.compile(r'\s*\{\s*"answer"\s*:\s*"')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class AnswerText:
    """The `answer` string of a step's JSON (`{"answer": "..."}`), decoded as the JSON arrives:
    `feed` takes the generated text piece by piece and returns the answer's characters once they
    are certain (an escape cut between two pieces waits for its end). A tool call yields nothing."""

    def __init__(self) -> None:
        self.buffer = ""
        self.at = -1  # where the undecoded part of the answer string starts
        self.closed = False

    def feed(self, piece: str) -> str:
        self.buffer += piece
        if self.closed:
            return ""
        if self.at < 0:
            start = _ANSWER_START.match(self.buffer)
            if start is None:
                return ""
            self.at = start.end()
        out, buf, i = [], self.buffer, self.at
        while i < len(buf):
            c = buf[i]
            if c == '"':
                self.closed = True
                break
            if c != "\\":
                out.append(c)
                i += 1
                continue
            if i + 1 >= len(buf):
                break
            kind = buf[i + 1]
            if kind != "u":
                out.append(_ESCAPES.get(kind, kind))
                i += 2
                continue
            if i + 6 > len(buf):
                break
            code = int(buf[i + 2 : i + 6], 16) if _is_hex(buf[i + 2 : i + 6]) else 0xFFFD
            if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                if i + 8 > len(buf) or (buf[i + 6 : i + 8] == "\\u" and i + 12 > len(buf)):
                    break
                low = buf[i + 8 : i + 12] if buf[i + 6 : i + 8] == "\\u" else ""
                if _is_hex(low) and 0xDC00 <= int(low, 16) < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (int(low, 16) - 0xDC00)
                    i += 6
                else:  # a lone half (the answer ends, or something else follows)
                    code = 0xFFFD
            elif 0xDC00 <= code < 0xE000:
                code = 0xFFFD
            out.append(chr(code))
            i += 6
        self.at = i
        return "".join(out)


def _is_hex(text: str) -> bool:
    return len(text) == 4 and all(c in "0123456789abcdefABCDEF" for c in text)


@dataclass
class Turn:
    agent: str
    answer: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    tool_calls: dict[str, int] = field(
        default_factory=lambda: {"allowed": 0, "denied": 0, "approved": 0, "failed": 0}
    )
    routing: dict[str, Any] = field(default_factory=dict)  # local or cloud, and why (route.py)
    waited_s: float = 0.0  # time spent waiting for people to decide on tool calls
    model: str = ""  # the digest of the model that answered ("sha256:…"), where known
    logprob: float | None = None  # the answer's mean token log-probability, when measured


class AgentRunner:
    def __init__(
        self,
        specs: dict[str, AgentSpec],
        backend: Backend | None,
        gate: ToolGate,
        pool: ModelPool | None = None,
    ):
        self.specs = specs
        self.backend = backend  # the node's default model (without a pool: its only one)
        self.gate = gate
        self.pool = pool  # every model of the node, loaded as agents need them
        self.logprobs = False  # measure answers' token log-probabilities (a cascade asks)

    def backend_for(self, spec: AgentSpec) -> Backend:
        """The agent's model, loaded now if it is not (fetched again at every step: a request
        that waited for an approval may find it was unloaded meanwhile)."""
        if self.pool is not None:
            return self.pool.get(self.pool.name_for(spec.model))
        if self.backend is None:
            raise RuntimeError("no model is loaded on this node")
        return self.backend

    def default_agent(self) -> str:
        for name, spec in self.specs.items():
            if spec.default:
                return name
        return next(iter(self.specs), "")

    def ask(
        self, messages: list[dict[str, Any]], agent: str | None = None, stream: Stream | None = None
    ) -> Turn:
        """Answer a conversation with `agent` (default: the node's default agent), routing and
        calling tools as its spec allows; with a `stream`, the answer's text goes to it token by
        token as the model generates it."""
        name = agent or self.default_agent()
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(f"no agent named '{name}' on this node")
        started = time.perf_counter()
        if spec.routes:
            name, spec = self._route(name, spec, messages)
        turn = self._run(name, spec, messages, stream)
        # Inference and tools, not a person's decision: latency alerts count the node's own time.
        turn.usage.latency_s = time.perf_counter() - started - turn.waited_s
        return turn

    def _route(self, name: str, spec: AgentSpec, messages) -> tuple[str, AgentSpec]:
        choices = "\n".join(f"- {n}: {why}" for n, why in spec.routes.items())
        prompt = [
            {
                "role": "system",
                "content": f"{spec.role}\nPick the specialist for the request:\n{choices}",
            },
            *messages,
        ]
        out = self.backend_for(spec).chat(
            prompt, max_tokens=32, temperature=0, json_schema=route_schema(spec)
        )
        try:
            target = json.loads(out.text, strict=False)["route"]
        except (ValueError, KeyError, TypeError):
            target = next(iter(spec.routes))
        if target not in self.specs or self.specs[target].routes:
            target = next(
                (r for r in spec.routes if r in self.specs and not self.specs[r].routes), ""
            )
        if not target:
            raise KeyError(f"router '{name}' has no usable specialist")
        return target, self.specs[target]

    def _run(self, name: str, spec: AgentSpec, messages, stream: Stream | None = None) -> Turn:
        """The agent's steps: each is a tool call or the answer. A call identical to one already
        made in this request is not made again: the model gets the first result back and must
        answer next (small models repeat calls; a repeated `create_ticket` would file the ticket
        twice), and the answer then says what the tools did. The request has MAX_STEPS steps and
        TIME_BUDGET_S of model and tool time (waiting for a person's approval does not count);
        when either runs out, the answer says what was done."""
        turn = Turn(agent=name, answer="")
        if self.pool is not None:
            model = self.pool.assignments[self.pool.name_for(spec.model)]
            turn.model = schemas.model_digest(model.model_dump())
        convo = [{"role": "system", "content": system_prompt(spec, self.gate)}, *messages]
        schema = step_schema(spec, self.gate) if spec.tools else None
        first = step_schema(spec, self.gate, must_call=spec.tool_choice == "required")
        done: dict[str, str] = {}  # the calls made in this request -> their results
        repeated = False
        spent = 0.0
        for step_no in range(MAX_STEPS):
            if spent > TIME_BUDGET_S:
                break
            started = time.perf_counter()
            on_text = _to_stream(stream, json_step=schema is not None)
            try:
                out = self.backend_for(spec).chat(
                    convo,
                    max_tokens=spec.max_tokens,
                    temperature=spec.temperature,
                    json_schema=first if step_no == 0 and schema is not None else schema,
                    logprobs=self.logprobs,
                    on_text=on_text,
                )
            except ContextFull:
                if step_no == 0:
                    raise
                turn.answer = "I ran out of context before finishing." + _done_so_far(turn)
                return turn
            spent += time.perf_counter() - started
            turn.usage.completion_tokens += out.usage.completion_tokens
            turn.usage.prompt_tokens += out.usage.prompt_tokens
            if not turn.usage.ttft_s:
                turn.usage.ttft_s = out.usage.ttft_s
            turn.logprob = out.logprob  # the last generation's: the one that answers
            if schema is None:
                turn.answer = out.text
                return turn
            try:
                step = json.loads(
                    out.text, strict=False
                )  # grammars let control characters into strings
            except ValueError:
                # Cut off by max_tokens: the answer as far as it got (or the raw text of a call).
                turn.answer = _partial(out.text)
                return turn
            if "answer" in step:
                turn.answer = step["answer"] + (_done_so_far(turn) if repeated else "")
                return turn
            tool, arguments = step.get("tool", ""), step.get("arguments")
            key = json.dumps([tool, arguments], sort_keys=True, default=str)
            if key in done:
                # Asked again for what it already has: give the result back and make it answer.
                repeated = True
                turn.steps.append({"tool": tool, "arguments": arguments, "repeated": True})
                convo += [
                    {"role": "assistant", "content": out.text},
                    {
                        "role": "user",
                        "content": f"You already called {tool} and it returned: {done[key]}. "
                        "Answer the request now, using that result.",
                    },
                ]
                schema = step_schema(spec.model_copy(update={"tools": []}), self.gate)
                continue
            started = time.perf_counter()
            result = self.gate.call(name, spec.tools, tool, arguments)
            spent += time.perf_counter() - started - result.waited_s
            turn.waited_s += result.waited_s
            done[key] = result.content
            turn.tool_calls[result.decision] += 1
            turn.steps.append(
                {
                    "tool": tool,
                    "arguments": arguments,
                    "result": result.content,
                    "decision": result.decision,
                }
            )
            convo += [
                {"role": "assistant", "content": out.text},
                {"role": "user", "content": f"Tool result: {result.content}"},
            ]
        turn.answer = "I could not finish this request within its step or time budget." + (
            _done_so_far(turn)
        )
        return turn


def _to_stream(stream: Stream | None, json_step: bool) -> Callable[[str], None] | None:
    """What a step's generated text goes through on its way to the stream: a JSON step's answer
    string, decoded, and nothing of a tool call."""
    if stream is None or not json_step:
        return stream.piece if stream else None
    answer = AnswerText()
    return lambda text: stream.piece(answer.feed(text))


def _partial(text: str) -> str:
    """What a step cut off by max_tokens said: its answer as far as it got, or its raw text."""
    answer = AnswerText()
    decoded = answer.feed(text)
    return decoded if answer.at >= 0 else text


def _done_so_far(turn: Turn) -> str:
    """What the request's tools did, for an answer that ran out of steps, time or context, or
    that followed a repeated call: the ticket it filed, the file it read."""
    made = [s for s in turn.steps if not s.get("repeated")]
    if not made:
        return ""
    parts = [f"{s['tool']} ({s['decision']}): {str(s['result'])[:200]}" for s in made]
    return " Done so far: " + "; ".join(parts)
