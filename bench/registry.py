#!/usr/bin/env python
"""Model registry benchmark.

1. Registration of a generated F32 GGUF (metadata, sha256, copy into the artifact storage): MB/s.
2. Quantization to every target variant through the background job's body (llama.cpp's quantizer
   through llama-cpp-python): MB/s of F32 input, output size and bits per weight.
3. Artifact download through the node API, served by gunicorn, with the agent's own client
   (NodeClient.download), against a plain file copy of the same file on the same machine: ratio.
   Then a download resumed from the middle (Range), checked by sha256.
4. The "auto" variant resolver over 10,000 nodes of mixed memory sizes (target < 1 s), and a full
   desired-state refresh of a 10,000-node fleet (compose, resolve, sign, digest, save).

Runs on its own SQLite database and artifact directory in a temporary folder. The model's size is
set by BENCH_REGISTRY_LAYERS (default 4 layers of width 1024: about 270 MB in F32).
Writes bench/results/registry.json and registry.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, free_port, log, size  # noqa: E402

BIN = Path(sys.executable).parent
LAYERS = size("BENCH_REGISTRY_LAYERS", 4, 1)
NODES = size("BENCH_REGISTRY_NODES", 10_000, 200)
MB = 1 << 20


def setup(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        EDGEFLEET_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="edgefleet.settings",
        LOG_LEVEL="ERROR",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edgefleet-bench-registry-") as tmp:
        var = Path(tmp)
        env = setup(var)
        from agents.client import NodeClient
        from controlplane.nodes import desired_state, layers, services
        from controlplane.nodes.models import Fleet, Node
        from controlplane.registry import queries as registry_queries
        from controlplane.registry import resolver
        from controlplane.registry import services as registry
        from controlplane.registry.models import Artifact
        from controlplane.registry.tinymodel import write_tiny_llama
        from wire.schemas import EnrollIn

        results: dict = {"layers": LAYERS}
        log(f"writing an F32 llama GGUF ({LAYERS} layers of width 1024) ...")
        f32_path = write_tiny_llama(
            var / "bench-F32.gguf",
            n_embd=1024,
            n_ff=2816,
            n_layer=LAYERS,
            n_head=8,
            vocab_size=8192,
            context_length=4096,
        )
        size = f32_path.stat().st_size
        f32, secs = timed(lambda: registry.do_register_artifact(f32_path, name="bench", actor=None))
        results["register"] = {"mb": size / MB, "s": secs, "mb_per_s": size / MB / secs}
        log(f"registered {size / MB:,.0f} MB in {secs:.2f} s ({size / MB / secs:,.0f} MB/s)")

        quant = {}
        for variant in registry.TARGETS:
            (job,) = registry.do_quantize(f32, [variant], actor=None)
            _, secs = timed(lambda job=job: registry.run_quantization(job.pk))
            a = Artifact.objects.get(name="bench", variant=variant)
            quant[variant] = {
                "s": secs,
                "input_mb_per_s": size / MB / secs,
                "mb": a.size / MB,
                "bits_per_weight": a.bits_per_weight,
            }
            log(
                f"  {variant:7} {secs:6.2f} s  {size / MB / secs:7.1f} MB/s  -> {a.size / MB:7.1f} "
                "MB, "
                f"{a.bits_per_weight:.2f} bits/weight"
            )
        results["quantize"] = quant

        # --- download vs copy ---------------------------------------------------------------------
        fleet = Fleet.objects.create(slug="bench", name="bench")
        _, token = services.do_create_enrollment_token(fleet, actor=None)
        _, credential = services.do_enroll_node(EnrollIn(token=token, name="dl"))
        from django.core.files.storage import storages

        stored = Path(storages["artifacts"].path(f32.file))
        port = free_port()
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "edgefleet.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        try:
            import httpx

            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            client = NodeClient(f"http://127.0.0.1:{port}", credential)
            copies, downloads = [], []
            for i in range(3):
                dest = var / f"copy-{i}.gguf"
                copies.append(timed(lambda dest=dest: shutil.copyfile(stored, dest))[1])
                dest.unlink()
                dest = var / f"dl-{i}.gguf"
                downloads.append(
                    timed(lambda dest=dest: client.download(f"artifacts/{f32.sha256}", dest))[1]
                )
                assert dest.stat().st_size == size
                dest.unlink()
            copy_s, dl_s = min(copies), min(downloads)
            # The same endpoint with curl (C client), to tell the server's share from the client's.
            curl_s = None
            if shutil.which("curl"):
                dest = var / "curl.gguf"
                url = f"http://127.0.0.1:{port}/api/node/v1/artifacts/{f32.sha256}"
                curl_s = min(
                    timed(
                        lambda dest=dest, url=url: subprocess.run(
                            [
                                "curl",
                                "-sf",
                                "-o",
                                str(dest),
                                "-H",
                                f"Authorization: Bearer {credential}",
                                url,
                            ],
                            check=True,
                        )
                    )[1]
                    for _ in range(3)
                )
                dest.unlink()
            # Resume from the middle.
            half = var / "half.gguf"
            with open(stored, "rb") as src, open(half, "wb") as dst:
                dst.write(src.read(size // 2))
            client.download(f"artifacts/{f32.sha256}", half)
            resumed_ok = hashlib.sha256(half.read_bytes()).hexdigest() == f32.sha256
            client.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        results["download"] = {
            "mb": size / MB,
            "copy_s": copy_s,
            "download_s": dl_s,
            "copy_mb_per_s": size / MB / copy_s,
            "download_mb_per_s": size / MB / dl_s,
            "download_vs_copy": copy_s / dl_s,
            "resumed_from_half_ok": resumed_ok,
            "curl_mb_per_s": size / MB / curl_s if curl_s else None,
        }
        log(f"curl: {results['download']['curl_mb_per_s'] or 0:,.0f} MB/s")
        log(
            f"download {size / MB / dl_s:,.0f} MB/s vs copy {size / MB / copy_s:,.0f} MB/s: "
            f"{copy_s / dl_s:.2f}x of a plain copy; resumed download verified: {resumed_ok}"
        )

        # --- resolver -----------------------------------------------------------------------------
        variants = registry_queries.variants_of(["bench"])["bench"]
        rng = random.Random(0)
        sizes = [96, 128, 160, 192, 256, 384, 512]
        hardware = [{"ram_mb": rng.choice(sizes)} for _ in range(NODES)]
        picks: dict[str, int] = {}

        def resolve_all():
            for hw in hardware:
                c = resolver.choose(variants, "auto", hw, n_ctx=4096)
                key = c.variant.variant if c.variant else "none fits"
                picks[key] = picks.get(key, 0) + 1

        _, resolve_s = timed(resolve_all)
        log(f"resolver: {NODES:,} nodes in {resolve_s * 1000:.0f} ms; choices {picks}")
        Node.objects.bulk_create(
            [Node(fleet=fleet, name=f"n{i:05}", hardware=hw) for i, hw in enumerate(hardware)],
            batch_size=2000,
        )
        layers.do_put_layer(
            fleet,
            name="model",
            scope="fleet",
            sections={"model": {"name": "bench", "variant": "auto", "n_ctx": 4096}},
            actor=None,
        )
        Node.objects.filter(fleet=fleet).update(desired_digest="")
        _, refresh_s = timed(lambda: desired_state.refresh(fleet))
        results["resolver"] = {
            "nodes": NODES,
            "resolve_s": resolve_s,
            "choices": picks,
            "target_s": 1.0,
            "refresh_fleet_s": refresh_s,
        }
        log(
            f"full refresh of a {NODES:,}-node fleet (compose, resolve, sign, digest, save): "
            f"{refresh_s:.2f} s"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "registry.json").write_text(json.dumps(results, indent=1))
    d, r = results["download"], results["resolver"]
    lines = [
        "# Model registry benchmark (bench/registry.py)",
        "",
        f"F32 llama GGUF, {LAYERS} layers of width 1024: {results['register']['mb']:,.0f} MB. 2 "
        "CPU cores.",
        "",
        "| measure | result |",
        "|---|---|",
        "| registration (sha256 + copy into storage + metadata) | "
        f"{results['register']['mb_per_s']:,.0f} MB/s |",
        f"| download through the node API (gunicorn, agent client) | {d['download_mb_per_s']:,.0f} "
        "MB/s |",
        f"| plain file copy of the same file | {d['copy_mb_per_s']:,.0f} MB/s |",
        f"| download / copy | **{d['download_vs_copy']:.2f}x** |",
        f"| the same download with curl (C client) | {d['curl_mb_per_s'] or 0:,.0f} MB/s |",
        f"| download resumed from the middle, sha256 verified | {d['resumed_from_half_ok']} |",
        f"| auto resolver, {r['nodes']:,} nodes | **{r['resolve_s'] * 1000:.0f} ms** (target < "
        "1,000 ms) |",
        f"| full desired-state refresh, {r['nodes']:,} nodes | {r['refresh_fleet_s']:.2f} s |",
        "",
        "| variant | time | F32 MB/s | size | bits/weight |",
        "|---|---|---|---|---|",
        *[
            f"| {v} | {q['s']:.1f} s | {q['input_mb_per_s']:,.0f} | {q['mb']:,.1f} MB | "
            f"{q['bits_per_weight']:.2f} |"
            for v, q in results["quantize"].items()
        ],
        "",
        f"Resolver choices over mixed RAM sizes (n_ctx 4096): {r['choices']}",
    ]
    (RESULTS / "registry.md").write_text("\n".join(lines) + "\n")
    log(f"results in {RESULTS / 'registry.md'}")


if __name__ == "__main__":
    main()
