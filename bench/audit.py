#!/usr/bin/env python
"""Audit trail benchmark, on PostgreSQL.

1. Appends/s with 8 concurrent writer processes, each append its own transaction (as a service
   function writes it), then a check that the chain is intact.
2. Verification rows/s over a chain of BENCH_AUDIT_RECORDS records (default 1,000,000) with signed
   checkpoints, as `manage.py audit verify` does it.
3. Export of those records as JSON Lines through `manage.py audit export`: wall time and the peak
   memory (max RSS) of the exporting process.

Targets (issue 4): >= 2,000 appends/s with the chain intact; >= 200,000 rows/s verified; export of
1,000,000 records in < 60 s and < 150 MB. Writes bench/results/audit.json and audit.md.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, log, size  # noqa: E402

WRITERS = 8
PER_WRITER = size("BENCH_AUDIT_APPENDS", 1500, 20)
RECORDS = size("BENCH_AUDIT_RECORDS", 1_000_000, 3000)
DB = "edgefleet_bench_audit"


def database() -> str:
    import psycopg

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/audit.py needs DATABASE_URL pointing at PostgreSQL (make bench sets it up)")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    return re.sub(r"/[^/]*$", f"/{DB}", base)


def anchor_file(key_file: str) -> str:
    """The run's own anchor file, next to its key: a fresh database never meets old anchors."""
    return str(Path(key_file).with_name("audit-anchors.jsonl"))


def setup_django(db_url: str, key_file: str) -> None:
    # One plain connection per process (no pool: each writer is a process with one connection).
    os.environ.update(
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="edgefleet.settings",
        EDGEFLEET_SIGNING_KEY_FILE=key_file,
        EDGEFLEET_AUDIT_ANCHOR_FILE=anchor_file(key_file),
        LOG_LEVEL="ERROR",
        DB_POOL="0",
        DEBUG="0",
    )
    import django

    django.setup()


def writer(db_url: str, key_file: str, index: int, start, out) -> None:
    setup_django(db_url, key_file)
    from django.contrib.auth import get_user_model

    from controlplane.audit.services import record
    from controlplane.nodes.models import Fleet

    user = get_user_model().objects.get(username="bench-admin")
    fleet = Fleet.objects.get(slug="bench")
    record("fleet.update", ("fleet", f"{index}-w"), user=user, fleet=fleet)
    start.wait()
    t0 = time.perf_counter()
    for i in range(PER_WRITER):
        record(
            "fleet.update",
            ("fleet", f"{index}-{i}"),
            user=user,
            fleet=fleet,
            after={"writer": index, "i": i, "note": "a typical small change record"},
        )
    out.put(time.perf_counter() - t0)


def bench_appends(db_url: str, key_file: str) -> dict:
    start = mp.Barrier(WRITERS + 1)
    out: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=writer, args=(db_url, key_file, i, start, out)) for i in range(WRITERS)
    ]
    for p in procs:
        p.start()
    from controlplane.audit.services import pending_count, seal_pending, verify_all

    start.wait()
    t0 = time.perf_counter()
    times = [out.get(timeout=600) for _ in procs]
    # The clock stops when every record is chained, not merely stored: records a writer left
    # pending and no later lock holder picked up are chained here, as `maintain` would.
    left_pending = pending_count()
    seal_pending()
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    checked, problem = verify_all()
    total = WRITERS * PER_WRITER
    return {
        "writers": WRITERS,
        "appends": total,
        "wall_s": round(wall, 2),
        "appends_per_s": round(total / wall),
        "slowest_writer_s": round(max(times), 2),
        "left_pending_at_end": left_pending,
        "chain_intact": problem is None,
        "records_verified": checked,
    }


def fill(n: int) -> float:
    """Grow the chain to n records through the real append path, in batches."""
    from django.contrib.auth import get_user_model

    from controlplane.audit.models import AuditRecord
    from controlplane.audit.services import append, entry
    from controlplane.nodes.models import Fleet

    user = get_user_model().objects.get(username="bench-admin")
    fleet = Fleet.objects.get(slug="bench")
    t0 = time.perf_counter()
    have = AuditRecord.objects.count()
    actor = entry("fleet.update", ("fleet", ""), user=user).actor
    while have < n:
        batch = min(5000, n - have)
        records = [
            entry(
                "tool.allowed",
                ("node_event", f"n:{have + i}"),
                fleet=fleet,
                after={"agent": "triage", "tool": "clock", "arguments_keys": ["tz"]},
            )
            for i in range(batch)
        ]
        for rec in records:
            rec.actor = actor
        append(records)
        have += batch
    return time.perf_counter() - t0


def bench_verify() -> dict:
    from controlplane.audit.models import AuditCheckpoint
    from controlplane.audit.services import verify_trail

    t0 = time.perf_counter()
    result = verify_trail()  # the chain, its checkpoints and their anchor file
    wall = time.perf_counter() - t0
    return {
        "records": result.checked,
        "wall_s": round(wall, 2),
        "rows_per_s": round(result.checked / wall),
        "ok": result.problem is None,
        "problem": str(result.problem or ""),
        "checkpoints": AuditCheckpoint.objects.count(),
        "anchored": result.anchored,
    }


