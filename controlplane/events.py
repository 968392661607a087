"""Publish websocket events through the channel layer, only once the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def fleet_group(fleet_id: int) -> str:
    return f"fleet.{fleet_id}"


def _send(group: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "fleet.event", "payload": payload})
    except Exception:  # a dashboard that misses an event reloads; a write must not fail for it
        log.warning("could not publish %s to %s", payload.get("event"), group, exc_info=True)


def publish_on_commit(fleet_id: int, event: str, **data: Any) -> None:
    payload = {"event": event, "fleet": fleet_id, **data}
    transaction.on_commit(lambda: _send(fleet_group(fleet_id), payload))
