"""Dashboard pages for fleets, nodes, enrollment, desired state, rollouts, approvals and models.

Thin, like the API handlers: an access function finds the object (a missing or forbidden one is the
404 page, through ServiceErrorMiddleware), a read from `queries.py` fills the page, a service does
every write. Forms are checked by the admin API's own In schemas and the services' rules
(`controlplane.forms.submit`), and a rejected form shows that message next to its field with a 400.
An htmx request gets the partial it swaps (a row, a form, a list), never the whole page.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, OPERATE, VIEW, VIEW_AUDIT, access_fleet
from controlplane.compliance import queries as audit_queries
from controlplane.desiredstate import compose as desired_state
from controlplane.errors import NotFound
from controlplane.forms import ALL, labels_from_text, submit
from controlplane.nodes import queries, services
from controlplane.nodes.api import (
    CompliancePatch,
    EnrollmentTokenIn,
    FleetPatch,
    LayerIn,
    NodePatch,
    RedactionPreviewIn,
    RolloutIn,
)
from controlplane.nodes.models import Fleet, NodeStatus, RolloutNodeState
from controlplane.pagination import offset_page
from controlplane.registry import queries as registry_queries
from controlplane.registry import services as registry_services
from controlplane.registry.api import QuantizeIn
from controlplane.relay import services as escalation
from controlplane.rollouts import services as rollouts
from wire import phi
from wire.schemas import CloudBudgets, ComplianceMode, PhiAction

PAGE = 50  # rows per page on the dashboard's lists


def _page_number(request: HttpRequest) -> int:
    try:
        return max(0, int(request.GET.get("offset", 0)))
    except ValueError:
        return 0


def _fleet_for(request: HttpRequest, action: str) -> tuple[Fleet | None, list[Fleet]]:
    """The fleet a fleet-scoped page is about (`?fleet=`, else the first one the person may
    `action` in) and the fleets to choose from. A named fleet they may not use is the 404 page."""
    choices = list(queries.fleets(request.user, action))
    slug = request.GET.get("fleet") or request.POST.get("fleet")
    if slug:
        return access_fleet(request.user, slug, action), choices
    return (choices[0] if choices else None), choices


def _render(request, template: str, partial: str | None, ctx: dict[str, Any], errors=None):
    """The whole page, or for htmx only `partial`; 400 when a form was rejected."""
    name = f"{template}#{partial}" if request.htmx and partial else template
    return render(request, name, ctx, status=400 if errors else 200)


def _can(user, fleet_id: int, action: str) -> bool:
    return access.can(user, fleet_id, action)


# --- overview -------------------------------------------------------------------------------------


@login_required
def overview(request):
    fleets = list(queries.fleets(request.user))
    counts = queries.status_counts(fleets)
    figures = queries.fleet_figures(fleets)
    audit_ids = access.fleet_ids(request.user, VIEW_AUDIT)
    activity = None
    if audit_ids is None or audit_ids:
        records, _ = audit_queries.records(request.user)
        rows = list(records.select_related("fleet").order_by("-seq")[:10])
        activity = audit_queries.record_rows(rows)
    ctx = {
        "fleets": [
            {
                "fleet": f,
                "counts": counts[f.pk],
                "figures": figures[f.pk],
                "administer": _can(request.user, f.pk, ADMINISTER),
            }
            for f in fleets
        ],
        "pending_approvals": queries.approvals(request.user, pending=True).count(),
        "active_rollouts": sum(
            queries.rollouts(f).filter(status__in=["running", "paused"]).count() for f in fleets
        ),
        "activity": activity,
        "events": None if activity is not None else queries.recent_events(request.user),
        "now": timezone.now(),
    }
    return _render(request, "dashboard/overview.html", "figures", ctx)


@login_required
@require_POST
def fleet_alerts(request, slug: str):
    """Edit a fleet's alert thresholds (fleet admins)."""
    fleet = access_fleet(request.user, slug, ADMINISTER)

    def data():
        fields = [k for k in FleetPatch.model_fields if k.startswith("alert_")]
        return {k: request.POST[k] for k in fields if request.POST.get(k, "") != ""}

    _, errors = submit(
        FleetPatch,
        data,
        lambda p: services.do_update_fleet(
            fleet, **p.dict(exclude_unset=True), actor=request.user, request=request
        ),
    )
    if errors:
        fleet.refresh_from_db()
        ctx = {"item": {"fleet": fleet, "administer": True}, "errors": errors}
        return render(request, "dashboard/overview.html#alerts-form", ctx, status=400)
    return redirect(reverse("dashboard:overview"))


