"""Poll and apply: fetch the desired state, and apply a new revision all-or-nothing (see
agents/runtime.py): fetch and verify the model, load it with a smoke test, build the agents and
the tool gate, then swap them in and record the revision in applied.json. On any failure the node
keeps serving what it had and reports the error."""

from __future__ import annotations

import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pydantic import ValidationError

from agents.agent import AgentRunner
from agents.backends import Backend, BackendError, LlamaCppBackend, OpenAICompatBackend
from agents.client import ControlPlaneError, NodeClient, retry_wait
from agents.mcp import McpError, McpServers
from agents.models import DEFAULT, ModelPool
from agents.router import Router, load_scorer
from agents.state import StateDir
from agents.telemetry import Telemetry
from agents.tools import Approver, ToolGate, registry
from wire import manifest, schemas
from wire.manifest import sha256_file
from wire.scoring import RouterError

log = logging.getLogger("edgefleet.agent")

# Watches (docs/node-api.md): ask the control plane to hold each desired-state request this long
# (under the 60 s read timeout common to reverse proxies); where a server answers a watch at once,
# or a watch fails on the way (a proxy cutting long requests), poll for WATCH_RETRY_S, then retry.
WATCH_S = 30
# The node API's codes for a credential that will never work again (docs/node-api.md).
REFUSED_FOR_GOOD = ("credential_revoked", "credential_expired")
REVOKED_POLL_CAP_S = 3600.0
WATCH_RETRY_S = 600


@dataclass
class Active:
    revision: int
    document: dict[str, Any]
    backend: Backend | None
    runner: AgentRunner | None
    model_digest: str
    router: Router | None = None
    mcp: McpServers | None = None  # sessions to the MCP servers its tools come from
    pool: ModelPool | None = None  # every model it may run, loaded as needed (models.py)


class ApplyError(Exception):
    pass


