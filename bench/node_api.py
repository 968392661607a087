#!/usr/bin/env python
"""Node API benchmark: the real server on loopback, on PostgreSQL, against its own bare endpoint.

1. Seeds a fresh PostgreSQL database with NODES enrolled nodes (credentials hashed as in
production).
2. For each server setup (gunicorn sync, gunicorn gthread, uvicorn ASGI), measures with wrk (a C
load
   generator, so the client does not starve the server of the 2 cores):
   - the bare `/healthz` endpoint (full middleware stack, no work): the stack's own limit;
   - authenticated conditional polls (`If-None-Match` with each node's current ETag -> 304);
   - metric ingest, batches of 50 samples, every node's sequence numbers increasing.
3. With the fastest poll setup: PROP_NODES simulated nodes (async httpx, server-jittered intervals)
   poll; an admin changes a label layer through the admin API; we measure when each affected node
   gets the new revision, in poll intervals, and check the others kept getting 304.

Figures go to bench/results/node_api.json and node_api.md. Needs DATABASE_URL (PostgreSQL);
`make bench` starts PostgreSQL and Redis itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, SMOKE, free_port, log, size, stop_group, wait_until_up  # noqa: E402

BIN = Path(sys.executable).parent
NODES = size("BENCH_NODES", 20000, 200)
PROP_NODES = size("BENCH_PROP_NODES", 1500, 40)
PROP_INTERVAL = size("BENCH_PROP_INTERVAL", 6, 2)
DURATION = os.environ.get("BENCH_DURATION", "1s" if SMOKE else "10s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
WRK_THREADS = 2


# --- database -------------------------------------------------------------------------------------


def fresh_database() -> str:
    import psycopg

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "bench/node_api.py needs DATABASE_URL pointing at PostgreSQL (make bench sets it up)"
        )
    bench_url = re.sub(r"/[^/]*$", "/edgefleet_bench", base)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS edgefleet_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE edgefleet_bench")
    return bench_url


def server_env(db_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="ERROR",
        # Every simulated node is distinct, but wrk cycles through them faster than real nodes poll.
        EDGEFLEET_NODE_RATE_PER_MIN="100000",
        # bench/relay.py measures the refusal of unknown credentials, hundreds of them.
        EDGEFLEET_TOKEN_FAILURE_LIMIT="1000000000",
        PYTHONUNBUFFERED="1",
    )
    return env


def seed(db_url: str, nodes_file: Path, prop_file: Path) -> None:
    """Create a fleet of NODES nodes and a propagation fleet through the ORM (fast bulk inserts)."""
    os.environ.update(server_env(db_url))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from controlplane import tokens
    from controlplane.accounts.services import do_create_personal_token
    from edgenodes import desired_state
    from edgenodes.models import Fleet, Node, NodeCredential

    admin = get_user_model().objects.create_superuser("bench-admin", password=None)
    _, api_token = do_create_personal_token(admin, name="bench")

    def make_fleet(slug: str, count: int, interval: int | None, path: Path) -> None:
        fleet = Fleet.objects.create(slug=slug, name=slug, poll_interval_s=interval)
        nodes = [
            Node(fleet=fleet, name=f"{slug}-{i:06d}", labels={"group": "a" if i % 2 == 0 else "b"})
            for i in range(count)
        ]
        Node.objects.bulk_create(nodes, batch_size=2000)
        desired_state.refresh(fleet)
        creds, lines = [], []
        for node in Node.objects.filter(fleet=fleet).order_by("name"):
            plaintext, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
            creds.append(NodeCredential(node=node, prefix=prefix, token_hash=token_hash))
            lines.append(f"{plaintext} {node.etag} {node.labels['group']}")
        NodeCredential.objects.bulk_create(creds, batch_size=2000)
        path.write_text("\n".join(lines) + "\n")

    make_fleet("bench", NODES, None, nodes_file)
    make_fleet("prop", PROP_NODES, PROP_INTERVAL, prop_file)
    (nodes_file.parent / "api_token").write_text(api_token)
    from django.db import connections

    connections.close_all()


def settle(db_url: str) -> None:
    """Let PostgreSQL finish what the last run left (dead rows, dirty pages) before measuring."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


# --- servers --------------------------------------------------------------------------------------


def gunicorn(workers: int, worker_class: str, threads: int = 1):
    extra = ["--threads", str(threads), "--keep-alive", "30"] if worker_class == "gthread" else []
    return lambda port: [
        str(BIN / "gunicorn"),
        "-c",
        "python:controlplane.gunicorn_conf",
        "controlplane.wsgi:application",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "-k",
        worker_class,
        "--log-level",
        "warning",
        "--backlog",
        "2048",
        *extra,
    ]


