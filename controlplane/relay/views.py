"""The cloud relay: `POST /api/node/v1/chat/completions`, OpenAI's chat API for nodes.

A node names a cloud endpoint of its fleet as the model (`"cloud:<endpoint>"` or `"<endpoint>"`)
and authenticates with its node credential. The relay applies the rules of escalation.py (policy,
then budgets, for the endpoint and each fallback), then forwards with the `openai` SDK's async
client: async end to end under an ASGI server, so a slow upstream holds no worker (production
sends this path to the ASGI server; README, "Production setup").

- Non-streaming: the upstream's completion, plus an `edgefleet` object (endpoint, cost, attempts,
  redactions, budget warning).
- Streaming (`"stream": true`): the upstream's chunks pass through as Server-Sent Events as they
  arrive; the same facts travel in `X-Edgefleet-*` headers. An upstream failure after the first
  chunk ends the stream with an `error` event and no `[DONE]`: never a truncated success.
- Each endpoint gets `RELAY_RETRIES` retries with exponential backoff on timeouts, connection
  errors, 429 and 5xx; then its fallback. Every upstream error is audited; when all fail, 502.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import ValidationError

from controlplane import tokens
from controlplane.errors import RateLimited, ServiceError
from controlplane.nodeapi import contacts
from controlplane.nodeapi.api import limit_rate, usable_credential
from controlplane.nodes.models import Node
from controlplane.relay import services as escalation
from wire import fields, schemas


class UpstreamCut(Exception):
    pass


_clients: dict[tuple[int, str, str, float], Any] = {}


def client(endpoint: schemas.CloudEndpoint, key: str):
    """One AsyncOpenAI client (one connection pool) per endpoint, key and event loop."""
    import openai  # imported on first use: it adds ~30 MB to every control-plane process otherwise

    timeout = float(endpoint.timeout_s or settings.EDGEFLEET["CLOUD_TIMEOUT_S"])
    ident = (id(asyncio.get_running_loop()), endpoint.base_url or "", key, timeout)
    if ident not in _clients:
        if len(_clients) > 256:
            _clients.clear()
        _clients[ident] = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=key, timeout=timeout, max_retries=0
        )
    return _clients[ident]


def _error(
    status: int, detail: Any, retry_after: int | None = None, code: str = ""
) -> JsonResponse:
    response = JsonResponse(fields.error_body(status, detail, code), status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _released(fn):
    """`fn` run in a thread, then this thread's database connections go back to the pool: a
    request waiting on the cloud must not hold one (100 waiting relays would exhaust a pool of
    16 and stall every other request). Not inside a transaction (a test's), which must stay."""

    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            for conn in connections.all(initialized_only=True):
                if not conn.in_atomic_block:
                    conn.close()

    # Thread-sensitive, as the ORM wants: under ASGI that is one thread per request (Django's
    # handler gives each its own ThreadSensitiveContext), not one for all.
    return sync_to_async(run)


def _admit(
    token: str, request: HttpRequest, body: schemas.RelayIn | None
) -> tuple[Node, escalation.Plan | None]:
    """The node behind the credential, and the endpoints that may take its request (one thread
    hop and one database connection for both); no plan for a malformed request."""
    cred = usable_credential(token, request)
    limit_rate(cred.node_id)
    contacts.record(cred.node_id, tokens.client_ip(request.META))
    node = cred.node
    if body is None:
        return node, None
    messages = [m.model_dump() for m in body.messages]
    name = body.model.removeprefix("cloud:")
    # Policy checks run the PHI detector on HIPAA fleets: CPU work, kept off the event loop.
    return node, escalation.plan(
        node,
        name,
        messages,
        agent=body.agent,
        max_tokens=body.max_tokens,
        declared=body.redactions,
    )


_accounting: set[asyncio.Future] = set()  # strong references while they run


async def _settled(accounting) -> None:
    """Write the accounting of a call the cloud already answered to its end, even when the node
    goes away and Django cancels the response meanwhile: the call is paid for either way."""
    task = asyncio.ensure_future(accounting)
    _accounting.add(task)
    task.add_done_callback(_accounting.discard)
    await asyncio.shield(task)


def _retryable(exc: Exception) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
        return True
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code == 429 or exc.status_code >= 500
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValueError):
        return "the upstream's answer is not a JSON completion"
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}"


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    if request.method != "POST":
        return _error(405, "use POST")
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return _error(401, "missing or malformed node credential")
    body, invalid = None, None
    try:
        # Strict JSON, as every API body (docs/architecture.md): "5" is not a max_tokens.
        body = schemas.RelayIn.model_validate_json(request.body, strict=True)
    except ValidationError as exc:
        invalid = json.loads(exc.json(include_url=False, include_input=False))
    try:
        node, plan = await _released(_admit)(auth.removeprefix("Bearer ").strip(), request, body)
    except RateLimited as exc:
        return _error(exc.status, exc.message, exc.retry_after)
    except ServiceError as exc:  # 401 before 422: strangers learn nothing of the schema
        return _error(exc.status, exc.message, code=exc.code)
    if body is None or plan is None:
        return _error(422, invalid)
    return await forward(request, node, body, plan)


