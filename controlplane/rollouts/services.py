"""Staged rollouts of a model to a fleet's nodes, gated on what the nodes report.

A rollout covers the fleet's nodes matching its selector, ordered by name, split into cumulative
waves: `waves` lists how many nodes have the new model once each wave has started, as counts or
percentages ([1, "25%", "100%"]: one canary node, then a quarter of them, then all). Each wave is
observed for `wave_wait_s` and must pass every gate, against a baseline measured on the same nodes
over the hour before the rollout started:

- load failures: nodes of the wave that reported a failed apply or a refused model, or had not
  applied the new model by the end of the window (at most `max_load_failures`, default 0);
- error rate (metric request.error): at most the baseline plus `max_error_rate_increase` (0.05);
- p95 latency (request.latency_ms): at most the baseline times `max_p95_ratio` (1.5), when the
  baseline has samples;
- escalation rate (request.escalated): at most the baseline plus `max_escalation_rate_increase`
  (0.10).

A failing gate halts the rollout at once and rolls the updated nodes back to their layers' model,
the digest they ran before. Passing the last wave writes the model into the rollout's layer. Admins
can pause, resume and abort (abort rolls back). Every step is an audit record. Gates are evaluated
by a django-tasks task that re-schedules itself while the rollout runs; `maintain` re-checks too.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Avg, Count
from django.utils import timezone
from django_tasks import task
from pydantic import ValidationError

from controlplane.audit.services import record
from controlplane.errors import Conflict, ServiceError
from controlplane.events import publish_on_commit
from controlplane.nodes import desired_state
from controlplane.nodes.layers import do_put_layer
from controlplane.nodes.models import (
    ACTIVE_ROLLOUT,
    DesiredStateLayer,
    Fleet,
    MetricSample,
    Node,
    NodeEventRecord,
    Rollout,
    RolloutNode,
    RolloutNodeState,
    RolloutStatus,
    labels_match,
)
from wire import schemas

DEFAULT_GATES: dict[str, float] = {
    "max_load_failures": 0,
    "max_error_rate_increase": 0.05,
    "max_p95_ratio": 1.5,
    "max_escalation_rate_increase": 0.10,
}
BASELINE_WINDOW = timedelta(hours=1)
CHECK_EVERY_S = 15
LOAD_FAILURE_EVENTS = ("apply.failed", "model.refused")


def wave_sizes(waves: list[int | str], total: int) -> list[int]:
    """Cumulative node counts per wave; the last wave always reaches every node."""
    sizes: list[int] = []
    for spec in waves:
        if isinstance(spec, str) and spec.endswith("%"):
            n = math.ceil(total * float(spec[:-1]) / 100)
        else:
            n = int(spec)
        n = min(max(n, 1), total)
        if not sizes or n > sizes[-1]:
            sizes.append(n)
    if not sizes or sizes[-1] < total:
        sizes.append(total)
    return sizes


def _snapshot(r: Rollout) -> dict[str, Any]:
    return {
        "model": r.model,
        "layer": r.layer,
        "selector": r.selector,
        "waves": r.waves,
        "gates": r.gates,
        "wave_wait_s": r.wave_wait_s,
        "status": r.status,
        "current_wave": r.current_wave,
    }


def measure(node_ids: list[Any], since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """Requests, error rate, p95 latency and escalation rate of `node_ids` in [since, until)."""
    samples = MetricSample.objects.filter(node_id__in=node_ids, ts__gte=since)
    if until is not None:
        samples = samples.filter(ts__lt=until)
    rates = {
        row["name"]: (row["n"], row["mean"])
        for row in samples.filter(name__in=["request.error", "request.escalated"])
        .values("name")
        .annotate(n=Count("id"), mean=Avg("value"))
    }
    latencies = sorted(
        samples.filter(name="request.latency_ms").values_list("value", flat=True)[:100_000]
    )
    p95 = (
        latencies[min(len(latencies) - 1, math.ceil(len(latencies) * 0.95) - 1)]
        if latencies
        else None
    )
    return {
        "requests": len(latencies),
        "error_rate": rates.get("request.error", (0, 0.0))[1] or 0.0,
        "p95_ms": p95,
        "escalation_rate": rates.get("request.escalated", (0, 0.0))[1] or 0.0,
    }


def _schedule(rollout: Rollout, at: datetime | None = None) -> None:
    at = at or timezone.now() + timedelta(seconds=min(CHECK_EVERY_S, rollout.wave_wait_s))
    transaction.on_commit(lambda: check_rollout.using(run_after=at).enqueue(rollout.pk))


def _start_wave(rollout: Rollout, wave: int) -> int:
    """Move the nodes of `wave` onto the rollout's model; returns how many documents changed."""
    targets = list(
        RolloutNode.objects.filter(rollout=rollout, wave=wave, state=RolloutNodeState.WAITING)
    )
    RolloutNode.objects.filter(pk__in=[t.pk for t in targets]).update(
        state=RolloutNodeState.UPDATED
    )
    nodes = {n.pk: n for n in Node.objects.filter(pk__in=[t.node_id for t in targets])}
    changed = desired_state.refresh(rollout.fleet, list(nodes.values()))  # bumps revisions in place
    for t in targets:
        t.state = RolloutNodeState.UPDATED
        t.target_revision = nodes[t.node_id].desired_revision
    RolloutNode.objects.bulk_update(targets, ["target_revision"])
    rollout.current_wave = wave
    rollout.wave_started_at = timezone.now()
    return len(changed)


