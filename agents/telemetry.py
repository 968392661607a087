"""Telemetry: metrics and events, minimised by the fleet's compliance policy on the device, queued
in the outbox (outbox.py) and delivered to the control plane in order, oldest first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from . import compliance, schemas
from .client import ControlPlaneError, NodeClient, retry_wait
from .outbox import STREAMS, Outbox

# The end user a request is served for (the OpenAI API's `user` field): events name them, and the
# control plane stores only a keyed pseudonym, erasable on request (GDPR).
SUBJECT: ContextVar[str] = ContextVar("edgefleet_subject", default="")


class Telemetry:
    def __init__(
        self,
        outbox: Outbox,
        client: NodeClient,
        policy: Callable[[], schemas.CompliancePolicy],
    ):
        self.outbox = outbox
        self.client = client
        self.policy = policy
        self._dropped_reported = {s: 0 for s in STREAMS}

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
        """What the outbox's cap dropped is counted and reported as a metric."""
        for stream, st in self.outbox.stats().items():
            new = st["dropped"] - self._dropped_reported[stream]
            if new > 0:
                self.outbox.enqueue(
                    "metrics", {"name": f"outbox.dropped.{stream}", "value": float(new)}
                )
                self._dropped_reported[stream] = st["dropped"]

    def loop(self, stop: threading.Event, interval_s: float) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                self.send_once()
                attempt = 0
                wait = interval_s
            except ControlPlaneError as exc:
                wait = retry_wait(exc, attempt)
                attempt += 1
            stop.wait(wait)