async def _call(endpoint: schemas.CloudEndpoint, key: str, kwargs: dict[str, Any]):
    """(reply or stream, None, attempts) or (None, the last error, attempts), after retries with
    exponential backoff on what may pass (timeouts, connection errors, 429, 5xx)."""
    retries = int(settings.EDGEFLEET["RELAY_RETRIES"])
    backoff = float(settings.EDGEFLEET["RELAY_BACKOFF_S"])
    attempt = 0
    while True:
        attempt += 1
        try:
            completions = client(endpoint, key).chat.completions
            if kwargs.get("stream"):
                # The raw response: its lines pass through as they are, never re-encoded.
                opened = completions.with_streaming_response.create(**kwargs)
                return (opened, await opened.__aenter__()), "", attempt
            # The raw response: the completion passes through as the upstream wrote it (parsing it
            # into the SDK's models and back cost about a millisecond).
            raw = await completions.with_raw_response.create(**kwargs)
            out = json.loads(raw.content)
            if not isinstance(out, dict):
                raise ValueError("not a JSON object")
            return out, "", attempt
        except Exception as exc:  # noqa: BLE001 - every upstream failure is counted and audited
            if not _retryable(exc) or attempt > retries:
                return None, _describe(exc), attempt
            await asyncio.sleep(backoff * 2 ** (attempt - 1))


async def forward(
    request: HttpRequest, node: Node, body: schemas.RelayIn, plan: escalation.Plan
) -> HttpResponse | StreamingHttpResponse:
    failures: list[str] = list(plan.skipped)
    first = plan.targets[0].endpoint.name
    for target in plan.targets:
        endpoint = target.endpoint
        if not endpoint.base_url:
            failures.append(f"{endpoint.name}: no base_url configured")
            continue
        try:
            key = escalation.api_key(endpoint)
        except ServiceError as exc:
            failures.append(exc.message)
            continue
        kwargs: dict[str, Any] = {
            "model": endpoint.model or "default",
            "messages": target.messages,
            "max_tokens": body.max_tokens,
        }
        if body.temperature is not None:
            kwargs["temperature"] = body.temperature
        if body.stream:
            kwargs.update(stream=True, stream_options={"include_usage": True})
        reply, error, attempts = await _call(endpoint, key, kwargs)
        if reply is None:
            await _released(escalation.record_failure)(
                node,
                agent=body.agent,
                endpoint=endpoint.name,
                error=error,
                attempts=attempts,
                request=request,
            )
            failures.append(f"{endpoint.name}: {error} after {attempts} attempt(s)")
            continue
        if body.stream:
            return _streaming(request, node, body, target, reply, attempts, first)
        return await _answered(request, node, body, target, reply, attempts, first)
    return _error(502, "every cloud endpoint failed: " + "; ".join(failures))


