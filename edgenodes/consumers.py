"""Websocket: live fleet events for the dashboard. Subscriptions go through the access functions."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from controlplane.events import fleet_group

from . import queries


class FleetEventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self):
        user = self.scope.get("user")
        self.groups_joined = []
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        ids = await database_sync_to_async(self._visible_fleet_ids)(user)
        for fid in ids:
            group = fleet_group(fid)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()

    @staticmethod
    def _visible_fleet_ids(user) -> list[int]:
        return list(queries.fleets(user).values_list("id", flat=True))

    async def disconnect(self, code):
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def fleet_event(self, message):
        await self.send_json(message["payload"])