def bench_export(db_url: str, key_file: str, work: Path) -> dict:
    out = work / "audit.jsonl"
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        EDGEFLEET_SIGNING_KEY_FILE=key_file,
        EDGEFLEET_AUDIT_ANCHOR_FILE=anchor_file(key_file),
        LOG_LEVEL="ERROR",
    )
    t0 = time.perf_counter()
    # The peak is the export process's own VmHWM, polled (a high-water mark, so the last reading
    # is the peak). Not ru_maxrss: on Linux a child inherits the RSS high-water mark of the
    # (forked) parent it was exec'd from, which here holds a million records' worth of fill.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            str(out),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak_kb = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_kb = max(peak_kb, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(
            f"export failed: {proc.stderr.read().decode() if proc.stderr else proc.returncode}"
        )
    peak_mb = peak_kb / 1024
    manifest = json.loads((work / "audit.jsonl.manifest.json").read_text())["manifest"]
    t1 = time.perf_counter()
    pub = work / "key.pub"
    pub.write_text(
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "audit", "public-key"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    check = subprocess.run(
        [
            sys.executable,
            str(ROOT / "controlplane" / "compliance" / "verify_export.py"),
            str(out),
            str(work / "audit.jsonl.manifest.json"),
            "--public-key",
            str(pub),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return {
        "records": manifest["records"],
        "wall_s": round(wall, 2),
        "records_per_s": round(manifest["records"] / wall),
        "peak_rss_mb": round(peak_mb),
        "file_mb": round(out.stat().st_size / 1e6),
        "offline_verify_s": round(time.perf_counter() - t1, 2),
        "offline_verify": check.stdout.strip() or check.stderr.strip(),
    }


def write_markdown(results: dict) -> None:
    a, v, e = results["appends"], results["verify"], results["export"]
    rows = [
        (
            f"appends/s, {a['writers']} writer processes, one transaction each, until all are "
            "chained",
            f"**{a['appends_per_s']:,}** ({a['appends']:,} in {a['wall_s']} s; "
            f"{a['left_pending_at_end']} left pending at the end), chain intact: "
            f"{a['chain_intact']}",
            ">= 2,000",
        ),
        (
            f"verification rows/s ({v['records']:,} records, {v['checkpoints']} signed "
            f"checkpoints, {v.get('anchored', 0)} of them checked against the anchor file)",
            f"**{v['rows_per_s']:,}** ({v['wall_s']} s)",
            ">= 200,000",
        ),
        (
            f"export of {e['records']:,} records as JSON Lines",
            f"**{e['wall_s']} s**, peak RSS **{e['peak_rss_mb']} MB**, {e['file_mb']} MB file",
            "< 60 s, < 150 MB",
        ),
        (
            "offline verification of that export (verify_export.py)",
            f"{e['offline_verify_s']} s: {e['offline_verify']}",
            "",
        ),
        (
            "batched appends (edge events: one lock per batch)",
            f"{results['batched_fill_records_per_s']:,} records/s",
            "",
        ),
    ]
    lines = [
        "# Audit trail benchmark (bench/audit.py)",
        "",
        f"{results['machine']}; everything below ran in one `make bench`.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        *(f"| {m} | {r} | {t} |" for m, r, t in rows),
        "",
        f"As ratios of the targets: appends {a['appends_per_s'] / 2000:.2f}x, verification "
        f"{v['rows_per_s'] / 200_000:.2f}x; the export took {e['wall_s'] / 60:.2f} of its time "
        f"budget and {e['peak_rss_mb'] / 150:.2f} of its memory budget. Peak memory is the export "
        "process's own VmHWM.",
    ]
    (RESULTS / "audit.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    db_url = database()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key_file = str(work / "signing-key.pem")
        setup_django(db_url, key_file)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from controlplane.nodes.models import Fleet

        call_command("migrate", verbosity=0)
        get_user_model().objects.create_superuser("bench-admin", password=None)
        Fleet.objects.create(slug="bench", name="bench")
        from django.db import connections

        connections.close_all()
        log(f"appends: {WRITERS} writer processes x {PER_WRITER} ...")
        appends = bench_appends(db_url, key_file)
        log(f"  {appends}")
        log(f"filling the chain to {RECORDS:,} records ...")
        fill_s = fill(RECORDS)
        log(f"  {fill_s:.1f} s (batched appends: {RECORDS / fill_s:,.0f} records/s)")
        verify = bench_verify()
        log(f"verify: {verify}")
        connections.close_all()
        export = bench_export(db_url, key_file, work)
        log(f"export: {export}")
    results = {
        "appends": appends,
        "batched_fill_records_per_s": round(RECORDS / fill_s),
        "verify": verify,
        "export": export,
        "targets": {
            "appends_per_s": 2000,
            "verify_rows_per_s": 200_000,
            "export_s": 60,
            "export_peak_mb": 150,
        },
        "machine": f"{os.cpu_count()} cores, PostgreSQL on the same machine",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(results, indent=2))
    write_markdown(results)
    log((RESULTS / "audit.md").read_text())


if __name__ == "__main__":
    main()