# --- nodes ----------------------------------------------------------------------------------------


def _node_filters(request) -> dict[str, Any]:
    g = request.GET
    status = g.get("status") or None
    if status and status not in NodeStatus.values:
        status = None
    return {
        "fleet": g.get("fleet") or None,
        "status": status,
        "label": g.get("label") or None,
        "model": g.get("model") or None,
        "drifted": g.get("drifted") == "1",
        "search": (g.get("q") or "").strip() or None,
        "sort": g.get("sort") or "fleet",
    }


@login_required
def nodes(request):
    filters = _node_filters(request)
    if filters["fleet"]:
        access_fleet(request.user, filters["fleet"], VIEW)  # 404 page for a fleet they cannot see
    page = offset_page(
        queries.nodes(request.user, **filters), limit=PAGE, offset=_page_number(request)
    )
    query = request.GET.copy()
    query.pop("offset", None)
    ctx = {
        "fleets": queries.fleets(request.user),
        "page": page,
        "nodes": page.items,
        "filters": filters,
        "statuses": NodeStatus.choices,
        "sorts": queries.NODE_SORTS,
        "query": query.urlencode(),
        "offset": _page_number(request),
        "prev_offset": max(0, _page_number(request) - PAGE),
        "operate_ids": access.fleet_ids(request.user, OPERATE),
    }
    return _render(request, "dashboard/nodes.html", "node-table", ctx)


# The old path of the node table (bookmarks): the nodes page.
dashboard = nodes


@login_required
def node_row(request, node_id):
    """One row of the node list (live updates swap this, not the table)."""
    node = queries.access_node(request.user, node_id, VIEW)
    return render(request, "dashboard/nodes.html#node-row", {"node": node})


def _desired_vs_reported(node, document: dict[str, Any]) -> list[dict[str, Any]]:
    names = queries.artifact_names([node.desired_model_digest, node.reported_model_digest])
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


def _r(revision):
    return f"r{revision}" if revision is not None else "—"


def _differs(field: str, desired: str, reported: str, applied: bool) -> bool:
    if field == "Tool policy":
        return not applied
    return desired != reported


@login_required
def node(request, node_id):
    node = queries.access_node(request.user, node_id, VIEW)
    document = desired_state.document(node)
    ctx = {
        "node": node,
        "diff": _desired_vs_reported(node, document),
        "events": list(queries.node_events(node)[:20]),
        "operate": _can(request.user, node.fleet_id, OPERATE),
        "labels_text": ", ".join(f"{k}={v}" for k, v in node.labels.items()),
        "ranges": CHART_RANGES,
        "range": request.GET.get("range", "15m")
        if request.GET.get("range") in CHART_RANGES
        else "15m",
    }
    return render(request, "dashboard/node.html", ctx)


CHART_RANGES = {
    "15m": (timedelta(minutes=15), "raw"),
    "1h": (timedelta(hours=1), "raw"),
    "24h": (timedelta(hours=24), "minute"),
    "7d": (timedelta(days=7), "minute"),
}


@login_required
def node_series(request, node_id):
    """The chart data of the node page (JSON for uPlot): latency, tokens/s, memory."""
    node = queries.access_node(request.user, node_id, VIEW)
    span, resolution = CHART_RANGES.get(request.GET.get("range", "15m"), CHART_RANGES["15m"])
    now = timezone.now()
    since = now - span
    out: dict[str, Any] = {"since": since.timestamp(), "until": now.timestamp()}
    for name in ("request.latency_ms", "request.tokens_per_s", "process.rss_mb"):
        series = queries.metric_series(node, name, resolution=resolution, since=since)
        out[name] = [
            [p["ts"].timestamp() for p in series["points"]],
            [p["mean"] for p in series["points"]],
        ]
    return HttpResponse(json.dumps(out), content_type="application/json")


