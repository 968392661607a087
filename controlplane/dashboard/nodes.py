"""controlplane.dashboard.nodes"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.accounts import access
from controlplane.accounts.access import OPERATE, VIEW, access_fleet
from controlplane.dashboard.common import PAGE, SHORT, page, page_number, render_page
from controlplane.forms import labels_from_text, submit
from controlplane.nodes import desired_state, queries, services
from controlplane.nodes.api import (
    NodePatch,
)
from controlplane.nodes.models import NodeStatus
from controlplane.nodes.queries import desired_vs_reported
from controlplane.pagination import offset_page


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


@page
def nodes(request):
    filters = _node_filters(request)
    if filters["fleet"]:
        access_fleet(request.user, filters["fleet"], VIEW)  # 404 page for a fleet they cannot see
    page = offset_page(
        queries.nodes(request.user, **filters), limit=PAGE, offset=page_number(request)
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
        "offset": page_number(request),
        "prev_offset": max(0, page_number(request) - PAGE),
        "operate_ids": access.fleet_ids(request.user, OPERATE),
    }
    return render_page(request, "dashboard/nodes.html", "node-table", ctx)


@page
def node_row(request, node_id):
    """One row of the node list (live updates swap this, not the table)."""
    node = queries.access_node(request.user, node_id, VIEW)
    return render(request, "dashboard/nodes.html#node-row", {"node": node})


@page
def node(request, node_id):
    node = queries.access_node(request.user, node_id, VIEW)
    document = desired_state.document(node)
    ctx = {
        "node": node,
        "diff": desired_vs_reported(node, document),
        "events": list(queries.node_events(node)[:SHORT]),
        "operate": access.can(request.user, node.fleet_id, OPERATE),
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


@page
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


@page
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


@page
@require_POST
def node_revoke(request, node_id):
    node = queries.access_node(request.user, node_id, OPERATE)
    services.do_revoke_node(node, actor=request.user, request=request)
    return redirect(reverse("dashboard:node", args=[node.pk]))
