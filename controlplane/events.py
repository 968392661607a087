"""Publish websocket events through the channel layer, only once the transaction commits.

Each event carries `at`, the time it was published (seconds since the epoch), so a dashboard can say
how old what it shows is, and bench/live.py measures from it.

With Redis (several processes), events leave through one event loop per process, on a background
thread, without blocking the request: `async_to_sync` would start a new loop, and so a new Redis
connection, for every event (bench/live.py: ~30 ingests/s per two sync workers). The in-memory
layer lives in the serving process's own loop, which `async_to_sync` reaches from a sync view.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def fleet_group(fleet_id: int) -> str:
    return f"fleet.{fleet_id}"


def user_group(user_id: int) -> str:
    """Every open dashboard socket of one person listens here for `access.changed`."""
    return f"user.{user_id}"


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop (started lazily, so also after a fork)."""
    global _loop, _loop_pid
    if _loop_pid != os.getpid() or _loop is None:
        with _lock:
            if _loop_pid != os.getpid() or _loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="event-publisher", daemon=True
                ).start()
                _loop, _loop_pid = loop, os.getpid()
    return _loop


def _failed(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not publish an event", exc_info=future.exception())


def _send(group: str, payload: dict[str, Any], kind: str = "fleet.event") -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": kind, "payload": {**payload, "at": time.time()}}
    try:
        if type(layer).__module__.startswith("channels_redis"):
            future = asyncio.run_coroutine_threadsafe(
                layer.group_send(group, message), _publisher_loop()
            )
            future.add_done_callback(_failed)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a dashboard that misses an event resyncs; a write must not fail for it
        log.warning("could not publish %s to %s", payload.get("event", kind), group, exc_info=True)


def publish_on_commit(fleet_id: int, event: str, **data: Any) -> None:
    payload = {"event": event, "fleet": fleet_id, **data}
    transaction.on_commit(lambda: _send(fleet_group(fleet_id), payload))


def access_changed_on_commit(user_id: int, reason: str) -> None:
    """Once the transaction commits, tell every open socket of this person to check again what
    they may see (controlplane/dashboard/consumers.py): a role granted, changed or removed, a
    personal token
    revoked, a logout, an account deactivated or erased."""
    payload = {"reason": reason}
    transaction.on_commit(lambda: _send(user_group(user_id), payload, "access.changed"))


# Node watches (controlplane/nodeapi/watch.py): every ASGI process that holds watches listens on
# this group.
WATCH_GROUP = "node-watch"
# Up to this many node ids travel in a wake-up (~380 KB); a larger change wakes every watch of
# the fleet, which each process then checks in one query (not a 4 MB message for 100,000 nodes).
WATCH_MAX_IDS = 10_000


def wake_on_commit(kind: str, *, fleet: int, nodes: list[str], **data: Any) -> None:
    """Wake the held watches of `nodes` once the transaction commits: their desired state changed
    ("desired"), one of their approvals was decided ("approval"), their credential was revoked
    ("credential")."""
    payload = {
        "event": f"watch.{kind}",
        "fleet": fleet,
        "nodes": nodes if len(nodes) <= WATCH_MAX_IDS else None,
        **data,
    }
    transaction.on_commit(lambda: _send(WATCH_GROUP, payload))
