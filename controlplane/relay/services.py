"""Escalation of a hard request from a node to a cloud LLM, through the control plane: the rules.

The relay (relay.py, async) asks `plan` which endpoints may take a request, tries them in order,
and writes what happened with `record_forward`, `record_failure` or `record_refusal`:

- the fleet's compliance policy is applied again (the node applied it already): allow-list, GDPR
  regions, HIPAA business associate agreements and PHI redaction or refusal;
- then its budgets (wire.schemas.CloudBudgets), per fleet and per node, per day and month, in
  dollars and tokens, re-checked for every fallback target at that endpoint's prices. A request
  is refused when its estimate (prompt characters / 4 plus max_tokens) would take usage past a
  limit, and carries a warning once usage reaches the soft fraction of one;
- every outcome is an audit record (with its cost when forwarded), and CloudUsage counts it.

API keys (from an environment variable or a secret file) never leave the control plane. The audit
record says who escalated what kind of request where, and what was redacted, never the content.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from pydantic import ValidationError

from controlplane.audit.services import record
from controlplane.errors import Forbidden, ServiceError
from controlplane.events import publish_on_commit
from controlplane.nodes.models import CloudUsage, Fleet, Node
from controlplane.relay import queries as relay_queries
from wire import compliance, phi, schemas


class UpstreamError(ServiceError):
    status = 502


class BudgetExhausted(ServiceError):
    """Every endpoint the request could go to is past a budget: the node stays local a while."""

    status = 429
    code = "budget_exhausted"


class PhiForbidden(Forbidden):
    """HIPAA: PHI found by the second pass, or detection could not run; the node answers locally."""

    code = "phi_refused"


@dataclass
class Target:
    endpoint: schemas.CloudEndpoint
    messages: list[dict[str, Any]]
    redactions: dict[str, int] = field(default_factory=dict)
    warning: str = ""


@dataclass
class Plan:
    targets: list[Target]
    skipped: list[str]  # why endpoints of the chain were passed over


def chain(policy: schemas.CompliancePolicy, name: str) -> list[schemas.CloudEndpoint]:
    """The endpoint `name` and its fallbacks, in order (ComplianceSettings forbids loops)."""
    out: list[schemas.CloudEndpoint] = []
    endpoint = policy.endpoint(name)
    while endpoint is not None and endpoint not in out:
        out.append(endpoint)
        endpoint = policy.endpoint(endpoint.fallback) if endpoint.fallback else None
    return out


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(math.ceil(len(str(m.get("content", ""))) / 4) + 4 for m in messages)


def cost(endpoint: schemas.CloudEndpoint, prompt_tokens: int, completion_tokens: int) -> float:
    return (
        prompt_tokens / 1000 * endpoint.price_in_per_1k
        + completion_tokens / 1000 * endpoint.price_out_per_1k
    )


def _label(key: str) -> str:
    scope, period, unit = key.split("_")
    what = "$" if unit == "usd" else "token"
    return f"{scope} {'daily' if period == 'day' else 'monthly'} {what} budget"


def budget_verdict(
    budgets: schemas.CloudBudgets, used: dict[str, float], usd: float, tokens: int
) -> tuple[str, str]:
    """(refusal, warning): why the request would break a hard limit, or that it nears one."""
    refusal = warning = ""
    for key, limit in budgets.model_dump(exclude={"soft_fraction"}).items():
        if limit is None:
            continue
        after = used[key] + (usd if key.endswith("usd") else tokens)
        shown = f"{used[key]:.4g} of {limit:.4g}"
        if after > limit and not refusal:
            refusal = f"the {_label(key)} is exhausted ({shown} used)"
        elif after >= budgets.soft_fraction * limit and not warning:
            warning = f"the {_label(key)} is {used[key] / limit:.0%} used ({shown})"
    return refusal, warning


def plan(
    node: Node,
    name: str,
    messages: list[dict[str, Any]],
    *,
    agent: str,
    max_tokens: int,
    declared: dict[str, int] | None = None,
) -> Plan:
    """The endpoints that may take this request, in order, each with the messages policy lets go
    there. Raises Forbidden when policy refuses the requested endpoint itself, BudgetExhausted when
    no endpoint of its chain fits the budgets. Both are audited. `declared`: what the node says it
    redacted; where it differs from the placeholders received, a `phi.mismatch` record says so."""
    fleet = node.fleet
    policy = fleet.compliance_policy()
    endpoints = chain(policy, name)
    if not endpoints:
        reason = f"cloud endpoint '{name}' is not on this fleet's allow-list"
        record_refusal(node, agent=agent, endpoint=name, reason=reason)
        raise Forbidden(reason)
    used = relay_queries.cloud_usage_so_far(fleet, node)
    budgets = fleet.budgets()
    prompt = estimate_tokens(messages)
    targets, skipped = [], []
    mismatch_recorded = budget_refused = False
    for i, endpoint in enumerate(endpoints):
        try:
            allowed = compliance.check_escalation(policy, endpoint.name, messages)
        except compliance.EscalationRefused as exc:
            record_refusal(node, agent=agent, endpoint=endpoint.name, reason=str(exc))
            if i == 0:
                phi_refused = isinstance(exc, compliance.PhiRefused)
                raise (PhiForbidden if phi_refused else Forbidden)(str(exc)) from None
            skipped.append(f"{endpoint.name}: {exc}")
            continue
        if (declared or {}) != allowed.redactions and not mismatch_recorded:
            record_mismatch(
                node,
                agent=agent,
                endpoint=endpoint.name,
                node_counts=declared or {},
                received=allowed.redactions,
            )
            mismatch_recorded = True
        usd = cost(endpoint, prompt, max_tokens)
        refusal, warning = budget_verdict(budgets, used, usd, prompt + max_tokens)
        if refusal:
            skipped.append(f"{endpoint.name}: {refusal}")
            budget_refused = True
            continue
        targets.append(Target(endpoint, allowed.messages, allowed.redactions, warning))
    if not targets:
        reason = "no cloud endpoint may take this request: " + "; ".join(skipped)
        record_refusal(node, agent=agent, endpoint=name, reason=reason)
        raise (BudgetExhausted if budget_refused else Forbidden)(reason)
    return Plan(targets, skipped)


def api_key(endpoint: schemas.CloudEndpoint) -> str:
    """The endpoint's key: from its secret file, else its environment variable ("unset": none)."""
    if endpoint.api_key_file:
        try:
            return Path(endpoint.api_key_file).read_text().strip() or "unset"
        except OSError as exc:
            raise UpstreamError(
                f"cloud endpoint '{endpoint.name}': its key file cannot be read ({exc.strerror})"
            ) from None
    return os.environ.get(endpoint.api_key_env or "", "") or "unset"