async def _answered(
    request: HttpRequest,
    node: Node,
    body: schemas.RelayIn,
    target: escalation.Target,
    out: dict[str, Any],
    attempts: int,
    first: str,
) -> HttpResponse | StreamingHttpResponse:
    """The completion with its `edgefleet` object, sent before the accounting is written.

    Under ASGI the body goes out whole with its Content-Length, so the node has its answer as
    soon as the last byte arrives; the usage counters and the audit record are then written in
    the same request (the server holds the connection until they are, and a graceful shutdown
    waits for them), instead of adding their commit to every escalation's latency
    (bench/relay.py). The budget check of a request that arrives meanwhile may not count this
    one yet, as it may not count any request still in flight."""
    reported = out.get("usage")
    usage: dict[str, Any] = reported if isinstance(reported, dict) else {}
    prompt = usage.get("prompt_tokens") or escalation.estimate_tokens(target.messages)
    completion = usage.get("completion_tokens") or 0
    usd = escalation.cost(target.endpoint, prompt, completion)
    out["edgefleet"] = _meta(target, usd, attempts, first)
    data = json.dumps(out).encode()

    account = partial(
        _released(escalation.record_forward),
        node,
        agent=body.agent,
        target=target,
        prompt_tokens=prompt,
        completion_tokens=completion,
        attempts=attempts,
        stream=False,
        fallback_from=first if target.endpoint.name != first else "",
        request=request,
    )
    if not isinstance(request, ASGIRequest):  # WSGI (runserver): nothing runs after a response
        await account()
        return JsonResponse(out)

    async def content() -> AsyncIterator[bytes]:
        try:
            yield data
        finally:
            await _settled(account())

    response = StreamingHttpResponse(content(), content_type="application/json")
    response["Content-Length"] = str(len(data))
    return response


def _meta(target: escalation.Target, usd: float | None, attempts: int, first: str) -> dict:
    meta: dict[str, Any] = {
        "endpoint": target.endpoint.name,
        "region": target.endpoint.region,
        "attempts": attempts,
        "redactions": target.redactions,
    }
    if usd is not None:
        meta["cost_usd"] = round(usd, 6)
    if target.endpoint.name != first:
        meta["fallback_from"] = first
    if target.warning:
        meta["budget_warning"] = target.warning
    return meta


def _streaming(
    request: HttpRequest,
    node: Node,
    body: schemas.RelayIn,
    target: escalation.Target,
    stream,
    attempts: int,
    first: str,
) -> StreamingHttpResponse:
    opened, upstream = stream

    async def events() -> AsyncIterator[bytes]:
        prompt = completion = 0
        chunks = 0
        failed, done = "", False
        try:
            try:
                async for line in upstream.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True  # ours goes out after the accounting
                        continue
                    if '"usage"' in data:
                        usage = json.loads(data).get("usage") if data.startswith("{") else None
                        prompt = (usage or {}).get("prompt_tokens") or prompt
                        completion = (usage or {}).get("completion_tokens") or completion
                    if '"content"' in data:
                        chunks += 1
                    yield b"data: " + data.encode() + b"\n\n"
                if not done:
                    raise UpstreamCut("the stream ended without [DONE]")
            except Exception as exc:  # noqa: BLE001 - reported in the stream and audited
                failed = str(exc) if isinstance(exc, UpstreamCut) else _describe(exc)
                error = {
                    "message": f"cloud endpoint failed mid-stream: {failed}",
                    "type": "upstream",
                }
                yield b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
            finally:
                await opened.__aexit__(None, None, None)
            if not failed:
                yield b"data: [DONE]\n\n"
        finally:
            # Also when the node goes away mid-stream: what the cloud produced is paid for.
            if failed:
                accounting = _released(escalation.record_failure)(
                    node,
                    agent=body.agent,
                    endpoint=target.endpoint.name,
                    error=failed,
                    attempts=attempts,
                    request=request,
                )
            else:
                accounting = _released(escalation.record_forward)(
                    node,
                    agent=body.agent,
                    target=target,
                    prompt_tokens=prompt or escalation.estimate_tokens(target.messages),
                    completion_tokens=completion or chunks,  # no usage sent: a token a chunk
                    attempts=attempts,
                    stream=True,
                    fallback_from=first if target.endpoint.name != first else "",
                    request=request,
                )
            await _settled(accounting)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer it either
    for key, value in _meta(target, None, attempts, first).items():
        response[f"X-Edgefleet-{key.replace('_', '-').title()}"] = (
            json.dumps(value) if isinstance(value, dict) else str(value)
        )
    return response
