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

import uvloop

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
        DJANGO_SETTINGS_MODULE="edgefleet.settings",
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


def setup_django(db_url: str) -> None:
    os.environ.update(server_env(db_url))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_fleet(slug: str, count: int, interval: int | None, path: Path) -> None:
    """Create (or grow to `count` nodes) a fleet, with credentials hashed as in production; append
    "credential etag group" lines for the new nodes to `path`."""
    from controlplane import tokens
    from controlplane.nodes import desired_state
    from controlplane.nodes.models import Fleet, Node, NodeCredential

    fleet, _ = Fleet.objects.get_or_create(
        slug=slug, defaults={"name": slug, "poll_interval_s": interval}
    )
    have = fleet.nodes.count()
    new = [
        Node(fleet=fleet, name=f"{slug}-{i:06d}", labels={"group": "a" if i % 2 == 0 else "b"})
        for i in range(have, count)
    ]
    Node.objects.bulk_create(new, batch_size=2000)
    desired_state.refresh(fleet, Node.objects.filter(pk__in=[n.pk for n in new]))
    creds, lines = [], []
    for node in Node.objects.filter(pk__in=[n.pk for n in new]).order_by("name"):
        plaintext, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
        creds.append(NodeCredential(node=node, prefix=prefix, token_hash=token_hash))
        lines.append(f"{plaintext} {node.etag} {node.labels['group']} {node.pk}")
    NodeCredential.objects.bulk_create(creds, batch_size=2000)
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


