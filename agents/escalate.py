"""Escalation to a cloud LLM through the control plane, after the fleet's policy is applied here
(allow-list, regions, PHI redaction or refusal); the control plane applies it again. The router of
a later issue decides when to call this; today a caller asks for it (`model: "cloud:<endpoint>"`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import compliance, schemas
from .agent import Turn
from .backends import Usage
from .client import NodeClient
from .telemetry import SUBJECT, Telemetry


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

    def escalate(
        self, messages: list[dict[str, Any]], endpoint: str, agent: str = "", subject: str = ""
    ) -> Turn:
        """Raises EscalationRefused or ControlPlaneError with the reason."""
        event = self.telemetry.event
        token = SUBJECT.set(subject)
        try:
            try:
                allowed = compliance.guard_escalation(self.policy(), endpoint, messages)
            except compliance.EscalationRefused as exc:
                event("escalation.refused", {"endpoint": endpoint, "reason": str(exc)})
                raise
            if allowed.redactions:
                event("phi.redacted", {"endpoint": endpoint, "counts": allowed.redactions})
            started = time.perf_counter()
            out = self.client.escalate(
                schemas.RelayIn(
                    agent=agent or "edge",
                    model=f"cloud:{endpoint}",
                    messages=[schemas.ChatMessage.model_validate(m) for m in allowed.messages],
                )
            )
            latency = time.perf_counter() - started
            event("escalation.sent", {"endpoint": endpoint, "redactions": allowed.redactions})
        finally:
            SUBJECT.reset(token)
        self.telemetry.metrics(
            {"request.latency_ms": latency * 1000, "request.local": 0, "request.escalated": 1}
        )
        return Turn(
            agent=f"cloud:{out.endpoint}", answer=out.content, usage=Usage(latency_s=latency)
        )
