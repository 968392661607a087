"""The long-running edge agent: poll desired state, apply it safely, serve, report, send telemetry.

State directory layout (created 0700, files 0600):
    node.json      server URL, node id, credential (written by `enroll`)
    applied.json   the last revision applied completely, written atomically only after the apply
    status.json    what `status` shows (last contact, desired revision, last error)
    outbox.db      metrics and events waiting for the control plane (outbox.py)
    models/        verified model files, named by sha256
    sandbox/       the only directory file tools can see

Applying a revision is all-or-nothing: fetch and verify the model, load it (with a smoke test),
build the agents and the tool gate, and only then swap them in and record the revision in
applied.json. On any failure the node keeps serving what it had and reports the error. A crash
mid-apply leaves applied.json untouched, so a restart comes back on the previous state.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from agents import device
from agents.agent import Cancelled, Stream, Turn
from agents.apply import WATCH_S, Active, Applier, ApplyError
from agents.approvals import Approvals
from agents.client import ControlPlaneError, NodeClient
from agents.escalate import Escalator
from agents.outbox import Outbox
from agents.router import Decision
from agents.sessions import Sessions
from agents.state import StateDir, default_state_dir, read_json, write_json_atomic
from agents.telemetry import SUBJECT, Telemetry
from wire.compliance import PhiRefused


class NodeRevoked(RuntimeError):
    """The control plane refused this node's credential for good: no request is answered."""


class Superseded(RuntimeError):
    """The node's model or agents changed while a request waited for an approval."""


class QueueFull(RuntimeError):
    """As many requests as the node queues are already waiting for its model."""


class Busy(RuntimeError):
    """A request waited its agent's `timeout_s` for the node's model and gave up."""


log = logging.getLogger("edgefleet.agent")

QUEUE_MAX = 8  # requests that may wait for the model at once; more are told to come back (429)
DEVICE_INTERVAL_S = 30.0  # the device timer: system figures, the backend's probe, health
CREDENTIAL_DAYS_ENV = "EDGEFLEET_AGENT_CREDENTIAL_DAYS"  # rotate the node's credential this often
DEFAULT_CREDENTIAL_DAYS = 30.0
MEMORY_USED_MAX_PCT = 95.0  # above this the node reports itself degraded
DISK_FREE_MIN_MB = 256.0  # below this under the state directory, too


__all__ = [
    "SUBJECT",
    "Active",
    "ApplyError",
    "Runtime",
    "StateDir",
    "default_state_dir",
    "read_json",
    "write_json_atomic",
]


def agent_metric(agent: str) -> str:
    """The metric that counts an agent's locally generated tokens (the control plane sums it per
    agent: `GET /api/v1/fleets/{slug}/local-usage?by=agent`). Metric names allow no hyphens."""
    return f"agent.{agent.replace('-', '_')[:40]}.completion_tokens"


def model_speed(digest: str, tokens_per_s: float) -> dict[str, float]:
    """The tokens/s of the model that answered, named by its sha256's first 12 characters:
    what "auto"'s `min_tokens_per_s` floor reads per hardware class (docs/models.md)."""
    if not digest.startswith("sha256:"):
        return {}
    return {f"model.{digest[7:19]}.tokens_per_s": tokens_per_s}