def _roll_back(rollout: Rollout) -> int:
    """Every updated node goes back to its layers' model; returns how many documents changed."""
    ids = list(
        RolloutNode.objects.filter(rollout=rollout, state=RolloutNodeState.UPDATED).values_list(
            "node_id", flat=True
        )
    )
    RolloutNode.objects.filter(rollout=rollout, node_id__in=ids).update(
        state=RolloutNodeState.ROLLED_BACK
    )
    rollout.save()
    return len(desired_state.refresh(rollout.fleet, list(Node.objects.filter(pk__in=ids))))


@transaction.atomic
def do_start_rollout(
    fleet: Fleet,
    *,
    actor,
    model: dict[str, Any],
    layer: str = "model",
    selector: dict[str, str] | None = None,
    waves: list[int | str] | None = None,
    gates: dict[str, float] | None = None,
    wave_wait_s: int = 300,
    request=None,
) -> Rollout:
    fleet = Fleet.objects.select_for_update().get(pk=fleet.pk)
    if Rollout.objects.filter(fleet=fleet, status__in=ACTIVE_ROLLOUT).exists():
        raise Conflict(
            f"fleet '{fleet.slug}' already has a rollout in progress; finish or abort it"
        )
    try:
        schemas.ModelAssignment.model_validate(model)
    except ValidationError as exc:
        raise ServiceError(f"invalid model: {schemas.first_error(exc)}") from None
    selector = selector or {}
    nodes = sorted(
        (
            n
            for n in fleet.nodes.only("id", "name", "labels", "reported_model_digest")
            if labels_match(n.labels, selector)
        ),
        key=lambda n: (n.name, str(n.pk)),
    )
    if not nodes:
        raise ServiceError("no node of this fleet matches the rollout's selector")
    waves = list(waves or [1, "100%"])
    sizes = wave_sizes(waves, len(nodes))
    gates = {**DEFAULT_GATES, **(gates or {})}
    now = timezone.now()
    rollout = Rollout.objects.create(
        fleet=fleet,
        model=model,
        layer=layer,
        selector=selector,
        waves=waves,
        gates=gates,
        wave_wait_s=wave_wait_s,
        created_by=actor if actor and actor.is_authenticated else None,
        baseline=measure([n.pk for n in nodes], now - BASELINE_WINDOW, now),
    )
    wave_of = [next(w for w, size in enumerate(sizes) if i < size) for i in range(len(nodes))]
    RolloutNode.objects.bulk_create(
        RolloutNode(rollout=rollout, node=n, wave=w, previous_digest=n.reported_model_digest)
        for n, w in zip(nodes, wave_of, strict=True)
    )
    changed = _start_wave(rollout, 0)
    rollout.save()
    record(
        "rollout.start",
        rollout,
        user=actor,
        fleet=fleet,
        request=request,
        after={
            **_snapshot(rollout),
            "nodes": len(nodes),
            "wave_sizes": sizes,
            "baseline": rollout.baseline,
        },
    )
    publish_on_commit(
        fleet.pk,
        "rollout.changed",
        rollout=rollout.pk,
        status=rollout.status,
        wave=0,
        nodes_changed=changed,
    )
    _schedule(rollout)
    return rollout


def _locked(rollout: Rollout) -> Rollout:
    return Rollout.objects.select_for_update().select_related("fleet").get(pk=rollout.pk)