@login_required
@require_POST
def node_edit(request, node_id):
    node = queries.access_node(request.user, node_id, OPERATE)
    _, errors = submit(
        NodePatch,
        lambda: {
            "name": request.POST.get("name", node.name),
            "labels": labels_from_text(request.POST.get("labels", "")),
        },
        lambda p: services.do_update_node(
            node, **p.dict(exclude_unset=True), actor=request.user, request=request
        ),
    )
    if errors:
        ctx = {"node": node, "errors": errors, "labels_text": request.POST.get("labels", "")}
        return render(request, "dashboard/node.html#edit-form", ctx, status=400)
    return redirect(reverse("dashboard:node", args=[node.pk]))


@login_required
@require_POST
def node_revoke(request, node_id):
    node = queries.access_node(request.user, node_id, OPERATE)
    services.do_revoke_node(node, actor=request.user, request=request)
    return redirect(reverse("dashboard:node", args=[node.pk]))


# --- enrollment -----------------------------------------------------------------------------------


def _enroll_command(request, token: str) -> str:
    server = request.build_absolute_uri("/").rstrip("/")
    # The token goes in on standard input: a command line is visible to every process of the node
    # (docs/agent.md, "The enrollment token stays off the command line").
    return (
        f"printf %s '{token}' | edgefleet-agent --state-dir /var/lib/edgefleet enroll "
        f"--server {server} --token - && edgefleet-agent --state-dir /var/lib/edgefleet run"
    )


@login_required
def enrollment(request):
    fleet, choices = _fleet_for(request, OPERATE)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if request.method == "POST" and fleet is not None:

        def data():
            never = request.POST.get("expiry") == "never"
            return {
                "labels": labels_from_text(request.POST.get("labels", "")),
                "ttl_hours": None if never else request.POST.get("ttl_hours") or 24,
                "max_uses": request.POST.get("max_uses") or 1,
                "note": request.POST.get("note", ""),
            }

        def create(p):
            return services.do_create_enrollment_token(
                fleet, **p.service_kwargs(), actor=request.user, request=request
            )

        created, ctx["errors"] = submit(EnrollmentTokenIn, data, create)
        if created:
            token, plaintext = created
            ctx.update(
                created=token, plaintext=plaintext, command=_enroll_command(request, plaintext)
            )
        ctx["form"] = request.POST
    if fleet is not None:
        page = offset_page(
            queries.enrollment_tokens(fleet), limit=PAGE, offset=_page_number(request)
        )
        ctx.update(page=page, tokens=page.items)
    if request.htmx and request.method == "POST":
        response = render(
            request,
            "dashboard/enrollment.html#create",
            ctx,
            status=400 if ctx["errors"] else 200,
        )
        response["HX-Trigger"] = "tokens-changed"
        return response
    return _render(request, "dashboard/enrollment.html", "token-list", ctx, ctx["errors"])


@login_required
@require_POST
def enrollment_revoke(request, token_id: int):
    token = queries.access_enrollment_token(request.user, token_id, OPERATE)
    token = services.do_revoke_enrollment_token(token, actor=request.user, request=request)
    if request.htmx:
        return render(request, "dashboard/enrollment.html#token-row", {"t": token})
    return redirect(f"{reverse('dashboard:enrollment')}?fleet={token.fleet.slug}")


# --- desired state --------------------------------------------------------------------------------


