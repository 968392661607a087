"""Telemetry: metrics and events, minimised by the fleet's compliance policy on the device, queued
in the outbox (outbox.py) and delivered to the control plane in order, oldest first."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from agents.client import ControlPlaneError, NodeClient, retry_wait
from agents.outbox import STREAMS, Outbox
from wire import compliance, schemas

log = logging.getLogger("edgefleet.agent")

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
        # Items the outbox could not store (a full disk): counted here, reported with the drops.
        self.unstored = {s: 0 for s in STREAMS}
        self._unstored_reported = {s: 0 for s in STREAMS}

    def _enqueue(self, stream: str, items: list[dict[str, Any]]) -> None:
        """Queue items; a full (or failing) disk loses them, counted and logged, never an error
        for the request that produced them."""
        try:
            self.outbox.enqueue_many(stream, items)
        except sqlite3.Error as exc:
            if not any(self.unstored.values()):
                log.error("outbox cannot store telemetry (%s): counting what is lost", exc)
            self.unstored[stream] += len(items)

    def event(self, kind: str, data: dict[str, Any], personal: bool = True) -> None:
        """Queue an event. Content leaves the device only where the fleet's policy allows it.
        `personal`: about the request being served, so it names the end user served (if any);
        an event about the node itself (a model unloaded to make room) names nobody."""
        subject = SUBJECT.get() if personal else ""
        if subject:
            data = {**data, "subject": subject}
        self._enqueue("events", [{"kind": kind, "data": compliance.minimise(data, self.policy())}])

    def metrics(self, values: dict[str, float]) -> None:
        self._enqueue("metrics", [{"name": k, "value": float(v)} for k, v in values.items()])

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
        """What the outbox's caps dropped, and what a full disk kept it from storing, is counted
        and reported as the `outbox.dropped.<stream>` metric."""
        for stream, st in self.outbox.stats().items():
            unstored = self.unstored[stream]
            new = st["dropped"] - self._dropped_reported[stream]
            new += unstored - self._unstored_reported[stream]
            if new > 0:
                self.outbox.enqueue(
                    "metrics", {"name": f"outbox.dropped.{stream}", "value": float(new)}
                )
                self._dropped_reported[stream] = st["dropped"]
                self._unstored_reported[stream] = unstored

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
            except sqlite3.Error as exc:  # the outbox's disk: try again later, resend is harmless
                log.error("outbox: %s", exc)
                wait = retry_wait(ControlPlaneError(str(exc)), attempt)
                attempt += 1
            stop.wait(wait)
