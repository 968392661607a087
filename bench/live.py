"""The live dashboard under load (issue 12), on a real PostgreSQL (and Redis).

1. Ingest to socket: DASHBOARDS websocket clients, each signed in, watch a fleet while NODES nodes
   report RATE metric samples/s in all through the node API, in batches of BATCH (as the agent's
   outbox sends them), for DURATION seconds. Each batch carries the time it was sent; every
   dashboard records, for each `node.metrics` event it receives, how long after the send it
   arrived. Two setups:
   - in-memory channel layer: one Daphne process serves the node API and the websockets;
   - Redis: gunicorn (sync workers) serves the node API and Daphne the websockets, as the documented
     production setup does, with the events crossing Redis.
   Baseline, in the same run: the node API's own round trip for the same batches (the ingest), so
   the ratio says what the live path adds. Target: p99 under 250 ms.
   Measured two ways: from the ingest's commit (the event's `at`) to the socket (the live path; the
   target), and from the node's send to the socket (adds the node API's own queueing).
2. A forced Redis restart (shutdown, then start again) while dashboards watch: how long until every
   dashboard receives events again, and whether any ingest failed meanwhile.
3. The node list with LIST_NODES nodes: server time of the dashboard's first page (and a filtered,
   sorted one) over REPEAT requests, its query count, against /healthz in the same client.
   Target: p95 under 100 ms.

Figures go to bench/results/live.json and live.md (smoke runs: bench/results/smoke/).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from common import RESULTS, ROOT, SMOKE, free_port, log, pct, size, stop_group, wait_until_up
from node_api import fresh_database, server_env

DASHBOARDS = size("BENCH_DASHBOARDS", 50, 3)
NODES = size("BENCH_LIVE_NODES", 40, 4)
RATE = size("BENCH_LIVE_RATE", 200, 20)  # metric samples per second, all nodes together
BATCH = size("BENCH_LIVE_BATCH", 5, 5)  # samples per batch: agents send their outbox in batches
DURATION = size("BENCH_LIVE_DURATION", 20, 2)
LIST_NODES = size("BENCH_LIST_NODES", 20_000, 300)
REPEAT = size("BENCH_LIST_REPEAT", 40, 5)
BIN = Path(sys.executable).parent
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
SEQS: dict[int, list[int]] = {}  # each node's last sequence number: a replay would be skipped


# --- seeding --------------------------------------------------------------------------------------


def seed(db_url: str) -> dict:
    """A fleet of NODES reporting nodes, a fleet of LIST_NODES for the list, a dashboard user and
    its session (a real session row: the websockets authenticate with its cookie)."""
    os.environ.update(server_env(db_url))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from controlplane import tokens
    from controlplane.nodes.models import Fleet, Node, NodeCredential

    admin = get_user_model().objects.create_superuser("bench-admin", password=None)
    live = Fleet.objects.create(slug="live", name="live")
    big = Fleet.objects.create(slug="big", name="big")
    Node.objects.bulk_create(
        [Node(fleet=live, name=f"live-{i:04d}") for i in range(NODES)], batch_size=2000
    )
    Node.objects.bulk_create(
        [
            Node(fleet=big, name=f"big-{i:06d}", labels={"rack": str(i % 50)})
            for i in range(LIST_NODES)
        ],
        batch_size=5000,
    )
    creds, plain = [], []
    for node in Node.objects.filter(fleet=live).order_by("name"):
        text, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
        creds.append(NodeCredential(node=node, prefix=prefix, token_hash=token_hash))
        plain.append(text)
    NodeCredential.objects.bulk_create(creds)
    client = Client()
    client.force_login(admin)
    session = client.cookies["sessionid"].value
    from django.db import connections

    connections.close_all()
    return {"credentials": plain, "session": session}


# --- servers --------------------------------------------------------------------------------------


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str], port: int, health: str = "/healthz"):
        (ROOT / "var").mkdir(exist_ok=True)
        logfile = ROOT / "var" / f"bench-live-{Path(argv[0]).name}.log"
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=logfile.open("w"),
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_until_up(self.url + health, self.proc, argv[0])

    def stop(self) -> None:
        stop_group(self.proc)


def daphne(env: dict[str, str]) -> Proc:
    port = free_port()
    argv = [
        str(BIN / "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "edgefleet.asgi:application",
    ]
    return Proc(argv, env, port)


def gunicorn(env: dict[str, str]) -> Proc:
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "edgefleet.wsgi:application",
        "-k",
        "sync",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "error",
    ]
    return Proc(argv, env, port)


# --- load -----------------------------------------------------------------------------------------


async def dashboard(ws_url: str, session: str, origin: str, sink: dict, stop: asyncio.Event):
    """One signed-in dashboard: records each metric event's age; reconnects like
    dashboard/static/live.js."""
    import websockets

    delay = 0.5
    while not stop.is_set():
        try:
            async with websockets.connect(
                ws_url,
                additional_headers={"Cookie": f"sessionid={session}", "Origin": origin},
                open_timeout=10,
            ) as ws:
                sink["connects"] += 1
                delay = 0.5
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    sink["frames"] += 1
                    for event in json.loads(raw)["events"]:
                        sent = (event.get("latest") or {}).get("bench.sent_at")
                        if sent is not None:
                            sink["ages"].append(now - sent)
                            sink["published"].append(now - event["at"])
                            sink["last"] = now
        except (OSError, websockets.WebSocketException, TimeoutError):
            sink["drops"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4)


async def reporters(url: str, credentials: list[str], rate: int, seconds: float, out: dict):
    """NODES nodes sending one batch of BATCH samples each in turn, `rate` samples a second."""
    import httpx

    seqs = SEQS.setdefault(id(credentials), [0] * len(credentials))  # rising across runs
    interval = BATCH / rate
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:

        async def send(i: int) -> None:
            sent = time.time()
            now = datetime.now(UTC).isoformat()
            samples = []
            for name, value in [("request.latency_ms", 120.0)] * (BATCH - 1) + [
                ("bench.sent_at", sent)
            ]:
                seqs[i] += 1
                samples.append({"seq": seqs[i], "ts": now, "name": name, "value": value})
            body = {"samples": samples}
            try:
                r = await client.post(
                    f"{url}/api/node/v1/metrics",
                    json=body,
                    headers={"Authorization": f"Bearer {credentials[i]}"},
                )
                out["round_trips"].append(time.time() - sent)
                if r.status_code != 200:
                    out["failed"] += 1
            except httpx.HTTPError:
                out["failed"] += 1

        tasks = []
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            tasks.append(asyncio.create_task(send(n % len(credentials))))
            n += 1
            await asyncio.sleep(max(0, start + n * interval - time.monotonic()))
        await asyncio.gather(*tasks)
        out["sent"] = n
        out["achieved_rate"] = n / (time.monotonic() - start)


async def live_run(ingest_url: str, ws_base: str, seed_info: dict, restart_redis: bool) -> dict:
    stop = asyncio.Event()
    sinks = [
        {"ages": [], "published": [], "frames": 0, "connects": 0, "drops": 0, "last": 0.0}
        for _ in range(DASHBOARDS)
    ]
    origin = ws_base.replace("ws://", "http://")
    clients = [
        asyncio.create_task(
            dashboard(f"{ws_base}/ws/events/", seed_info["session"], origin, s, stop)
        )
        for s in sinks
    ]
    deadline = time.monotonic() + 30
    while any(s["connects"] == 0 for s in sinks) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    out: dict = {"round_trips": [], "failed": 0}
    await reporters(ingest_url, seed_info["credentials"], RATE, DURATION, out)
    await asyncio.sleep(1)
    ages = [a for s in sinks for a in s["ages"]]
    published = [a for s in sinks for a in s["published"]]
    result = {
        "dashboards": DASHBOARDS,
        "dashboards_connected": sum(1 for s in sinks if s["connects"]),
        "nodes": NODES,
        "batches_sent": out["sent"],
        "batches_per_s": round(out["achieved_rate"], 1),
        "samples_per_s": round(out["achieved_rate"] * BATCH, 1),
        "ingest_failed": out["failed"],
        "events_received": len(ages),
        "events_expected": out["sent"] * DASHBOARDS,
        "frames_per_dashboard_per_s": round(
            sum(s["frames"] for s in sinks) / DASHBOARDS / DURATION, 1
        ),
        "socket_ms": summary(published),
        "send_to_socket_ms": summary(ages),
        "ingest_round_trip_ms": summary(out["round_trips"]),
    }
    result["p99_ratio_to_ingest"] = round(
        result["send_to_socket_ms"]["p99"] / max(result["ingest_round_trip_ms"]["p99"], 0.001), 2
    )
    if restart_redis:
        result["redis_restart"] = await redis_restart(ingest_url, seed_info, sinks)
    stop.set()
    await asyncio.gather(*clients, return_exceptions=True)
    return result


async def redis_restart(ingest_url: str, seed_info: dict, sinks: list[dict]) -> dict:
    """Shut Redis down (no save: the groups it held are gone), start it again, and keep reporting:
    how long until every dashboard receives events again, and how many ingests failed meanwhile."""
    subprocess.run(
        ["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False, capture_output=True
    )
    down_at = time.time()
    out: dict = {"round_trips": [], "failed": 0}
    await reporters(ingest_url, seed_info["credentials"], max(RATE // 4, 4), 2, out)
    subprocess.run(
        [
            "redis-server",
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        capture_output=True,
    )
    up_at = time.time()
    failed = out["failed"]
    recovered_at = None
    deadline = time.monotonic() + (30 if SMOKE else 60)
    while time.monotonic() < deadline:
        out = {"round_trips": [], "failed": 0}
        await reporters(ingest_url, seed_info["credentials"], max(RATE // 4, 4), 0.5, out)
        failed += out["failed"]
        if all(s["last"] > up_at for s in sinks):
            recovered_at = max(s["last"] for s in sinks)
            break
    return {
        "down_s": round(up_at - down_at, 2),
        "ingest_failed_while_down_or_after": failed,
        "all_dashboards_live_again_after_s": round(recovered_at - up_at, 2)
        if recovered_at
        else None,
        "reconnects": sum(s["drops"] for s in sinks),
    }


def summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 1),
        "p95": round(pct(ms, 95), 1),
        "p99": round(pct(ms, 99), 1),
        "max": round(max(ms), 1),
    }


# --- the node list --------------------------------------------------------------------------------


def node_list() -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username="bench-admin"))

    def timed(path: str) -> tuple[list[float], int]:
        client.get(path)  # warm
        times = []
        queries = 0
        for _ in range(REPEAT):
            with CaptureQueriesContext(connection) as ctx:
                t = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t)
            assert r.status_code == 200, (path, r.status_code)
            queries = len(ctx.captured_queries)
        return times, queries

    base, _ = timed("/healthz")
    first, q_first = timed("/nodes/?fleet=big")
    filtered, q_filtered = timed("/nodes/?fleet=big&label=rack=7&sort=-last_seen&offset=50")
    return {
        "nodes": LIST_NODES,
        "healthz_ms": summary(base),
        "first_page_ms": summary(first),
        "first_page_queries": q_first,
        "filtered_page_ms": summary(filtered),
        "filtered_page_queries": q_filtered,
        "first_page_p95_ratio_to_healthz": round(pct(first, 95) / max(pct(base, 95), 1e-6), 1),
    }


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    db_url = fresh_database()
    log(f"seeding {NODES} reporting nodes and {LIST_NODES} listed nodes ...")
    info = seed(db_url)
    results: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "smoke": SMOKE}

    log("node list ...")
    results["node_list"] = node_list()
    log(json.dumps(results["node_list"]))

    setups = os.environ.get("BENCH_LIVE_SETUPS", "memory,redis").split(",")
    env = server_env(db_url)
    env.pop("REDIS_URL", None)
    if "memory" in setups:
        log("in-memory channel layer: one Daphne process ...")
        server = daphne(env)
        try:
            ws = server.url.replace("http://", "ws://")
            results["in_memory"] = asyncio.run(live_run(server.url, ws, info, restart_redis=False))
        finally:
            server.stop()
        log(json.dumps(results["in_memory"]))

    redis_url = os.environ.get("REDIS_URL")
    if redis_url and "redis" in setups:
        log("Redis channel layer: gunicorn for the node API, Daphne for the websockets ...")
        env = {**server_env(db_url), "REDIS_URL": redis_url}
        api, sockets = gunicorn(env), daphne(env)
        try:
            ws = sockets.url.replace("http://", "ws://")
            results["redis"] = asyncio.run(live_run(api.url, ws, info, restart_redis=True))
        finally:
            api.stop()
            sockets.stop()
        log(json.dumps(results["redis"]))
    else:
        log("REDIS_URL is not set: the Redis setup is skipped (make bench sets it)")

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "live.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results)
    log(f"results in {RESULTS / 'live.json'}")


def write_markdown(r: dict) -> None:
    rows = [
        "# Live dashboard (bench/live.py)",
        "",
        f"Run {r['when']}{' (smoke sizes: figures mean nothing)' if r['smoke'] else ''}.",
        "",
        "| setup | dashboards | samples/s (batches/s) | commit → socket p50 / p95 / p99 ms |"
        " send → socket p99 ms | ingest round trip p99 ms | p99 ratio (send → socket / ingest) |"
        " events received / sent × dashboards | frames per dashboard/s |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for key, label in (("in_memory", "in-memory layer"), ("redis", "Redis layer")):
        x = r.get(key)
        if not x:
            continue
        s = x["socket_ms"]
        rows.append(
            f"| {label} | {x['dashboards_connected']} | {x['samples_per_s']} "
            f"({x['batches_per_s']}) | {s['p50']} / "
            f"{s['p95']} / {s['p99']} | {x['send_to_socket_ms']['p99']} | "
            f"{x['ingest_round_trip_ms']['p99']} | {x['p99_ratio_to_ingest']} | "
            f"{x['events_received']} / {x['events_expected']} | "
            f"{x['frames_per_dashboard_per_s']} |"
        )
    restart = (r.get("redis") or {}).get("redis_restart")
    if restart:
        rows += [
            "",
            f"Redis restart: down {restart['down_s']} s; every dashboard received events again "
            f"{restart['all_dashboards_live_again_after_s']} s after Redis was back; ingests "
            f"failed meanwhile: {restart['ingest_failed_while_down_or_after']}; websocket "
            f"reconnects: {restart['reconnects']}.",
        ]
    n = r["node_list"]
    rows += [
        "",
        f"Node list, {n['nodes']} nodes (server time in-process, {REPEAT} requests):",
        "",
        "| page | p50 ms | p95 ms | queries | p95 / healthz |",
        "|---|---:|---:|---:|---:|",
        f"| /healthz (baseline) | {n['healthz_ms']['p50']} | {n['healthz_ms']['p95']} | 0 | 1 |",
        f"| first page | {n['first_page_ms']['p50']} | {n['first_page_ms']['p95']} | "
        f"{n['first_page_queries']} | {n['first_page_p95_ratio_to_healthz']} |",
        f"| label filter, sorted, page 2 | {n['filtered_page_ms']['p50']} | "
        f"{n['filtered_page_ms']['p95']} | {n['filtered_page_queries']} | |",
        "",
    ]
    (RESULTS / "live.md").write_text("\n".join(rows))


if __name__ == "__main__":
    main()
