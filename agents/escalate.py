"""Escalation to a cloud LLM through the control plane, after the fleet's policy is applied here
(allow-list, regions, PHI redaction or refusal); the control plane applies it again. The router
(route.py) or a caller (`model: "cloud:<endpoint>"`) decides when to call this.

In HIPAA mode towards an endpoint without a BAA, PHI leaves as numbered placeholders (`<PERSON_1>`)
and the cloud's answer has the originals put back here, before anyone sees it. The mapping lives in
this call only: never in events, the outbox, logs or the audit trail.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from typing import Any

from agents.agent import Stream, Turn
from agents.backends import Usage
from agents.client import ControlPlaneError, NodeClient
from agents.telemetry import SUBJECT, Telemetry
from wire import compliance, phi, schemas


class Escalator:
    def __init__(
        self,
        client: NodeClient,
        telemetry: Telemetry,
        policy: Callable[[], schemas.CompliancePolicy],
    ):
        self.client = client
        self.telemetry = telemetry
        self.policy = policy

    def _prepare(
        self,
        messages: list[dict[str, Any]],
        endpoint: str,
        agent: str,
        stream: bool = False,
        options: dict[str, Any] | None = None,
    ) -> tuple[compliance.Escalation, schemas.RelayIn]:
        """The fleet's policy applied here (raises EscalationRefused), and the relay request."""
        event = self.telemetry.event
        try:
            allowed = compliance.guard_escalation(self.policy(), endpoint, messages)
        except compliance.EscalationRefused as exc:
            event("escalation.refused", {"endpoint": endpoint, "reason": str(exc)})
            raise
        if allowed.redactions:
            event("phi.redacted", {"endpoint": endpoint, "counts": allowed.redactions})
        request = schemas.RelayIn(
            agent=agent or "edge",
            model=f"cloud:{endpoint}",
            messages=[schemas.ChatMessage.model_validate(m) for m in allowed.messages],
            redactions=allowed.redactions,
            stream=stream,
            **(options or {}),  # the client's max_tokens and temperature (checked by the caller)
        )
        return allowed, request

    def _refused_there(self, exc: ControlPlaneError, endpoint: str) -> None:
        """The control plane's second pass refused it for PHI: like a refusal here (the caller
        answers locally)."""
        if exc.code == "phi_refused":
            self.telemetry.event(
                "escalation.refused", {"endpoint": endpoint, "reason": str(exc)[:500]}
            )
            raise compliance.PhiRefused(str(exc)) from None

    def _sent(self, endpoint: str, redactions: dict[str, int], latency: float) -> None:
        self.telemetry.event("escalation.sent", {"endpoint": endpoint, "redactions": redactions})
        self.telemetry.metrics(
            {"request.latency_ms": latency * 1000, "request.local": 0, "request.escalated": 1}
        )

    def escalate(
        self,
        messages: list[dict[str, Any]],
        endpoint: str,
        agent: str = "",
        subject: str = "",
        options: dict[str, Any] | None = None,
    ) -> Turn:
        """Raises EscalationRefused (PhiRefused for PHI) or ControlPlaneError with the reason.
        `options`: the client's `max_tokens` and `temperature`, passed on to the cloud."""
        token = SUBJECT.set(subject)
        try:
            allowed, request = self._prepare(messages, endpoint, agent, options=options)
            started = time.perf_counter()
            try:
                out = self.client.relay(request)
            except ControlPlaneError as exc:
                self._refused_there(exc, endpoint)
                raise
            latency = time.perf_counter() - started
            self._sent(endpoint, allowed.redactions, latency)
        finally:
            SUBJECT.reset(token)
        answer = phi.restore(out.content, allowed.mapping)
        usage = Usage(out.prompt_tokens, out.completion_tokens, latency_s=latency)
        return Turn(agent=f"cloud:{out.endpoint}", answer=answer, usage=usage)

    def stream(
        self,
        messages: list[dict[str, Any]],
        endpoint: str,
        agent: str = "",
        subject: str = "",
        options: dict[str, Any] | None = None,
    ) -> Generator[str, None, None]:
        """The cloud's answer as it arrives, with the originals put back (a placeholder cut
        between two chunks is held back until it is whole). Consume it in one thread; the same
        errors as `escalate`, raised before the first piece."""
        token = SUBJECT.set(subject)
        try:
            allowed, request = self._prepare(
                messages, endpoint, agent, stream=True, options=options
            )
            restorer = phi.Restorer(allowed.mapping)
            started = time.perf_counter()
            try:
                for piece in self.client.relay_stream(request):
                    if text := restorer.feed(piece):
                        yield text
            except ControlPlaneError as exc:
                self._refused_there(exc, endpoint)
                raise
            if tail := restorer.flush():
                yield tail
            self._sent(endpoint, allowed.redactions, time.perf_counter() - started)
        finally:
            with contextlib.suppress(ValueError):  # closed from another context
                SUBJECT.reset(token)

    def streamed(
        self,
        messages: list[dict[str, Any]],
        endpoint: str,
        agent: str,
        subject: str,
        options: dict[str, Any] | None,
        stream: Stream,
    ) -> Turn:
        """`stream`ed to the caller's Stream piece by piece, and the whole answer as a Turn (its
        completion tokens counted as the pieces the relay sent: the stream carries no usage)."""
        started = time.perf_counter()
        parts = []
        with contextlib.closing(self.stream(messages, endpoint, agent, subject, options)) as pieces:
            for piece in pieces:
                parts.append(piece)
                stream.piece(piece)
        usage = Usage(completion_tokens=len(parts), latency_s=time.perf_counter() - started)
        return Turn(agent=f"cloud:{endpoint}", answer="".join(parts), usage=usage)
