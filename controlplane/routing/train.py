"""Training and held-out evaluation of the router (`manage.py router train|eval`).

The router scores a query by P(cloud answers well) - P(local answers well), two L2-regularised
logistic regressions over `wire.scoring.features` (a cascade's local head also reads the local
answer). Evaluation never scores a query with a model that saw it: within one table every score
comes from 5-fold cross-fitting; across tables the model trains on one and scores the other.
Each report holds the learned router beside a random router, an oracle and simple baselines
(question length; the per-group average gain where the table has groups, e.g. MMLU subjects),
with 95% bootstrap intervals.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.routing import metrics
from controlplane.routing.data import Row
from wire.scoring import Head, Scorer, answer_features, features

DEFAULT_BITS = 18
NORM = "l2"
# Inverse L2 strength that cross-validated best per feature norm (docs/routing.md).
DEFAULT_C = {"l2": 1.0, "": 0.02}
FOLDS = 5


def _sparse(lists: list[list[int]], bits: int):
    from scipy.sparse import csr_matrix  # training only: nodes never import scipy

    indices = [i for f in lists for i in f]
    pointers = np.cumsum([0] + [len(f) for f in lists])
    x = csr_matrix(
        (np.ones(len(indices), dtype=np.float64), indices, pointers),
        shape=(len(lists), 1 << bits),
    )
    x.sum_duplicates()
    return x


def matrix(rows: Sequence[Row], bits: int, *, answer: bool, norm: str = NORM):
    """The features wire.scoring.Head reads, one row per query: with `norm` "l2" the words
    (query, and the answer's when `answer`) once each, L2-normalised, plus the answer's signals
    with weight 1; without it every occurrence counts 1."""
    words = []
    signals = []
    for r in rows:
        f = features(r.prompt, bits)
        if answer:
            f += features(r.weak_response, bits, prefix="a:")
            signals.append(answer_features(r.weak_response, bits, r.prompt if norm else None))
        words.append(f)
    x = _sparse(words, bits)
    if norm:
        from sklearn.preprocessing import normalize

        x.data[:] = 1.0
        x = normalize(x)
    if answer:
        x = (x + _sparse(signals, bits)).tocsr()
    return x


def _head(x, y: np.ndarray, c: float, *, answer: bool) -> Head:
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():  # every answer good (or bad): a constant head
        p = min(max(float(y.mean()), 1e-3), 1 - 1e-3)
        return Head(bias=float(np.log(p / (1 - p))), weights={}, answer=answer)
    model = LogisticRegression(C=c, max_iter=3000).fit(x, y)
    coef = model.coef_[0]
    nonzero = np.flatnonzero(np.abs(coef) > 1e-6)
    return Head(
        bias=float(model.intercept_[0]),
        weights={int(i): float(coef[i]) for i in nonzero},
        answer=answer,
    )


def _labels(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    weak = np.array([r.weak for r in rows])
    strong = np.array([r.strong for r in rows])
    return weak, strong


def fit(
    rows: Sequence[Row],
    *,
    kind: str,
    bits: int = DEFAULT_BITS,
    c: float | None = None,
    norm: str = NORM,
) -> Scorer:
    """Both heads on all of `rows` (quality >= 0.5 counts as a good answer)."""
    cascade = kind == "cascade"
    if cascade and not any(r.weak_response for r in rows):
        raise ValueError("a cascade router needs the local model's answers (weak_response)")
    c = DEFAULT_C[norm] if c is None else c
    weak, strong = _labels(rows)
    xq = matrix(rows, bits, answer=False, norm=norm)
    xa = matrix(rows, bits, answer=True, norm=norm) if cascade else xq
    return Scorer(
        kind=kind,
        bits=bits,
        strong=_head(xq, (strong >= 0.5).astype(int), c, answer=False),
        weak=_head(xa, (weak >= 0.5).astype(int), c, answer=cascade),
        norm=norm,
    )


def score(scorer: Scorer, rows: Sequence[Row]) -> np.ndarray:
    return np.array([scorer.score(r.prompt, r.weak_response) for r in rows])


def crossfit(
    rows: Sequence[Row],
    *,
    kind: str,
    bits: int = DEFAULT_BITS,
    c: float | None = None,
    norm: str = NORM,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold scores: each row scored by a router trained on the other folds."""
    order = np.random.default_rng(seed).permutation(len(rows))
    out = np.zeros(len(rows))
    for fold in np.array_split(order, FOLDS):
        held = set(fold.tolist())
        train = [r for i, r in enumerate(rows) if i not in held]
        scorer = fit(train, kind=kind, bits=bits, c=c, norm=norm)
        out[fold] = score(scorer, [rows[i] for i in fold])
    return out


def calibrate(scorer: Scorer, held_out_scores: np.ndarray, weak, strong) -> None:
    """Quantiles and the PGR curve at shares 0..100%, from held-out scores."""
    ordered = np.sort(held_out_scores)[::-1]
    n = len(ordered)
    scorer.quantiles = [
        float(ordered[min(int(round(p / 100 * n)), n - 1)]) if p < 100 else float(ordered[-1])
        for p in range(101)
    ]
    c = metrics.curve(held_out_scores, weak, strong)
    scorer.pgr = [float(c.pgr[int(round(p / 100 * n))]) for p in range(101)]


def baselines(train: Sequence[Row], test: Sequence[Row]) -> dict[str, np.ndarray]:
    weak, strong = _labels(test)
    out = {
        "random": np.zeros(len(test)),
        "oracle": strong - weak,
        "question length": np.array([len(r.prompt) for r in test], dtype=float),
    }
    groups = {r.group for r in train}
    if len(groups) > 1 and any(r.group in groups for r in test):
        gains: dict[str, list[float]] = defaultdict(list)
        for r in train:
            gains[r.group].append(r.strong - r.weak)
        mean = {g: float(np.mean(v)) for g, v in gains.items()}
        overall = float(np.mean([r.strong - r.weak for r in train]))
        out["per-group average"] = np.array([mean.get(r.group, overall) for r in test])
    return out


def _crossfit_group_average(rows: Sequence[Row], seed: int = 0) -> np.ndarray | None:
    if len({r.group for r in rows}) < 2:
        return None
    order = np.random.default_rng(seed).permutation(len(rows))
    out = np.zeros(len(rows))
    for fold in np.array_split(order, FOLDS):
        held = set(fold.tolist())
        train = [r for i, r in enumerate(rows) if i not in held]
        out[fold] = baselines(train, [rows[i] for i in fold])["per-group average"]
    return out


def evaluate(
    name: str,
    rows: Sequence[Row],
    *,
    kind: str,
    train_rows: Sequence[Row] | None = None,
    bits: int = DEFAULT_BITS,
    c: float | None = None,
    norm: str = NORM,
    rounds: int = 1000,
) -> dict[str, Any]:
    """Held-out figures of the learned router and the baselines on `rows`. Without `train_rows`
    the learned router is cross-fitted on `rows`; with them it trains there and scores `rows`."""
    weak, strong = _labels(rows)
    started = time.perf_counter()
    if train_rows is None:
        learned = crossfit(rows, kind=kind, bits=bits, c=c, norm=norm)
        routers = baselines(rows, rows)
        routers.pop("per-group average", None)
        group = _crossfit_group_average(rows)
        if group is not None:
            routers["per-group average"] = group
    else:
        learned = score(fit(train_rows, kind=kind, bits=bits, c=c, norm=norm), rows)
        routers = baselines(train_rows, rows)
    label = f"learned ({kind}{'' if norm else ', counts'})"
    routers = {label: learned, **routers}
    report: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "rows": len(rows),
        "weak_quality": float(weak.mean()),
        "strong_quality": float(strong.mean()),
        "held_out": "5-fold cross-fit" if train_rows is None else f"trained on {len(train_rows)}",
        "cascade_cost_note": (
            "a cascade pays the local call for every query and the cloud call for escalated ones"
            if kind == "cascade"
            else ""
        ),
        "routers": {},
        "curves": {},
        "seconds": 0.0,
    }
    for label, scores in routers.items():
        report["routers"][label] = {
            **metrics.summary(scores, weak, strong),
            "ci95": metrics.bootstrap(scores, weak, strong, rounds=rounds),
        }
        c_ = metrics.curve(scores, weak, strong)
        step = max(1, len(c_.share) // 200)
        report["curves"][label] = {
            "share": c_.share[::step].round(4).tolist() + [1.0],
            "quality": c_.quality[::step].round(4).tolist() + [float(c_.quality[-1])],
        }
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """<name>.json (everything), <name>.csv (one row per router) and <name>.png (the curves)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = report["name"].replace(" ", "_").replace("/", "-")
    paths = [out / f"{stem}.{suffix}" for suffix in ("json", "csv", "png")]
    paths[0].write_text(json.dumps(report, indent=1))
    with open(paths[1], "w", newline="") as f:
        w = csv.writer(f)
        keys = ["apgr", "cpt20", "cpt50", "cpt80", "share_for_95pct_strong"]
        w.writerow(
            ["router", *keys, *[f"{k}_ci_low" for k in keys], *[f"{k}_ci_high" for k in keys]]
        )
        for label, r in report["routers"].items():
            w.writerow(
                [
                    label,
                    *[round(r[k], 4) for k in keys],
                    *[round(r["ci95"][k][0], 4) for k in keys],
                    *[round(r["ci95"][k][1], 4) for k in keys],
                ]
            )
    plot(report, paths[2])
    return paths


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, curve in report["curves"].items():
        r = report["routers"][label]
        ax.plot(curve["share"], curve["quality"], label=f"{label} (APGR {r['apgr']:.2f})")
    ax.axhline(report["strong_quality"], color="grey", lw=0.6, ls="--")
    ax.axhline(report["weak_quality"], color="grey", lw=0.6, ls=":")
    ax.set_xlabel("cloud share (fraction of queries sent to the strong model)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{report['name']} ({report['held_out']}, {report['rows']} queries)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fingerprint(rows: Sequence[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.prompt}\x00{r.weak}\x00{r.strong}\n".encode())
    return h.hexdigest()[:16]
