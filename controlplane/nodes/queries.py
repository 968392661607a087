"""Every read of fleets, nodes, tokens, layers, metrics, events, approvals and rollouts.

The admin API's handlers and the dashboard's views both read through here: querysets already
narrowed to what the user may see (controlplane/accounts/access.py), filtered in SQL and ordered,
for `controlplane.pagination` to cut into pages. The access functions (one per object type) answer
NotFound for a missing and a forbidden object alike.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from controlplane.accounts import access
from controlplane.accounts.access import VIEW
from controlplane.errors import NotFound, ServiceError
from controlplane.nodes.desired_state import ordered
from controlplane.nodes.models import (
    ApprovalStatus,
    DesiredStateLayer,
    EnrollmentToken,
    Fleet,
    MetricRollup,
    MetricSample,
    Node,
    NodeEventRecord,
    NodeQuerySet,
    NodeSecret,
    ToolApproval,
)
from controlplane.registry.models import Artifact, RouterArtifact

# --- access: one function per object type ---------------------------------------------------------


def access_node(user, node_id: Any, action: str = VIEW) -> Node:
    try:
        pk = node_id if isinstance(node_id, uuid.UUID) else uuid.UUID(str(node_id))
    except ValueError:
        raise NotFound(f"node '{node_id}' not found") from None
    return access.get(
        Node.objects.select_related("fleet"), user, action, f"node '{node_id}' not found", pk=pk
    )


def access_enrollment_token(user, token_id: int, action: str = VIEW) -> EnrollmentToken:
    return access.get(
        EnrollmentToken.objects.select_related("fleet"),
        user,
        action,
        f"enrollment token {token_id} not found",
        pk=token_id,
    )


def access_layer(user, fleet_slug: str, name: str, action: str = VIEW) -> DesiredStateLayer:
    return access.get(
        DesiredStateLayer.objects.select_related("fleet"),
        user,
        action,
        f"layer '{name}' not found in fleet '{fleet_slug}'",
        fleet__slug=fleet_slug,
        name=name,
    )


def access_secret(user, fleet_slug: str, name: str, action: str = VIEW) -> NodeSecret:
    return access.get(
        NodeSecret.objects.select_related("fleet"),
        user,
        action,
        f"secret '{name}' not found in fleet '{fleet_slug}'",
        fleet__slug=fleet_slug,
        name=name,
    )


def secrets(fleet: Fleet) -> QuerySet[NodeSecret]:
    """Names and versions (the ciphertext is not read)."""
    return fleet.secrets.only("name", "version", "updated_at").order_by("name")


# --- lists ----------------------------------------------------------------------------------------


def fleets(user, action: str = VIEW) -> QuerySet[Fleet]:
    return access.restrict(Fleet.objects.order_by("slug"), user, action)


def parse_label(label: str) -> tuple[str, str]:
    """ "key=value" (the API's schema checks the shape; pages pass what the user typed)."""
    key, sep, value = label.partition("=")
    if not sep or not key:
        raise ServiceError(f"label filter '{label}' is not key=value")
    return key, value


NODE_SORTS = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "fleet": ("fleet__slug", "name", "id"),
    "last_seen": ("last_seen_at", "id"),
    "-last_seen": ("-last_seen_at", "-id"),
    "enrolled": ("enrolled_at", "id"),
    "-enrolled": ("-enrolled_at", "-id"),
}


def nodes(
    user,
    *,
    fleet: str | None = None,
    status: str | None = None,
    label: str | None = None,
    model: str | None = None,
    drifted: bool = False,
    search: str | None = None,
    sort: str = "fleet",
) -> NodeQuerySet:
    """The nodes `user` may see, filtered in SQL: the label as a JSON key lookup that works on
    SQLite and PostgreSQL alike (no scan of every node's labels in Python); `model` a digest
    prefix (reported or desired) or a word of the model choice; `search` part of the name or the
    whole id; `sort` one of NODE_SORTS."""
    qs: NodeQuerySet = access.restrict(Node.objects.select_related("fleet"), user, VIEW)  # type: ignore[assignment]
    if fleet:
        qs = qs.filter(fleet__slug=fleet)
    if status:
        qs = qs.with_status(status)
    if label:
        key, value = parse_label(label)
        qs = qs.alias(_label=KeyTransform(key, "labels")).filter(_label=value)
    if model:
        qs = qs.filter(
            Q(reported_model_digest__startswith=model)
            | Q(desired_model_digest__startswith=model)
            | Q(model_choice__icontains=model)
        )
    if drifted:
        qs = qs.drifted()
    if search:
        try:
            qs = qs.filter(pk=uuid.UUID(search))
        except ValueError:
            qs = qs.filter(name__icontains=search)
    if sort not in NODE_SORTS:
        raise ServiceError(f"unknown sort '{sort}'; one of {', '.join(NODE_SORTS)}", field="sort")
    return qs.order_by(*NODE_SORTS[sort])