SERVERS = {
    "gunicorn sync (WSGI, 4 workers)": gunicorn(4, "sync"),
    "gunicorn gthread (WSGI, 2 workers x 8 threads)": gunicorn(2, "gthread", 8),
    "gunicorn gthread (WSGI, 4 workers x 2 threads)": gunicorn(4, "gthread", 2),
    "uvicorn (ASGI, 2 workers)": lambda port: [
        str(BIN / "uvicorn"),
        "controlplane.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
        "--no-access-log",
        "--lifespan",
        "off",
    ],
}


class Server:
    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen(
            SERVERS[name](self.port), cwd=ROOT, env=env, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until_up(self.url + "/healthz", self.proc, name)

    def stop(self) -> None:
        stop_group(self.proc)


def wrk(url: str, script: str, nodes_file: Path, connections: int = CONNECTIONS) -> dict:
    env = dict(
        os.environ,
        NODES=str(nodes_file),
        THREADS=str(WRK_THREADS),
        BATCH="50",
        LUA_DIR=str(ROOT / "bench/lua"),
    )
    out = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{connections}",
            f"-d{DURATION}",
            "-s",
            str(ROOT / "bench/lua" / script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    r = json.loads(line[len("RESULT ") :])
    seconds = r["duration_us"] / 1e6
    r["rate"] = r["requests"] / seconds
    r["p50_ms"] = r["p50_us"] / 1000
    r["p99_ms"] = r["p99_us"] / 1000
    return r


# --- propagation ----------------------------------------------------------------------------------


async def propagation(url: str, prop_file: Path, api_token: str) -> dict:
    import httpx

    nodes = [line.split(" ", 2) for line in prop_file.read_text().splitlines()]
    state = [
        {"etag": etag, "group": group, "revision_seen_at": None, "post_change_200s": 0}
        for _, etag, group in nodes
    ]
    change_at: list[float] = []
    stop = asyncio.Event()
    counts = {"200": 0, "304": 0, "other": 0}
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def node_loop(i: int, cred: str) -> None:
            import random

            await asyncio.sleep(random.uniform(0, PROP_INTERVAL))
            while not stop.is_set():
                st = state[i]
                try:
                    r = await client.get(
                        "/api/node/v1/desired-state",
                        headers={"Authorization": f"Bearer {cred}", "If-None-Match": st["etag"]},
                    )
                except httpx.HTTPError:
                    counts["other"] += 1
                    await asyncio.sleep(1)
                    continue
                now = time.monotonic()
                if r.status_code == 200:
                    counts["200"] += 1
                    st["etag"] = r.headers["ETag"]
                    if change_at and now >= change_at[0]:
                        st["post_change_200s"] += 1
                        if st["revision_seen_at"] is None:
                            st["revision_seen_at"] = now
                elif r.status_code == 304:
                    counts["304"] += 1
                else:
                    counts["other"] += 1
                await asyncio.sleep(float(r.headers.get("X-Poll-Interval", PROP_INTERVAL)))

        tasks = [asyncio.create_task(node_loop(i, cred)) for i, (cred, _, _) in enumerate(nodes)]
        await asyncio.sleep(PROP_INTERVAL * 1.5)  # everyone has polled at least once
        before = dict(counts)
        change_at.append(time.monotonic())
        r = await client.put(
            "/api/v1/fleets/prop/layers/group-a",
            headers={"Authorization": f"Bearer {api_token}"},
            json={
                "scope": "label",
                "selector": {"group": "a"},
                "sections": {"routing": {"threshold": 0.8}},
            },
        )
        assert r.status_code == 200, r.text
        await asyncio.sleep(PROP_INTERVAL * 2)
        stop.set()
        await asyncio.gather(*tasks)

    affected = [s for s in state if s["group"] == "a"]
    delays = sorted(
        (s["revision_seen_at"] - change_at[0]) / PROP_INTERVAL
        for s in affected
        if s["revision_seen_at"]
    )
    reached = len(delays)
    p99 = delays[int(0.99 * (len(delays) - 1))] if delays else float("inf")
    within = sum(1 for d in delays if d <= 1.5)
    unaffected_200 = sum(s["post_change_200s"] for s in state if s["group"] == "b")
    post = {k: counts[k] - before[k] for k in counts}
    return {
        "nodes": len(nodes),
        "affected": len(affected),
        "interval_s": PROP_INTERVAL,
        "reached": reached,
        "reached_within_1_5_intervals": within,
        "share_within_1_5_intervals": within / len(affected),
        "p99_delay_intervals": p99,
        "max_delay_intervals": delays[-1] if delays else None,
        "unaffected_nodes_200_after_change": unaffected_200,
        "post_change_responses": post,
        "layer_nodes_changed": r.json()["nodes_changed"],
    }


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian package 'wrk'); make bench installs it")
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / "tmp"
    work.mkdir(exist_ok=True)
    nodes_file, prop_file = work / "nodes.txt", work / "prop.txt"
    db_url = fresh_database()
    log(f"seeding {NODES} + {PROP_NODES} nodes on PostgreSQL ...")
    t = time.time()
    seed(db_url, nodes_file, prop_file)
    log(f"  seeded in {time.time() - t:.1f}s")
    env = server_env(db_url)

    runs = {}
    only = os.environ.get("BENCH_SERVERS", "gunicorn sync" if SMOKE else "")
    for name in [n for n in SERVERS if not only or any(o in n for o in only.split(","))]:
        log(f"== {name}")
        settle(db_url)
        server = Server(name, env)
        try:
            wrk(server.url, "hello.lua", nodes_file, connections=8)  # warm-up
            hello = wrk(server.url, "hello.lua", nodes_file)
            log(f"  hello : {hello['rate']:8.0f}/s  p99 {hello['p99_ms']:.1f} ms")
            wrk(server.url, "poll.lua", nodes_file, connections=8)  # warm-up
            light = wrk(server.url, "poll.lua", nodes_file, connections=4)
            log(
                f"  poll, 4 connections: {light['rate']:8.0f}/s  p50 {light['p50_ms']:.1f} ms  p99 "
                f"{light['p99_ms']:.1f} ms"
            )
            poll = wrk(server.url, "poll.lua", nodes_file)
            log(
                f"  poll  : {poll['rate']:8.0f}/s  p99 {poll['p99_ms']:.1f} ms  statuses "
                f"{poll['statuses']}"
            )
            ingest = wrk(server.url, "ingest.lua", nodes_file, connections=16)
            ingest["samples_per_s"] = ingest["rate"] * 50
            log(
                f"  ingest: {ingest['samples_per_s']:8.0f} samples/s  p99 {ingest['p99_ms']:.1f} "
                f"ms/batch  statuses {ingest['statuses']}"
            )
        finally:
            server.stop()
        runs[name] = {
            "poll_light": light,
            "hello": hello,
            "poll": poll,
            "ingest": ingest,
            "poll_to_hello": poll["rate"] / hello["rate"],
        }

    best = max(runs, key=lambda n: runs[n]["poll"]["rate"])
    log(f"== propagation with {PROP_NODES} simulated nodes (async httpx) on {best}")
    server = Server(best, env)
    try:
        prop = asyncio.run(propagation(server.url, prop_file, (work / "api_token").read_text()))
    finally:
        server.stop()
    log(
        f"  {prop['share_within_1_5_intervals']:.1%} of affected nodes had the change within 1.5 "
        "intervals; "
        f"p99 {prop['p99_delay_intervals']:.2f} intervals; unaffected nodes' 200s after the "
        "change: "
        f"{prop['unaffected_nodes_200_after_change']}"
    )

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "nodes": NODES,
        "duration": DURATION,
        "connections": CONNECTIONS,
        "servers": runs,
        "best_poll_server": best,
        "propagation": prop,
    }
    (RESULTS / "node_api.json").write_text(json.dumps(result, indent=2))
    write_markdown(result)
    shutil.rmtree(work, ignore_errors=True)
    log(f"results in {RESULTS / 'node_api.md'}")