class Applier:
    """What the node runs now (`active`), and how it gets the next revision."""

    def __init__(
        self,
        state: StateDir,
        node: dict[str, Any],
        client: NodeClient,
        telemetry: Telemetry,
        approver: Approver,
        on_contact: Callable[[], None] = lambda: None,
        watch_s: int = WATCH_S,
    ):
        self.state = state
        self.node = node
        self.client = client
        self.telemetry = telemetry
        self.approver = approver
        self.on_contact = on_contact
        self.request_lock = threading.Lock()  # one inference at a time; SIGTERM waits for it
        self.swap_lock = threading.Lock()
        self.active: Active | None = None
        self.etag: str | None = None
        self.desired_revision: int | None = None
        self.last_contact: float | None = None
        # Set when the control plane refuses this node's credential for good (its code:
        # credential_revoked, credential_expired): the node stops answering and polls rarely.
        self.revoked = ""
        self.last_error = ""
        # Why the node serves worse than it should, from the device timer (runtime.py): a failed
        # backend probe, a full queue, memory or disk nearly out. Reported as health "degraded".
        self.degraded: list[str] = []
        self.hardware: dict[str, Any] | None = None  # sent with the next report when set
        self.watch_s = watch_s
        self.poll_until = 0.0  # time.monotonic() until which to poll instead of watching
        self.in_watch = False  # a watch is held now (shutdown need not wait for it)

    def policy(self) -> schemas.CompliancePolicy:
        """The fleet's compliance policy in the applied desired state (strictest if unreadable)."""
        document = self.active.document if self.active else {}
        try:
            return schemas.CompliancePolicy.model_validate(document.get("compliance") or {})
        except ValidationError:
            return schemas.CompliancePolicy(
                mode=schemas.ComplianceMode.HIPAA,
                phi_action=schemas.PhiAction.REFUSE,
                store_content=False,
            )

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
        self.telemetry.event(
            "model.refused",
            {"model": model.name, "sha256": model.sha256 or "", "reason": reason[:500]},
        )
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
            assignments = {
                name: schemas.ModelAssignment.model_validate(m) for name, m in doc.models.items()
            }
            if doc.model:
                assignments[DEFAULT] = schemas.ModelAssignment.model_validate(doc.model)
        except ValidationError as exc:
            raise ApplyError(f"invalid desired state: {schemas.first_error(exc)}") from exc
        for name, spec in specs.items():
            try:
                ModelPool.name_in(assignments, spec.model)
            except KeyError:
                have = ", ".join(
                    sorted(a.name if k == DEFAULT else k for k, a in assignments.items())
                )
                wanted = spec.model or "the default"
                raise ApplyError(
                    f"agent '{name}' asks for model '{wanted}', which this node is not assigned "
                    f"(it has: {have or 'no model'})"
                ) from None
        current = self.active
        mcp = current.mcp if current and current.mcp and current.mcp.servers == policy.mcp else None
        if policy.mcp and mcp is None:
            try:
                mcp = McpServers(policy.mcp)  # before the model: the cheaper failure first
            except McpError as exc:
                raise ApplyError(str(exc)) from exc
        try:
            return self._build_with(doc, document, specs, assignments, policy, mcp)
        except BaseException:
            if mcp is not None and (current is None or mcp is not current.mcp):
                mcp.close()
            raise

    def _build_with(
        self,
        doc: schemas.DesiredState,
        document: dict[str, Any],
        specs: dict[str, schemas.AgentSpec],
        assignments: dict[str, schemas.ModelAssignment],
        policy: schemas.ToolPolicy,
        mcp: McpServers | None,
    ) -> Active:
        """Fetch and verify every model file, load each model once (its smoke test; the default
        one last, so it stays resident), reusing those the running revision has loaded."""
        current = self.active
        paths: dict[str, Path] = {}
        keys: dict[str, str] = {}  # API keys of OpenAI-compatible servers: in memory only
        for name, model in assignments.items():
            if model.error:  # the control plane says why it cannot run (no variant fits...)
                raise ApplyError(model.error)
            if model.backend != "openai":
                paths[name] = self._fetch_model(model)
            elif model.api_key_secret:
                try:
                    keys[name] = self.client.secret(model.api_key_secret)
                except ControlPlaneError as exc:
                    raise ApplyError(
                        f"the API key of model '{model.name}' (secret "
                        f"'{model.api_key_secret}') could not be fetched: {exc}"
                    ) from exc

        def load(name: str, model: schemas.ModelAssignment) -> Backend:
            backend: Backend
            if model.backend == "openai":
                backend = OpenAICompatBackend(
                    model.base_url,
                    model.remote_model or model.name,
                    api_key=keys.get(name, "not-needed"),
                )
            else:
                backend = LlamaCppBackend(
                    str(paths[name]),
                    n_ctx=model.n_ctx,
                    n_threads=model.n_threads,
                    n_gpu_layers=model.n_gpu_layers,
                )
            self.telemetry.metrics({"model.load_time_ms": backend.load_time_s * 1000})  # type: ignore[attr-defined]
            return backend

        try:
            pool = ModelPool(
                assignments,
                load,
                sizes_mb={name: path.stat().st_size / (1 << 20) for name, path in paths.items()},
                event=lambda kind, data: self.telemetry.event(kind, data, personal=False),
                metrics=self.telemetry.metrics,
            )
        except (OSError, ValueError) as exc:  # a file gone, a bad memory budget setting
            raise ApplyError(str(exc)) from exc
        old_pool = current.pool if current else None
        pool.adopt(old_pool)
        try:
            for name in sorted(assignments, key=lambda n: n == DEFAULT):
                pool.get(name)
        except BaseException as exc:
            pool.release(old_pool)  # what this revision loaded, not what it took over
            if isinstance(exc, (BackendError, OSError, ValueError)):
                raise ApplyError(str(exc)) from exc
            raise
        pool.pinned.clear()
        backend = pool.get(DEFAULT) if DEFAULT in assignments else None
        digest = (
            schemas.model_digest(assignments[DEFAULT].model_dump())
            if DEFAULT in assignments
            else ""
        )
        gate = ToolGate(
            policy,
            {**registry(), **(mcp.tools if mcp else {})},
            self.state.path / "sandbox",
            approver=self.approver,
            audit=self.telemetry.event,
        )
        runner = AgentRunner(specs, backend, gate, pool) if assignments and specs else None
        router = self._router(doc.routing)
        if runner is not None:
            runner.logprobs = router.wants_logprobs
        return Active(doc.revision, document, backend, runner, digest, router, mcp, pool)

    def _router(self, section: dict[str, Any]) -> Router:
        """The routing section's router; a router that cannot be fetched or verified is refused
        (an event says why) and the node answers locally, saying so in its answers."""
        policy = schemas.RoutingPolicy.model_validate(section or {})
        current = self.active.router if self.active else None
        if current is not None and current.policy == policy:
            return current  # same section: keep the loaded router and its budget state
        ref = policy.router if isinstance(policy.router, schemas.RouterRef) else None
        if ref is None:
            return Router(policy, None, policy.error or "")
        try:
            scorer = load_scorer(
                ref, self.state.path / "routers", self.client.fetch, self.signing_key()
            )
        except (RouterError, ControlPlaneError, ApplyError, OSError) as exc:
            self.telemetry.event("router.refused", {"version": ref.version, "reason": str(exc)})
            return Router(policy, None, f"router {ref.version} refused: {exc}")
        return Router(policy, scorer)

    def apply(self, document: dict[str, Any], etag: str) -> None:
        previous = self.active
        try:
            new = self._build(document)
        except ApplyError as exc:
            self.last_error = str(exc)
            self.telemetry.event(
                "apply.failed", {"revision": document.get("revision"), "error": str(exc)[:500]}
            )
            self._report("error", [str(exc)])
            return
        with self.request_lock, self.swap_lock:
            self.active = new
        self.state.save_applied({"document": document, "etag": etag, "applied_at": time.time()})
        self.etag = etag
        self.last_error = ""
        if previous and previous.pool is not None:
            previous.pool.release(new.pool)
        if previous and previous.mcp is not None and previous.mcp is not new.mcp:
            previous.mcp.close()
        if not previous or previous.model_digest != new.model_digest:
            self.telemetry.event(
                "model.swap",
                {
                    "from": previous.model_digest if previous else "",
                    "to": new.model_digest,
                    "revision": new.revision,
                },
            )
        self.report_health()

    def report_health(self) -> bool:
        """The node's health as it is: `error` while the last apply failed, `degraded` with the
        device timer's reasons, else `ok`. False when the control plane could not be told."""
        if self.last_error:
            return self._report("error", [self.last_error])
        if self.degraded:
            return self._report("degraded", self.degraded)
        return self._report("ok", [])

    def _report(self, health: schemas.Health, errors: list[str]) -> bool:
        active = self.active
        report = schemas.ReportedStateIn(
            applied_revision=active.revision if active else 0,
            model_digest=active.model_digest if active else "",
            health=health,
            errors=[e[:4000] for e in errors][:50],
            details={
                "agents": sorted(active.runner.specs) if active and active.runner else [],
                "models": active.pool.report() if active and active.pool else {},
                "outbox": self.telemetry.outbox.stats(),
            },
            hardware=schemas.HardwareProfile.model_validate(self.hardware)
            if self.hardware
            else None,
        )
        try:
            self.client.report(report)
        except ControlPlaneError as exc:
            log.warning("report failed: %s", exc)
            return False
        return True

    def watching(self) -> int:
        """The wait to ask for: watch_s, or 0 (poll) while the server or the path to it does not
        hold watches."""
        return self.watch_s if time.monotonic() >= self.poll_until else 0

    def poll_instead(self, why: str) -> None:
        log.info("%s: polling for the next %d s, then trying to watch again", why, WATCH_RETRY_S)
        self.poll_until = time.monotonic() + WATCH_RETRY_S

    def poll_once(self) -> float:
        """Poll, or watch (docs/node-api.md, "Watches"); the seconds to wait before the next."""
        wait = self.watching()
        self.in_watch = bool(wait)
        try:
            result = self.client.poll(self.etag, wait=wait)
        finally:
            self.in_watch = False
        self.last_contact = time.time()
        if result.changed and result.document is not None:
            self.desired_revision = result.document.revision
            self.apply(result.document.model_dump(mode="json"), result.etag)
        elif self.active:
            self.desired_revision = self.active.revision
        self.on_contact()
        if wait and result.watched:
            return 0.0  # watch again at once: the server answers when something changes
        if wait and not result.changed:
            self.poll_instead("the control plane answered a watch at once, as a poll")
        return result.interval_s

    def watch_once(self, etag: str | None, wait: int, approval: int = 0) -> tuple[bool, str | None]:
        """One watch for a waiting approval (approvals.py): (whether the server held it, the ETag
        to send next). Its document, if the state changed, is left to the poll loop's own."""
        if etag is None or not self.watching():
            return False, etag
        try:
            wait = max(1, min(wait, self.watch_s))
            result = self.client.poll(etag, wait=wait, approval=approval)
        except ControlPlaneError:
            return False, etag
        return result.watched, result.etag if result.changed else etag

    def loop(self, stop: threading.Event) -> None:
        attempt = 0
        while not stop.is_set():
            watched = self.watching()
            try:
                wait = self.poll_once()
                attempt = 0
                self.revoked = ""
            except ControlPlaneError as exc:
                self.last_error = str(exc)
                if exc.status == 401 and exc.code in REFUSED_FOR_GOOD:
                    if not self.revoked:
                        log.error(
                            "the control plane refused this node's credential (%s): the node "
                            "answers no request until it is enrolled again "
                            "(edgefleet-agent enroll --force)",
                            exc.code,
                        )
                    self.revoked = exc.code
                    # Ask again now and then (a minute, doubling to an hour): the answer will not
                    # change by itself, but hammering the control plane helps no one.
                    wait = min(REVOKED_POLL_CAP_S, 60.0 * 2 ** min(attempt, 10))
                    wait *= random.uniform(0.5, 1.0)
                else:
                    wait = retry_wait(exc, attempt)
                self.on_contact()
                attempt += 1
                if watched and exc.status in (None, 502, 504):  # a proxy may cut long requests
                    self.poll_instead(f"a watch failed ({exc})")
            stop.wait(wait)
