"""Quality against cloud share for a router, as RouteLLM's `routellm/evals/evaluate.py` measures it.

A router gives every query a score; the cloud takes the highest-scoring fraction f of the queries
and the local model answers the rest. q(f) is the mean quality of that mix, PGR(f) the share of
the weak-to-strong gap it closes, APGR the area under PGR over f in [0, 1], CPT(x) the smallest
cloud share whose PGR reaches x. Equal scores are averaged over their order: a constant score is
exactly the random router, and its APGR is 0.5.

In a cascade the local model answers every query first, so a query sent to the cloud costs both
calls; `cascade=True` adds the local call's cost to the curve's cost axis (the evaluation reports
both the share of queries escalated and the relative cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Curve:
    share: np.ndarray  # cloud share f, 0 .. 1, n + 1 points
    quality: np.ndarray  # q(f)
    pgr: np.ndarray  # (q - q_weak) / (q_strong - q_weak)


def curve(scores, weak, strong, weights=None) -> Curve:
    """The exact quality curve, routing k = 0..n of the queries, ties averaged."""
    scores = np.asarray(scores, dtype=float)
    weak = np.asarray(weak, dtype=float)
    strong = np.asarray(strong, dtype=float)
    w = np.ones_like(weak) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(-scores, kind="stable")
    s, gain, w = scores[order], (strong - weak)[order] * w[order], w[order]
    # Within a run of equal scores every order is equally likely: spread the run's gain evenly.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    lengths = np.diff(np.r_[starts, len(s)])
    run_gain = np.add.reduceat(gain, starts) if len(s) else gain
    run_w = np.add.reduceat(w, starts) if len(s) else w
    per_weight = np.repeat(run_gain / np.maximum(run_w, 1e-12), lengths)
    total = w.sum()
    routed_w = np.r_[0.0, np.cumsum(w)]
    gained = np.r_[0.0, np.cumsum(per_weight * w)]
    q_weak = float((weak[order] * w).sum() / total)
    q_strong = float((strong[order] * w).sum() / total)
    quality = q_weak + gained / total
    gap = q_strong - q_weak
    pgr = (quality - q_weak) / gap if gap else np.zeros_like(quality)
    return Curve(share=routed_w / total, quality=quality, pgr=pgr)


def apgr(c: Curve) -> float:
    return float(np.trapezoid(c.pgr, c.share))


def cpt(c: Curve, target: float) -> float:
    """The smallest cloud share whose PGR reaches `target` (1.0 when none does)."""
    hit = np.flatnonzero(c.pgr >= target - 1e-12)
    return float(c.share[hit[0]]) if len(hit) else 1.0


def share_for_quality(c: Curve, fraction_of_strong: float) -> float:
    """The smallest cloud share whose quality reaches `fraction_of_strong` of the strong model's."""
    target = fraction_of_strong * c.quality[-1]
    hit = np.flatnonzero(c.quality >= target - 1e-12)
    return float(c.share[hit[0]]) if len(hit) else 1.0


def summary(scores, weak, strong, weights=None) -> dict[str, float]:
    c = curve(scores, weak, strong, weights)
    return {
        "apgr": apgr(c),
        "cpt20": cpt(c, 0.2),
        "cpt50": cpt(c, 0.5),
        "cpt80": cpt(c, 0.8),
        "share_for_95pct_strong": share_for_quality(c, 0.95),
    }


def bootstrap(scores, weak, strong, *, rounds: int = 1000, seed: int = 0) -> dict[str, list]:
    """95% percentile intervals of every summary figure, resampling the queries."""
    rng = np.random.default_rng(seed)
    n = len(weak)
    draws: dict[str, list[float]] = {}
    for _ in range(rounds):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        for key, value in summary(scores, weak, strong, counts).items():
            draws.setdefault(key, []).append(value)
    return {
        k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in draws.items()
    }
