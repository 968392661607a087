"""What the node knows about itself: its hardware profile (sent at enrollment and again when it
changes) and a sample of the device taken on a timer, idle or not (runtime.py's device loop).

Every probe degrades to "not known" where the platform lacks it: /proc (Linux) for CPU and memory,
`nvidia-smi` for an NVIDIA GPU, /sys/class/power_supply for a battery. Nothing here is POSIX-only
at import time, so the agent imports on Windows (where only disk and GPU figures are sampled).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from agents import __version__
from wire import schemas

MB = 1 << 20
NVIDIA_SMI_TIMEOUT_S = 5


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [
                    f
                    for f in line.split(":", 1)[1].split()
                    if f.startswith(("avx", "fma", "f16c", "amx", "sse4", "neon"))
                ]
    return model, flags


def ram_mb() -> int:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MB
    return 0


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs as `nvidia-smi` sees them (name, memory, utilisation); [] without one."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    query = "name,memory.total,memory.used,utilization.gpu"
    try:
        out = subprocess.run(  # noqa: S603 - a fixed command line, no shell
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            continue
        with contextlib.suppress(ValueError):
            found.append(
                {
                    "name": parts[0],
                    "memory_total_mb": int(float(parts[1])),
                    "memory_used_mb": int(float(parts[2])),
                    "utilization_pct": float(parts[3]),
                }
            )
    return found


def hardware_profile(gpu_list: list[dict[str, Any]] | None = None) -> schemas.HardwareProfile:
    """The node's profile: CPU model and flags, cores, RAM, its first GPU and that GPU's memory,
    OS and architecture, runtime versions."""
    model, flags = _cpu_model_and_flags()
    versions = {"edgefleet_agent": __version__, "python": platform.python_version()}
    try:
        import llama_cpp

        versions["llama_cpp_python"] = llama_cpp.__version__
    except ImportError:
        pass
    found = gpus() if gpu_list is None else gpu_list
    return schemas.HardwareProfile(
        cpu_model=model[:200],
        cpu_flags=flags[:256],
        cpu_cores=os.cpu_count() or 0,
        ram_mb=ram_mb(),
        gpu=str(found[0]["name"])[:200] if found else "",
        vram_mb=int(found[0]["memory_total_mb"]) if found else 0,
        os=f"{platform.system()} {platform.release()}"[:200],
        arch=platform.machine()[:32],
        runtime_versions=versions,
    )


def _meminfo() -> dict[str, int]:
    info: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            with contextlib.suppress(ValueError, IndexError):
                info[key] = int(rest.split()[0]) * 1024
    return info


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def battery() -> dict[str, float]:
    """The first battery's charge and whether the device is on mains power; {} without one."""
    for supply in sorted(Path("/sys/class/power_supply").glob("BAT*")):
        with contextlib.suppress(OSError, ValueError):
            status = (supply / "status").read_text().strip()
            return {
                "battery.pct": float((supply / "capacity").read_text().strip()),
                "battery.discharging": float(status == "Discharging"),
            }
    return {}


def process_usage() -> tuple[float, float]:
    """This process's resident memory (MB) and CPU time (s): /proc where there is one, the peak
    RSS from getrusage on other POSIX systems, CPU time from os.times() everywhere."""
    times = os.times()
    rss_mb = 0.0
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        rss_mb = resident_pages * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError, AttributeError):
        with contextlib.suppress(ImportError):
            import resource  # POSIX only: imported here, so the agent imports on Windows

            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rss_mb, times.user + times.system


class Sampler:
    """System figures for the telemetry timer. CPU use is measured between two samples (the first
    sample has none)."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.last_cpu = _cpu_times()

    def sample(self, gpu_list: list[dict[str, Any]] | None = None) -> dict[str, float]:
        values: dict[str, float] = {}
        now = _cpu_times()
        if now and self.last_cpu and now[1] > self.last_cpu[1]:
            busy = now[0] - self.last_cpu[0]
            values["system.cpu_pct"] = 100.0 * busy / (now[1] - self.last_cpu[1])
        self.last_cpu = now
        mem = _meminfo()
        if mem.get("MemTotal") and "MemAvailable" in mem:
            values["system.mem_available_mb"] = mem["MemAvailable"] / MB
            values["system.mem_used_pct"] = 100.0 * (1 - mem["MemAvailable"] / mem["MemTotal"])
        with contextlib.suppress(OSError):
            values["system.disk_free_mb"] = shutil.disk_usage(self.state_dir).free / MB
        for i, gpu in enumerate(gpus() if gpu_list is None else gpu_list):
            values[f"gpu.{i}.utilization_pct"] = float(gpu["utilization_pct"])
            values[f"gpu.{i}.memory_used_mb"] = float(gpu["memory_used_mb"])
        values.update(battery())
        return values