@transaction.atomic
def do_pause_rollout(rollout: Rollout, *, actor, request=None) -> Rollout:
    rollout = _locked(rollout)
    if rollout.status != RolloutStatus.RUNNING:
        raise Conflict(f"rollout {rollout.pk} is {rollout.status}, not running")
    rollout.status = RolloutStatus.PAUSED
    rollout.save(update_fields=["status"])
    record(
        "rollout.pause",
        rollout,
        user=actor,
        fleet=rollout.fleet,
        request=request,
        after={"wave": rollout.current_wave},
    )
    publish_on_commit(
        rollout.fleet_id, "rollout.changed", rollout=rollout.pk, status=rollout.status
    )
    return rollout


@transaction.atomic
def do_resume_rollout(rollout: Rollout, *, actor, request=None) -> Rollout:
    """Resume a paused rollout: the current wave is observed for a full window again."""
    rollout = _locked(rollout)
    if rollout.status != RolloutStatus.PAUSED:
        raise Conflict(f"rollout {rollout.pk} is {rollout.status}, not paused")
    rollout.status = RolloutStatus.RUNNING
    rollout.wave_started_at = timezone.now()
    rollout.save(update_fields=["status", "wave_started_at"])
    record(
        "rollout.resume",
        rollout,
        user=actor,
        fleet=rollout.fleet,
        request=request,
        after={"wave": rollout.current_wave},
    )
    publish_on_commit(
        rollout.fleet_id, "rollout.changed", rollout=rollout.pk, status=rollout.status
    )
    _schedule(rollout)
    return rollout


@transaction.atomic
def do_abort_rollout(rollout: Rollout, *, actor, request=None) -> Rollout:
    """Stop the rollout and roll every updated node back to the model it ran before."""
    rollout = _locked(rollout)
    if rollout.status not in ACTIVE_ROLLOUT:
        raise Conflict(f"rollout {rollout.pk} is already {rollout.status}")
    rollout.status = RolloutStatus.ABORTED
    rollout.reason = "aborted by an admin"
    rollout.finished_at = timezone.now()
    changed = _roll_back(rollout)
    record(
        "rollout.abort",
        rollout,
        user=actor,
        fleet=rollout.fleet,
        request=request,
        after={"wave": rollout.current_wave, "nodes_rolled_back": changed},
    )
    publish_on_commit(
        rollout.fleet_id,
        "rollout.changed",
        rollout=rollout.pk,
        status=rollout.status,
        nodes_changed=changed,
    )
    return rollout


def _load_failures(rollout: Rollout, targets: list[RolloutNode], window_over: bool) -> list[str]:
    since = rollout.wave_started_at
    nodes = {n.pk: n for n in Node.objects.filter(pk__in=[t.node_id for t in targets])}
    failed: dict[Any, str] = {}
    for node_id, kind, data in NodeEventRecord.objects.filter(
        node_id__in=nodes, kind__in=LOAD_FAILURE_EVENTS, ts__gte=since
    ).values_list("node_id", "kind", "data"):
        failed.setdefault(
            node_id, f"{kind}: {data.get('reason') or data.get('error') or ''}".strip()
        )
    for t in targets:
        node = nodes[t.node_id]
        applied = (node.reported_revision or 0) >= (t.target_revision or 0)
        if node.reported_health == "error" and node.reported_at and node.reported_at >= since:
            failed.setdefault(t.node_id, "reports errors: " + "; ".join(node.reported_errors[:1]))
        elif window_over and not applied:
            failed.setdefault(
                t.node_id, f"had not applied revision {t.target_revision} by the end of the window"
            )
    return [f"{nodes[k].name}: {v}"[:300] for k, v in failed.items()]


def judge(rollout: Rollout, now: datetime | None = None) -> dict[str, Any]:
    """Evaluate the gates for the waves started so far. Returns {verdict: pass|fail|wait, ...}."""
    now = now or timezone.now()
    gates = rollout.gates
    targets = list(RolloutNode.objects.filter(rollout=rollout, state=RolloutNodeState.UPDATED))
    window_over = now >= rollout.wave_started_at + timedelta(seconds=rollout.wave_wait_s)
    failures: list[str] = []
    load = _load_failures(rollout, targets, window_over)
    if len(load) > gates["max_load_failures"]:
        failures.append(f"{len(load)} load failure(s): " + "; ".join(load[:3]))
    seen = measure([t.node_id for t in targets], rollout.wave_started_at)
    base = rollout.baseline
    if seen["error_rate"] > (base.get("error_rate") or 0.0) + gates["max_error_rate_increase"]:
        failures.append(
            f"error rate {seen['error_rate']:.3f} against a baseline of "
            f"{base.get('error_rate') or 0:.3f}"
        )
    if (
        base.get("p95_ms")
        and seen["p95_ms"]
        and seen["p95_ms"] > base["p95_ms"] * gates["max_p95_ratio"]
    ):
        failures.append(
            f"p95 latency {seen['p95_ms']:.0f} ms against a baseline of "
            f"{base['p95_ms']:.0f} ms (limit x{gates['max_p95_ratio']})"
        )
    if (
        seen["escalation_rate"]
        > (base.get("escalation_rate") or 0.0) + gates["max_escalation_rate_increase"]
    ):
        failures.append(
            f"escalation rate {seen['escalation_rate']:.3f} against a baseline of "
            f"{base.get('escalation_rate') or 0:.3f}"
        )
    verdict = "fail" if failures else ("pass" if window_over else "wait")
    return {
        "verdict": verdict,
        "at": now.isoformat(),
        "wave": rollout.current_wave,
        "observed": seen,
        "load_failures": load,
        "failures": failures,
    }


