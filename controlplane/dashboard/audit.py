"""Dashboard pages for compliance officers and admins: the audit browser (filters in the URL,
readable before/after diffs, the shown records' chain check), exports with their signed manifests
and the verifier command, erasure requests and the GDPR records of processing.

The same reads (queries.py) and services (export.py, privacy.py) as the admin API; a fleet the
person may not audit is the 404 page.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from django.shortcuts import render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode

from controlplane.accounts import access
from controlplane.accounts.access import ERASE, VIEW_AUDIT, access_fleet
from controlplane.audit import actions
from controlplane.compliance import privacy, queries
from controlplane.dashboard.common import RECENT, page
from controlplane.errors import ServiceError
from controlplane.fleets.models import Fleet
from controlplane.forms import ALL
from controlplane.pagination import cursor_page

PAGE = 50


def _time(value: str, field: str):
    if not value:
        return None
    parsed = parse_datetime(value if len(value) > 16 else f"{value}:00")
    if parsed is None:
        raise ServiceError(f"'{value}' is not a date and time", field=field)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _filters(request) -> dict[str, Any]:
    g = request.GET
    return {
        "fleet": g.get("fleet") or None,
        "actor": (g.get("actor") or "").strip(),
        "action": (g.get("action") or "").strip(),
        "since": _time(g.get("since", ""), "since"),
        "until": _time(g.get("until", ""), "until"),
    }


@page
def browser(request):
    filters = _filters(request)
    records, _ = queries.records(request.user, **filters)
    try:
        before = int(request.GET["before_seq"]) if request.GET.get("before_seq") else None
    except ValueError:
        raise ServiceError("before_seq must be a record number", field="before_seq") from None
    page = cursor_page(
        records.select_related("fleet"),
        key="seq",
        after=before,
        limit=PAGE,
        param="before_seq",
        newest_first=True,
    )
    rows = queries.record_rows(page.items)
    for row in rows:
        row["changes"] = queries.changes(row["before"], row["after"])
    query = request.GET.copy()
    query.pop("before_seq", None)
    export_query = {k: v for k, v in query.items() if v}
    fleets = list(access.restrict(Fleet.objects.order_by("slug"), request.user, VIEW_AUDIT))
    ctx = {
        "rows": rows,
        "page": page,
        "filters": request.GET,
        "query": query.urlencode(),
        "fleets": fleets,
        "actions": list(actions.ACTIONS.items()) + list(actions.EDGE_FAMILIES.items()),
        "problem": queries.check_shown(page.items),
        "export_csv": f"/api/v1/audit/export?{urlencode({**export_query, 'format': 'csv'})}",
        "export_jsonl": f"/api/v1/audit/export?{urlencode({**export_query, 'format': 'jsonl'})}",
        "exports": list(queries.exports_of(request.user)[:RECENT]),
        "erase_fleets": [f for f in fleets if access.can(request.user, f.pk, ERASE)],
        "global_admin": access.is_global_admin(request.user),
    }
    name = "audit/browser.html#records" if request.htmx else "audit/browser.html"
    return render(request, name, ctx)


@page
def erase(request):
    """An erasure request (GDPR Art. 17): an end user the fleet's agents served, or (global admins)
    a person with an account."""
    ctx: dict[str, Any] = {"errors": {}, "form": request.POST}
    if request.method == "POST":
        kind = request.POST.get("kind")
        ref = (request.POST.get("ref") or "").strip()
        try:
            if not ref:
                raise ServiceError("say who is to be erased", field="ref")
            if kind == "user":
                pseud = privacy.do_erase_user(actor=request.user, username=ref, request=request)
            else:
                fleet = access_fleet(request.user, request.POST.get("fleet", ""), ERASE)
                pseud = privacy.do_erase_subject(fleet, ref, actor=request.user, request=request)
            ctx["erased"] = pseud
        except ServiceError as exc:
            ctx["errors"] = {exc.field or ALL: exc.message}
    ctx["erase_fleets"] = list(access.restrict(Fleet.objects.order_by("slug"), request.user, ERASE))
    ctx["global_admin"] = access.is_global_admin(request.user)
    status = 400 if ctx["errors"] else 200
    return render(request, "audit/erase.html", ctx, status=status)


@page
def records_of_processing(request):
    fleets = queries.auditable_fleets(request.user, request.GET.get("fleet") or None)
    doc = privacy.records_of_processing(fleets)
    return render(
        request,
        "audit/processing.html",
        {
            "doc": json.dumps(doc, indent=2, default=str),
            "fleets": fleets,
            "api": reverse("admin-api:records_of_processing"),
        },
    )