class Runtime:
    """The agent, composed of its concerns: poll and apply (apply.py), telemetry (telemetry.py),
    approvals (approvals.py) and escalation (escalate.py). It answers requests and runs the loops.
    """

    def __init__(
        self,
        state: StateDir,
        *,
        client: NodeClient | None = None,
        send_interval_s: float = 2.0,
        watch_s: int = WATCH_S,
    ):
        self.state = state.ensure()
        node = state.node
        if not node:
            raise RuntimeError(
                f"not enrolled: no node.json in {state.path} (run `edgefleet-agent enroll` first)"
            )
        self.client = client or NodeClient(node["server"], node["credential"])
        self.outbox = Outbox(state.path / "outbox.db")
        self.send_interval_s = send_interval_s
        self.stop = threading.Event()
        self.telemetry = Telemetry(self.outbox, self.client, lambda: self.applier.policy())
        self.approvals = Approvals(self.client, self.stop)
        self.applier = Applier(
            self.state,
            node,
            self.client,
            self.telemetry,
            self._wait_for_approval,
            on_contact=self._save_status,
            watch_s=watch_s,
        )
        self.approvals.watch = self.applier.watch_once
        self.approvals.etag = lambda: self.applier.etag
        self.escalator = Escalator(self.client, self.telemetry, self.applier.policy)
        self.threads: list[threading.Thread] = []
        self._holding = threading.local()  # the Active a request of this thread runs on
        self._queue_lock = threading.Lock()
        self.queued = 0  # requests waiting for the model now
        self.queue_max = QUEUE_MAX
        self.listen = ""  # the local API's URL, once serving
        self.sessions = Sessions(self.state.path / "sessions.db")
        self.sampler = device.Sampler(self.state.path)
        self.device_interval_s = DEVICE_INTERVAL_S

    # --- what the parts hold, for the CLI, the local server and tests -----------------------------

    @property
    def node(self) -> dict[str, Any]:
        return self.applier.node

    @property
    def active(self) -> Active | None:
        return self.applier.active

    @property
    def revoked(self) -> str:
        """The control plane's code when it refused this node's credential for good, else ""."""
        return self.applier.revoked

    def refuse_if_revoked(self) -> None:
        if self.applier.revoked:
            raise NodeRevoked(
                f"this node's credential was refused by the control plane ({self.applier.revoked})"
                ": it answers no request until it is enrolled again"
            )

    # --- answering --------------------------------------------------------------------------------

    def ask(
        self,
        messages: list[dict[str, Any]],
        agent: str | None = None,
        subject: str = "",
        options: dict[str, Any] | None = None,
        stream: Stream | None = None,
    ) -> Turn:
        """Answer locally or in the cloud, as the routing section says (agents/router.py); the
        turn's `routing` says which and why, and a `router.decision` event reports it. With a
        `stream`, the answer goes to it as it is generated, locally or in the cloud, once the
        route is known; a cascade (which judges the local answer first) streams nothing and the
        caller sends the whole answer."""
        self.refuse_if_revoked()
        active = self.active
        router = active.router if active else None
        question = next(
            (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        decision = None
        if router is not None:
            decision = router.before(
                question, online=self.online(), compliance=self.applier.policy()
            )
            if decision is not None and decision.route == "cloud":
                outcome = self._escalate(
                    router, messages, agent, subject, decision, options, stream=stream
                )
                if isinstance(outcome, Turn):
                    return outcome
                decision = outcome
        if stream is not None and (router is None or decision is not None):
            if decision is not None:
                stream.routing(decision.meta())
            turn = self._answer_locally(messages, agent, subject, stream)
        else:
            turn = self._answer_locally(messages, agent, subject)
        if router is not None and decision is None:  # a cascade: judge the local answer
            decision = router.after(question, turn.answer, turn.logprob)
            if decision.route == "cloud":
                outcome = self._escalate(
                    router, messages, agent, subject, decision, options, paid=turn
                )
                if isinstance(outcome, Turn):
                    return outcome
                decision = outcome
        if decision is not None:
            turn.routing = decision.meta()
            self.telemetry.event("router.decision", turn.routing)
        return turn

    def online(self) -> bool:
        """Whether the control plane answered recently (the relay is reached through it)."""
        last = self.applier.last_contact
        interval = float((self.active.document if self.active else {}).get("poll_interval_s", 30))
        return last is not None and time.time() - last < max(3 * interval, 90)

    def _escalate(
        self,
        router,
        messages,
        agent,
        subject,
        decision: Decision,
        options: dict[str, Any] | None = None,
        paid: Turn | None = None,
        stream: Stream | None = None,
    ) -> Turn | Decision:
        """The cloud's answer, or the decision to answer locally after all, saying why."""
        escalator, endpoint = self.escalator, router.endpoint
        try:
            if stream is not None:
                stream.routing(decision.meta())
                turn = escalator.streamed(messages, endpoint, agent or "", subject, options, stream)
            else:
                turn = escalator.escalate(messages, endpoint, agent or "", subject, options)
        except PhiRefused as exc:
            return Decision(
                "local",
                "phi",
                decision.score,
                decision.threshold,
                note=f"kept local: {str(exc)[:300]}",
            )
        except Exception as exc:  # noqa: BLE001 - any failure keeps the request local
            if isinstance(exc, Cancelled) or (stream is not None and stream.first_at):
                raise  # the client left, or part of the cloud's answer went out already
            if getattr(exc, "code", "") == "budget_exhausted":  # a code, never the message
                router.budget_exhausted()
            return Decision(
                "local",
                "fallback",
                decision.score,
                decision.threshold,
                note=f"answered locally: escalation failed ({str(exc)[:200]})",
            )
        meta = decision.meta()
        if paid is not None:  # a cascade paid for the local answer too
            meta["local_completion_tokens"] = paid.usage.completion_tokens
        turn.routing = meta
        self.telemetry.event("router.decision", meta)
        return turn

    def remember(self, session: str, turn: list[dict[str, str]], subject: str = "") -> None:
        """Keep a turn in its session (agents/sessions.py). A session kept for a named end user
        starts with a `session.started` event naming them (no content, no session id), so that
        the control plane knows the data subject and can erase them (docs/compliance.md)."""
        if self.sessions.append(session, turn, subject) and subject:
            token = SUBJECT.set(subject)
            try:
                self.telemetry.event("session.started", {})
            finally:
                SUBJECT.reset(token)

    def answer_locally(self, messages: list[dict[str, Any]], note: str, subject: str = "") -> Turn:
        """A local answer to a request the cloud may not take, saying why (explicit `cloud:`
        calls refused for PHI)."""
        turn = self._answer_locally(messages, None, subject)
        turn.routing = {"route": "local", "rule": "phi", "note": note}
        self.telemetry.event("router.decision", turn.routing)
        return turn

    def _answer_locally(
        self,
        messages: list[dict[str, Any]],
        agent: str | None,
        subject: str,
        stream: Stream | None = None,
    ) -> Turn:
        token = SUBJECT.set(subject)
        try:
            try:
                self._take_the_model(agent, stream)
            except Cancelled:
                self.telemetry.metrics({"request.cancelled": 1})
                raise
            try:
                active = self.active
                if not active or not active.runner:
                    raise RuntimeError("no model and agents are loaded on this node yet")
                self._holding.active = active
                try:
                    turn = active.runner.ask(messages, agent, stream)
                except Cancelled:
                    self.telemetry.metrics({"request.cancelled": 1})
                    raise
                except Exception:
                    self.telemetry.metrics(
                        {"request.error": 1}
                    )  # rollout gates compare error rates
                    raise
                finally:
                    self._holding.active = None
            finally:
                self.applier.request_lock.release()
        finally:
            SUBJECT.reset(token)
        usage = turn.usage
        gen_s = max(usage.latency_s - usage.ttft_s, 1e-9)
        rss_mb, cpu_s = device.process_usage()
        ttft_s = usage.ttft_s
        if stream is not None and stream.first_at:  # what the client saw, queue wait included
            ttft_s = stream.first_at - stream.started
        self.telemetry.metrics(
            {
                "request.latency_ms": usage.latency_s * 1000,
                **({"request.approval_wait_ms": turn.waited_s * 1000} if turn.waited_s else {}),
                "request.ttft_ms": ttft_s * 1000,
                "request.tokens_per_s": usage.completion_tokens / gen_s,
                "request.prompt_tokens": usage.prompt_tokens,
                "request.completion_tokens": usage.completion_tokens,
                **({agent_metric(turn.agent): usage.completion_tokens} if turn.agent else {}),
                **model_speed(turn.model, usage.completion_tokens / gen_s),
                "request.local": 1,
                "request.escalated": 0,
                "request.error": 0,
                **{f"tools.{k}": v for k, v in turn.tool_calls.items()},
                "process.rss_mb": rss_mb,
                "process.cpu_s": cpu_s,
            }
        )
        return turn

    def _take_the_model(self, agent: str | None, stream: Stream | None = None) -> None:
        """Wait for the node's model (one inference at a time), at most the agent's `timeout_s`,
        behind at most QUEUE_MAX other requests: a full queue is QueueFull at once, a wait that
        runs out is Busy. Either way the caller learns it now, not after minutes. A client that
        goes away while its request waits leaves the queue (Cancelled)."""
        active = self.active
        runner = active.runner if active else None
        spec = runner.specs.get(agent or runner.default_agent()) if runner else None
        timeout_s = float(spec.timeout_s) if spec else 30.0
        with self._queue_lock:
            if self.queued >= self.queue_max:
                raise QueueFull(
                    f"{self.queued} requests are already waiting for this node's model; "
                    "ask again shortly"
                )
            self.queued += 1
        cancelled = stream.cancelled if stream is not None else None
        deadline = time.monotonic() + timeout_s
        try:
            got = False
            while not got and time.monotonic() < deadline:
                if cancelled is not None and cancelled.is_set():
                    raise Cancelled("the client went away while its request waited")
                wait = deadline - time.monotonic()
                got = self.applier.request_lock.acquire(timeout=max(min(wait, 0.25), 0))
        finally:
            with self._queue_lock:
                self.queued -= 1
        if not got:
            raise Busy(f"this node's model stayed busy for {timeout_s:.0f} s; ask again shortly")

    def _wait_for_approval(self, tool: str, agent: str, args: dict[str, Any], timeout_s: int):
        """The tool gate's approver. While a person decides, the request gives up the inference
        slot, so the node answers other requests meanwhile; if the node's model or agents were
        replaced in the meantime, the request stops there (its runner is gone) and says so."""
        active = getattr(self._holding, "active", None)
        if active is None:  # not inside a request of this runtime: nothing to give up
            return self.approvals(tool, agent, args, timeout_s)
        lock = self.applier.request_lock
        lock.release()
        try:
            return self.approvals(tool, agent, args, timeout_s)
        finally:
            lock.acquire()
            if self.applier.active is not active:
                raise Superseded(
                    "the node's model or agents changed while this request waited for an "
                    "approval: ask again"
                )

    # --- the device timer -------------------------------------------------------------------------

    def device_once(self) -> list[str]:
        """One tick of the device timer, idle or not: system CPU and memory, disk free under the
        state directory, GPUs (nvidia-smi), battery, this process, the queue and the backend's
        probe go out as metrics; the node's health is reported again when its reasons for being
        degraded change, and its hardware profile when that changes. Returns the reasons."""
        failure = None  # the backend's probe: None when not probed (a request has the model)
        if self.applier.request_lock.acquire(blocking=False):
            try:  # under the lock, as requests use the models (and swaps replace them)
                active = self.active
                if active is not None and active.pool is not None:
                    active.pool.unload_idle()
                backend = active.backend if active else None
                if backend is not None and not backend.closed:  # not unloaded
                    failure = backend.probe()
            finally:
                self.applier.request_lock.release()
        policy = self.applier.policy()
        self.sessions.purge(policy.session_retention_days, policy.erased_subjects)
        gpu_list = device.gpus()
        values = self.sampler.sample(gpu_list)
        rss_mb, cpu_s = device.process_usage()
        values.update(
            {"process.rss_mb": rss_mb, "process.cpu_s": cpu_s, "queue.depth": self.queued}
        )
        reasons = []
        if failure is not None:
            values["backend.up"] = 0.0 if failure else 1.0
            if failure:
                reasons.append(failure)
        else:  # busy answering: it is up, and the last tick's verdict stands
            reasons += [r for r in self.applier.degraded if "probe" in r]
        if self.queued >= self.queue_max:
            reasons.append(f"the request queue is full ({self.queued} of {self.queue_max})")
        used = values.get("system.mem_used_pct", 0.0)
        if used > MEMORY_USED_MAX_PCT:
            reasons.append(f"memory is {used:.0f}% used")
        free = values.get("system.disk_free_mb")
        if free is not None and free < DISK_FREE_MIN_MB:
            reasons.append(f"{free:.0f} MB of disk free under the state directory")
        self.telemetry.metrics(values)
        hardware = device.hardware_profile(gpu_list).model_dump()
        applier = self.applier
        if reasons != applier.degraded or hardware != applier.hardware:
            if reasons and reasons != applier.degraded:
                log.warning("degraded: %s", "; ".join(reasons))
            applier.degraded, applier.hardware = reasons, hardware
            if not applier.report_health():
                applier.hardware = None  # not delivered: send it again next time
        return reasons

    def rotate_if_due(self, now: float | None = None) -> bool:
        """Rotate the node's credential once it is EDGEFLEET_AGENT_CREDENTIAL_DAYS old (the device
        timer asks): the new one is written to node.json before it is used, and the old one
        stays valid on the control plane for its overlap window, so a crash in between locks
        nothing out. True when it rotated."""
        node, now = self.applier.node, now or time.time()
        issued = node.get("credential_issued_at")
        if issued is None:  # enrolled before rotation: count from now
            self.applier.node = {**node, "credential_issued_at": now}
            self.state.save_node(self.applier.node)
            return False
        days = float(os.environ.get(CREDENTIAL_DAYS_ENV) or DEFAULT_CREDENTIAL_DAYS)
        if self.revoked or now - float(issued) < days * 86_400:
            return False
        try:
            out = self.client.rotate()
        except ControlPlaneError as exc:
            log.warning("credential rotation failed (the current one still works): %s", exc)
            return False
        self.applier.node = {**node, "credential": out.credential, "credential_issued_at": now}
        self.state.save_node(self.applier.node)
        self.client.credential = out.credential
        valid_until = out.old_credential_valid_until.isoformat()
        self.telemetry.event("credential.rotated", {"old_valid_until": valid_until}, personal=False)
        log.info("credential rotated; the old one works until %s", valid_until)
        return True

    def _device_loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.device_once()
                self.rotate_if_due()
            except Exception:  # noqa: BLE001 - the timer must outlive any one sample
                log.exception("device sample failed")
            self.stop.wait(self.device_interval_s)

    # --- loops ------------------------------------------------------------------------------------

    def _save_status(self) -> None:
        active, applier = self.active, self.applier
        self.state.save_status(
            {
                "node_id": self.node["node_id"],
                "server": self.node["server"],
                "desired_revision": applier.desired_revision,
                "applied_revision": active.revision if active else None,
                "model": active.model_digest if active else "",
                "agents": sorted(active.runner.specs) if active and active.runner else [],
                "last_contact": applier.last_contact,
                "last_error": applier.last_error,
                "revoked": applier.revoked,
                "pid": os.getpid(),
                "listen": self.listen,
            }
        )

    def start(self) -> None:
        self.applier.restore()
        loops = {
            "poll": lambda: self.applier.loop(self.stop),
            "send": lambda: self.telemetry.loop(self.stop, self.send_interval_s),
            "device": self._device_loop,
        }
        for name, target in loops.items():
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self.threads.append(t)

    def shutdown(self, flush_timeout_s: float = 10.0) -> None:
        """Finish the current request, flush the outbox (bounded), stop."""
        self.stop.set()
        with self.applier.request_lock:
            pass
        for t in self.threads:
            # A held watch is not waited out: it is a read on a socket, nothing to finish.
            t.join(timeout=0 if t.name == "poll" and self.applier.in_watch else flush_timeout_s)
        deadline = time.monotonic() + flush_timeout_s
        while time.monotonic() < deadline:
            try:
                self.telemetry.send_once()
                break
            except ControlPlaneError:
                break  # stays in the outbox for next time
        self._save_status()
        if self.active and self.active.pool:
            self.active.pool.close()
        elif self.active and self.active.backend:
            self.active.backend.close()
        if self.active and self.active.mcp:
            self.active.mcp.close()
        self.outbox.close()
        self.sessions.close()
        self.client.close()