@login_required
def layers(request):
    fleet, choices = _fleet_for(request, VIEW)
    ctx: dict[str, Any] = {
        "fleet": fleet,
        "choices": choices,
        "errors": {},
        "default_sections": '{\n  "routing": {}\n}',
    }
    if fleet is None:
        return render(request, "dashboard/layers.html", ctx)
    operate = _can(request.user, fleet.pk, OPERATE)
    if request.method == "POST":
        access_fleet(request.user, fleet.slug, OPERATE)

        def data():
            try:
                sections = json.loads(request.POST.get("sections") or "{}")
            except json.JSONDecodeError as exc:
                raise services.ServiceError(f"not JSON: {exc}", field="sections") from None
            return {
                "scope": request.POST.get("scope"),
                "selector": labels_from_text(request.POST.get("selector", ""), "selector"),
                "node": request.POST.get("node") or None,
                "priority": request.POST.get("priority") or 0,
                "sections": sections,
            }

        result, ctx["errors"] = submit(
            LayerIn,
            data,
            lambda p: services.do_put_layer(
                fleet,
                name=request.POST.get("name", ""),
                scope=p.scope,
                selector=p.selector,
                node=p.node,
                priority=p.priority,
                sections=p.sections,
                actor=request.user,
                request=request,
            ),
        )
        if result:
            ctx["saved"] = {"layer": result[0], "nodes_changed": result[1]}
        ctx["form"] = request.POST
    elif request.GET.get("edit"):
        layer = queries.access_layer(request.user, fleet.slug, request.GET["edit"], VIEW)
        ctx["form"] = {
            "name": layer.name,
            "scope": layer.scope,
            "selector": ", ".join(f"{k}={v}" for k, v in layer.selector.items()),
            "node": layer.node_id or "",
            "priority": layer.priority,
            "sections": json.dumps(layer.sections, indent=2),
        }
    preview_node = request.GET.get("preview")
    if preview_node:
        node = queries.access_node(request.user, preview_node, VIEW)
        ctx["preview"] = {
            "node": node,
            "document": json.dumps(desired_state.document(node), indent=2),
        }
    ctx.update(
        layers=queries.layers(fleet),
        operate=operate,
        fleet_nodes=queries.nodes(request.user, fleet=fleet.slug).only("id", "name", "fleet")[:200],
    )
    return _render(request, "dashboard/layers.html", None, ctx, ctx["errors"])


@login_required
@require_POST
def layer_delete(request, slug: str, name: str):
    layer = queries.access_layer(request.user, slug, name, OPERATE)
    services.do_delete_layer(layer, actor=request.user, request=request)
    return redirect(f"{reverse('dashboard:layers')}?fleet={slug}")


# --- rollouts -------------------------------------------------------------------------------------


def _wave_counts(rollout) -> list[dict[str, Any]]:
    """Per wave: how many targets succeeded, failed, are pending, and are offline now."""
    waves: dict[int, dict[str, Any]] = {}
    for t in queries.rollout_targets(rollout):
        w = waves.setdefault(
            t.wave,
            {"wave": t.wave, "succeeded": 0, "failed": 0, "pending": 0, "offline": 0, "total": 0},
        )
        w["total"] += 1
        applied = t.node.reported_revision is not None and (
            t.target_revision is None or t.node.reported_revision >= t.target_revision
        )
        if t.state == RolloutNodeState.ROLLED_BACK or (applied and t.node.reported_errors):
            w["failed"] += 1
        elif t.state == RolloutNodeState.UPDATED and applied:
            w["succeeded"] += 1
        else:
            w["pending"] += 1
        if t.node.status in (NodeStatus.OFFLINE, NodeStatus.NEVER):
            w["offline"] += 1
    return [waves[k] for k in sorted(waves)]