_COUNTERS = ("requests", "failures", "prompt_tokens", "completion_tokens", "cost_usd")
_COUNT_SQL = (
    f"INSERT INTO {CloudUsage._meta.db_table} "
    f"(fleet_id, node_id, agent, endpoint, day, {', '.join(_COUNTERS)}) "
    f"VALUES (%s, %s, %s, %s, %s, {', '.join(['%s'] * len(_COUNTERS))}) "
    "ON CONFLICT (node_id, agent, endpoint, day) DO UPDATE SET "
    + ", ".join(f"{c} = {CloudUsage._meta.db_table}.{c} + excluded.{c}" for c in _COUNTERS)
)


def _count(node: Node, agent: str, endpoint: str, **increments: Any) -> None:
    """Add to the (node, agent, endpoint, day) counters: one upsert statement, atomic under
    concurrent requests on PostgreSQL and SQLite alike."""
    day = connection.ops.adapt_datefield_value(timezone.now().date())
    node_id = Node._meta.pk.get_db_prep_value(node.pk, connection)
    values = [increments.get(c, 0) for c in _COUNTERS]
    with connection.cursor() as cur:
        cur.execute(_COUNT_SQL, [node.fleet_id, node_id, agent, endpoint, day, *values])


@transaction.atomic
def record_forward(
    node: Node,
    *,
    agent: str,
    target: Target,
    prompt_tokens: int,
    completion_tokens: int,
    attempts: int,
    stream: bool,
    fallback_from: str = "",
    request=None,
) -> float:
    """Count and audit one forwarded escalation; returns its cost in US dollars."""
    endpoint = target.endpoint
    usd = cost(endpoint, prompt_tokens, completion_tokens)
    _count(
        node,
        agent,
        endpoint.name,
        requests=1,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=usd,
    )
    record(
        "escalation.forward",
        ("escalation", endpoint.name),
        node=node,
        fleet=node.fleet,
        after={
            "agent": agent,
            "endpoint": endpoint.name,
            "region": endpoint.region,
            "baa": endpoint.baa,
            "redactions": target.redactions,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": round(usd, 6),
            "attempts": attempts,
            "stream": stream,
            **({"fallback_from": fallback_from} if fallback_from else {}),
            **({"budget_warning": target.warning} if target.warning else {}),
        },
        request=request,
    )
    publish_on_commit(node.fleet_id, "cloud.usage", node=str(node.pk))
    return usd


