"""The node's local OpenAI-compatible endpoint, so applications on the device talk to the managed
agents the way they would talk to Ollama: `GET /v1/models`, `POST /v1/chat/completions` (with
`stream: true` as server-sent events). The `model` field names an agent (or the loaded model, which
means the default agent). Plain ASGI, served by uvicorn; no framework.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

from pydantic import ValidationError

from agents.backends import ContextFull
from agents.client import ControlPlaneError
from agents.runtime import Busy, QueueFull, Runtime, Superseded
from wire import schemas
from wire.compliance import EscalationRefused, PhiRefused

MAX_BODY = 1 << 20


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

    async def done(self) -> None:
        await self.chunk({}, "stop")
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
            if queued >= most:
                health["degraded"] = f"the request queue is full ({queued} of {most})"
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
            return await self._chat(receive, send)
        return await _send_json(send, 404, _error(f"no route for {method} {path}"))

    async def _chat(self, receive, send):
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
        except ValueError as exc:
            return await _send_json(send, 400, _error(f"bad request: {exc}"))
        model = str(req.get("model") or "")
        subject = str(req.get("user") or "")[:200]
        clean = [{"role": m["role"], "content": str(m.get("content", ""))} for m in messages]
        if model.startswith("cloud:"):
            # Explicit escalation: the fleet's compliance policy applies here and on the server.
            try:
                if req.get("stream"):
                    return await self._cloud_stream(send, req, clean, model[6:], subject, options)
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
        try:
            turn = await asyncio.to_thread(self.runtime.ask, clean, agent, subject, options)
        except QueueFull as exc:
            return await _send_json(send, 429, _error(str(exc), "queue_full"), RETRY)
        except (Busy, Superseded) as exc:
            return await _send_json(send, 503, _error(str(exc), "busy"), RETRY)
        except (KeyError, RuntimeError, ContextFull) as exc:
            return await _send_json(send, 400, _error(str(exc)))
        except Exception as exc:  # an inference failure must answer, not drop the connection
            return await _send_json(send, 500, _error(f"inference failed: {exc}", "server_error"))
        return await self._answer(send, req, turn)

    async def _cloud_stream(
        self, send, req, messages, endpoint: str, subject: str, options: dict[str, Any]
    ) -> None:
        """A cloud answer streamed as it arrives (runtime.escalator.stream, run on a thread of its
        own). A refusal raises before anything is sent; a cut after the first chunk ends the
        stream with an `error` event and no `[DONE]`."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def pump() -> None:
            try:
                pieces = self.runtime.escalator.stream(messages, endpoint, "", subject, options)
                for piece in pieces:
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
                loop.call_soon_threadsafe(queue.put_nowait, ("done", None))
            except Exception as exc:  # noqa: BLE001 - handed to the response
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        threading.Thread(target=pump, name="cloud-stream", daemon=True).start()
        kind, value = await queue.get()
        if kind == "error":
            raise value
        stream = _Events(send, f"cloud:{endpoint}")
        await stream.start(_routing_headers({"route": "cloud", "rule": "explicit"}))
        while kind == "piece":
            await stream.chunk({"content": value})
            kind, value = await queue.get()
        if kind == "error":
            await stream.fail(f"the cloud stream failed: {value}")
            return
        await stream.done()

    async def _answer(self, send, req: dict[str, Any], turn) -> None:
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:20]}", int(time.time())
        usage = {
            "prompt_tokens": turn.usage.prompt_tokens,
            "completion_tokens": turn.usage.completion_tokens,
            "total_tokens": turn.usage.prompt_tokens + turn.usage.completion_tokens,
        }
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
        stream = _Events(send, turn.agent, cid, created)
        await stream.start(_routing_headers(turn.routing))
        for i in range(0, len(turn.answer), 16):
            await stream.chunk({"content": turn.answer[i : i + 16]})
        await stream.done()


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
