#!/usr/bin/env python
"""Edge runtime benchmark.

1. Tokens/s through the agent runtime (Runtime.ask -> agent -> backend, metrics into the outbox) vs
   calling llama-cpp-python directly on the same GGUF with the same messages, alternating, same run.
   The model is a generated llama (4 layers, 1024 wide, Q4_K_M) so that compute, not Python, sets
   the pace, as with real models. Temperature 0: both paths generate the same tokens.
   Time to first token through the local API (HTTP, streamed) vs llama-cpp-python's own stream;
   plain requests' latency while another request waits for a person's approval.
2. Permission check and tool dispatch (ToolGate.check / .call, outbox as audit sink): p50/p99.
3. Outbox: enqueue rate with synchronous=NORMAL (crash-safe; the default) and FULL (power-safe), and
   the drain rate of a 20,000-event backlog into the real control plane (gunicorn, PostgreSQL).

Writes bench/results/agent.json and agent.md.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, log, pct, size  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

ROUNDS = size("BENCH_ROUNDS", 11, 1)
TOKENS = size("BENCH_TOKENS", 256, 16)
BACKLOG = size("BENCH_BACKLOG", 20000, 200)
TTFT_ROUNDS = size("BENCH_TTFT_ROUNDS", 41, 3)
SWAP_ROUNDS = size("BENCH_SWAP_ROUNDS", 10, 2)
APPROVAL_ROUNDS = size("BENCH_APPROVAL_ROUNDS", 100, 5)


def setup(work: Path):
    """The bench model, a runtime serving it (agents `helper`, and `short` for time to first
    token) and llama-cpp-python loading the same file directly."""
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from llama_cpp import Llama

    from agents.runtime import Runtime, StateDir
    from controlplane.registry.quantize import quantize
    from controlplane.registry.tinymodel import write_tiny_llama
    from wire import manifest
    from wire.llamacpp import quiet_llama_logs

    quiet_llama_logs()
    f32 = write_tiny_llama(
        work / "bench-f32.gguf", n_embd=1024, n_ff=2816, n_layer=4, n_head=8, vocab_size=512
    )
    model = quantize(f32, work / "bench-Q4_K_M.gguf", "Q4_K_M")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    # Nodes load only models whose manifest the control plane signed: sign one as it does.
    key = BENCH_KEY
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    signed = manifest.build(name="bench", variant="Q4_K_M", sha256=digest, size=None, key_id="b")
    role = ROLE
    state = StateDir(work / "state").ensure()
    state.save_node(
        {
            "server": "http://127.0.0.1:9",
            "node_id": "bench",
            "credential": "efn_unused",
            "signing_key": public_pem,
        }
    )
    runtime = Runtime(state)
    runtime.applier.active = runtime.applier._build(
        {
            "node_id": "bench",
            "revision": 1,
            "poll_interval_s": 30,
            "model": {
                "name": "bench",
                "url": model.as_uri(),
                "sha256": digest,
                "n_ctx": 1024,
                "manifest": signed,
                "signature": manifest.sign(signed, key),
            },
            "agents": {
                "helper": {"role": role, "max_tokens": TOKENS, "temperature": 0, "default": True},
                "short": {"role": role, "max_tokens": 4, "temperature": 0},
            },
        }
    )
    return runtime, Llama(str(model), n_ctx=1024, verbose=False)


ROLE = "You are a helpful assistant."
BENCH_KEY = Ed25519PrivateKey.generate()  # signs the bench's model manifests, as the control plane


def bench_tokens(runtime, direct) -> dict:
    messages = [{"role": "user", "content": "Tell me about the edge."}]
    direct_msgs = [{"role": "system", "content": ROLE}, *messages]
    runtime_tps, direct_tps, ratios, tokens = [], [], [], []

    def via_runtime() -> tuple[int, float]:
        started = time.perf_counter()
        turn = runtime.ask(messages)
        return turn.usage.completion_tokens, time.perf_counter() - started

    def via_direct() -> tuple[int, float]:
        started = time.perf_counter()
        out = direct.create_chat_completion(messages=direct_msgs, max_tokens=TOKENS, temperature=0)
        return out["usage"]["completion_tokens"], time.perf_counter() - started

    for i in range(ROUNDS + 1):
        # Alternate which goes first, so drift in machine load does not favour one side.
        if i % 2:
            (n_d, d_s), (n_r, r_s) = via_direct(), via_runtime()
        else:
            (n_r, r_s), (n_d, d_s) = via_runtime(), via_direct()
        if i == 0:
            continue  # warm-up
        tokens.append((n_r, n_d))
        runtime_tps.append(n_r / r_s)
        direct_tps.append(n_d / d_s)
        ratios.append((n_r / r_s) / (n_d / d_s))
    r, d = statistics.median(runtime_tps), statistics.median(direct_tps)
    return {
        "model": "generated llama 4x1024, Q4_K_M",
        "rounds": ROUNDS,
        "tokens": tokens,
        "runtime_tokens_per_s": r,
        "direct_tokens_per_s": d,
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def bench_ttft(runtime, direct) -> dict:
    """Time to first token as a client of the node's local API sees it (HTTP, `stream: true`,
    through the runtime) against llama-cpp-python's own stream on the same file, alternating, a
    new question each round (so the prompt is evaluated, not cached) and the same on both sides."""
    import httpx
    from common import free_port

    from agents.server import LocalServer

    server = LocalServer(runtime, "127.0.0.1", free_port())
    server.start()
    via_api, via_direct = [], []

    def api(question: str) -> float:
        body = {
            "model": "short",
            "stream": True,
            "messages": [{"role": "user", "content": question}],
        }
        started = time.perf_counter()
        first = 0.0
        with client.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if first or not line.startswith("data: {"):
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - started
        return first

    def llama(question: str) -> float:
        messages = [{"role": "system", "content": ROLE}, {"role": "user", "content": question}]
        started = time.perf_counter()
        first = 0.0
        for chunk in direct.create_chat_completion(
            messages=messages, max_tokens=4, temperature=0, stream=True
        ):
            if not first and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - started
        return first

    with httpx.Client(timeout=60) as client:
        for i in range(TTFT_ROUNDS + 1):
            question = f"Question {i}: what should an edge node do when it is offline?"
            pair = (api, llama) if i % 2 else (llama, api)
            times = {f.__name__: f(question) for f in pair}
            if i:
                via_api.append(times["api"] * 1000)
                via_direct.append(times["llama"] * 1000)
    server.stop()
    return {
        "rounds": TTFT_ROUNDS,
        "api_p50_ms": pct(via_api, 50),
        "direct_p50_ms": pct(via_direct, 50),
        "added_p50_ms": statistics.median(a - d for a, d in zip(via_api, via_direct, strict=True)),
        "api_p99_ms": pct(via_api, 99),
        "direct_p99_ms": pct(via_direct, 99),
    }


def bench_approval_wait(runtime) -> dict:
    """Plain requests' latency with and without another request waiting for a person's approval.
    The waiting request takes the model, then goes through the same approval wait the tool gate
    uses (Runtime._wait_for_approval), with an approver that does not answer until the end."""
    import threading

    ask = [{"role": "user", "content": "Hello."}]

    def plain_latencies() -> list[float]:
        out = []
        for _ in range(APPROVAL_ROUNDS):
            started = time.perf_counter()
            runtime.ask(ask, "short")
            out.append((time.perf_counter() - started) * 1000)
        return out

    runtime.ask(ask, "short")  # warm
    alone = plain_latencies()
    decided = threading.Event()
    waiting = threading.Event()

    def person(tool, agent, args, timeout_s):
        waiting.set()
        decided.wait(timeout_s)
        return True

    def request_waiting_for_approval() -> None:
        runtime._take_the_model("short")
        runtime._holding.active = runtime.active
        try:
            runtime._wait_for_approval("create_ticket", "desk", {"title": "printer"}, 600)
        finally:
            runtime._holding.active = None
            runtime.applier.request_lock.release()

    runtime.approvals = person
    waiter = threading.Thread(target=request_waiting_for_approval)
    waiter.start()
    waiting.wait(30)
    during = plain_latencies()
    decided.set()
    waiter.join(30)
    return {
        "rounds": APPROVAL_ROUNDS,
        "alone_p50_ms": pct(alone, 50),
        "alone_p99_ms": pct(alone, 99),
        "during_p50_ms": pct(during, 50),
        "during_p99_ms": pct(during, 99),
        "ratio_p99": pct(during, 99) / pct(alone, 99),
    }


def bench_models(work: Path) -> dict:
    """Several models on one node: the time to swap a model in (unload the other, load, smoke
    test) against loading the same file with llama-cpp-python directly, and the process's memory
    with two models resident against one."""
    import gc

    from llama_cpp import Llama

    from agents import device
    from agents.runtime import Runtime, StateDir
    from controlplane.registry.quantize import quantize

    first = work / "bench-Q4_K_M.gguf"
    second = quantize(work / "bench-f32.gguf", work / "bench-Q8_0.gguf", "Q8_0")

    def runtime_with(models: dict[str, Path], budget_mb: str) -> Runtime:
        os.environ["EDGEFLEET_AGENT_MODEL_MEMORY_MB"] = budget_mb
        state = StateDir(work / f"models-state-{len(models)}-{budget_mb}").ensure()
        state.save_node(json.loads((work / "state" / "node.json").read_text()))
        runtime = Runtime(state)
        sections = {name: _signed_model(name or "first", path) for name, path in models.items()}
        doc = {
            "node_id": "bench",
            "revision": 1,
            "poll_interval_s": 30,
            "model": sections.pop(""),
            "models": sections,
            "agents": {"helper": {"role": ROLE, "max_tokens": 4, "default": True}},
        }
        runtime.applier.apply(doc, '"1"')
        if runtime.applier.last_error:
            raise RuntimeError(runtime.applier.last_error)
        return runtime

    # Swap time: a budget with room for one model, so every get() unloads the other.
    runtime = runtime_with({"": first, "second": second}, "1")
    pool = runtime.active.pool
    swaps, direct = [], []
    for i in range(SWAP_ROUNDS + 1):
        name, path = ("second", second) if i % 2 == 0 else ("", first)
        started = time.perf_counter()
        pool.get(name)
        took = time.perf_counter() - started
        started = time.perf_counter()
        llm = Llama(str(path), n_ctx=1024, verbose=False)
        loaded = time.perf_counter() - started
        llm.close()
        if i:
            swaps.append(took * 1000)
            direct.append(loaded * 1000)
    runtime.shutdown(flush_timeout_s=0)
    gc.collect()

    def resident_mb(models: dict[str, Path]) -> float:
        before, _ = device.process_usage()
        held = runtime_with(models, "100000")
        after, _ = device.process_usage()
        assert held.active.pool.loaded() == sorted(models)
        held.shutdown(flush_timeout_s=0)
        gc.collect()
        return after - before

    one = resident_mb({"": first})
    two = resident_mb({"": first, "second": second})
    os.environ.pop("EDGEFLEET_AGENT_MODEL_MEMORY_MB", None)
    return {
        "rounds": SWAP_ROUNDS,
        "swap_p50_ms": pct(swaps, 50),
        "direct_load_p50_ms": pct(direct, 50),
        "swap_ratio": pct(swaps, 50) / pct(direct, 50),
        "one_model_mb": one,
        "two_models_mb": two,
        "sizes_mb": [first.stat().st_size / (1 << 20), second.stat().st_size / (1 << 20)],
    }


def _signed_model(name: str, path: Path) -> dict:
    """A model section for `path` signed with the bench's key (setup() wrote it)."""
    import hashlib

    from wire import manifest

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    signed = manifest.build(name=name, variant="custom", sha256=digest, size=None, key_id="b")
    return {
        "name": name,
        "url": path.as_uri(),
        "sha256": digest,
        "n_ctx": 1024,
        "manifest": signed,
        "signature": manifest.sign(signed, BENCH_KEY),
    }