def _audit(action: str, node: Node, endpoint: str, after: dict[str, Any], request=None) -> None:
    record(
        action, ("escalation", endpoint), node=node, fleet=node.fleet, after=after, request=request
    )


@transaction.atomic
def record_failure(
    node: Node, *, agent: str, endpoint: str, error: str, attempts: int, request=None
) -> None:
    _count(node, agent, endpoint, failures=1)
    after = {"agent": agent, "endpoint": endpoint, "error": error, "attempts": attempts}
    _audit("escalation.failed", node, endpoint, after, request)


def record_mismatch(
    node: Node,
    *,
    agent: str,
    endpoint: str,
    node_counts: dict[str, int],
    received: dict[str, int],
    request=None,
) -> None:
    """The node said it redacted other counts than the placeholders the control plane received."""
    after = {"agent": agent, "endpoint": endpoint, "node": node_counts, "received": received}
    _audit("phi.mismatch", node, endpoint, after, request)


def record_refusal(node: Node, *, agent: str, endpoint: str, reason: str, request=None) -> None:
    after = {"agent": agent, "endpoint": endpoint, "reason": reason}
    _audit("escalation.refused", node, endpoint, after, request)


@dataclass
class Preview:
    """What a cloud endpoint without a BAA would receive of `text` from this fleet's nodes."""

    verdict: str  # "as_is" (not HIPAA mode), "redacted", "refused"
    sent: str  # the text as it would leave the node ("" when refused)
    counts: dict[str, int]
    findings: list[tuple[str, str]]  # (kind, the value found), in order
    reason: str = ""


PREVIEW_ENDPOINT = "preview-without-baa"


def redaction_preview(fleet: Fleet, *, text: str) -> Preview:
    """The fleet's PHI rule applied to `text` as a node applies it to a request for an endpoint
    without a business associate agreement: the same detector, the same placeholders. Nothing is
    stored, logged or audited (it is a read of the rule, not a change)."""
    settings = fleet.compliance_settings()
    policy = schemas.CompliancePolicy(
        mode=schemas.ComplianceMode.HIPAA,
        phi_action=settings.phi_action,
        endpoints=[schemas.CloudEndpoint(name=PREVIEW_ENDPOINT, region="any")],
    )
    findings: list[phi.Finding] = []
    try:
        findings = phi.detect(text)
        allowed = compliance.guard_escalation(
            policy, PREVIEW_ENDPOINT, [{"role": "user", "content": text}]
        )
    except (compliance.PhiRefused, phi.DetectionError) as exc:
        reason = str(exc).replace(f"cloud endpoint '{PREVIEW_ENDPOINT}'", "an endpoint")
        kinds = Counter(f.kind for f in findings)
        found = [(f.kind, text[f.start : f.end]) for f in findings]
        return Preview("refused", "", dict(sorted(kinds.items())), found, reason)
    found = [(f.kind, text[f.start : f.end]) for f in findings]
    verdict = "redacted" if settings.mode == schemas.ComplianceMode.HIPAA else "as_is"
    return Preview(verdict, allowed.messages[0]["content"], allowed.redactions, found)


@transaction.atomic
def do_set_cloud_budgets(fleet: Fleet, *, actor, budgets: dict[str, Any], request=None) -> Fleet:
    """Replace a fleet's cloud budgets (every limit; a missing one is no limit). Audited."""
    before = fleet.budgets().model_dump()
    try:
        new = schemas.CloudBudgets.model_validate(budgets)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ServiceError(f"invalid budgets: {where}: {error['msg']}", field=where) from None
    fleet.cloud_budgets = new.model_dump(exclude_none=True)
    fleet.save(update_fields=["cloud_budgets"])
    record(
        "fleet.budgets",
        fleet,
        user=actor,
        fleet=fleet,
        before=before,
        after=new.model_dump(),
        request=request,
    )
    publish_on_commit(fleet.pk, "fleet.updated", slug=fleet.slug)
    return fleet
