"""The node's local OpenAI-compatible endpoint, so applications on the device talk to the managed
agents the way they would talk to Ollama: `GET /v1/models`, `POST /v1/chat/completions` (with
`stream: true` as server-sent events). The `model` field names an agent (or the loaded model, which
means the default agent). Plain ASGI, served by uvicorn; no framework.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from agents.agent import Cancelled, Stream
from agents.backends import ContextFull
from agents.client import ControlPlaneError
from agents.runtime import Busy, QueueFull, Runtime, Superseded
from agents.sessions import check_id
from wire import schemas
from wire.compliance import EscalationRefused, PhiRefused

MAX_BODY = 1 << 20
log = logging.getLogger("edgefleet.agent")


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if len(body) > MAX_BODY:
            raise ValueError("request body too large")
        if not msg.get("more_body"):
            return body


async def _send_json(
    send, status: int, data: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(data).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


RETRY = [(b"retry-after", b"5")]


def _error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}


def _options(req: dict[str, Any]) -> dict[str, Any]:
    """The request's generation parameters that are passed on to a cloud model, checked by the
    wire contract's own bounds (raises ValueError with the field's name)."""
    try:
        options = schemas.GenerationOptions.model_validate(req)
    except ValidationError as exc:
        raise ValueError(schemas.first_error(exc)) from None
    return options.model_dump(exclude_none=True)


def _session(scope, req: dict[str, Any]) -> str:
    """The conversation the client names (`session` in the body, or the x-edgefleet-session
    header), checked; "" for none."""
    value = req.get("session")
    if value is None:
        for name, raw in scope.get("headers", []):
            if name == b"x-edgefleet-session":
                value = raw.decode("latin-1")
    return check_id(value) if value is not None else ""


def _compose(history: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    system = [m for m in new if m["role"] == "system"]
    return [*system, *history, *(m for m in new if m["role"] != "system")]


def _without_oldest_turn(history: list[dict[str, str]]) -> list[dict[str, str]]:
    """The history less its first turn: the first message and what follows up to the next one
    the user sent."""
    rest = history[1:]
    while rest and rest[0]["role"] != "user":
        rest = rest[1:]
    return rest


def _failure(exc: Exception) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    """The status and OpenAI-style error body for a request that could not be answered."""
    if isinstance(exc, sqlite3.Error):  # the node's session storage (a full or broken disk)
        message = f"this node cannot read its conversations now: {exc}"
        return 503, _error(message, "sessions_unavailable"), RETRY
    if isinstance(exc, QueueFull):
        return 429, _error(str(exc), "queue_full"), RETRY
    if isinstance(exc, (Busy, Superseded)):
        return 503, _error(str(exc), "busy"), RETRY
    if isinstance(exc, (KeyError, RuntimeError, ContextFull)):
        return 400, _error(str(exc)), []
    # An inference failure must answer, not drop the connection.
    return 500, _error(f"inference failed: {exc}", "server_error"), []


def _usage(turn) -> dict[str, int]:
    return {
        "prompt_tokens": turn.usage.prompt_tokens,
        "completion_tokens": turn.usage.completion_tokens,
        "total_tokens": turn.usage.prompt_tokens + turn.usage.completion_tokens,
    }


def _routing_headers(routing: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Where an answer came from, in headers too (OpenAI clients drop unknown body fields):
    `x-edgefleet-route` (local, cloud), `-rule`, `-score`, and the whole decision as JSON."""
    if not routing:
        return []
    headers = [(b"x-edgefleet-routing", json.dumps(routing).encode())]
    for key in ("route", "rule", "score"):
        if routing.get(key) is not None:
            headers.append((f"x-edgefleet-{key}".encode(), str(routing[key]).encode()))
    return headers


class _Events:
    """An OpenAI chat completion as server-sent events: the role chunk, content chunks, then a
    stop chunk and `[DONE]`, or an `error` event and no `[DONE]` (never a short success)."""

    def __init__(self, send, model: str, cid: str = "", created: int = 0):
        self.send, self.model = send, model
        self.cid = cid or f"chatcmpl-{uuid.uuid4().hex[:20]}"
        self.created = created or int(time.time())

    async def _event(self, data: dict[str, Any]) -> None:
        body = f"data: {json.dumps(data)}\n\n".encode()
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def start(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    *(headers or []),
                ],
            }
        )
        await self.chunk({"role": "assistant", "content": ""})

    async def chunk(self, delta: dict[str, Any], finish: str | None = None) -> None:
        await self._event(
            {
                "id": self.cid,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    async def done(
        self, extra: dict[str, Any] | None = None, usage: dict[str, int] | None = None
    ) -> None:
        """The stop chunk (with `extra` fields: the routing decision), a usage chunk when asked
        (OpenAI's form: no choices), `[DONE]`."""
        stop = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            **(extra or {}),
        }
        await self._event(stop)
        if usage is not None:
            await self._event({**stop, "choices": [], "usage": usage})
        await self.send(
            {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False}
        )

    async def fail(self, message: str) -> None:
        await self._event({"error": {"message": message, "type": "upstream"}})
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})


