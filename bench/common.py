"""What every benchmark shares: where results go, how big a run is, logging, ports, percentiles.

`BENCH_SMOKE=1` (`make bench-smoke`, part of `make test`) runs every benchmark end to end at tiny
sizes, in seconds, so that none can rot unseen; its figures go to bench/results/smoke/ (ignored by
git) and mean nothing. A full run (`make bench`) writes bench/results/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOKE = os.environ.get("BENCH_SMOKE") == "1"
RESULTS = ROOT / "bench" / "results" / ("smoke" if SMOKE else "")
# RouteLLM's outcome tables, where settings.py looks for them too (EDGEFLEET_ROUTER_DATA_DIR).
ROUTER_DATA = Path(
    os.environ.get("EDGEFLEET_ROUTER_DATA_DIR")
    or ROOT.parent / "shared" / "router_data" / "routellm"
)


def size(name: str, full: int, smoke: int) -> int:
    """A size knob: the environment variable `name`, else the full or the smoke default."""
    return int(os.environ.get(name, smoke if SMOKE else full))


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def wait_until_up(url: str, proc: subprocess.Popen, what: str, seconds: float = 60) -> None:
    """Wait for `url` to answer 200; stop `proc` and raise if it does not in time."""
    import httpx

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    stop_group(proc)
    raise RuntimeError(f"{what} did not start")


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True, with all its workers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
