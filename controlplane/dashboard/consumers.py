"""Websocket: live fleet events for the dashboard. Subscriptions go through the access functions.

Clients only listen: an unauthenticated socket is closed with 4401, one that sends anything with
4400. The dashboard's socket is authenticated by its session; a script may present a personal API
token instead (`Authorization: Bearer efp_…` on the handshake), narrowed as in the API.

Access follows the person, live (docs/permissions.md, "Live connections"). Each socket joins the
group of its person (`user.<id>`), to which whatever changes their access sends `access.changed`
on commit (a role granted, changed or removed, a personal token revoked, a logout, an account
deactivated or erased: controlplane/accounts/services.py); the socket then asks again who it acts
as and which fleets it may see (also every REJOIN_S, as a backstop), and within that message's
round trip it is re-scoped (fleet groups joined and left, with a frame `{"access": {...}}` that
says why) or closed: 4401 when its session or token is gone or the account deactivated, 4403 when
no fleet is left to it. Events are delivered only to those who may read them through the API:
each kind needs an action in the event's fleet (EVENT_ACTIONS, VIEW unless listed).

Per client, events are coalesced and throttled: they are collected for LIVE_FLUSH_MS (50 ms,
EDGEFLEET_LIVE_FLUSH_MS) and sent as one frame `{"events": [...]}`, keeping only the newest
`node.metrics` event of each node (a chart needs its last point, not every one). A burst of reports
costs each dashboard at most 1000/LIVE_FLUSH_MS frames a second, and an event waits at most
LIVE_FLUSH_MS before it leaves (bench/live.py measures the ingest-to-socket latency: with 100 ms the
p99 was 270 ms, with 50 ms 210 ms, for 50 dashboards and 200 samples/s).
"""

from __future__ import annotations

import asyncio
import logging
import random
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from controlplane import tokens
from controlplane.accounts import access, guesses
from controlplane.accounts.access import VIEW
from controlplane.accounts.queries import token_holder
from controlplane.accounts.services import ENDED, current_user
from controlplane.errors import RateLimited
from controlplane.events import fleet_group, user_group
from controlplane.nodes import queries

log = logging.getLogger(__name__)

# Every this many seconds a socket checks again who it acts as and what it may see, and re-asserts
# its groups: after a Redis restart (which forgets every group) a dashboard receives events again
# within this time, without reconnecting; and a change that sent no `access.changed` (a session
# that expired, a fleet created for a global admin) reaches it within this time.
REJOIN_S = 10.0
COALESCED = {"node.metrics"}  # newest per node wins within a frame
# Event kinds that carry what a role may read through the API only with more than VIEW: the
# action needed in the event's fleet. membership.set names a person and their role: the member
# list (GET /fleets/{slug}/members) needs view_audit (admins and compliance officers).
EVENT_ACTIONS: dict[str, str] = {"membership.set": access.READ_MEMBERS}
CLOSE_ENDED = 4401  # the session or token is gone, or the account deactivated: log in again
CLOSE_NO_ACCESS = 4403  # no fleet is left to this person
CLOSE_RATE_LIMITED = 4429  # this address guessed too many tokens