class LocalAPI:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def _agents(self) -> list[str]:
        active = self.runtime.active
        return sorted(active.runner.specs) if active and active.runner else []

    def _with_history(self, session: str, new: list[dict[str, str]]) -> list[dict[str, str]]:
        """A session's kept messages before the new ones (the client's system messages first)."""
        return _compose(self.runtime.sessions.history(session) if session else [], new)

    def _fitting(self, session: str, new: list[dict[str, str]], ask: Callable[[list], Any]):
        """`ask` with the session's history before the new messages; where they no longer fit
        the model's context, without the oldest turns until they do (on a worker thread)."""
        history = self.runtime.sessions.history(session) if session else []
        while True:
            try:
                return ask(_compose(history, new))
            except ContextFull:
                if not history:
                    raise
                history = _without_oldest_turn(history)

    def _remember(self, req: dict[str, Any], answer: str) -> None:
        """Keep the turn in its session. The answer was given already: a storage failure is
        logged, not the client's error."""
        session, new, subject = req.get("_remember") or ("", [], "")
        if session:
            turn = [*new, {"role": "assistant", "content": answer}]
            try:
                self.runtime.remember(session, turn, subject)
            except sqlite3.Error as exc:
                log.error("session %s: the turn could not be kept: %s", session, exc)

    def _default_agent(self) -> str:
        active = self.runtime.active
        return active.runner.default_agent() if active and active.runner else ""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            return
        path, method = scope["path"], scope["method"]
        revoked = self.runtime.revoked
        if path == "/healthz":
            if revoked:
                return await _send_json(
                    send, 503, {"ok": False, "loaded": bool(self._agents()), "revoked": revoked}
                )
            queued, most = self.runtime.queued, self.runtime.queue_max
            health: dict[str, Any] = {"ok": True, "loaded": bool(self._agents()), "queued": queued}
            reasons = [r for r in self.runtime.applier.degraded if "queue" not in r]
            if queued >= most:
                reasons.append(f"the request queue is full ({queued} of {most})")
            if reasons:  # the device timer's reasons (a failed backend probe...), and the queue now
                health["degraded"] = "; ".join(reasons)
            return await _send_json(send, 200, health)
        if revoked and path.startswith("/v1/"):
            # A revoked node serves nothing: no local answer, no relayed one (docs/agent.md).
            message = (
                f"this node's credential was refused by the control plane ({revoked}): it "
                "answers no request until it is enrolled again"
            )
            return await _send_json(send, 503, _error(message, "node_revoked"))
        if path == "/v1/models" and method == "GET":
            data = [
                {"id": a, "object": "model", "created": 0, "owned_by": "edgefleet"}
                for a in self._agents()
            ]
            return await _send_json(send, 200, {"object": "list", "data": data})
        if path == "/v1/chat/completions" and method == "POST":
            return await self._chat(scope, receive, send)
        return await _send_json(send, 404, _error(f"no route for {method} {path}"))

    async def _chat(self, scope, receive, send):
        try:
            req = json.loads(await _read_body(receive))
            messages = req["messages"]
            if not isinstance(messages, list) or not all(
                isinstance(m, dict) and "role" in m for m in messages
            ):
                raise ValueError("messages must be a list of {role, content} objects")
        except (ValueError, KeyError, TypeError) as exc:
            return await _send_json(send, 400, _error(f"bad request: {exc}"))
        try:
            options = _options(req)
            session = _session(scope, req)
        except ValueError as exc:  # BadSession too
            return await _send_json(send, 400, _error(f"bad request: {exc}"))
        model = str(req.get("model") or "")
        subject = str(req.get("user") or "")[:200]
        new = [{"role": m["role"], "content": str(m.get("content", ""))} for m in messages]
        req["_remember"] = (session, new, subject)  # what the answer is stored with (_answer)
        if model.startswith("cloud:"):
            try:
                clean = self._with_history(session, new)
            except sqlite3.Error as exc:
                return await _send_json(send, *_failure(exc))
            # Explicit escalation: the fleet's compliance policy applies here and on the server.
            try:
                if req.get("stream"):
                    endpoint = model[6:]

                    def escalate(stream: Stream) -> Any:
                        stream.routing({"route": "cloud", "rule": "explicit", "endpoint": endpoint})
                        turn = self.runtime.escalator.streamed(
                            clean, endpoint, "", subject, options, stream
                        )
                        turn.routing = {"route": "cloud", "rule": "explicit", "endpoint": endpoint}
                        return turn

                    return await self._stream(receive, send, req, escalate, model)
                turn = await asyncio.to_thread(
                    self.runtime.escalator.escalate, clean, model[6:], "", subject, options
                )
                turn.routing = {"route": "cloud", "rule": "explicit", "endpoint": model[6:]}
            except PhiRefused as exc:
                # HIPAA fails closed: nothing went out; the node answers itself and says why.
                if not self._agents():
                    return await _send_json(send, 403, _error(str(exc), "policy_refused"))
                note = f"answered locally: {str(exc)[:300]}"
                turn = await asyncio.to_thread(self.runtime.answer_locally, clean, note, subject)
            except (EscalationRefused, ControlPlaneError) as exc:
                return await _send_json(send, 403, _error(str(exc), "policy_refused"))
            return await self._answer(send, req, turn)
        agents = self._agents()
        if not agents:
            return await _send_json(
                send, 503, _error("no model is loaded on this node yet", "unavailable")
            )
        agent = req.get("model") if req.get("model") in agents else None
        if req.get("stream"):

            def produce(stream: Stream) -> Any:
                def ask(messages: list) -> Any:
                    return self.runtime.ask(messages, agent, subject, options, stream)

                return self._fitting(session, new, ask)

            try:
                return await self._stream(
                    receive, send, req, produce, agent or self._default_agent()
                )
            except Exception as exc:  # noqa: BLE001 - every failure is answered (_failure)
                return await _send_json(send, *_failure(exc))
        try:
            turn = await asyncio.to_thread(
                self._fitting,
                session,
                new,
                lambda messages: self.runtime.ask(messages, agent, subject, options),
            )
        except Exception as exc:  # noqa: BLE001 - every failure is answered (_failure)
            return await _send_json(send, *_failure(exc))
        return await self._answer(send, req, turn)

    async def _stream(self, receive, send, req, produce, model: str) -> None:
        """An answer streamed as it is generated: `produce(stream)` runs on a worker thread and
        returns the Turn, handing each piece to the stream meanwhile (the local model's tokens,
        or the cloud's chunks). The response starts with the first piece, so a failure before it
        is raised here for the caller to answer with a plain status (a full queue, a busy node,
        a refusal); after it, the stream ends with an `error` event and no `[DONE]`. The routing
        headers are those known at the first piece. A client that goes away stops the
        generation at its next piece."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        cancelled = threading.Event()
        stream = Stream(
            text=lambda piece: put("piece", piece),
            routing=lambda meta: put("routing", meta),
            cancelled=cancelled,
        )

        def work() -> None:
            try:
                put("done", produce(stream))
            except Exception as exc:  # noqa: BLE001 - handed to the response
                put("error", exc)

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancelled.set()

        watcher = asyncio.create_task(watch_disconnect())
        # On the loop's thread pool, as plain requests are: llama.cpp's OpenMP threads are per
        # calling thread, and a new thread per request would start a new team each time (2 ms).
        work_done = loop.run_in_executor(None, work)
        events: _Events | None = None
        routing: dict[str, Any] = {}
        sent = ""
        try:
            while True:
                kind, value = await queue.get()
                if kind == "routing":
                    routing = value
                elif kind == "piece":
                    if events is None:
                        events = _Events(send, model)
                        await events.start(_routing_headers(routing))
                    sent += value
                    await events.chunk({"content": value})
                elif kind == "error":
                    if isinstance(value, Cancelled):
                        return
                    if events is None:
                        raise value
                    return await events.fail(f"the answer failed: {value}")
                else:
                    return await self._finish_stream(send, req, value, events, sent)
        except OSError:  # the client went away while we wrote
            cancelled.set()
        finally:
            watcher.cancel()
            work_done.cancel()  # nothing if it runs: it ends at its next piece, or with its answer

    async def _finish_stream(self, send, req, turn, events: _Events | None, sent: str) -> None:
        """The rest of a streamed answer: what was not streamed (the whole answer of a cascade,
        what tools did after a repeated call), the stop chunk with the routing decision, the usage
        when the client asked for it (`stream_options.include_usage`), `[DONE]`."""
        self._remember(req, turn.answer)
        if events is None:
            events = _Events(send, turn.agent)
            await events.start(_routing_headers(turn.routing))
        rest = turn.answer[len(sent) :] if turn.answer.startswith(sent) else ""
        if rest:
            await events.chunk({"content": rest})
        extra = {"edgefleet": {"routing": turn.routing}} if turn.routing else {}
        usage = _usage(turn) if (req.get("stream_options") or {}).get("include_usage") else None
        await events.done(extra, usage)

    async def _answer(self, send, req: dict[str, Any], turn) -> None:
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:20]}", int(time.time())
        usage = _usage(turn)
        if not req.get("stream"):
            self._remember(req, turn.answer)
        if not req.get("stream"):
            return await _send_json(
                send,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": turn.agent,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": turn.answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    **({"edgefleet": {"routing": turn.routing}} if turn.routing else {}),
                },
                _routing_headers(turn.routing),
            )
        # A whole answer asked for as a stream (a local answer after a cloud refusal for PHI).
        await self._finish_stream(send, req, turn, None, "")


class LocalServer:
    """Runs the local API on a background thread (uvicorn)."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 8471):
        import uvicorn

        config = uvicorn.Config(
            LocalAPI(runtime), host=host, port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="local-api", daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise RuntimeError(f"local API could not listen on {self.url}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
