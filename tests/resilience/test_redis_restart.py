"""Redis killed and started again under live dashboards (gunicorn publishing, Daphne holding the
websockets, both on that Redis): every dashboard receives the fleet's events again, over its own
socket (the consumer re-joins its groups) or after reconnecting and resyncing as
dashboard/static/live.js
does."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect

from agents.client import ControlPlaneError, NodeClient

from .harness import (
    ControlPlane,
    Redis,
    daphne,
    database,
    django,
    report,
    seed,
    server_env,
    stop,
    wait_for,
)

DASHBOARDS = 5

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (make services installs it)"
)

LOGIN = """
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_superuser("alice", password=None)
client = Client()
client.force_login(user)
print(json.dumps({"session": client.cookies["sessionid"].value}))
"""


class Dashboard:
    """A dashboard's live connection, behaving as dashboard/static/live.js: on a closed socket it
    reconnects (1 s, doubling), and after a reconnect it refreshes what it shows (resync)."""

    def __init__(self, ws_url: str, page_url: str, session: str):
        self.ws_url, self.page_url = ws_url, page_url
        self.headers = {"Cookie": f"sessionid={session}"}
        self.markers: list[tuple[float, float]] = []  # (when, marker value) of each event seen
        self.reconnects = self.resyncs = 0
        self.refusals: list[int] = []  # handshake statuses while the layer was down
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self) -> None:
        delay, opened = 1.0, False
        while not self.stopping.is_set():
            try:
                with connect(
                    self.ws_url, additional_headers=self.headers, origin=self.page_url
                ) as ws:
                    if opened:
                        self.reconnects += 1
                        page = httpx.get(self.page_url, headers=self.headers, timeout=10)
                        self.resyncs += page.status_code == 200
                    opened, delay = True, 1.0
                    while not self.stopping.is_set():
                        try:
                            frame = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        for event in frame["events"]:
                            value = event.get("latest", {}).get("marker")
                            if value is not None:
                                self.markers.append((time.monotonic(), value))
            except (WebSocketException, OSError) as exc:
                if isinstance(exc, InvalidStatus):
                    self.refusals.append(exc.response.status_code)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def saw_after(self, marker: float) -> bool:
        return any(v > marker for _, v in self.markers)


def test_dashboards_receive_events_again_after_redis_is_killed_and_restarted(tmp_path):
    db = database(tmp_path)
    redis = Redis().start()
    env = server_env(db.url, tmp_path / "var", REDIS_URL=redis.url)
    plane = ControlPlane(env)
    sockets = None
    dashboards: list[Dashboard] = []
    sending = threading.Event()
    try:
        (node_id, credential), *_ = seed(env, 1).items()
        session = django(env, LOGIN)["session"]
        plane.start()
        sockets, port = daphne(env)
        base = f"http://127.0.0.1:{port}"
        dashboards = [
            Dashboard(f"ws://127.0.0.1:{port}/ws/events/", base + "/", session)
            for _ in range(DASHBOARDS)
        ]
        marker = [0.0]

        def node() -> None:  # one metric batch with a rising marker every 0.2 s
            client = NodeClient(plane.url, credential, timeout=10)
            seq = 0
            while not sending.is_set():
                seq += 1
                marker[0] += 1
                ts = datetime.now(UTC).isoformat()
                sample = {"seq": seq, "ts": ts, "name": "marker", "value": marker[0]}
                with contextlib.suppress(ControlPlaneError):  # it keeps going, as an agent does
                    client.send("metrics", [sample])
                time.sleep(0.2)
            client.close()

        sender = threading.Thread(target=node)
        sender.start()
        wait_for(lambda: all(d.markers for d in dashboards), 60, "events on every dashboard")

        redis.kill()
        killed_at, last_before = time.monotonic(), marker[0]
        time.sleep(1.0)
        redis.start()
        wait_for(
            lambda: all(d.saw_after(last_before + 5) for d in dashboards),
            90,
            "every dashboard to receive events again",
        )
        refusals = [status for d in dashboards for status in d.refusals]
        back = [min(t for t, v in d.markers if v > last_before) - killed_at for d in dashboards]
        report(
            "Redis restart under live dashboards",
            f"redis-server SIGKILLed and started again 1 s later, {DASHBOARDS} dashboards open",
            1,
            dashboards_recovered=sum(d.saw_after(last_before) for d in dashboards),
            reconnects=sum(d.reconnects for d in dashboards),
            resyncs=sum(d.resyncs for d in dashboards),
            events_again_after_s=f"{min(back):.1f}-{max(back):.1f}",
            handshakes_refused=len(refusals),
            server_errors=sum(status >= 500 for status in refusals),
        )
        assert not [status for status in refusals if status >= 500]
        assert all(d.resyncs == d.reconnects for d in dashboards)
    finally:
        sending.set()
        for d in dashboards:
            d.stopping.set()
            d.thread.join(timeout=30)
        if sockets is not None:
            stop(sockets)
        plane.kill()
        redis.kill()
        db.close()
