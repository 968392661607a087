"""Websocket: live fleet events for the dashboard. Subscriptions go through the access functions.

Per client, events are coalesced and throttled: they are collected for FLUSH_S and sent as one
frame `{"events": [...]}`, keeping only the newest `node.metrics` event of each node (a chart needs
its last point, not every one). A burst of reports costs each dashboard at most 1/FLUSH_S frames a
second, and an event waits at most FLUSH_S before it leaves (bench/live.py measures the ingest-to-
socket latency).
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from controlplane.events import fleet_group

from . import queries

FLUSH_S = 0.1
# Group memberships are re-asserted this often: after a Redis restart (which forgets every group)
# a dashboard receives events again within this time, without reconnecting.
REJOIN_S = 10.0
COALESCED = {"node.metrics"}  # newest per node wins within a frame


class FleetEventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self):
        user = self.scope.get("user")
        self.groups_joined = []
        self.pending: dict[Any, dict[str, Any]] = {}
        self.flusher: asyncio.TimerHandle | None = None
        self.rejoin: asyncio.Task | None = None
        self.serial = 0
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        ids = await database_sync_to_async(self._visible_fleet_ids)(user)
        for fid in ids:
            group = fleet_group(fid)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        self.rejoin = asyncio.ensure_future(self._rejoin_forever())

    async def _rejoin_forever(self):
        while True:
            await asyncio.sleep(REJOIN_S)
            for group in self.groups_joined:
                try:
                    await self.channel_layer.group_add(group, self.channel_name)
                except Exception:  # noqa: S112 - the layer is down: try again next round
                    continue

    @staticmethod
    def _visible_fleet_ids(user) -> list[int]:
        return list(queries.fleets(user).values_list("id", flat=True))

    async def disconnect(self, code):
        if self.flusher is not None:
            self.flusher.cancel()
        if self.rejoin is not None:
            self.rejoin.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def fleet_event(self, message):
        payload = message["payload"]
        if payload.get("event") in COALESCED:
            key: Any = (payload["event"], payload.get("node"))
            self.pending.pop(key, None)  # re-inserted last: frames keep arrival order
        else:
            self.serial += 1
            key = self.serial
        self.pending[key] = payload
        if self.flusher is None:
            loop = asyncio.get_running_loop()
            self.flusher = loop.call_later(FLUSH_S, lambda: asyncio.ensure_future(self.flush()))

    async def flush(self):
        self.flusher = None
        events, self.pending = list(self.pending.values()), {}
        if events:
            await self.send_json({"events": events})