@login_required
def rollouts_page(request):
    fleet, choices = _fleet_for(request, VIEW)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if fleet is None:
        return render(request, "dashboard/rollouts.html", ctx)
    if request.method == "POST":
        access_fleet(request.user, fleet.slug, OPERATE)

        def data():
            waves = [
                int(w) if w.strip().isdigit() else w.strip()
                for w in request.POST.get("waves", "1, 100%").split(",")
                if w.strip()
            ]
            return {
                "model": {
                    "name": request.POST.get("model", ""),
                    "variant": request.POST.get("variant") or "auto",
                },
                "layer": request.POST.get("layer") or "model",
                "selector": labels_from_text(request.POST.get("selector", ""), "selector"),
                "waves": waves,
                "gates": {
                    "max_error_rate_increase": request.POST.get("max_error_rate_increase") or 0.05,
                    "max_p95_ratio": request.POST.get("max_p95_ratio") or 1.5,
                },
                "wave_wait_s": request.POST.get("wave_wait_s") or 300,
            }

        started, ctx["errors"] = submit(
            RolloutIn,
            data,
            lambda p: rollouts.do_start_rollout(
                fleet, **p.service_kwargs(), actor=request.user, request=request
            ),
        )
        if started:
            return redirect(reverse("dashboard:rollout", args=[started.pk]))
        ctx["form"] = request.POST
    page = offset_page(queries.rollouts(fleet), limit=PAGE, offset=_page_number(request))
    ctx.update(
        page=page,
        rollouts=page.items,
        operate=_can(request.user, fleet.pk, OPERATE),
        models=sorted({a.name for a in registry_queries.artifacts(request.user)}),
    )
    return _render(request, "dashboard/rollouts.html", None, ctx, ctx["errors"])


@login_required
def rollout(request, rollout_id: int):
    r = queries.access_rollout(request.user, rollout_id, VIEW)
    ctx = {
        "rollout": r,
        "waves": _wave_counts(r),
        "operate": _can(request.user, r.fleet_id, OPERATE),
    }
    return _render(request, "dashboard/rollout.html", "progress", ctx)


ROLLOUT_ACTIONS = {
    "pause": rollouts.do_pause_rollout,
    "resume": rollouts.do_resume_rollout,
    "abort": rollouts.do_abort_rollout,
}


@login_required
@require_POST
def rollout_action(request, rollout_id: int, action: str):
    if action not in ROLLOUT_ACTIONS:
        raise NotFound(f"no rollout action '{action}'")
    r = queries.access_rollout(request.user, rollout_id, OPERATE)
    ROLLOUT_ACTIONS[action](r, actor=request.user, request=request)
    return redirect(reverse("dashboard:rollout", args=[r.pk]))


# --- approvals ------------------------------------------------------------------------------------


@login_required
def approvals(request):
    pending = request.GET.get("all") != "1"
    fleet = request.GET.get("fleet") or None
    if fleet:
        access_fleet(request.user, fleet, VIEW)  # the 404 page for a fleet they cannot see
    page = offset_page(
        queries.approvals(request.user, fleet=fleet, pending=pending),
        limit=PAGE,
        offset=_page_number(request),
    )
    ctx = {
        "page": page,
        "approvals": page.items,
        "pending": pending,
        "operate_ids": access.fleet_ids(request.user, OPERATE),
        "now": timezone.now(),
    }
    return _render(request, "dashboard/approvals.html", "queue", ctx)


@login_required
@require_POST
def approval_decide(request, approval_id: int, decision: str):
    if decision not in ("approve", "deny"):
        raise NotFound(f"no decision '{decision}'")
    approval = queries.access_approval(request.user, approval_id, OPERATE)
    reason = request.POST.get("reason", "")
    errors: dict[str, str] = {}
    try:
        approval = services.do_decide_approval(
            approval,
            approve=decision == "approve",
            reason=reason,
            actor=request.user,
            request=request,
        )
    except services.ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = {exc.field or ALL: exc.message}
        approval.refresh_from_db()
    ctx = {"a": approval, "errors": errors, "operate_ids": access.fleet_ids(request.user, OPERATE)}
    if request.htmx:
        return render(
            request, "dashboard/approvals.html#approval-row", ctx, status=409 if errors else 200
        )
    if errors:
        return render(
            request,
            "error.html",
            {"status": 409, "message": next(iter(errors.values()))},
            status=409,
        )
    return redirect(reverse("dashboard:approvals"))


# --- models ---------------------------------------------------------------------------------------


