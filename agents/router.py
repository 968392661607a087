"""The node's router: for each request, answer locally or escalate to the cloud, and say why.

In order (docs/routing.md):
1. policy: routing mode "local" (or no endpoint) keeps it local; in a HIPAA fleet a question with
   PHI stays local; no connectivity, or a budget the relay said is exhausted, keeps it local with a
   marker in the answer;
2. "query" mode: the learned score of the question (wire/scoring.py) against the threshold;
3. "cascade" mode: the node answers locally first, then scores the question with the answer and
   escalates when it looks unreliable (the escalated query pays for both answers).

The threshold is the routing section's `threshold`, else the score that sends its
`target_cloud_share` of queries, else the share that reaches its `target_quality`, from the
router's held-out calibration; with none of them, escalate when the expected gain is positive.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wire import phi, schemas
from wire.scoring import RouterError, Scorer

BUDGET_BACKOFF_S = 300.0  # after the relay says a budget is exhausted, stay local this long


@dataclass
class Decision:
    route: str  # "local" or "cloud"
    rule: str  # mode, phi, offline, budget, no-router, score, cascade, logprob, fallback
    score: float | None = None
    threshold: float | None = None
    note: str = ""  # why a request that might have gone to the cloud was answered here

    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


class Router:
    def __init__(
        self,
        policy: schemas.RoutingPolicy,
        scorer: Scorer | None,
        error: str = "",
    ):
        self.policy = policy
        self.scorer = scorer
        self.error = error
        self.budget_blocked_until = 0.0

    @property
    def endpoint(self) -> str:
        return self.policy.endpoint or ""

    def threshold(self) -> float:
        p, s = self.policy, self.scorer
        if p.threshold is not None:
            return p.threshold
        if s is not None and p.target_cloud_share is not None:
            return s.threshold_for_share(p.target_cloud_share)
        if s is not None and p.target_quality is not None:
            return s.threshold_for_share(s.share_for_quality(p.target_quality))
        return 0.0

    def before(
        self, question: str, *, online: bool, compliance: schemas.CompliancePolicy
    ) -> Decision | None:
        """The decision before answering, or None: answer locally, then ask `after` (cascade)."""
        if self.policy.mode == "local" or not self.endpoint:
            return Decision("local", "mode")
        if compliance.mode == schemas.ComplianceMode.HIPAA:
            try:
                if phi.detect(question):
                    return Decision("local", "phi", note="kept local: the request contains PHI")
            except phi.DetectionError as exc:  # fail closed
                return Decision("local", "phi", note=f"kept local: {exc}")
        if not online:
            return Decision("local", "offline", note="answered locally: the cloud is unreachable")
        if time.monotonic() < self.budget_blocked_until:
            return Decision(
                "local", "budget", note="answered locally: the fleet's cloud budget is exhausted"
            )
        if self.scorer is None:
            why = self.error or "no router is assigned"
            return Decision("local", "no-router", note=f"answered locally: {why}")
        if self.policy.mode == "cascade":
            return None
        return self._judge(self.scorer.score(question), "score")

    @property
    def wants_logprobs(self) -> bool:
        return self.policy.mode == "cascade" and self.policy.min_logprob is not None

    def after(self, question: str, answer: str, logprob: float | None = None) -> Decision:
        """A cascade's decision on the local answer: the model's own confidence first (its mean
        token log-probability against `min_logprob`), then the scorer."""
        assert self.scorer is not None
        floor = self.policy.min_logprob
        if floor is not None and logprob is not None and logprob < floor:
            return Decision("cloud", "logprob", round(logprob, 4), floor)
        return self._judge(self.scorer.score(question, answer), "cascade")

    def _judge(self, score: float, rule: str) -> Decision:
        threshold = self.threshold()
        route = "cloud" if score > threshold else "local"
        return Decision(route, rule, round(score, 4), round(threshold, 4))

    def budget_exhausted(self) -> None:
        self.budget_blocked_until = time.monotonic() + BUDGET_BACKOFF_S


def load_scorer(ref: schemas.RouterRef, cache: Path, fetch, public_pem: str) -> Scorer:
    """The router `ref` names, from the cache or fetched (`fetch(url) -> bytes`), checked against
    its sha256 and the signature in the desired state with the pinned key. Raises RouterError."""
    path = cache / f"{ref.sha256}.json"
    raw = path.read_bytes() if path.exists() else fetch(ref.url)
    if hashlib.sha256(raw).hexdigest() != ref.sha256:
        raise RouterError(f"router {ref.version}: the download does not match its sha256")
    scorer = Scorer.from_artifact(raw, ref.signature, public_pem)
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    return scorer
