"""manage.py router train | eval: the local-vs-cloud router (docs/routing.md).

    router eval --bench gsm8k                      # held-out curve, APGR, CPT, CIs, baselines
    router eval --bench gsm8k --kind cascade       # the cascade scorer (reads the local answer)
    router eval --bench gsm8k --train-on mmlu      # trained on one benchmark, tested on another
    router train --bench mmlu --out var/router.json --register  # a signed artifact for nodes
    router register var/router.json                # register one trained elsewhere

--bench is a benchmark of the router data folder (gsm8k, mmlu, mt_bench) or the path of a CSV or
JSONL table with prompt, weak, strong (and optionally weak_response, group).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from controlplane import signing
from controlplane.errors import ServiceError
from controlplane.registry import services as registry
from controlplane.routing import train as router_train
from controlplane.routing.data import DataError, load


class Command(BaseCommand):
    help = "Train the local-vs-cloud router or evaluate it on held-out data."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        for name in ("train", "eval"):
            p = sub.add_parser(name)
            p.add_argument("--bench", required=True, help="gsm8k, mmlu, mt_bench or a table path")
            p.add_argument("--kind", choices=["query", "cascade"], default="query")
            p.add_argument("--data", default=settings.EDGEFLEET["ROUTER_DATA_DIR"])
            p.add_argument("--bits", type=int, default=router_train.DEFAULT_BITS)
            p.add_argument(
                "--c", type=float, default=None, help="1 / L2 strength (default: per --norm)"
            )
            p.add_argument(
                "--norm",
                choices=["l2", "none"],
                default="l2",
                help="l2: words once each, normalised (format 2); none: summed counts (format 1)",
            )
            p.add_argument("--limit", type=int, default=0, help="use the first N rows (smoke runs)")
        train = sub.choices["train"]
        train.add_argument("--out", required=True, help="where the artifact (JSON) goes")
        train.add_argument("--version", default="", help="defaults to the data's fingerprint")
        train.add_argument(
            "--register", action="store_true", help="register it for desired state (by version)"
        )
        reg = sub.add_parser("register")
        reg.add_argument("file", help="a router JSON written by `router train`")
        ev = sub.choices["eval"]
        ev.add_argument("--train-on", default="", help="train here, test on --bench")
        ev.add_argument("--out", default=str(settings.BASE_DIR / "bench" / "results" / "router"))
        ev.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples")

    def rows(self, source: str, data: str, limit: int):
        try:
            rows = load(source, Path(data))
        except DataError as exc:
            raise CommandError(str(exc)) from None
        return rows[:limit] if limit else rows

    def handle(self, *args, action: str, **options):
        if action == "register":
            path = Path(options["file"])
            self.register(path.read_bytes() if path.is_file() else b"", str(path))
            return
        self.run(action, **options)

    def register(self, raw: bytes, where: str):
        if not raw:
            raise CommandError(f"{where}: no such file, or empty")
        try:
            router = registry.do_register_router(raw, actor=None)
        except ServiceError as exc:
            raise CommandError(f"{where}: {exc.message}") from None
        self.stdout.write(
            f"Registered router {router.version} ({router.kind}, sha256 {router.sha256[:12]}...); "
            f'name it in a routing section: {{"mode": "{router.kind}", "router": '
            f'"{router.version}", "endpoint": "<cloud endpoint>", "target_cloud_share": 0.2}}'
        )

    def run(
        self,
        action: str,
        *,
        bench: str,
        kind: str,
        data: str,
        bits: int,
        c: float | None,
        norm: str,
        limit: int,
        **options,
    ):
        if not 8 <= bits <= 24:
            raise CommandError("--bits must be between 8 and 24")
        if c is not None and c <= 0:
            raise CommandError("--c must be positive")
        options["norm"] = "" if norm == "none" else norm
        c = router_train.DEFAULT_C[options["norm"]] if c is None else c
        rows = self.rows(bench, data, limit)
        if kind == "cascade" and not any(r.weak_response for r in rows):
            raise CommandError(
                f"{bench} has no local answers (weak_response): a cascade needs them"
            )
        if action == "train":
            self.train(rows, bench, kind, bits, c, options)
        else:
            self.evaluate(rows, bench, kind, bits, c, data, limit, options)

    def train(self, rows, bench, kind, bits, c, options):
        if len(rows) < 20:
            raise CommandError(f"{len(rows)} rows is too few to train on (20 at least)")
        norm = options["norm"]
        scorer = router_train.fit(rows, kind=kind, bits=bits, c=c, norm=norm)
        weak = [r.weak for r in rows]
        strong = [r.strong for r in rows]
        held_out = router_train.crossfit(rows, kind=kind, bits=bits, c=c, norm=norm)
        router_train.calibrate(scorer, held_out, weak, strong)
        scorer.version = options["version"] or f"{kind}-{router_train.fingerprint(rows)}"
        scorer.meta = {"trained_on": str(bench), "rows": len(rows), "c": c, "norm": norm}
        raw = scorer.to_bytes()
        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(raw)
        sig = out.with_name(out.name + ".sig")
        sig.write_text(signing.sign(raw) + "\n")
        self.stdout.write(
            f"Wrote {out} ({len(raw) // 1024} KiB, version {scorer.version}) and its signature "
            f"{sig}; score for a 20% cloud share: {scorer.threshold_for_share(0.2):.4f}"
        )
        if options["register"]:
            self.register(raw, str(out))

    def evaluate(self, rows, bench, kind, bits, c, data, limit, options):
        train_rows = None
        name = f"{Path(bench).stem}-{kind}"
        if options["train_on"]:
            train_rows = self.rows(options["train_on"], data, limit)
            name = f"{Path(bench).stem}-{kind}-trained-on-{Path(options['train_on']).stem}"
        if not options["norm"]:
            name += "-counts"
        if len(rows) < 2 * router_train.FOLDS:
            raise CommandError(f"{len(rows)} rows is too few to evaluate")
        report = router_train.evaluate(
            name,
            rows,
            kind=kind,
            train_rows=train_rows,
            bits=bits,
            c=c,
            norm=options["norm"],
            rounds=options["rounds"],
        )
        paths = router_train.write_report(report, Path(options["out"]))
        self.stdout.write(
            f"{report['name']}: {report['rows']} held-out queries ({report['held_out']}); "
            f"weak {report['weak_quality']:.3f}, strong {report['strong_quality']:.3f}"
        )
        self.stdout.write(
            f"{'router':28} {'APGR':>16} {'CPT(20%)':>9} {'CPT(50%)':>17} "
            f"{'CPT(80%)':>9} {'95% of strong':>13}"
        )
        for label, r in report["routers"].items():
            ci = r["ci95"]
            self.stdout.write(
                f"{label:28} {r['apgr']:6.3f} [{ci['apgr'][0]:.2f}-{ci['apgr'][1]:.2f}] "
                f"{r['cpt20']:9.1%} {r['cpt50']:7.1%} [{ci['cpt50'][0]:.0%}-{ci['cpt50'][1]:.0%}] "
                f"{r['cpt80']:9.1%} {r['share_for_95pct_strong']:13.1%}"
            )
        self.stdout.write("Wrote " + ", ".join(str(p) for p in paths))