def seed(db_url: str, nodes_file: Path, prop_file: Path) -> None:
    """Create a fleet of NODES nodes and a propagation fleet through the ORM (fast bulk inserts)."""
    setup_django(db_url)
    from django.contrib.auth import get_user_model

    from controlplane.accounts.services import do_create_personal_token

    admin = get_user_model().objects.create_superuser("bench-admin", password=None)
    _, api_token = do_create_personal_token(admin, name="bench")
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
        "python:edgefleet.gunicorn_conf",
        "edgefleet.wsgi:application",
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
    "gunicorn sync (WSGI, 8 workers)": gunicorn(8, "sync"),
    "gunicorn gthread (WSGI, 2 workers x 8 threads)": gunicorn(2, "gthread", 8),
    "gunicorn gthread (WSGI, 4 workers x 2 threads)": gunicorn(4, "gthread", 2),
    "uvicorn (ASGI, 2 workers)": lambda port: [
        str(BIN / "uvicorn"),
        "edgefleet.asgi:application",
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

    nodes = [line.split()[:3] for line in prop_file.read_text().splitlines()]
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


# The production setup (README): gunicorn with this worker class for everything but watches,
# websockets and the relay, which go to the ASGI server.
PRODUCTION_WSGI = "gunicorn sync (WSGI, 4 workers)"
CURVE = [100, 300] if SMOKE else [1_000, 10_000, 100_000]


def httpx_warm(url: str) -> None:
    import httpx

    for _ in range(4):
        httpx.get(url + "/healthz", timeout=30)


# --- watches --------------------------------------------------------------------------------------


WATCHERS = size("BENCH_WATCHERS", 10000, 60)
WATCH_CHANGES = size("BENCH_WATCH_CHANGES", 6, 2)
WATCH_PROBES = size("BENCH_WATCH_PROBES", 50, 4)  # approvals decided, credentials revoked
WATCH_WAIT = 60  # seconds each watch asks for: none ends on its own during a measurement


ANSWERED: dict[int, int] = {}  # answers by status, for cheap "are we there yet" checks


class Watcher:
    """One node holding watches over its own connection (a minimal HTTP/1.1 client: 10,000 of
    them fit in this process, which httpx's would not)."""

    def __init__(self, cred: str, etag: str, group: str, node_id: str):
        self.cred, self.etag, self.group, self.node_id = cred, etag, group, node_id
        self.answers: list[tuple[float, int, str]] = []  # (when, status, X-Watch-Event)
        self.held = False

    async def run(self, host: str, port: int, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not stop.is_set():
                writer.write(
                    (
                        f"GET /api/node/v1/desired-state?wait={WATCH_WAIT} HTTP/1.1\r\n"
                        f"Host: {host}\r\nAuthorization: Bearer {self.cred}\r\n"
                        f"If-None-Match: {self.etag}\r\n\r\n"
                    ).encode()
                )
                self.held = True
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                self.held = False
                status = int(head[0].split()[1])
                headers = dict(
                    (k.lower(), v.strip()) for k, _, v in (h.partition(":") for h in head[1:] if h)
                )
                if int(headers.get("content-length", 0)):
                    await reader.readexactly(int(headers["content-length"]))
                self.answers.append((time.monotonic(), status, headers.get("x-watch-event", "")))
                ANSWERED[status] = ANSWERED.get(status, 0) + 1
                if status == 200:
                    self.etag = headers["etag"]
                elif status != 304:
                    return
        finally:
            writer.close()


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def delays_ms(values: list[float]) -> dict:
    from common import pct

    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": pct(values, 50),
        "p90_ms": pct(values, 90),
        "p99_ms": pct(values, 99),
        "max_ms": max(values),
        "within_1s": sum(1 for v in values if v <= 1000) / len(values),
    }


async def watches(asgi_url: str, admin_url: str, watch_file: Path, api_token: str, pids) -> dict:
    import httpx

    host, port = asgi_url.rsplit("//", 1)[1].split(":")
    nodes = [Watcher(*line.split()) for line in watch_file.read_text().splitlines()]
    admin = httpx.Client(
        base_url=admin_url, headers={"Authorization": f"Bearer {api_token}"}, timeout=120
    )
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []

    async def hold(group: list[Watcher]) -> None:
        for i in range(0, len(group), 500):  # in batches, as a fleet coming online would
            tasks.extend(
                asyncio.create_task(w.run(host, int(port), stop)) for w in group[i : i + 500]
            )
            await asyncio.sleep(0.25)
        deadline = time.monotonic() + 120
        while sum(w.held for w in nodes) < len(tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # every watch checked in and held on the server

    # The first fifth warms the servers up (threads, pools, the hub): memory is counted after.
    first = max(1, len(nodes) // 5)
    await hold(nodes[:first])
    rss_before = rss_kib(pids)
    await hold(nodes[first:])
    held = sum(w.held for w in nodes)
    rss_held = rss_kib(pids)
    log(f"  {held} of {len(nodes)} watches held; server RSS {rss_before} -> {rss_held} KiB")

    async def until(predicate, seconds: float = 30) -> None:
        end = time.monotonic() + seconds
        while not predicate() and time.monotonic() < end:
            await asyncio.sleep(0.01)

    changes = []
    for i in range(WATCH_CHANGES):
        group = "ab"[i % 2]
        affected = [w for w in nodes if w.group == group]
        others = [w for w in nodes if w.group != group]
        seen = {id(w): len(w.answers) for w in nodes}
        sent = time.monotonic()
        r = await asyncio.to_thread(
            admin.put,
            f"/api/v1/fleets/watch/layers/group-{group}",
            json={
                "scope": "label",
                "selector": {"group": group},
                "sections": {"routing": {"threshold": round(0.5 + i / 100, 2)}},
            },
        )
        committed = time.monotonic()
        assert r.status_code == 200, r.text

        def got_200(w, seen=seen):
            return any(st == 200 for _, st, _ in w.answers[seen[id(w)] :])

        before_200, count = ANSWERED.get(200, 0), len(affected)
        await until(lambda n=count, b=before_200: ANSWERED.get(200, 0) - b >= n)
        arrivals = [
            next(t for t, st, _ in w.answers[seen[id(w)] :] if st == 200)
            for w in affected
            if got_200(w)
        ]
        changes.append(
            {
                "affected": len(affected),
                "reached": len(arrivals),
                "request_s": committed - sent,
                "after_commit": [max(0.0, (t - committed) * 1000) for t in arrivals],
                "after_request": [(t - sent) * 1000 for t in arrivals],
                "unaffected_200": sum(got_200(w) for w in others),
            }
        )
        log(
            f"  change {i + 1}: {len(arrivals)}/{len(affected)} nodes woke; admin request "
            f"{committed - sent:.2f} s; after commit p99 "
            f"{delays_ms(changes[-1]['after_commit']).get('p99_ms', 0):.0f} ms"
        )
        await asyncio.sleep(1)

    from controlplane.nodes.models import ToolApproval

    approvals = await asyncio.to_thread(
        lambda: list(ToolApproval.objects.filter(fleet__slug="watch").values_list("pk", "node_id"))
    )
    by_node = {w.node_id: w for w in nodes}
    approval_ms = []
    for pk, node_id in approvals:
        w = by_node[str(node_id)]
        seen_n = len(w.answers)
        r = await asyncio.to_thread(admin.post, f"/api/v1/approvals/{pk}/approve", json={})
        done = time.monotonic()
        assert r.status_code == 200, r.text
        await until(lambda w=w, n=seen_n: any(e == "approval" for _, _, e in w.answers[n:]), 10)
        hit = [t for t, _, e in w.answers[seen_n:] if e == "approval"]
        if hit:
            approval_ms.append(max(0.0, (hit[0] - done) * 1000))

    revoked_ms = []
    for w in [w for w in nodes if w.node_id not in {str(n) for _, n in approvals}][:WATCH_PROBES]:
        seen_n = len(w.answers)
        r = await asyncio.to_thread(admin.post, f"/api/v1/nodes/{w.node_id}/revoke", json={})
        done = time.monotonic()
        assert r.status_code == 200, r.text
        await until(lambda w=w, n=seen_n: any(st == 401 for _, st, _ in w.answers[n:]), 10)
        hit = [t for t, st, _ in w.answers[seen_n:] if st == 401]
        if hit:
            revoked_ms.append(max(0.0, (hit[0] - done) * 1000))

    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    admin.close()
    after_commit = [d for c in changes for d in c["after_commit"]]
    return {
        "watchers": len(nodes),
        "held": held,
        "rss_before_kib": rss_before,
        "rss_held_kib": rss_held,
        "kib_per_watch": (rss_held - rss_before) / max(1, held - first),
        "changes": [
            {k: v for k, v in c.items() if k not in ("after_commit", "after_request")}
            | {"after_commit": delays_ms(c["after_commit"])}
            | {"after_request": delays_ms(c["after_request"])}
            for c in changes
        ],
        "change_after_commit": delays_ms(after_commit),
        "change_after_request": delays_ms([d for c in changes for d in c["after_request"]]),
        "approvals": delays_ms(approval_ms),
        "revocations": delays_ms(revoked_ms),
    }


def seed_watch_fleet(watch_file: Path) -> None:
    from controlplane.approvals import services as approvals_services
    from controlplane.nodes.models import Node
    from wire import schemas

    make_fleet("watch", WATCHERS, 30, watch_file)
    for node in Node.objects.filter(fleet__slug="watch", labels__group="b")[:WATCH_PROBES]:
        approvals_services.do_request_approval(
            node, schemas.ApprovalIn(tool="shell", agent="ops", arguments={}, timeout_s=3600)
        )


def current_etags(path: Path) -> None:
    """Rewrite the nodes file with each node's current ETag (after a change to all of them)."""
    from controlplane.nodes.models import Node

    lines = [line.split() for line in path.read_text().splitlines()]
    etags = {str(n.pk): n.etag for n in Node.objects.filter(fleet__slug="curve")}
    path.write_text("".join(f"{c} {etags[i]} {g} {i}\n" for c, _, g, i in lines))


def refresh_cost(fleet_slug: str) -> dict:
    """A fleet-wide change (a fleet-scope layer) through its service: every node's document
    composed, the changed ones written, in one transaction."""
    from django.contrib.auth import get_user_model

    from controlplane.nodes import layers
    from controlplane.nodes.models import Fleet

    fleet = Fleet.objects.get(slug=fleet_slug)
    admin = get_user_model().objects.get(username="bench-admin")
    t = time.perf_counter()
    _, changed = layers.do_put_layer(
        fleet,
        actor=admin,
        name="fleet-wide",
        scope="fleet",
        sections={"routing": {"threshold": round(time.time() % 1, 3)}},
    )
    return {"nodes": fleet.nodes.count(), "changed": changed, "seconds": time.perf_counter() - t}


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian package 'wrk'); make bench installs it")
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / "tmp"
    shutil.rmtree(work, ignore_errors=True)  # what a run that did not finish left
    work.mkdir()
    nodes_file, prop_file = work / "nodes.txt", work / "prop.txt"
    db_url = fresh_database()
    log(f"seeding {NODES} + {PROP_NODES} nodes on PostgreSQL ...")
    t = time.time()
    seed(db_url, nodes_file, prop_file)
    log(f"  seeded in {time.time() - t:.1f}s")
    env = server_env(db_url)

    runs = {}
    only = os.environ.get("BENCH_SERVERS", "gunicorn sync" if SMOKE else "")
    parts = os.environ.get("BENCH_PARTS", "servers,curve,watch").split(",")
    if "servers" not in parts:
        only = "none"
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

    best, prop = "", {}
    if runs:
        best = max(runs, key=lambda n: runs[n]["poll"]["rate"])
        log(f"== propagation with {PROP_NODES} simulated nodes (async httpx) on {best}")
        server = Server(best, env)
        try:
            prop = asyncio.run(propagation(server.url, prop_file, (work / "api_token").read_text()))
        finally:
            server.stop()
        log(
            f"  {prop['share_within_1_5_intervals']:.1%} of affected nodes had the change within "
            "1.5 intervals; "
            f"p99 {prop['p99_delay_intervals']:.2f} intervals; unaffected nodes' 200s after the "
            "change: "
            f"{prop['unaffected_nodes_200_after_change']}"
        )

    curve_server = os.environ.get("BENCH_CURVE_SERVER", PRODUCTION_WSGI)
    curve: list[dict] = []
    refreshes: list[dict] = []
    if "curve" in parts:
        log(f"== polls by enrolled nodes, on {curve_server}")
        curve_file = work / "curve.txt"
        for count in CURVE:
            make_fleet("curve", count, None, curve_file)
            from django.db import connections

            connections.close_all()
            if count >= min(10_000, CURVE[-1]):
                refreshes.append(refresh_cost("curve"))
                log(f"  fleet-wide change of {count} nodes: {refreshes[-1]['seconds']:.2f} s")
                current_etags(curve_file)
            settle(db_url)
            server = Server(curve_server, env)
            try:
                wrk(server.url, "poll.lua", curve_file, connections=8)  # warm-up
                point = wrk(server.url, "poll.lua", curve_file)
            finally:
                server.stop()
            point["nodes"] = count
            curve.append(point)
            log(f"  {count:7d} nodes: {point['rate']:8.0f} polls/s  p99 {point['p99_ms']:.1f} ms")

    watch: dict = {}
    if "watch" in parts:
        log(f"== {WATCHERS} watching nodes on uvicorn (ASGI, 2 workers), changes through gunicorn")
        watch_file = work / "watch.txt"
        seed_watch_fleet(watch_file)
        from django.db import connections

        connections.close_all()
        settle(db_url)
        asgi = Server("uvicorn (ASGI, 2 workers)", env)
        admin = Server("gunicorn sync (WSGI, 4 workers)", env)
        try:
            httpx_warm(asgi.url)
            watch = uvloop.run(
                watches(
                    asgi.url,
                    admin.url,
                    watch_file,
                    (work / "api_token").read_text(),
                    children(asgi.proc.pid),
                )
            )
        finally:
            asgi.stop()
            admin.stop()
        log(
            f"  {watch['kib_per_watch']:.1f} KiB per held watch; change p99 after commit "
            f"{watch['change_after_commit'].get('p99_ms', 0):.0f} ms "
            f"({watch['change_after_commit'].get('within_1s', 0):.1%} within 1 s); approvals p99 "
            f"{watch['approvals'].get('p99_ms', 0):.0f} ms; revocations p99 "
            f"{watch['revocations'].get('p99_ms', 0):.0f} ms"
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
        "curve_server": curve_server,
        "poll_curve": curve,
        "refresh_cost": refreshes,
        "watch": watch,
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
    lines += (
        []
        if not p
        else [
            "",
            f"Propagation ({p['nodes']} simulated nodes, async httpx, {p['interval_s']} s interval "
            "with server "
            f"jitter, on {r['best_poll_server']}): an admin changed a label layer through the "
            "admin API, "
            f"affecting {p['affected']} nodes; {p['share_within_1_5_intervals']:.1%} had the new "
            "revision "
            f"within 1.5 intervals (p99 {p['p99_delay_intervals']:.2f}, max "
            f"{p['max_delay_intervals']:.2f} "
            f"intervals); the unaffected nodes got {p['unaffected_nodes_200_after_change']} full "
            "documents "
            f"after the change (they kept getting 304).",
        ]
    )
    lines += [
        "",
        f"## Polls by enrolled nodes ({r['curve_server']})",
        "",
        "wrk cycles through every enrolled node's credential and current ETag.",
        "",
        "| enrolled nodes | polls (304) /s | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|",
        *(
            f"| {c['nodes']:,} | {c['rate']:.0f} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} |"
            for c in r["poll_curve"]
        ),
        "",
        "## A fleet-wide change",
        "",
        "A fleet-scope layer put through its service (`do_put_layer`): every node's document "
        "composed, the changed ones written, the audit record, one transaction.",
        "",
        "| nodes | changed | seconds | ms per node |",
        "|---:|---:|---:|---:|",
        *(
            f"| {c['nodes']:,} | {c['changed']:,} | {c['seconds']:.2f} | "
            f"{c['seconds'] / max(1, c['nodes']) * 1000:.3f} |"
            for c in r["refresh_cost"]
        ),
    ]
    w = r["watch"]

    def row(name: str, d: dict) -> str:
        if not d.get("count"):
            return f"| {name} | 0 | | | | | |"
        return (
            f"| {name} | {d['count']:,} | {d['p50_ms']:.0f} | {d['p90_ms']:.0f} | "
            f"{d['p99_ms']:.0f} | {d['max_ms']:.0f} | {d['within_1s']:.1%} |"
        )

    lines += (
        []
        if not w
        else [
            "",
            "## Watches",
            "",
            f"{w['watchers']:,} nodes each hold `GET desired-state?wait={WATCH_WAIT}` on uvicorn "
            f"(ASGI, 2 workers, Redis channel layer); {w['held']:,} were held at once. Server "
            f"memory (RSS of both workers) with the first fifth held "
            f"{w['rss_before_kib'] / 1024:.0f} MiB, "
            f"with all {w['rss_held_kib'] / 1024:.0f} MiB: **{w['kib_per_watch']:.1f} KiB per idle "
            "watch**. An admin then made "
            f"{len(w['changes'])} label-layer changes through the admin API (gunicorn), each "
            "affecting half the nodes; approvals were decided and credentials revoked one by one.",
            "",
            "Delays in ms, from the admin request's answer (the commit) to the node's answer:",
            "",
            "| what | count | p50 | p90 | p99 | max | within 1 s |",
            "|---|---:|---:|---:|---:|---:|---:|",
            row("change reaches an affected node", w["change_after_commit"]),
            row("(the same, from the admin request's start)", w["change_after_request"]),
            row("approval decision reaches the waiting node", w["approvals"]),
            row("revoked credential's watch ends (401)", w["revocations"]),
            "",
            "| change | affected | reached | admin request s | p99 ms after commit | "
            "unaffected nodes woken |",
            "|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {i + 1} | {c['affected']:,} | {c['reached']:,} | {c['request_s']:.2f} | "
                f"{c['after_commit'].get('p99_ms', 0):.0f} | {c['unaffected_200']} |"
                for i, c in enumerate(w["changes"])
            ),
        ]
    )
    (RESULTS / "node_api.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
