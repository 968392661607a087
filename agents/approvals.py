"""Tool calls that policy marks "approval": ask the control plane, wait for a person's decision."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from agents.client import ControlPlaneError, NodeClient
from wire import schemas

log = logging.getLogger("edgefleet.agent")


Watch = Callable[[str | None, int, int], tuple[bool, str | None]]


class Approvals:
    """The approver the tool gate calls (tools.ToolGate).

    Between two looks at the approval it holds a watch on the desired state (`watch`, the
    applier's `watch_once`), which the control plane answers as soon as the approval is decided;
    where watches are not held, it looks again every `check_every_s`."""

    def __init__(
        self,
        client: NodeClient,
        stop: threading.Event,
        check_every_s: float = 1.0,
        watch: Watch | None = None,
        etag: Callable[[], str | None] = lambda: None,
    ):
        self.client = client
        self.stop = stop
        self.check_every_s = check_every_s
        self.watch = watch
        self.etag = etag

    def __call__(self, tool: str, agent: str, args: dict[str, Any], timeout_s: int) -> bool:
        """Ask the control plane and wait; no answer within the timeout means deny."""
        try:
            req = self.client.request_approval(
                schemas.ApprovalIn(tool=tool, agent=agent, arguments=args, timeout_s=timeout_s)
            )
        except (ControlPlaneError, ValidationError) as exc:
            log.warning("approval request failed: %s", exc)
            return False
        deadline = time.monotonic() + timeout_s
        etag = self.etag()
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                status = self.client.approval(req.id).status
            except ControlPlaneError:
                status = "pending"
            if status != "pending":
                return status == "approved"
            held = False
            if self.watch is not None:
                held, etag = self.watch(etag, math.ceil(deadline - time.monotonic()), req.id)
            if not held:
                self.stop.wait(self.check_every_s)
        return False