def bench_gate(work: Path) -> dict:
    from agents.outbox import Outbox
    from agents.tools import ToolGate, registry
    from wire.schemas import ToolPolicy

    (work / "sandbox" / "notes").mkdir(parents=True, exist_ok=True)
    outbox = Outbox(work / "gate-outbox.db")
    policy = ToolPolicy.model_validate(
        {
            "rules": {
                "clock": {"mode": "allow"},
                "read_file": {"mode": "allow", "path_prefix": "notes"},
                "http_get": {"mode": "allow", "hosts": ["intranet.local"]},
            }
        }
    )
    gate = ToolGate(
        policy,
        registry(),
        work / "sandbox",
        audit=lambda kind, data: outbox.enqueue("events", {"kind": kind, "data": data}),
    )
    tools = ["clock", "read_file", "http_get"]
    cases = [
        ("read_file", {"path": "notes/a.txt"}),
        ("http_get", {"url": "http://intranet.local/x"}),
        ("read_file", {"path": "../etc/passwd"}),
        ("clock", {}),
    ]
    checks = []
    for i in range(20000):
        tool, args = cases[i % len(cases)]
        t = time.perf_counter_ns()
        gate.check("ops", tools, tool, args)
        checks.append((time.perf_counter_ns() - t) / 1e6)
    calls = []
    for _ in range(5000):
        t = time.perf_counter_ns()
        gate.call("ops", tools, "clock", {})
        calls.append((time.perf_counter_ns() - t) / 1e6)
    return {
        "check_p50_ms": pct(checks, 50),
        "check_p99_ms": pct(checks, 99),
        "dispatch_p50_ms": pct(calls, 50),
        "dispatch_p99_ms": pct(calls, 99),
    }