def drifted_nodes(user, *, fleet: str | None = None) -> QuerySet[Node]:
    """Nodes whose reported state differs from their desired state (`Node.drift_reason`: why)."""
    qs = access.restrict(Node.objects.select_related("fleet").drifted(), user, VIEW)
    if fleet:
        qs = qs.filter(fleet__slug=fleet)
    return qs.order_by("fleet__slug", "name")


def enrollment_tokens(fleet: Fleet) -> QuerySet[EnrollmentToken]:
    return fleet.enrollment_tokens.select_related("fleet").order_by("-created_at", "-id")


def layers(fleet: Fleet) -> list[DesiredStateLayer]:
    return ordered(fleet.layers.select_related("fleet"))


def node_events(node: Node, *, kind: str | None = None) -> QuerySet[NodeEventRecord]:
    """What the node reported happening, newest first."""
    qs = NodeEventRecord.objects.filter(node=node)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-seq")


def metric_series(
    node: Node,
    name: str,
    *,
    resolution: str = "raw",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 2000,
) -> dict[str, Any]:
    """One metric of one node over time, for charts: raw samples (default: the last hour) or
    per-minute rollups (default: the last 7 days), each point as count/mean/min/max."""
    until = until or timezone.now()
    if resolution == "raw":
        since = since or until - timedelta(hours=1)
        samples = MetricSample.objects.filter(
            node=node, name=name, ts__gte=since, ts__lte=until
        ).order_by("ts")[:limit]
        points = [
            {"ts": r.ts, "count": 1, "mean": r.value, "min": r.value, "max": r.value}
            for r in samples
        ]
    else:
        since = since or until - timedelta(days=7)
        rollups = MetricRollup.objects.filter(
            node=node, name=name, minute__gte=since, minute__lte=until
        ).order_by("minute")[:limit]
        points = [
            {
                "ts": r.minute,
                "count": r.count,
                "mean": r.total / r.count,
                "min": r.min,
                "max": r.max,
            }
            for r in rollups
        ]
    return {"node": node.pk, "name": name, "resolution": resolution, "points": points}


# --- the fleet overview ---------------------------------------------------------------------------

FIGURE_WINDOW = timedelta(minutes=5)


def status_counts(fleets: list[Fleet]) -> dict[int, dict[str, int]]:
    """fleet id -> {online, stale, offline, never, revoked}: one grouped query; the cut-offs
    depend on each fleet's poll interval, as Node.status does, and a revoked node is only that."""
    cfg = settings.EDGEFLEET
    now = timezone.now()
    online, stale = Q(pk__in=[]), Q(pk__in=[])
    for fleet in fleets:
        interval = fleet.effective_poll_interval_s
        online_cut = now - timedelta(seconds=interval * cfg["ONLINE_FACTOR"])
        stale_cut = now - timedelta(seconds=interval * cfg["STALE_FACTOR"])
        online |= Q(fleet_id=fleet.pk, last_seen_at__gte=online_cut, revoked_at__isnull=True)
        stale |= Q(
            fleet_id=fleet.pk,
            last_seen_at__lt=online_cut,
            last_seen_at__gte=stale_cut,
            revoked_at__isnull=True,
        )
    rows = (
        Node.objects.filter(fleet__in=fleets)
        .values("fleet_id")
        .annotate(
            total=Count("id"),
            online=Count("id", filter=online),
            stale=Count("id", filter=stale),
            never=Count("id", filter=Q(last_seen_at__isnull=True, revoked_at__isnull=True)),
            revoked=Count("id", filter=Q(revoked_at__isnull=False)),
        )
    )
    keys = ("online", "stale", "never", "revoked", "total")
    counts = {f.pk: dict.fromkeys((*keys, "offline"), 0) for f in fleets}
    for row in rows:
        got: dict[str, int] = {**row}  # type: ignore[dict-item]
        c = counts[got["fleet_id"]]
        c.update({k: got[k] for k in keys})
        c["offline"] = c["total"] - c["online"] - c["stale"] - c["never"] - c["revoked"]
    return counts


