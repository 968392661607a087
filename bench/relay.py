#!/usr/bin/env python
"""Cloud relay benchmark: what the control plane's relay adds to a cloud call, in one run.

The upstream "cloud" is a real OpenAI-compatible server on loopback (llama_cpp.server on a
generated model); the relay runs as production runs it, under uvicorn (ASGI), on PostgreSQL.

1. Non-streaming: requests alternate between the upstream directly and the relay (policy, budget
   query, forward, usage and audit record), same body; the added latency is the paired difference.
   Target: p50 +1 ms, p99 +5 ms.
2. Streaming: time to the first content chunk and chunks/s after it, direct vs relayed. Target:
   first token within 2 ms of direct at p50, rate unchanged.
3. 100 concurrent calls to a slow upstream (a proxy that answers 2 s late) through the relay, while
   a node polls the same server: poll p99 during them against poll p99 before.

Writes bench/results/relay.json and relay.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, free_port, log, pct, size, stop_group, wait_until_up  # noqa: E402
from node_api import fresh_database, server_env  # noqa: E402

PAIRS = size("BENCH_RELAY_PAIRS", 300, 10)
STREAMS = size("BENCH_RELAY_STREAMS", 40, 3)
CONCURRENT = size("BENCH_RELAY_CONCURRENT", 100, 10)
POLLS = size("BENCH_RELAY_POLLS", 400, 20)
SLOW_S = 2.0


def seed(db_url: str, upstream: str, slow: str) -> tuple[str, str]:
    """A fleet with two endpoints (direct and slow) and one node; returns (credential, etag)."""
    os.environ.update(server_env(db_url))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from controlplane import tokens
    from controlplane.nodes import desired_state, services
    from controlplane.nodes.models import Fleet, Node, NodeCredential

    admin = get_user_model().objects.create_superuser("bench-admin", password=None)
    fleet = Fleet.objects.create(slug="relay", name="relay")
    services.do_set_compliance(
        fleet,
        cloud_endpoints=[
            {
                "name": "up",
                "region": "eu-west-1",
                "base_url": upstream,
                "model": "tiny",
                "price_in_per_1k": 0.5,
                "price_out_per_1k": 1.5,
            },
            {"name": "slow", "region": "eu-west-1", "base_url": slow, "model": "tiny"},
        ],
        actor=admin,
    )
    node = Node.objects.create(fleet=fleet, name="relay-node")
    desired_state.refresh(fleet)
    node.refresh_from_db()
    plaintext, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
    NodeCredential.objects.create(node=node, prefix=prefix, token_hash=token_hash)
    from django.db import connections

    connections.close_all()
    return plaintext, node.etag


class DelayProxy:
    """A TCP proxy on loopback whose answers start `delay` seconds late (a slow cloud)."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target, self.delay = target, delay
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(timeout=10)

    async def _serve(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src, dst, delay):
            try:
                first = True
                while data := await src.read(65536):
                    if first and delay:
                        await asyncio.sleep(delay)
                    first = False
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, 0), pipe(up_reader, writer, self.delay))


def upstream_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    from controlplane.registry.quantize import quantize
    from controlplane.registry.tinymodel import serve_openai, write_tiny_llama

    return serve_openai(quantize(write_tiny_llama(tmp / "f32.gguf"), tmp / "q8.gguf", "Q8_0"))


BODY = {
    "messages": [{"role": "user", "content": "Count to five."}],
    "max_tokens": 8,
    "temperature": 0,
}