@login_required
def models_page(request):
    artifacts = list(registry_queries.artifacts(request.user))
    running, unplaceable = queries.model_placement(request.user)
    for a in artifacts:
        a.running = running.get(f"sha256:{a.sha256}", 0)  # type: ignore[attr-defined]
    ctx: dict[str, Any] = {
        "artifacts": artifacts,
        "unplaceable": unplaceable,
        "jobs": list(registry_queries.jobs(request.user)[:20]),
        "targets": registry_services.TARGETS,
        "can_write": _may_write_registry(request.user),
        "errors": {},
    }
    ctx["sources"] = [a for a in artifacts if a.variant in registry_services.QUANTIZABLE_SOURCES]
    if request.method == "POST":
        name, _, variant = request.POST.get("source", "").rpartition(":")
        source = registry_queries.access_artifact(request.user, name, variant, ADMINISTER)
        _, ctx["errors"] = submit(
            QuantizeIn,
            lambda: {"source": source.variant, "variants": request.POST.getlist("variants")},
            lambda p: registry_services.do_quantize(
                source, p.variants, actor=request.user, request=request
            ),
        )
        if not ctx["errors"]:
            return redirect(reverse("dashboard:models"))
        ctx["form"] = request.POST
    ctx["active_jobs"] = any(j.status in ("queued", "running") for j in ctx["jobs"])
    return _render(request, "dashboard/models.html", "jobs", ctx, ctx["errors"])


def _may_write_registry(user) -> bool:
    ids = access.fleet_ids(user, ADMINISTER)
    return ids is None or bool(ids)


# --- compliance settings (read: compliance officers and admins; edit: admins) ------------------


@login_required
def compliance(request):
    fleet, choices = _fleet_for(request, VIEW_AUDIT)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if fleet is None:
        return render(request, "dashboard/compliance.html", ctx)
    if request.method == "POST":
        target = access_fleet(request.user, fleet.slug, ADMINISTER)

        def data():
            p = request.POST
            try:
                endpoints = json.loads(p.get("cloud_endpoints") or "[]")
            except json.JSONDecodeError as exc:
                raise services.ServiceError(f"not JSON: {exc}", field="cloud_endpoints") from None
            store = p.get("store_content")
            return {
                "mode": p.get("mode"),
                "phi_action": p.get("phi_action"),
                "store_content": None if store in ("", None) else store == "yes",
                "allowed_regions": [
                    r.strip() for r in p.get("allowed_regions", "").split(",") if r.strip()
                ],
                "cloud_endpoints": endpoints,
                "events_retention_days": p.get("events_retention_days") or None,
            }

        result, ctx["errors"] = submit(
            CompliancePatch,
            data,
            lambda c: services.do_set_compliance(
                target, **c.model_dump(mode="json"), actor=request.user, request=request
            ),
        )
        if result:
            fleet, ctx["nodes_changed"] = result
            ctx["fleet"] = fleet
        ctx["form"] = request.POST
    _compliance_context(request, ctx["fleet"], ctx)
    return _render(request, "dashboard/compliance.html", None, ctx, ctx["errors"])


def _compliance_context(request, fleet: Fleet, ctx: dict[str, Any]) -> None:
    settings_ = fleet.compliance_settings()
    ctx.update(
        settings=settings_,
        endpoints_json=json.dumps(
            [e.model_dump(exclude_none=True) for e in settings_.cloud_endpoints], indent=2
        ),
        policy=json.dumps(fleet.compliance_policy().model_dump(mode="json"), indent=2),
        administer=_can(request.user, fleet.pk, ADMINISTER),
        modes=[m.value for m in ComplianceMode],
        phi_actions=[a.value for a in PhiAction],
        phi_measured=phi.MEASURED,
    )


