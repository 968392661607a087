"""Inference backends: llama-cpp-python in process, or any OpenAI-compatible server.

Both expose the same small surface: `chat(messages, ...)` returning the text (optionally constrained
to a JSON schema), and with `on_text` handing each piece of text to a callback as the model
generates it (real token streaming). Both record what a request cost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wire.llamacpp import quiet_llama_logs


class BackendError(Exception):
    pass


class ContextFull(BackendError):
    """The conversation no longer fits the model's context window."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        gen = self.latency_s - self.ttft_s
        return self.completion_tokens / gen if gen > 0 else 0.0


@dataclass
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    logprob: float | None = None  # mean log-probability of the generated tokens, when asked


class TokenLogprobs:
    """A llama.cpp logits processor that records the log-probability of each sampled token: at
    each step it keeps the log-normaliser of the logits, and the next step's input ends with the
    token that was sampled from them (so every token but the last; equal to llama.cpp's own
    logprobs, which need `logits_all` and its n_ctx x vocabulary buffer). One pass over the
    vocabulary per token."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.previous: Any = None
        self.start = -1

    def __call__(self, input_ids, scores):
        import numpy as np

        if self.start < 0:
            self.start = len(input_ids)
        elif self.previous is not None and len(input_ids) > self.start:
            logits, normaliser = self.previous
            self.values.append(float(logits[input_ids[-1]] - normaliser))
        top = float(np.max(scores))
        self.previous = (scores.copy(), top + float(np.log(np.sum(np.exp(scores - top)))))
        return scores

    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


class Backend(Protocol):
    name: str
    closed: bool  # closed (unloaded): a new one must be made to use the model again

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        json_schema: dict | None = None,
        logprobs: bool = False,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion: ...

    def probe(self) -> str: ...

    def close(self) -> None: ...


class LlamaCppBackend:
    """A GGUF model in this process. Loading runs a smoke test (a few tokens) before it counts."""

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int = 2048,
        n_threads: int = 0,
        n_gpu_layers: int = 0,
        seed: int = 0,
    ):
        from llama_cpp import Llama

        quiet_llama_logs()
        self.name = "llama_cpp"
        self.path = path
        self.closed = False
        started = time.perf_counter()
        self.llm: Any  # llama-cpp-python's return types are unions of dicts and iterators
        try:
            self.llm = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads or None,
                n_gpu_layers=n_gpu_layers,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        out = self.llm.create_completion("ok", max_tokens=4, temperature=0)
        if not out["choices"]:
            raise BackendError(f"smoke test of {path} produced nothing")
        self.load_time_s = time.perf_counter() - started

    def chat(
        self, messages, *, max_tokens, temperature, json_schema=None, logprobs=False, on_text=None
    ) -> Completion:
        import llama_cpp
        from llama_cpp import LlamaGrammar, LogitsProcessorList

        grammar = (
            LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)
            if json_schema
            else None
        )
        # stream=True only when someone reads the pieces: llama-cpp-python's streaming
        # re-detokenizes the output on every token. Without it, llama.cpp's own counters give the
        # time to first token for free: prompt evaluation plus one token's evaluation.
        ctx = self.llm._ctx.ctx
        llama_cpp.llama_perf_context_reset(ctx)
        started = time.perf_counter()
        recorder = TokenLogprobs() if logprobs else None
        try:
            out = self.llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                grammar=grammar,
                logits_processor=LogitsProcessorList([recorder]) if recorder else None,
                stream=on_text is not None,
            )
            if on_text is not None:
                return self._streamed(out, on_text, started, recorder)
        except ValueError as exc:  # "Requested tokens (1147) exceed context window of 1024"
            raise ContextFull(str(exc)) from exc
        perf = llama_cpp.llama_perf_context(ctx)
        ttft_s = (perf.t_p_eval_ms + perf.t_eval_ms / max(perf.n_eval, 1)) / 1000
        end = time.perf_counter()
        usage = out["usage"]
        choice = out["choices"][0]
        return Completion(
            choice["message"]["content"] or "",
            Usage(
                usage["prompt_tokens"],
                usage["completion_tokens"],
                end - started,
                min(ttft_s, end - started),
            ),
            choice.get("finish_reason") or "stop",
            recorder.mean() if recorder else None,
        )

    def _streamed(self, chunks, on_text, started: float, recorder) -> Completion:
        """A streamed generation: each piece to `on_text` as it is decoded (an exception there,
        such as the client going away, stops the generation). The counts come from the context's
        length: when the first chunk arrives it holds the prompt; at the end, the prompt and every
        generated token but the last one of a generation cut by max_tokens."""
        parts: list[str] = []
        first = 0.0
        finish = "stop"
        prompt = -1
        try:
            for chunk in chunks:
                if prompt < 0:
                    prompt = self.llm.n_tokens
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content")
                if piece:
                    first = first or time.perf_counter()
                    parts.append(piece)
                    on_text(piece)
                finish = choice.get("finish_reason") or finish
        finally:
            chunks.close()
        end = time.perf_counter()
        prompt = self.llm.n_tokens if prompt < 0 else prompt
        completion = self.llm.n_tokens - prompt + (1 if finish == "length" else 0)
        usage = Usage(prompt, completion, end - started, (first or end) - started)
        return Completion("".join(parts), usage, finish, recorder.mean() if recorder else None)

    def probe(self) -> str:
        """ "" when the model answers a tokenization (cheap, and safe beside a generation: the
        vocabulary is read-only), else why not."""
        try:
            if not self.llm.tokenize(b"ok", add_bos=False):
                return "llama.cpp: the loaded model tokenizes nothing"
        except Exception as exc:  # noqa: BLE001 - any failure is the probe's answer
            return f"llama.cpp: the loaded model failed a probe: {exc}"
        return ""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.llm.close()


class OpenAICompatBackend:
    """Any OpenAI-compatible server: Ollama, Foundry Local, vLLM, llama.cpp server (openai SDK)."""

    def __init__(
        self, base_url: str, model: str, api_key: str = "not-needed", timeout: float = 120.0
    ):
        from openai import OpenAI

        self.name = "openai"
        self.model = model
        self.closed = False
        self.schema_style = "json_schema"
        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=1)
        started = time.perf_counter()
        try:
            self.client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "ok"}], max_tokens=2
            )
        except Exception as exc:  # the SDK raises many kinds; all mean "not usable"
            raise BackendError(
                f"OpenAI-compatible server at {base_url} failed the smoke test: {exc}"
            ) from exc
        self.load_time_s = time.perf_counter() - started

    def _response_format(self, schema: dict) -> dict[str, Any]:
        if self.schema_style == "json_object":  # llama.cpp server's older form
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "step", "schema": schema}}

    def chat(
        self, messages, *, max_tokens, temperature, json_schema=None, logprobs=False, on_text=None
    ) -> Completion:
        import openai

        started = time.perf_counter()
        first = None
        parts = []
        finish = "stop"
        usage = Usage()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if json_schema:
            kwargs["response_format"] = self._response_format(json_schema)
        if logprobs:
            kwargs["logprobs"] = True  # servers that cannot simply send none
        values: list[float] = []
        try:
            stream = self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            if kwargs.pop("logprobs", None) and "logprob" in str(exc).lower():
                # A server that refuses log-probabilities answers without them (the cascade
                # then judges by its scorer alone).
                return self.chat(
                    messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    json_schema=json_schema,
                    on_text=on_text,
                )
            # Servers differ in the structured-output form they accept: OpenAI, vLLM and Ollama take
            # "json_schema", llama.cpp's server takes "json_object" with a "schema". Switch once.
            if (
                not json_schema
                or self.schema_style == "json_object"
                or "response_format" not in str(exc)
            ):
                raise BackendError(f"{self.model}: {exc}") from exc
            self.schema_style = "json_object"
            kwargs["response_format"] = self._response_format(json_schema)
            stream = self.client.chat.completions.create(**kwargs)
        try:
            for chunk in stream:
                if chunk.choices:
                    piece = chunk.choices[0].delta.content
                    if piece:
                        first = first or time.perf_counter()
                        parts.append(piece)
                        if on_text is not None:
                            on_text(piece)
                    finish = chunk.choices[0].finish_reason or finish
                    token_logprobs = getattr(chunk.choices[0], "logprobs", None)
                    for t in getattr(token_logprobs, "content", None) or []:
                        values.append(float(t.logprob))
                if getattr(chunk, "usage", None):
                    usage.prompt_tokens = chunk.usage.prompt_tokens
                    usage.completion_tokens = chunk.usage.completion_tokens
        finally:
            stream.close()  # also when on_text stopped it (the client went away)
        end = time.perf_counter()
        usage.latency_s, usage.ttft_s = end - started, (first or end) - started
        if not usage.completion_tokens:
            usage.completion_tokens = len(parts)
        mean = sum(values) / len(values) if values else None
        return Completion("".join(parts), usage, finish, mean)

    def probe(self) -> str:
        """ "" when the server lists its models within 5 s, else why not."""
        try:
            self.client.with_options(timeout=5.0, max_retries=0).models.list()
        except Exception as exc:  # noqa: BLE001 - the SDK raises many kinds; all mean "down"
            return f"the OpenAI-compatible server failed a probe: {exc}"[:500]
        return ""

    def close(self) -> None:
        self.closed = True
        self.client.close()