def write_markdown(r: dict) -> None:
    lines = [
        "# Node API benchmark",
        "",
        f"{r['when']}, {r['machine']}; PostgreSQL on loopback; wrk ({WRK_THREADS} threads, "
        f"{r['connections']} connections, {r['duration']} per figure) on the same machine, so "
        "server, "
        f"database and load generator share the cores; {r['nodes']} enrolled nodes.",
        "",
        "| server | hello /s | polls (304) /s | polls / hello | poll p99 ms | poll p99 ms at 4 "
        "conns (rate) "
        "| ingest samples/s | ingest p99 ms/batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in r["servers"].items():
        lines.append(
            f"| {name} | {s['hello']['rate']:.0f} | {s['poll']['rate']:.0f} | "
            f"{s['poll_to_hello']:.2f} "
            f"| {s['poll']['p99_ms']:.1f} | {s['poll_light']['p99_ms']:.1f} "
            f"({s['poll_light']['rate']:.0f}/s) "
            f"| {s['ingest']['samples_per_s']:.0f} | {s['ingest']['p99_ms']:.1f} |"
        )
    p = r["propagation"]
    lines += [
        "",
        f"Propagation ({p['nodes']} simulated nodes, async httpx, {p['interval_s']} s interval "
        "with server "
        f"jitter, on {r['best_poll_server']}): an admin changed a label layer through the admin "
        "API, "
        f"affecting {p['affected']} nodes; {p['share_within_1_5_intervals']:.1%} had the new "
        "revision "
        f"within 1.5 intervals (p99 {p['p99_delay_intervals']:.2f}, max "
        f"{p['max_delay_intervals']:.2f} "
        f"intervals); the unaffected nodes got {p['unaffected_nodes_200_after_change']} full "
        "documents "
        f"after the change (they kept getting 304).",
    ]
    (RESULTS / "node_api.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