def bench_outbox(work: Path) -> dict:
    from agents.outbox import Outbox

    out = {}
    for durable in (False, True):
        ob = Outbox(work / f"outbox-{durable}.db", durable=durable)
        n = 5000 if durable else 20000
        started = time.perf_counter()
        for i in range(n):
            ob.enqueue("events", {"kind": "tool.allowed", "data": {"tool": "clock", "i": i}})
        out["enqueue_per_s_" + ("full" if durable else "normal")] = n / (
            time.perf_counter() - started
        )
        ob.close()
    return out


def bench_drain(work: Path) -> dict:
    """A node that was offline with BACKLOG events delivers them to the real control plane."""
    sys.path.insert(0, str(ROOT / "bench"))
    from node_api import Server, fresh_database, server_env

    db_url = fresh_database()
    os.environ.update(server_env(db_url))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from agents.outbox import Outbox
    from agents.runtime import Runtime, StateDir
    from controlplane import tokens
    from controlplane.nodes.models import Fleet, Node, NodeCredential, NodeEventRecord

    fleet = Fleet.objects.create(slug="drain", name="drain")
    node = Node.objects.create(fleet=fleet, name="offline-node")
    plaintext, token_hash, prefix = tokens.new_token(tokens.NODE_PREFIX)
    NodeCredential.objects.create(node=node, prefix=prefix, token_hash=token_hash)
    server = Server("gunicorn sync (WSGI, 4 workers)", server_env(db_url))
    try:
        state = StateDir(work / "drain-state").ensure()
        state.save_node({"server": server.url, "node_id": str(node.pk), "credential": plaintext})
        ob = Outbox(state.path / "outbox.db")
        ob.enqueue_many(
            "events",
            [{"kind": "tool.denied", "data": {"tool": "http_get", "reason": "host"}}] * BACKLOG,
        )
        ob.close()
        runtime = Runtime(state)
        started = time.perf_counter()
        sent = runtime.telemetry.send_once()
        elapsed = time.perf_counter() - started
        runtime.shutdown(flush_timeout_s=0)
    finally:
        server.stop()
    stored = NodeEventRecord.objects.filter(node=node).count()
    return {
        "backlog": BACKLOG,
        "sent": sent,
        "stored": stored,
        "drain_events_per_s": sent / elapsed,
        "seconds": elapsed,
    }