def nonstreaming(http, upstream: str, relay: str, credential: str) -> dict:
    auth = {"Authorization": f"Bearer {credential}"}
    refused, health = [], []
    for i in range(PAIRS + 5):
        # The floors, on the same server: Django's full middleware stack with nothing behind it,
        # and the relay refusing an unknown credential (its handler, one lookup, and the record
        # of the failed guess).
        t0 = time.perf_counter()
        http.get(relay.replace("/api/node/v1/chat/completions", "/healthz"))
        t1 = time.perf_counter()
        r0 = http.post(relay, json=BODY, headers={"Authorization": "Bearer efn_x"})
        t2 = time.perf_counter()
        assert r0.status_code == 401, r0.text
        if i >= 5:
            health.append((t1 - t0) * 1000)
            refused.append((t2 - t1) * 1000)
    direct, relayed, added = [], [], []
    for i in range(PAIRS + 5):
        t0 = time.perf_counter()
        r1 = http.post(f"{upstream}/chat/completions", json={**BODY, "model": "tiny"})
        t1 = time.perf_counter()
        r2 = http.post(relay, json={**BODY, "model": "cloud:up"}, headers=auth)
        t2 = time.perf_counter()
        assert r1.status_code == 200 and r2.status_code == 200, (r1.text, r2.text)
        if i >= 5:  # warm-up
            direct.append((t1 - t0) * 1000)
            relayed.append((t2 - t1) * 1000)
            added.append(relayed[-1] - direct[-1])
    return {
        "pairs": PAIRS,
        "direct_p50_ms": round(pct(direct, 50), 3),
        "relayed_p50_ms": round(pct(relayed, 50), 3),
        "added_p50_ms": round(pct(added, 50), 3),
        "added_p99_ms": round(pct(added, 99), 3),
        "relayed_over_direct_p50": round(pct(relayed, 50) / pct(direct, 50), 3),
        "healthz_p50_ms": round(pct(health, 50), 3),
        "refused_p50_ms": round(pct(refused, 50), 3),
    }