def fleet_figures(fleets: list[Fleet], window: timedelta = FIGURE_WINDOW) -> dict[int, dict]:
    """fleet id -> what its nodes reported over the last `window`: requests/s, tokens/s, the
    local and escalated shares, the error rate, p95 latency and the nodes over their memory
    threshold, each with the alerts its thresholds raise. Aggregated in SQL (a handful of queries,
    whatever the fleet's size)."""
    since = timezone.now() - window
    seconds = window.total_seconds()
    samples = MetricSample.objects.filter(node__fleet__in=fleets, ts__gte=since)
    sums: dict[int, dict[str, tuple[int, float]]] = {f.pk: {} for f in fleets}
    for row in (
        samples.filter(name__in=["request.error", "request.escalated", "request.completion_tokens"])
        .values("node__fleet_id", "name")
        .annotate(n=Count("id"), total=Sum("value"))
    ):
        sums[row["node__fleet_id"]][row["name"]] = (row["n"], row["total"] or 0.0)
    # Pending approvals per node (one query): the caps of services._refuse_if_approvals_full.
    waiting: dict[int, list[tuple[str, int]]] = {f.pk: [] for f in fleets}
    for fleet_id, node_name, n in (
        ToolApproval.objects.filter(
            fleet__in=fleets, decision=ApprovalStatus.PENDING, expires_at__gt=timezone.now()
        )
        .values("fleet_id", "node__name")
        .annotate(n=Count("id"))
        .values_list("fleet_id", "node__name", "n")
    ):
        waiting[fleet_id].append((node_name, n))
    node_cap = settings.EDGEFLEET["MAX_PENDING_APPROVALS_PER_NODE"]
    fleet_cap = settings.EDGEFLEET["MAX_PENDING_APPROVALS_PER_FLEET"]
    figures: dict[int, dict] = {}
    for fleet in fleets:
        s = sums[fleet.pk]
        requests, errors = s.get("request.error", (0, 0.0))
        answered, escalated = s.get("request.escalated", (0, 0.0))
        latencies = samples.filter(node__fleet=fleet, name="request.latency_ms")
        n = latencies.count()
        p95 = (
            latencies.order_by("value").values_list("value", flat=True)[
                max(0, -(-n * 95 // 100) - 1)
            ]
            if n
            else None
        )
        memory = (
            samples.filter(node__fleet=fleet, name="process.rss_mb")
            .values("node_id", "node__name", "node__hardware__ram_mb")
            .annotate(rss=Max("value"))
        )
        hot = [
            {"node": m["node_id"], "name": m["node__name"], "fraction": m["rss"] / ram}
            for m in memory
            if (ram := m["node__hardware__ram_mb"]) and m["rss"] / ram > fleet.alert_memory_fraction
        ]
        error_rate = errors / requests if requests else None
        f: dict[str, Any] = {
            "requests_per_s": requests / seconds,
            "tokens_per_s": s.get("request.completion_tokens", (0, 0.0))[1] / seconds,
            "error_rate": error_rate,
            "escalated_share": escalated / answered if answered else None,
            "local_share": 1 - escalated / answered if answered else None,
            "p95_latency_ms": p95,
            "memory_hot": hot,
        }
        alerts: list[str] = []
        if p95 is not None and p95 > fleet.alert_p95_latency_ms:
            alerts.append(f"p95 latency {p95:.0f} ms is over {fleet.alert_p95_latency_ms:g} ms")
        if error_rate is not None and error_rate > fleet.alert_error_rate:
            alerts.append(f"error rate {error_rate:.1%} is over {fleet.alert_error_rate:.1%}")
        for h in hot:
            alerts.append(
                f"{h['name']} uses {h['fraction']:.0%} of its memory "
                f"(over {fleet.alert_memory_fraction:.0%})"
            )
        pending = sum(n for _, n in waiting[fleet.pk])
        f["pending_approvals"] = pending
        if pending >= fleet_cap:
            alerts.append(
                f"{pending} tool calls wait for approval, the fleet's limit: new ones are refused"
            )
        for name, n in sorted(waiting[fleet.pk]):
            if n >= node_cap:
                alerts.append(
                    f"{name} has {n} tool calls waiting for approval, its limit: "
                    "new ones are refused"
                )
        f["alerts"] = alerts
        figures[fleet.pk] = f
    return figures


def recent_events(user, limit: int = 10) -> list[NodeEventRecord]:
    """The latest events of the nodes `user` may see (the overview's activity for those who may
    not read the audit log)."""
    qs = NodeEventRecord.objects.filter(
        node__in=access.restrict(Node.objects.all(), user, VIEW)
    ).select_related("node")
    return list(qs.order_by("-received_at", "-id")[:limit])


def artifact_names(digests: list[str]) -> dict[str, str]:
    """ "sha256:<hex>" -> "name variant" of registered models (pages show names, not hashes)."""
    hexes = [d.removeprefix("sha256:") for d in digests if d]
    return {
        f"sha256:{a.sha256}": f"{a.name} {a.variant}"
        for a in Artifact.objects.filter(sha256__in=hexes).only("name", "variant", "sha256")
    }


def model_placement(user) -> tuple[dict[str, int], list[Node]]:
    """(reported model digest -> how many visible nodes run it; visible nodes where no variant of
    their model fits, with the reason in model_choice)."""
    visible = access.restrict(Node.objects.all(), user, VIEW)
    running = dict(
        visible.exclude(reported_model_digest="")
        .values("reported_model_digest")
        .annotate(n=Count("id"))
        .values_list("reported_model_digest", "n")
    )
    unplaceable = list(
        visible.filter(desired_model_digest="")
        .exclude(model_choice="")
        .select_related("fleet")[:50]
    )
    return running, unplaceable


LOCAL_GROUPS = ("node", "agent")


def fleet_routing(fleet: Fleet) -> dict[str, Any]:
    """The routing section the fleet's fleet-wide layers give every node, and the held-out curve
    (PGR at each cloud share) of the router it names, for the cost page."""
    routing: dict[str, Any] = {}
    for layer in ordered(fleet.layers.filter(scope="fleet")):
        if isinstance(layer.sections.get("routing"), dict):
            routing = {**routing, **layer.sections["routing"]}
    version = routing.get("router")
    artifact = (
        RouterArtifact.objects.filter(version=version).first() if isinstance(version, str) else None
    )
    curve = []
    if artifact is not None:
        data = json.loads(bytes(artifact.content))
        pgr = data.get("pgr") or []
        curve = [(i / max(len(pgr) - 1, 1), p) for i, p in enumerate(pgr)]
    return {"section": routing, "router": artifact, "curve": curve}


def desired_vs_reported(node, document: dict[str, Any]) -> list[dict[str, Any]]:
    """The node page's table: what the node should run (its desired-state `document`) beside what
    it last reported, field by field, each marked where they differ."""
    names = artifact_names([node.desired_model_digest, node.reported_model_digest])
    reported_agents = sorted((node.reported_details or {}).get("agents", []))
    desired_agents = sorted((document.get("agents") or {}).keys())
    tools = document.get("tools") or {}
    rules = tools.get("rules") or {}
    policy = (
        "; ".join(
            [f"{name}: {(rule or {}).get('mode', '?')}" for name, rule in sorted(rules.items())]
            + ([f"others: {tools['default']}"] if tools.get("default") else [])
        )
        or "—"
    )
    applied = node.reported_revision == node.desired_revision
    rows = [
        ("Revision", f"r{node.desired_revision}", _r(node.reported_revision)),
        (
            "Model digest",
            node.desired_model_digest or "—",
            node.reported_model_digest or "—",
        ),
        (
            "Model (quantization)",
            names.get(node.desired_model_digest, "—"),
            names.get(node.reported_model_digest, "—"),
        ),
        *_other_models(node, document),
        ("Agents", ", ".join(desired_agents) or "—", ", ".join(reported_agents) or "—"),
        (
            "Tool policy",
            policy,
            f"{policy} (applied with the revision)" if applied else "not applied yet",
        ),
        ("Health", "ok", node.reported_health or "—"),
    ]
    return [
        {"field": f, "desired": d, "reported": r, "differs": _differs(f, d, r, applied)}
        for f, d, r in rows
    ]


def _other_models(node, document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The row for a node's models besides its default one: each by the name its agents use,
    with its model and variant, beside what the node reported (and whether it is loaded now)."""
    desired = document.get("models") or {}
    reported = {
        k: v
        for k, v in ((node.reported_details or {}).get("models") or {}).items()
        if k != "default" and isinstance(v, dict)
    }
    if not desired and not reported:
        return []
    wanted = ", ".join(
        f"{k}: {m.get('name', '?')} {m.get('variant') or ''}".strip()
        for k, m in sorted(desired.items())
        if isinstance(m, dict)
    )
    has = ", ".join(
        f"{k}: {m.get('name', '?')} ({'loaded' if m.get('resident') else 'not loaded now'})"
        for k, m in sorted(reported.items())
    )
    return [("Other models", wanted or "—", has or "—")]


def _r(revision):
    return f"r{revision}" if revision is not None else "—"


def _differs(field: str, desired: str, reported: str, applied: bool) -> bool:
    if field == "Tool policy":
        return not applied
    if field == "Other models":  # the same names, loaded or not
        return [p.split(" ")[0] for p in desired.split(", ")] != [
            p.split(" ")[0] for p in reported.split(", ")
        ]
    return desired != reported
