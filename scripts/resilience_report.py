"""Render the JSON lines the fault suite (tests/resilience, RESILIENCE_REPORT) or the fuzz
(tests/fuzz.py, FUZZ_REPORT) wrote into a Markdown report with the run's date and machine.

    python scripts/resilience_report.py faults var/resilience.jsonl bench/results/resilience.md
    python scripts/resilience_report.py fuzz var/fuzz.jsonl bench/results/fuzz.md
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def header(title: str) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [f"# {title}", "", f"Run {when} on {machine()}.", ""]


def faults(rows: list[dict]) -> str:
    out = header("Fault suite (`make resilience`)")
    out += [
        "Each row is one test of `tests/resilience/` at its full count (`RESILIENCE_FULL=1`): what",
        "was injected, how often, on which database, and what was found. The target for *lost*,",
        "*duplicated* and *server errors* is 0; the tests fail otherwise.",
        "",
        "| fault | injected | times | found |",
        "|---|---|--:|---|",
    ]
    for r in rows:
        found = {k: v for k, v in r.items() if k not in ("test", "injected", "times")}
        text = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in found.items())
        out.append(f"| {r['test']} | {r['injected']} | {r['times']} | {text} |")
    return "\n".join(out) + "\n"


def fuzz(rows: list[dict]) -> str:
    out = header("API fuzz (`make fuzz`)")
    total = sum(r["requests"] for r in rows)
    seeds = sorted({str(r.get("seed", "fixed")) for r in rows})
    out += [
        "Schemathesis over the node API and the admin API: every operation, positive cases",
        "(schema-valid data must be accepted), negative cases (schema-violating data must be",
        "refused) and the stateful phase (calls chained along inferred links), with every check it",
        "has, including `negative_data_rejection` and `positive_data_acceptance`; the admin API as",
        "each persona, with a permission oracle (tests/test_admin_api_fuzz.py). "
        f"Seed: {', '.join(seeds)} (replay: `make fuzz FUZZ_SEED=<seed>`). "
        f"**{total:,} requests**, "
        f"{sum(r['server_errors'] for r in rows)} server errors, "
        f"{sum(r['failures'] for r in rows)} failed checks (a schema-violating request accepted",
        "is one).",
        "",
        "| API | persona | requests | of which stateful | 5xx | failed checks | statuses |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        stateful = r.get("stateful_requests", 0)
        out.append(
            f"| {r['api']} | {r['persona']} | {r['requests']:,} | {stateful:,} "
            f"| {r['server_errors']} | {r['failures']} | {statuses} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    kind, source, target = sys.argv[1:4]
    rows = [json.loads(line) for line in Path(source).read_text().splitlines() if line.strip()]
    Path(target).write_text({"faults": faults, "fuzz": fuzz}[kind](rows))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