def one_stream(http, url: str, body: dict, headers: dict) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first, chunks = None, 0
    with http.stream("POST", url, json={**body, "stream": True}, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                chunks += 1
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    first = first or end
    rate = (chunks - 1) / (end - first) if chunks > 1 and end > first else 0.0
    return (first - t0) * 1000, rate, chunks


def streaming(http, upstream: str, relay: str, credential: str) -> dict:
    body = {**BODY, "max_tokens": 64}
    auth = {"Authorization": f"Bearer {credential}"}
    d_first, r_first, d_rate, r_rate, added = [], [], [], [], []
    for _ in range(STREAMS):
        f1, rate1, _ = one_stream(
            http, f"{upstream}/chat/completions", {**body, "model": "tiny"}, {}
        )
        f2, rate2, _ = one_stream(http, relay, {**body, "model": "cloud:up"}, auth)
        d_first.append(f1)
        r_first.append(f2)
        added.append(f2 - f1)
        d_rate.append(rate1)
        r_rate.append(rate2)
    return {
        "streams": STREAMS,
        "direct_first_token_p50_ms": round(pct(d_first, 50), 3),
        "relayed_first_token_p50_ms": round(pct(r_first, 50), 3),
        "first_token_added_p50_ms": round(pct(added, 50), 3),
        "direct_chunks_per_s_p50": round(pct(d_rate, 50), 1),
        "relayed_chunks_per_s_p50": round(pct(r_rate, 50), 1),
        "relayed_over_direct_rate": round(pct(r_rate, 50) / max(pct(d_rate, 50), 1e-9), 3),
    }


def polls(http, base: str, credential: str, etag: str, n: int) -> list[float]:
    out = []
    headers = {"Authorization": f"Bearer {credential}", "If-None-Match": etag}
    for _ in range(n):
        t0 = time.perf_counter()
        r = http.get(f"{base}/api/node/v1/desired-state", headers=headers)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code in (200, 304), r.text
    return out


def concurrent_slow(base: str, relay: str, credential: str, etag: str) -> dict:
    import httpx

    with httpx.Client(timeout=30) as http:
        before = polls(http, base, credential, etag, POLLS)
    statuses: list[int] = []

    async def flood():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as c:
            auth = {"Authorization": f"Bearer {credential}"}

            async def one():
                r = await c.post(relay, json={**BODY, "model": "cloud:slow"}, headers=auth)
                statuses.append(r.status_code)

            await asyncio.gather(*(one() for _ in range(CONCURRENT)))

    started = time.perf_counter()
    t = threading.Thread(target=lambda: asyncio.run(flood()))
    t.start()
    time.sleep(0.3)  # the calls are in flight, waiting on the slow upstream
    during: list[float] = []
    with httpx.Client(timeout=30) as http:
        while t.is_alive() and len(during) < POLLS:
            during += polls(http, base, credential, etag, 10)
    t.join()
    took = time.perf_counter() - started
    ok = sum(1 for s in statuses if s == 200)
    return {
        "concurrent_calls": CONCURRENT,
        "upstream_delay_s": SLOW_S,
        "all_calls_s": round(took, 2),
        "calls_ok": ok,
        "poll_p50_before_ms": round(pct(before, 50), 3),
        "poll_p99_before_ms": round(pct(before, 99), 3),
        "poll_p50_during_ms": round(pct(during, 50), 3),
        "poll_p99_during_ms": round(pct(during, 99), 3),
        "polls_during": len(during),
        "poll_p99_during_over_before": round(pct(during, 99) / pct(before, 99), 2),
    }


def main() -> None:
    import httpx

    db_url = fresh_database()
    with tempfile.TemporaryDirectory() as tmp:
        upstream_proc, upstream = upstream_server(Path(tmp))
        host, port = upstream.split("//")[1].split("/")[0].split(":")
        proxy = DelayProxy((host, int(port)), SLOW_S)
        slow = f"http://127.0.0.1:{proxy.port}/v1"
        credential, etag = seed(db_url, upstream, slow)
        env = {**server_env(db_url), "EDGEFLEET_RELAY_RETRIES": "0"}
        port_cp = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "edgefleet.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port_cp),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port_cp}"
        try:
            wait_until_up(f"{base}/healthz", server, "uvicorn")
            relay = f"{base}/api/node/v1/chat/completions"
            with httpx.Client(timeout=60) as http:
                results = {"nonstreaming": nonstreaming(http, upstream, relay, credential)}
                log(f"non-streaming: {results['nonstreaming']}")
                results["streaming"] = streaming(http, upstream, relay, credential)
                log(f"streaming: {results['streaming']}")
            results["concurrent_slow"] = concurrent_slow(base, relay, credential, etag)
            log(f"100 slow calls: {results['concurrent_slow']}")
        finally:
            stop_group(server)
            stop_group(upstream_proc)
    out = RESULTS / "relay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    write_markdown(results, RESULTS / "relay.md")
    log(f"Wrote {out}")


def write_markdown(r: dict, path: Path) -> None:
    n, s, c = r["nonstreaming"], r["streaming"], r["concurrent_slow"]
    lines = [
        "# Cloud relay benchmark",
        "",
        "Upstream: llama_cpp.server on loopback (a generated model); relay: uvicorn (ASGI), "
        "PostgreSQL; one run, requests alternating direct and relayed.",
        "",
        "| figure | direct | relayed | added | target |",
        "|---|---:|---:|---:|---:|",
        f"| non-streaming p50 | {n['direct_p50_ms']} ms | {n['relayed_p50_ms']} ms | "
        f"{n['added_p50_ms']} ms ({n['relayed_over_direct_p50']}x) | +1 ms |",
        f"| non-streaming p99 of the added time | | | {n['added_p99_ms']} ms | +5 ms |",
        f"| first streamed token p50 | {s['direct_first_token_p50_ms']} ms | "
        f"{s['relayed_first_token_p50_ms']} ms | {s['first_token_added_p50_ms']} ms | +2 ms |",
        f"| streamed chunks/s p50 | {s['direct_chunks_per_s_p50']} | "
        f"{s['relayed_chunks_per_s_p50']} | {s['relayed_over_direct_rate']}x | 1.0x |",
        "",
        f"Floors on the same server, p50: `/healthz` through Django's full middleware stack "
        f"{n.get('healthz_p50_ms')} ms; the relay refusing an unknown credential (its own "
        f"handler, one lookup and the record of the failed guess, no upstream) "
        f"{n.get('refused_p50_ms')} ms.",
        "",
        f"{c['concurrent_calls']} concurrent relayed calls to an upstream "
        f"{c['upstream_delay_s']} s late ({c['calls_ok']} answered, all within "
        f"{c['all_calls_s']} s): node poll p99 "
        f"{c['poll_p99_before_ms']} ms before, {c['poll_p99_during_ms']} ms during "
        f"({c['poll_p99_during_over_before']}x; p50 {c['poll_p50_before_ms']} -> "
        f"{c['poll_p50_during_ms']} ms, {c['polls_during']} polls).",
    ]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
