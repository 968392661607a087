"""The node API client (httpx). Knows the protocol; knows nothing of Django."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from wire import schemas

API = "/api/node/v1"


class ControlPlaneError(Exception):
    """The control plane answered with an error (4xx/5xx), or could not be reached."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        code: str = "",
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.code = code  # the server's machine-readable reason, where it gives one


@dataclass
class PollResult:
    changed: bool
    etag: str
    interval_s: float
    document: schemas.DesiredState | None = None
    watched: bool = False  # the server held the request as a watch (`X-Watch: 1`)
    approval_id: int | None = None  # a watch woken by this approval's decision


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (AWS architecture blog)."""
    return random.uniform(0, min(cap, base * 2**attempt))


def retry_wait(exc: ControlPlaneError, attempt: int) -> float:
    """How long to wait after a failed call: the server's Retry-After spread over [R, 2R], so that
    nodes shed at the same moment (a stampede after a restart) do not all come back together;
    without one, full-jitter backoff up to a minute."""
    if exc.retry_after:
        return exc.retry_after * random.uniform(1.0, 2.0)
    return backoff(attempt, base=1.0, cap=60.0)


def _raise_for(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    code = ""
    try:
        body = r.json()
        detail = body.get("detail")
        code = str(body.get("code") or "")
    except (ValueError, AttributeError):
        detail = r.text[:200]
    retry_after = r.headers.get("Retry-After")
    raise ControlPlaneError(
        f"{r.request.method} {r.request.url.path}: {r.status_code} {detail}",
        status=r.status_code,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        code=code,
    )


class NodeClient:
    def __init__(
        self, server: str, credential: str | None = None, timeout: float = 30.0, transport=None
    ):
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server + API, timeout=timeout, transport=transport)
        self.credential = credential

    def close(self) -> None:
        self.http.close()

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.credential}"} if self.credential else {}
        return {**headers, **(extra or {})}

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            r = self.http.request(
                method, path, headers=self._headers(kwargs.pop("headers", None)), **kwargs
            )
        except httpx.HTTPError as exc:
            raise ControlPlaneError(
                f"cannot reach the control plane at {self.server}: {exc}"
            ) from exc
        _raise_for(r)
        return r

    def enroll(self, token: str, name: str, hardware: schemas.HardwareProfile) -> schemas.EnrollOut:
        body = schemas.EnrollIn(token=token, name=name, hardware=hardware).model_dump(mode="json")
        return schemas.EnrollOut.model_validate(self._call("POST", "/enroll", json=body).json())

    def poll(self, etag: str | None, wait: int = 0, approval: int = 0) -> PollResult:
        """The desired state if it changed since `etag`. With `wait` (seconds) a watch: a server
        that holds watches answers when it changes, an approval is decided (at once if
        `approval` is decided already), or the wait ends."""
        extra: dict[str, Any] = {}
        if wait:
            params = {"wait": wait, **({"approval": approval} if approval else {})}
            # Servers may hold up to 1/16 longer than asked (spreading watches that began together).
            extra = {"params": params, "timeout": wait * 1.0625 + 15}
        r = self._call(
            "GET", "/desired-state", headers={"If-None-Match": etag} if etag else None, **extra
        )
        interval = float(r.headers.get("X-Poll-Interval", "30"))
        watched = r.headers.get("X-Watch") == "1"
        if r.status_code == 304:
            decided = r.headers.get("X-Approval-Id", "")
            return PollResult(
                False,
                etag or "",
                interval,
                watched=watched,
                approval_id=int(decided) if decided.isdigit() else None,
            )
        return PollResult(
            True,
            r.headers.get("ETag", ""),
            interval,
            schemas.DesiredState.model_validate(r.json()),
            watched=watched,
        )

    def report(self, report: schemas.ReportedStateIn) -> schemas.ReportedStateOut:
        r = self._call("POST", "/reported-state", json=report.model_dump(mode="json"))
        return schemas.ReportedStateOut.model_validate(r.json())

    def send(self, stream: str, items: list[dict[str, Any]]) -> schemas.AckOut:
        key = "samples" if stream == "metrics" else "events"
        return schemas.AckOut.model_validate(
            self._call("POST", f"/{stream}", json={key: items}).json()
        )

    def relay(self, req: schemas.RelayIn) -> schemas.EscalateOut:
        """Through the control plane's cloud relay (non-streaming)."""
        reply = self._call("POST", "/chat/completions", json=req.model_dump(mode="json")).json()
        meta = reply.get("edgefleet", {})
        usage = reply.get("usage") or {}
        return schemas.EscalateOut(
            content=reply["choices"][0]["message"].get("content") or "",
            endpoint=meta.get("endpoint", req.model.removeprefix("cloud:")),
            model=reply.get("model", ""),
            redactions=meta.get("redactions", {}),
            cost_usd=meta.get("cost_usd"),
            budget_warning=meta.get("budget_warning", ""),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    def relay_stream(self, req: schemas.RelayIn) -> Iterator[str]:
        """Through the relay, streamed: the answer's text as its chunks arrive. A stream the cloud
        cuts (an `error` event, or no `[DONE]`) raises ControlPlaneError: never a short success."""
        body = req.model_dump(mode="json") | {"stream": True}
        try:
            with self.http.stream(
                "POST", "/chat/completions", json=body, headers=self._headers()
            ) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise_for(r)
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        message = (chunk["error"] or {}).get("message", "the cloud stream failed")
                        raise ControlPlaneError(message, status=502)
                    for choice in chunk.get("choices") or []:
                        if piece := (choice.get("delta") or {}).get("content"):
                            yield piece
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"the cloud stream was cut: {exc}", status=502) from exc
        except ValueError as exc:
            raise ControlPlaneError(f"the cloud stream is not JSON: {exc}", status=502) from exc
        raise ControlPlaneError("the cloud stream ended without [DONE]", status=502)

    def secret(self, name: str) -> str:
        """A fleet secret the desired state names (kept in memory only, never logged)."""
        r = self._call("GET", f"/secrets/{name}")
        return schemas.SecretValueOut.model_validate(r.json()).value

    def signing_key(self) -> schemas.SigningKeyOut:
        return schemas.SigningKeyOut.model_validate(self._call("GET", "/signing-key").json())

    def rotate(self) -> schemas.RotateOut:
        return schemas.RotateOut.model_validate(self._call("POST", "/credentials/rotate").json())

    def request_approval(self, req: schemas.ApprovalIn) -> schemas.ApprovalOut:
        return schemas.ApprovalOut.model_validate(
            self._call("POST", "/approvals", json=req.model_dump(mode="json")).json()
        )

    def approval(self, approval_id: int) -> schemas.ApprovalOut:
        return schemas.ApprovalOut.model_validate(
            self._call("GET", f"/approvals/{approval_id}").json()
        )

    def fetch(self, url: str) -> bytes:
        """A small file from the node API (a router artifact), whole."""
        return self._call("GET", url).content

    def download(self, url: str, dest) -> None:
        """Download to `dest`, resuming a partial file with an HTTP Range request. Bytes are written
        as they arrive, so an interruption loses nothing that was received."""
        done = dest.stat().st_size if dest.exists() else 0
        headers = self._headers({"Range": f"bytes={done}-"} if done else None)
        try:
            with self.http.stream("GET", url, headers=headers) as r:
                if r.status_code == 416:  # already complete
                    return
                _raise_for(r)
                mode = "ab" if r.status_code == 206 else "wb"
                with open(dest, mode) as f:
                    for part in r.iter_bytes():
                        f.write(part)
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"download of {url} interrupted: {exc}") from exc
