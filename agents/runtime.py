"""The long-running edge agent: poll desired state, apply it safely, serve, report, deliver telemetry.

State directory layout (created 0700, files 0600):
    node.json      server URL, node id, credential (written by `enroll`)
    applied.json   the last revision applied successfully, written atomically only after a complete apply
    status.json    what `status` shows (last contact, desired revision, last error)
    outbox.db      metrics and events waiting for the control plane (outbox.py)
    models/        verified model files, named by sha256
    sandbox/       the only directory file tools can see

Applying a revision is all-or-nothing: fetch and verify the model, load it (with a smoke test), build
the agents and the tool gate, and only then swap them in and record the revision in applied.json. On
any failure the node keeps serving what it had and reports the error. A crash mid-apply leaves
applied.json untouched, so a restart comes back on the previous state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pydantic import ValidationError

from . import compliance, manifest, schemas
from .agent import AgentRunner, Turn
from .backends import Backend, BackendError, LlamaCppBackend, OpenAICompatBackend, Usage
from .client import ControlPlaneError, NodeClient, backoff
from .manifest import sha256_file
from .outbox import STREAMS, Outbox
from .tools import ToolGate, registry

log = logging.getLogger("edgefleet.agent")


def default_state_dir() -> Path:
    base = os.environ.get("EDGEFLEET_AGENT_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME", os.path.expanduser("~/.local/state")), "edgefleet-agent"
    )
    return Path(base)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


class StateDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def ensure(self) -> StateDir:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        for sub in ("models", "sandbox"):
            (self.path / sub).mkdir(exist_ok=True, mode=0o700)
        return self

    node = property(lambda self: read_json(self.path / "node.json"))
    applied = property(lambda self: read_json(self.path / "applied.json"))
    status = property(lambda self: read_json(self.path / "status.json") or {})

    def save_node(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / "node.json", data)

    def save_applied(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / "applied.json", data)

    def save_status(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path / "status.json", data)


@dataclass
class Active:
    revision: int
    document: dict[str, Any]
    backend: Backend | None
    runner: AgentRunner | None
    model_digest: str


class ApplyError(Exception):
    pass


# The end user a request is served for (the OpenAI API's `user` field): events name them, and the
# control plane stores only a keyed pseudonym, erasable on request (GDPR).
SUBJECT: ContextVar[str] = ContextVar("edgefleet_subject", default="")


class Runtime:
    def __init__(
        self, state: StateDir, *, client: NodeClient | None = None, send_interval_s: float = 2.0
    ):
        self.state = state.ensure()
        node = state.node
        if not node:
            raise RuntimeError(
                f"not enrolled: no node.json in {state.path} (run `edgefleet-agent enroll` first)"
            )
        self.node = node
        self.client = client or NodeClient(node["server"], node["credential"])
        self.outbox = Outbox(state.path / "outbox.db")
        self.send_interval_s = send_interval_s
        self.stop = threading.Event()
        self.request_lock = threading.Lock()  # one inference at a time; SIGTERM waits for it
        self.swap_lock = threading.Lock()
        self.active: Active | None = None
        self.etag: str | None = None
        self.desired_revision: int | None = None
        self.last_contact: float | None = None
        self.last_error = ""
        self.threads: list[threading.Thread] = []
        self.listen = ""  # the local API's URL, once serving
        self._dropped_reported = {s: 0 for s in STREAMS}

    # --- telemetry -------------------------------------------------------------------------------

    def policy(self) -> schemas.CompliancePolicy:
        """The fleet's compliance policy from the applied desired state (strictest if unreadable)."""
        document = self.active.document if self.active else {}
        try:
            return schemas.CompliancePolicy.model_validate(document.get("compliance") or {})
        except ValidationError:
            return schemas.CompliancePolicy(mode="hipaa", phi_action="refuse", store_content=False)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event. Content leaves the device only where the fleet's policy allows it."""
        subject = SUBJECT.get()
        if subject:
            data = {**data, "subject": subject}
        self.outbox.enqueue(
            "events", {"kind": kind, "data": compliance.minimise(data, self.policy())}
        )

    def metrics(self, values: dict[str, float]) -> None:
        self.outbox.enqueue_many(
            "metrics", [{"name": k, "value": float(v)} for k, v in values.items()]
        )

    # --- applying desired state ------------------------------------------------------------------

    def restore(self) -> None:
        """After a restart: bring back the last revision that was applied completely."""
        applied = self.state.applied
        if not applied:
            return
        self.etag = applied.get("etag")
        try:
            self.active = self._build(applied["document"])
        except ApplyError as exc:
            self.last_error = (
                f"could not restore revision {applied['document'].get('revision')}: {exc}"
            )
            log.error(self.last_error)
            self.etag = None  # ask for the document again

    def signing_key(self) -> str:
        """The control plane's public key, pinned at enrollment (or, for a node enrolled before
        keys were handed out, fetched once over its authenticated channel and pinned then)."""
        key = self.node.get("signing_key")
        if not key:
            try:
                key = self.client.signing_key().public_key
            except ControlPlaneError as exc:
                raise ApplyError(
                    f"cannot verify models: no signing key is pinned and fetching it failed: {exc}"
                ) from exc
            self.node = {**self.node, "signing_key": key}
            self.state.save_node(self.node)
        return key

    def _refuse(self, model: schemas.ModelAssignment, reason: str) -> ApplyError:
        self.event("model.refused", {"model": model.name, "sha256": model.sha256 or "",
                                     "reason": reason[:500]})  # fmt: skip
        return ApplyError(f"refused model '{model.name}': {reason}")

    def _fetch_model(self, model: schemas.ModelAssignment) -> Path:
        if model.error:
            raise ApplyError(model.error)
        if not model.sha256:
            raise self._refuse(model, "it has no sha256 to verify against")
        try:
            manifest.check(model.manifest, model.signature, self.signing_key(), model.sha256)
        except manifest.ManifestError as exc:
            raise self._refuse(model, str(exc)) from exc
        final = self.state.path / "models" / f"{model.sha256}.gguf"
        if final.exists() and sha256_file(final) == model.sha256:
            return final
        part = final.with_suffix(".part")
        parsed = urlsplit(model.url)
        try:
            if parsed.scheme == "file":
                shutil.copyfile(url2pathname(parsed.path), part)
            elif parsed.scheme in ("http", "https", ""):
                self.client.download(model.url, part)
            else:
                raise ApplyError(f"unsupported model URL scheme '{parsed.scheme}'")
        except (OSError, ControlPlaneError) as exc:
            raise ApplyError(f"could not fetch model '{model.name}': {exc}") from exc
        digest = sha256_file(part)
        if digest != model.sha256:
            part.unlink(missing_ok=True)
            raise self._refuse(
                model, f"the downloaded file failed verification: sha256 {digest} != {model.sha256}"
            )
        os.replace(part, final)
        return final

    def _build(self, document: dict[str, Any]) -> Active:
        try:
            doc = schemas.DesiredState.model_validate(document)
            schemas.validate_sections(doc.model_dump())
            policy = schemas.ToolPolicy.model_validate(doc.tools)
            specs = {
                name: schemas.AgentSpec.model_validate(spec) for name, spec in doc.agents.items()
            }
            model = schemas.ModelAssignment.model_validate(doc.model) if doc.model else None
        except ValidationError as exc:
            raise ApplyError(f"invalid desired state: {schemas.first_error(exc)}") from exc
        for name, spec in specs.items():
            if spec.model and (model is None or spec.model != model.name):
                running = model.name if model else "no model"
                raise ApplyError(
                    f"agent '{name}' asks for model '{spec.model}' but this node is assigned {running!r}"
                )
        backend: Backend | None = None
        digest = ""
        current = self.active
        if (
            model
            and current
            and current.document.get("model") == doc.model
            and current.backend is not None
        ):
            backend, digest = current.backend, current.model_digest  # same model: no reload
        elif model:
            try:
                if model.backend == "openai":
                    backend = OpenAICompatBackend(model.base_url, model.remote_model or model.name)
                else:
                    path = self._fetch_model(model)
                    backend = LlamaCppBackend(str(path), n_ctx=model.n_ctx, n_threads=model.n_threads,
                                              n_gpu_layers=model.n_gpu_layers)  # fmt: skip
                digest = schemas.model_digest(model.model_dump())
            except BackendError as exc:
                raise ApplyError(str(exc)) from exc
            self.metrics({"model.load_time_ms": backend.load_time_s * 1000})  # type: ignore[attr-defined]
        gate = ToolGate(
            policy,
            registry(),
            self.state.path / "sandbox",
            approver=self._approve,
            audit=self.event,
        )
        runner = AgentRunner(specs, backend, gate) if backend and specs else None
        return Active(doc.revision, document, backend, runner, digest)

    def apply(self, document: dict[str, Any], etag: str) -> None:
        previous = self.active
        try:
            new = self._build(document)
        except ApplyError as exc:
            self.last_error = str(exc)
            self.event(
                "apply.failed", {"revision": document.get("revision"), "error": str(exc)[:500]}
            )
            self._report("error", [str(exc)])
            return
        with self.request_lock, self.swap_lock:
            self.active = new
        self.state.save_applied({"document": document, "etag": etag, "applied_at": time.time()})
        self.etag = etag
        self.last_error = ""
        if previous and previous.backend is not None and previous.backend is not new.backend:
            previous.backend.close()
        if not previous or previous.model_digest != new.model_digest:
            self.event("model.swap", {"from": previous.model_digest if previous else "", "to": new.model_digest,
                                      "revision": new.revision})  # fmt: skip
        self._report("ok", [])

    def _report(self, health: schemas.Health, errors: list[str]) -> None:
        active = self.active
        report = schemas.ReportedStateIn(
            applied_revision=active.revision if active else 0,
            model_digest=active.model_digest if active else "",
            health=health,
            errors=[e[:4000] for e in errors][:50],
            details={"agents": sorted(active.runner.specs) if active and active.runner else [],
                     "outbox": self.outbox.stats()},
        )  # fmt: skip
        try:
            self.client.report(report)
        except ControlPlaneError as exc:
            log.warning("report failed: %s", exc)

    # --- approvals ---------------------------------------------------------------------------------

    def _approve(self, tool: str, agent: str, args: dict[str, Any], timeout_s: int) -> bool:
        """Ask the control plane and wait; no answer within the timeout means deny."""
        try:
            req = self.client.request_approval(
                schemas.ApprovalIn(tool=tool, agent=agent, arguments=args, timeout_s=timeout_s)
            )
        except (ControlPlaneError, ValidationError) as exc:
            log.warning("approval request failed: %s", exc)
            return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                status = self.client.approval(req.id).status
            except ControlPlaneError:
                status = "pending"
            if status != "pending":
                return status == "approved"
            self.stop.wait(1.0)
        return False

    # --- answering ---------------------------------------------------------------------------------

    def escalate(
        self, messages: list[dict[str, Any]], endpoint: str, agent: str = "", subject: str = ""
    ) -> Turn:
        """Send a request to a cloud endpoint through the control plane, after applying the fleet's
        policy here (allow-list, regions, PHI redaction or refusal). Raises EscalationRefused or
        ControlPlaneError with the reason."""
        token = SUBJECT.set(subject)
        try:
            policy = self.policy()
            try:
                allowed = compliance.guard_escalation(policy, endpoint, messages)
            except compliance.EscalationRefused as exc:
                self.event("escalation.refused", {"endpoint": endpoint, "reason": str(exc)})
                raise
            if allowed.redactions:
                self.event("phi.redacted", {"endpoint": endpoint, "counts": allowed.redactions})
            started = time.perf_counter()
            out = self.client.escalate(schemas.EscalateIn(
                agent=agent or "edge", endpoint=endpoint,
                messages=[schemas.ChatMessage.model_validate(m) for m in allowed.messages],
            ))  # fmt: skip
            latency = time.perf_counter() - started
            self.event("escalation.sent", {"endpoint": endpoint, "redactions": allowed.redactions})
        finally:
            SUBJECT.reset(token)
        self.metrics({"request.latency_ms": latency * 1000, "request.local": 0,
                      "request.escalated": 1})  # fmt: skip
        return Turn(
            agent=f"cloud:{out.endpoint}", answer=out.content, usage=Usage(latency_s=latency)
        )

    def ask(
        self, messages: list[dict[str, Any]], agent: str | None = None, subject: str = ""
    ) -> Turn:
        token = SUBJECT.set(subject)
        try:
            with self.request_lock:
                active = self.active
                if not active or not active.runner:
                    raise RuntimeError("no model and agents are loaded on this node yet")
                try:
                    turn = active.runner.ask(messages, agent)
                except Exception:
                    self.metrics({"request.error": 1})  # rollout gates compare error rates
                    raise
        finally:
            SUBJECT.reset(token)
        usage = turn.usage
        gen_s = max(usage.latency_s - usage.ttft_s, 1e-9)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        rss_mb = ru.ru_maxrss / 1024  # peak, where /proc is missing
        with contextlib.suppress(OSError, ValueError, IndexError):
            resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
            rss_mb = resident_pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
        self.metrics({
            "request.latency_ms": usage.latency_s * 1000,
            "request.ttft_ms": usage.ttft_s * 1000,
            "request.tokens_per_s": usage.completion_tokens / gen_s,
            "request.prompt_tokens": usage.prompt_tokens,
            "request.completion_tokens": usage.completion_tokens,
            "request.local": 1,
            "request.escalated": 0,
            "request.error": 0,
            **{f"tools.{k}": v for k, v in turn.tool_calls.items()},
            "process.rss_mb": rss_mb,
            "process.cpu_s": ru.ru_utime + ru.ru_stime,
        })  # fmt: skip
        return turn

    # --- loops -------------------------------------------------------------------------------------

    def poll_once(self) -> float:
        result = self.client.poll(self.etag)
        self.last_contact = time.time()
        if result.changed and result.document is not None:
            self.desired_revision = result.document.revision
            self.apply(result.document.model_dump(mode="json"), result.etag)
        elif self.active:
            self.desired_revision = self.active.revision
        self._save_status()
        return result.interval_s

    def _poll_loop(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            try:
                wait = self.poll_once()
                attempt = 0
            except ControlPlaneError as exc:
                self.last_error = str(exc)
                self._save_status()
                wait = exc.retry_after if exc.retry_after else backoff(attempt, base=1.0, cap=60.0)
                attempt += 1
            self.stop.wait(wait)

    def send_once(self) -> int:
        """Deliver what the outbox holds, oldest first; returns how many items were acknowledged."""
        sent = 0
        self._report_drops()
        for stream in STREAMS:
            while True:
                batch = self.outbox.peek(stream, 200)
                if batch is None:
                    break
                ack = self.client.send(stream, batch.items)
                sent += self.outbox.ack(stream, ack.acked_seq)
                if ack.acked_seq < batch.last_seq:
                    break
        return sent

    def _report_drops(self) -> None:
        for stream, st in self.outbox.stats().items():
            new = st["dropped"] - self._dropped_reported[stream]
            if new > 0:
                self.outbox.enqueue(
                    "metrics", {"name": f"outbox.dropped.{stream}", "value": float(new)}
                )
                self._dropped_reported[stream] = st["dropped"]

    def _send_loop(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            try:
                self.send_once()
                attempt = 0
                wait = self.send_interval_s
            except ControlPlaneError as exc:
                wait = exc.retry_after or backoff(attempt, base=1.0, cap=60.0)
                attempt += 1
            self.stop.wait(wait)

    def _save_status(self) -> None:
        active = self.active
        self.state.save_status({
            "node_id": self.node["node_id"], "server": self.node["server"],
            "desired_revision": self.desired_revision, "applied_revision": active.revision if active else None,
            "model": active.model_digest if active else "", "agents": sorted(active.runner.specs) if active and active.runner else [],
            "last_contact": self.last_contact, "last_error": self.last_error, "pid": os.getpid(),
            "listen": self.listen,
        })  # fmt: skip

    def start(self) -> None:
        self.restore()
        for target in (self._poll_loop, self._send_loop):
            t = threading.Thread(target=target, name=target.__name__, daemon=True)
            t.start()
            self.threads.append(t)

    def shutdown(self, flush_timeout_s: float = 10.0) -> None:
        """Finish the current request, flush the outbox (bounded), stop."""
        self.stop.set()
        with self.request_lock:
            pass
        for t in self.threads:
            t.join(timeout=flush_timeout_s)
        deadline = time.monotonic() + flush_timeout_s
        while time.monotonic() < deadline:
            try:
                self.send_once()
                break
            except ControlPlaneError:
                break  # stays in the outbox for next time
        self._save_status()
        if self.active and self.active.backend:
            self.active.backend.close()
        self.outbox.close()
        self.client.close()