def _bearer(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    return None


def _slugs(fleets: dict[int, str], ids) -> str:
    return ", ".join(sorted(fleets.get(i, str(i)) for i in ids))


class FleetEventsConsumer(AsyncJsonWebsocketConsumer):
    fleets: dict[int, str]  # fleet id -> slug, the fleets this socket may see (VIEW)
    may: dict[str, set[int]]  # action -> the fleets among those where the person may do it

    async def connect(self):
        self.fleets, self.may = {}, {}
        self.pending: dict[Any, dict[str, Any]] = {}
        self.flusher: asyncio.TimerHandle | None = None
        self.rejoin: asyncio.Task | None = None
        self.serial = 0
        self.ended = False
        self.personal_group: str | None = None
        self.lock = asyncio.Lock()
        user = self.scope.get("user")
        secret = _bearer(self.scope)
        if user is not None and user.is_authenticated:
            key = getattr(self.scope.get("session"), "session_key", None)
            self.credentials: dict[str, Any] = {"session_key": key, "user_id": user.pk}
        elif secret is not None:
            refused = await database_sync_to_async(self._token_refused)(secret)
            if refused:
                await self.close(code=refused)
                return
            self.credentials = {"token_hash": tokens.hash_token(secret)}
        else:
            await self.close(code=CLOSE_ENDED)
            return
        found = await database_sync_to_async(self._access)()
        if isinstance(found, str):  # a revoked or expired token, a deactivated account
            await self.close(code=CLOSE_ENDED)
            return
        user_id, self.fleets, self.may = found
        self.personal_group = user_group(user_id)
        try:
            await self._join(self.fleets)
        except Exception as exc:  # noqa: BLE001 - the channel layer (Redis) is down
            # Refused (403), not a 500: the dashboard reconnects with backoff
            # (dashboard/static/live.js).
            log.warning("live events unavailable, socket refused: %s", exc)
            self.fleets, self.personal_group = {}, None
            await self.close()
            return
        await self.accept()
        self.rejoin = asyncio.ensure_future(self._rejoin_forever())

    def _token_refused(self, secret: str) -> int:
        """A close code if the secret matches no personal token (0: go on; a revoked or expired
        one is refused by `_access`). Unknown secrets count as guesses per address, as in the API
        (controlplane/accounts/guesses.py): past the limit the socket is closed with 4429."""
        known = secret.startswith(tokens.PERSONAL_PREFIX) and (
            token_holder(tokens.hash_token(secret))[0] is not None
        )
        if known:
            return 0
        meta = tokens.scope_meta(self.scope)
        try:
            guesses.unknown("API token", SimpleNamespace(META=meta))
        except RateLimited:
            return CLOSE_RATE_LIMITED
        return CLOSE_ENDED

    def _access(self) -> tuple[int, dict[int, str], dict[str, set[int]]] | str:
        """(user id, visible fleets, fleets per action) as of now, or why the socket must end."""
        user, ended = current_user(**self.credentials)
        if user is None:
            return ended
        fleets = dict(queries.fleets(user).values_list("id", "slug"))
        may = {VIEW: set(fleets)}
        for action in set(EVENT_ACTIONS.values()):
            ids = access.fleet_ids(user, action)
            may[action] = set(fleets) if ids is None else ids & set(fleets)
        return user.pk, fleets, may

    async def _join(self, fleet_ids) -> None:
        groups = [fleet_group(fid) for fid in fleet_ids]
        for group in [self.personal_group, *groups]:
            if group is not None:
                await self.channel_layer.group_add(group, self.channel_name)

    async def _rejoin_forever(self):
        while not self.ended:
            # Spread over ±10%: sockets opened together do not all re-check at once.
            await asyncio.sleep(REJOIN_S * random.uniform(0.9, 1.1))
            await self.recheck()
            if self.ended:
                return
            try:
                await self._join(list(self.fleets))
            except Exception:  # noqa: S112, BLE001 - the layer is down: try again next round
                continue

    async def access_changed(self, message):
        """Something changed this person's access (controlplane.events.access_changed_on_commit)."""
        await self.recheck()

    async def recheck(self) -> None:
        """Ask again who this socket acts as and what they may see; re-scope or close it."""
        async with self.lock:
            if self.ended:
                return
            try:
                found = await database_sync_to_async(self._access)()
            except Exception:  # noqa: BLE001 - the database is down: keep the scope, next round
                log.warning("could not re-check a live socket's access", exc_info=True)
                return
            if isinstance(found, str):
                await self._end(CLOSE_ENDED, reason=found, detail=ENDED[found])
                return
            _, fleets, may = found
            before, before_may = self.fleets, self.may
            removed = [fid for fid in before if fid not in fleets]
            added = [fid for fid in fleets if fid not in before]
            changed = [
                fid
                for fid in fleets
                if fid in before and any((fid in may[a]) != (fid in before_may[a]) for a in may)
            ]
            self.fleets, self.may = fleets, may  # events are filtered by the new scope from now
            for fid in removed:
                await self._leave(fleet_group(fid))
            if removed and not fleets:
                detail = f"You no longer have access to fleet {_slugs(before, removed)}."
                await self._end(CLOSE_NO_ACCESS, reason="fleet_removed", detail=detail)
                return
            notices = []
            if removed:
                detail = f"Your access to fleet {_slugs(before, removed)} was removed."
                notices.append(("fleet_removed", removed, detail))
            if added:
                detail = f"You now have access to fleet {_slugs(fleets, added)}; reload to see it."
                notices.append(("fleet_added", added, detail))
            if changed:
                detail = f"Your role in fleet {_slugs(fleets, changed)} changed; reload to see it."
                notices.append(("role_changed", changed, detail))
            if added:
                try:
                    await self._join(added)
                except Exception:  # noqa: BLE001 - the layer is down: the next round joins them
                    log.warning("could not join the groups of new fleets", exc_info=True)
            for code, ids, detail in notices:
                await self.send_json({"access": {"code": code, "fleets": ids, "detail": detail}})

    async def _leave(self, group: str) -> None:
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:  # noqa: BLE001 - the layer is down: it forgot the group anyway
            log.warning("could not leave %s", group, exc_info=True)

    async def _end(self, close_code: int, *, reason: str, detail: str) -> None:
        """Say why, then close: the dashboard shows `detail` and does not reconnect."""
        self.ended = True
        self.pending = {}
        if self.flusher is not None:
            self.flusher.cancel()
            self.flusher = None
        for fid in list(self.fleets):
            await self._leave(fleet_group(fid))
        self.fleets, self.may = {}, {}
        frame = {"code": "access_revoked", "reason": reason, "detail": detail}
        await self.send_json({"access": frame})
        await self.close(code=close_code)

    def _may_read(self, payload: dict[str, Any]) -> bool:
        if self.ended:
            return False
        action = EVENT_ACTIONS.get(payload.get("event", ""), VIEW)
        fleet = payload.get("fleet")
        if fleet is None:  # every published event names its fleet; its group is the filter
            return action == VIEW and bool(self.fleets)
        return fleet in self.may.get(action, ())

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """The socket carries events to the dashboard only. Anything a client sends (a message of
        any size, valid JSON or not) closes its socket with 4400 before it is parsed: a client
        that floods costs one frame, and the others do not wait on it."""
        await self.close(code=4400)

    async def disconnect(self, code):
        self.ended = True
        if self.flusher is not None:
            self.flusher.cancel()
        if self.rejoin is not None and self.rejoin is not asyncio.current_task():
            self.rejoin.cancel()
        for group in [self.personal_group, *(fleet_group(fid) for fid in self.fleets)]:
            if group is not None:
                await self._leave(group)

    async def fleet_event(self, message):
        payload = message["payload"]
        if not self._may_read(payload):
            return
        if payload.get("event") in COALESCED:
            key: Any = (payload["event"], payload.get("node"))
            self.pending.pop(key, None)  # re-inserted last: frames keep arrival order
        else:
            self.serial += 1
            key = self.serial
        self.pending[key] = payload
        if self.flusher is None:
            loop = asyncio.get_running_loop()
            wait = settings.EDGEFLEET["LIVE_FLUSH_MS"] / 1000
            self.flusher = loop.call_later(wait, lambda: asyncio.ensure_future(self.flush()))

    async def flush(self):
        self.flusher = None
        # Access may have narrowed since an event arrived: filter again on the way out.
        events = [e for e in self.pending.values() if self._may_read(e)]
        self.pending = {}
        if events:
            await self.send_json({"events": events})