@transaction.atomic
def do_check_rollout(rollout: Rollout, now: datetime | None = None) -> Rollout:
    """Judge the current wave: halt and roll back, start the next wave, complete, or wait."""
    rollout = _locked(rollout)
    if rollout.status != RolloutStatus.RUNNING:
        return rollout
    check = judge(rollout, now)
    rollout.last_check = check
    fleet = rollout.fleet
    if check["verdict"] == "fail":
        rollout.status = RolloutStatus.HALTED
        rollout.reason = "; ".join(check["failures"])[:2000]
        rollout.finished_at = timezone.now()
        changed = _roll_back(rollout)
        record(
            "rollout.halt",
            rollout,
            fleet=fleet,
            after={
                "wave": rollout.current_wave,
                "reason": rollout.reason,
                "nodes_rolled_back": changed,
                "observed": check["observed"],
            },
        )
    elif check["verdict"] == "pass":
        last = (
            RolloutNode.objects.filter(rollout=rollout)
            .order_by("-wave")
            .values_list("wave", flat=True)
            .first()
        )
        if rollout.current_wave < (last or 0):
            changed = _start_wave(rollout, rollout.current_wave + 1)
            rollout.save()
            record(
                "rollout.wave",
                rollout,
                fleet=fleet,
                after={
                    "wave": rollout.current_wave,
                    "nodes_changed": changed,
                    "previous_wave": check["observed"],
                },
            )
        else:
            _complete(rollout)
            changed = 0
    else:
        rollout.save(update_fields=["last_check"])
        return rollout
    publish_on_commit(
        fleet.pk,
        "rollout.changed",
        rollout=rollout.pk,
        status=rollout.status,
        wave=rollout.current_wave,
        nodes_changed=changed,
    )
    return rollout


def _complete(rollout: Rollout) -> None:
    rollout.status = RolloutStatus.COMPLETED
    rollout.finished_at = timezone.now()
    rollout.save()
    layer = DesiredStateLayer.objects.filter(fleet=rollout.fleet, name=rollout.layer).first()
    if layer is not None:
        do_put_layer(
            rollout.fleet,
            name=layer.name,
            scope=layer.scope,
            selector=layer.selector,
            node=layer.node,
            priority=layer.priority,
            sections={**layer.sections, "model": rollout.model},
            actor=None,
        )
    else:
        do_put_layer(
            rollout.fleet,
            name=rollout.layer,
            scope="label" if rollout.selector else "fleet",
            selector=rollout.selector,
            sections={"model": rollout.model},
            actor=None,
        )
    record(
        "rollout.complete",
        rollout,
        fleet=rollout.fleet,
        after={"layer": rollout.layer, "model": rollout.model},
    )


def check_running(now: datetime | None = None) -> int:
    """Check every running rollout (the backstop `maintain` runs); returns how many."""
    ids = list(Rollout.objects.filter(status=RolloutStatus.RUNNING).values_list("pk", flat=True))
    for pk in ids:
        do_check_rollout(Rollout(pk=pk), now)
    return len(ids)


@task()
def check_rollout(rollout_id: int) -> str:
    """Check a rollout, then check it again shortly while it runs (a chain of one task at a time;
    pausing ends the chain and resuming starts a new one)."""
    rollout = Rollout.objects.filter(pk=rollout_id).first()
    if rollout is None:
        return "gone"
    with transaction.atomic():
        rollout = do_check_rollout(rollout)
        if rollout.status == RolloutStatus.RUNNING:
            _schedule(rollout)
    return rollout.status