@login_required
@require_POST
def compliance_preview(request):
    """The redaction preview of the Compliance page: what an endpoint without a BAA would receive
    of a pasted text (escalation.redaction_preview; the API's POST .../redaction-preview)."""
    fleet = access_fleet(request.user, request.GET.get("fleet", ""), VIEW_AUDIT)
    preview, errors = submit(
        RedactionPreviewIn,
        {"text": request.POST.get("text", "")},
        lambda p: escalation.redaction_preview(fleet, text=p.text),
    )
    ctx: dict[str, Any] = {"fleet": fleet, "errors": {}, "preview": preview}
    ctx.update(preview_text=request.POST.get("text", ""), preview_errors=errors)
    if not request.htmx:
        _, ctx["choices"] = _fleet_for(request, VIEW_AUDIT)
        _compliance_context(request, fleet, ctx)
    response = _render(request, "dashboard/compliance.html", "preview", ctx, errors)
    response["Cache-Control"] = "no-store"  # the pasted text may hold PHI
    return response


# --- cloud costs and budgets ----------------------------------------------------------------------

BUDGET_FIELDS = [
    (f"{scope}_{period}_{unit}", f"{label} per {period}, {'US$' if unit == 'usd' else 'tokens'}")
    for scope, label in (("fleet", "Fleet"), ("node", "Each node"))
    for period in ("day", "month")
    for unit in ("usd", "tokens")
]


@login_required
def costs(request):
    """Cloud cost and local tokens per node, agent and endpoint; the budgets (admins edit them);
    the share of requests that went to the cloud."""
    fleet, choices = _fleet_for(request, VIEW)
    ctx: dict[str, Any] = {"fleet": fleet, "choices": choices, "errors": {}}
    if fleet is None:
        return render(request, "dashboard/costs.html", ctx)
    if request.method == "POST":
        target = access_fleet(request.user, fleet.slug, ADMINISTER)
        data = {k: request.POST.get(k) or None for k, _ in BUDGET_FIELDS}
        data["soft_fraction"] = request.POST.get("soft_fraction") or 0.8
        result, ctx["errors"] = submit(
            CloudBudgets,
            data,
            lambda b: escalation.do_set_cloud_budgets(
                target, budgets=b.model_dump(), actor=request.user, request=request
            ),
        )
        ctx["saved"] = result is not None
        if result:
            fleet = result
    since, until = queries.usage_window()
    budgets = fleet.budgets()
    used = queries.cloud_usage_so_far(fleet)
    ctx.update(
        fleet=fleet,
        since=since,
        budgets=[
            {
                "key": k,
                "label": label,
                "limit": getattr(budgets, k),
                "used": used[k] if k.startswith("fleet_") else None,
                "error": ctx["errors"].get(k),
            }
            for k, label in BUDGET_FIELDS
        ],
        soft_fraction=budgets.soft_fraction,
        by_node=list(queries.cloud_usage(fleet, by="node", since=since, until=until)[:50]),
        by_agent=list(queries.cloud_usage(fleet, by="agent", since=since, until=until)[:50]),
        by_endpoint=list(queries.cloud_usage(fleet, by="endpoint", since=since, until=until)),
        local=list(queries.local_tokens(fleet, since=since, until=until)[:50]),
        local_by_agent=list(queries.local_tokens(fleet, by="agent", since=since, until=until)[:50]),
        figures=queries.fleet_figures([fleet])[fleet.pk],
        routing=_routing_chart(queries.fleet_routing(fleet)),
        now=timezone.now(),
        administer=_can(request.user, fleet.pk, ADMINISTER),
    )
    return _render(request, "dashboard/costs.html", "usage", ctx, ctx["errors"])


def _routing_chart(routing: dict[str, Any]) -> dict[str, Any]:
    """The router's held-out PGR against cloud share as SVG points (a 300 x 150 box)."""
    curve = routing["curve"]
    top = max([1.0, *(p for _, p in curve)])
    points = " ".join(f"{x * 300:.1f},{150 - max(p, 0) / top * 150:.1f}" for x, p in curve)
    target = routing["section"].get("target_cloud_share")
    return {
        **routing,
        "points": points,
        "top": top,
        "one_y": 150 - 150 / top,
        "target_x": None if target is None else target * 300,
    }
