"""The edge agent's distribution (agent/pyproject.toml) in a clean virtualenv: what a node installs.

Installs `./agent` into a new virtualenv (var/agent-dist/, llama-cpp-python from .wheels/), fails if
any of the control plane's stack came with it (Django, django-ninja, channels, scikit-learn, scipy,
matplotlib), runs `edgefleet-agent --help`, and measures against the control plane's own
environment (.venv) in the same run:

- installed size: the agent's site-packages over the control plane's;
- import time of the agent (`agents.cli`, `agents.runtime`): median of 5 fresh interpreters, in the
  agent's virtualenv over the control plane's;
- resident memory of an idle agent process (the agent imported, the PHI detector loaded, no model:
  a model adds its own file, memory-mapped), in each environment.

This is the CI check that the agent installs without Django (`make test` runs it at smoke size,
which is the same install; only the repeat counts shrink). Figures: bench/results/agent_dist.md.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, SMOKE, log  # noqa: E402

FORBIDDEN = {"django", "django-ninja", "channels", "scikit-learn", "scipy", "matplotlib"}
VENV = ROOT / "var" / "agent-dist"
PROBE = r"""
import json, resource, sys, time
t = time.perf_counter()
import agents.cli, agents.runtime
imported = time.perf_counter() - t
if "--idle" in sys.argv:
    from wire.phi import detector
    detector.detect("Patient John Smith, DOB 04/12/1961, MRN 1234567.")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": imported, "rss_mb": rss}))
"""


def run(cmd: list[str], **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        log(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return done.stdout


def site_packages_mb(python: Path) -> float:
    path = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    total = sum(f.stat().st_size for f in Path(path.strip()).rglob("*") if f.is_file())
    return total / 1e6


def probe(python: Path, *args: str) -> dict:
    # From /: the interpreter must find the agent where it is installed, not in this checkout.
    return json.loads(run([str(python), "-c", PROBE, *args], cwd="/"))


def main() -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    base = shutil.which("python3") or sys.executable
    log(f"== a clean virtualenv ({VENV}) with {base}")
    run([base, "-m", "venv", str(VENV)])
    python = VENV / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    wheels = str(ROOT / ".wheels")
    run(
        [str(python), "-m", "pip", "install", "-q", "--find-links", wheels, str(ROOT / "agent")],
        env=env,
    )
    shutil.rmtree(ROOT / "agent" / "build", ignore_errors=True)
    installed = {
        line.split("==")[0].lower()
        for line in run([str(python), "-m", "pip", "list", "--format=freeze"]).split()
    }
    pulled = sorted(installed & FORBIDDEN)
    if pulled:
        raise SystemExit(f"the agent's distribution pulled the control plane's stack: {pulled}")
    run([str(VENV / "bin" / "edgefleet-agent"), "--help"])
    log(f"   {len(installed)} packages, none of {sorted(FORBIDDEN)}")

    control = ROOT / ".venv" / "bin" / "python"
    repeats = 2 if SMOKE else 5
    figures: dict[str, dict[str, float]] = {}
    for name, py in (("agent", python), ("control plane", control)):
        imports = [probe(py)["import_s"] for _ in range(repeats)]
        idle = probe(py, "--idle")
        figures[name] = {
            "size_mb": site_packages_mb(py),
            "import_s": statistics.median(imports),
            "idle_rss_mb": idle["rss_mb"],
        }
        log(f"   {name}: {figures[name]}")
    a, c = figures["agent"], figures["control plane"]
    lines = [
        "# The agent's distribution in a clean virtualenv (bench/agent_dist.py)",
        "",
        f"`pip install ./agent`: {len(installed)} packages; "
        f"none of {', '.join(sorted(FORBIDDEN))}.",
        "",
        "| | agent's virtualenv | control plane's (.venv) | ratio |",
        "|---|---|---|---|",
        f"| installed size (site-packages) | {a['size_mb']:.0f} MB | {c['size_mb']:.0f} MB "
        f"| {a['size_mb'] / c['size_mb']:.2f} |",
        f"| import time of agents.cli + agents.runtime (median of {repeats}) "
        f"| {a['import_s'] * 1000:.0f} ms | {c['import_s'] * 1000:.0f} ms "
        f"| {a['import_s'] / c['import_s']:.2f} |",
        f"| resident memory, idle (agent imported, PHI detector loaded, no model) "
        f"| {a['idle_rss_mb']:.0f} MB | {c['idle_rss_mb']:.0f} MB "
        f"| {a['idle_rss_mb'] / c['idle_rss_mb']:.2f} |",
        "",
        "The largest parts of the agent's install are llama-cpp-python and spaCy with its English",
        "pipeline (PHI detection); a model adds its GGUF file, memory-mapped when loaded.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "agent_dist.md").write_text("\n".join(lines) + "\n")
    log(f"results in {RESULTS / 'agent_dist.md'}")


if __name__ == "__main__":
    main()
