"""Agents: a role, a model, permitted tools; a router agent in front of specialists.

Small models produce malformed tool calls, so each step is decoded under a JSON schema built from
the agent's tools (llama.cpp grammars through llama-cpp-python, `response_format` on
OpenAI-compatible servers): the model can only emit `{"answer": "..."}` or `{"tool": "<one of its
tools>", "arguments": {...that tool's schema...}}`. Arguments are still validated by the ToolGate
before any tool runs (the schema constrains the shape; the gate enforces policy and constraints).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agents.backends import Backend, ContextFull, Usage
from agents.tools import ToolGate
from wire.schemas import AgentSpec

MAX_STEPS = 4


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


def step_schema(spec: AgentSpec, gate: ToolGate) -> dict[str, Any]:
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
    logprob: float | None = None  # the answer's mean token log-probability, when measured


class AgentRunner:
    def __init__(self, specs: dict[str, AgentSpec], backend: Backend, gate: ToolGate):
        self.specs = specs
        self.backend = backend
        self.gate = gate
        self.logprobs = False  # measure answers' token log-probabilities (a cascade asks)

    def default_agent(self) -> str:
        for name, spec in self.specs.items():
            if spec.default:
                return name
        return next(iter(self.specs), "")

    def ask(self, messages: list[dict[str, Any]], agent: str | None = None) -> Turn:
        """Answer a conversation with `agent` (default: the node's default agent), routing and
        calling tools as its spec allows."""
        name = agent or self.default_agent()
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(f"no agent named '{name}' on this node")
        started = time.perf_counter()
        if spec.routes:
            name, spec = self._route(name, spec, messages)
        turn = self._run(name, spec, messages)
        turn.usage.latency_s = time.perf_counter() - started
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
        out = self.backend.chat(
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

    def _run(self, name: str, spec: AgentSpec, messages) -> Turn:
        turn = Turn(agent=name, answer="")
        convo = [{"role": "system", "content": system_prompt(spec, self.gate)}, *messages]
        schema = step_schema(spec, self.gate) if spec.tools else None
        for step_no in range(MAX_STEPS):
            try:
                out = self.backend.chat(
                    convo,
                    max_tokens=spec.max_tokens,
                    temperature=spec.temperature,
                    json_schema=schema,
                    logprobs=self.logprobs,
                )
            except ContextFull:
                if step_no == 0:
                    raise
                results = "; ".join(str(s["result"])[:200] for s in turn.steps)
                turn.answer = (
                    f"I ran out of context before finishing. Tool results so far: {results}"
                )
                return turn
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
                turn.answer = out.text  # cut off by max_tokens: return what there is
                return turn
            if "answer" in step:
                turn.answer = step["answer"]
                return turn
            result = self.gate.call(name, spec.tools, step.get("tool", ""), step.get("arguments"))
            turn.tool_calls[result.decision] += 1
            turn.steps.append(
                {
                    "tool": step.get("tool"),
                    "arguments": step.get("arguments"),
                    "result": result.content,
                    "decision": result.decision,
                }
            )
            convo += [
                {"role": "assistant", "content": out.text},
                {"role": "user", "content": f"Tool result: {result.content}"},
            ]
        turn.answer = (
            turn.answer or "I could not finish this request within the allowed number of steps."
        )
        return turn