def main() -> None:
    import logging

    logging.getLogger("edgefleet.agent").setLevel(logging.ERROR)  # no control plane here
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runtime, direct = setup(work)
        log("== tokens/s: runtime vs direct llama-cpp-python")
        tok = bench_tokens(runtime, direct)
        log(
            f"  runtime {tok['runtime_tokens_per_s']:.1f} tok/s, direct "
            f"{tok['direct_tokens_per_s']:.1f} tok/s, ratio {tok['ratio']:.3f}"
        )
        log("== time to first token: local API (HTTP, streamed) vs direct llama-cpp-python")
        ttft = bench_ttft(runtime, direct)
        log(
            f"  p50 {ttft['api_p50_ms']:.1f} ms vs {ttft['direct_p50_ms']:.1f} ms "
            f"(added {ttft['added_p50_ms']:+.1f} ms)"
        )
        log("== plain requests while another waits for an approval")
        wait = bench_approval_wait(runtime)
        log(
            f"  p99 {wait['during_p99_ms']:.1f} ms during vs {wait['alone_p99_ms']:.1f} ms alone "
            f"(ratio {wait['ratio_p99']:.2f})"
        )
        runtime.shutdown(flush_timeout_s=0)
        log("== several models: swap time, memory with two resident")
        models = bench_models(work)
        log(
            f"  swap p50 {models['swap_p50_ms']:.1f} ms vs direct load "
            f"{models['direct_load_p50_ms']:.1f} ms; memory one {models['one_model_mb']:.0f} MB, "
            f"two {models['two_models_mb']:.0f} MB"
        )
        log("== permission check and tool dispatch")
        gate = bench_gate(work)
        log(
            f"  check p50 {gate['check_p50_ms']:.3f} ms p99 {gate['check_p99_ms']:.3f} ms; "
            f"dispatch p50 {gate['dispatch_p50_ms']:.3f} ms p99 {gate['dispatch_p99_ms']:.3f} ms"
        )
        log("== outbox")
        ob = bench_outbox(work)
        log(
            f"  enqueue {ob['enqueue_per_s_normal']:.0f}/s (synchronous=NORMAL), "
            f"{ob['enqueue_per_s_full']:.0f}/s (FULL)"
        )
        drain = bench_drain(work) if os.environ.get("DATABASE_URL") else None
        if drain:
            log(
                f"  drain of {drain['backlog']} events: {drain['drain_events_per_s']:.0f} events/s "
                f"({drain['stored']} stored)"
            )
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tokens": tok,
        "ttft": ttft,
        "approval_wait": wait,
        "models": models,
        "gate": gate,
        "outbox": ob,
        "drain": drain,
    }
    (RESULTS / "agent.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Edge runtime benchmark",
        "",
        f"{result['when']}, {os.cpu_count()} cores.",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        f"| tokens/s through the runtime / direct llama-cpp-python ({tok['model']}, {TOKENS} "
        f"tokens, median of {ROUNDS} paired rounds) "
        f"| {tok['ratio']:.3f} ({tok['runtime_tokens_per_s']:.1f} / "
        f"{tok['direct_tokens_per_s']:.1f}) | >= 0.97 |",
        f"| time to first token through the local API (HTTP, streamed), p50, added to direct "
        f"llama-cpp-python streaming (median of {ttft['rounds']} paired rounds) "
        f"| {ttft['added_p50_ms']:+.1f} ms ({ttft['api_p50_ms']:.1f} vs "
        f"{ttft['direct_p50_ms']:.1f} ms) | <= +5 ms |",
        f"| plain requests' p99 while another request waits for an approval / alone "
        f"({wait['rounds']} requests each) | {wait['ratio_p99']:.2f} ({wait['during_p99_ms']:.1f} "
        f"vs {wait['alone_p99_ms']:.1f} ms) | <= 1 (no worse) |",
        f"| model swap (unload the other, load, smoke test) / llama-cpp-python loading the same "
        f"file, p50 of {models['rounds']} | {models['swap_ratio']:.2f} "
        f"({models['swap_p50_ms']:.1f} vs {models['direct_load_p50_ms']:.1f} ms) | |",
        f"| process memory with two models resident / one (files "
        f"{models['sizes_mb'][0]:.0f} + {models['sizes_mb'][1]:.0f} MB) "
        f"| {models['two_models_mb']:.0f} / {models['one_model_mb']:.0f} MB | |",
        f"| permission check p99 | {gate['check_p99_ms']:.3f} ms (p50 {gate['check_p50_ms']:.3f}) "
        "| < 1 ms |",
        f"| tool dispatch p99 (clock, audit event into the outbox) | {gate['dispatch_p99_ms']:.3f} "
        f"ms (p50 {gate['dispatch_p50_ms']:.3f}) | < 1 ms |",
        f"| outbox enqueue, synchronous=NORMAL (default) | {ob['enqueue_per_s_normal']:.0f} "
        "events/s | >= 5,000/s |",
        f"| outbox enqueue, synchronous=FULL | {ob['enqueue_per_s_full']:.0f} events/s | |",
    ]
    if drain:
        lines.append(
            f"| drain of a {drain['backlog']}-event backlog into the control plane (PostgreSQL) "
            f"| {drain['drain_events_per_s']:.0f} events/s | |"
        )
    (RESULTS / "agent.md").write_text("\n".join(lines) + "\n")
    log(f"results in {RESULTS / 'agent.md'}")


if __name__ == "__main__":
    main()
