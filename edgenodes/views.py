"""Dashboard pages: thin. Reads go through edgenodes/queries.py, writes through the services; a
ServiceError (a missing or forbidden fleet, a bad filter) becomes its error page
(controlplane.errors.ServiceErrorMiddleware)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from controlplane.accounts.access import VIEW, access_fleet
from controlplane.pagination import offset_page

from . import queries

NODES_PER_PAGE = 500


@login_required
def dashboard(request):
    fleet = request.GET.get("fleet") or None
    if fleet:
        access_fleet(request.user, fleet, VIEW)  # 404 page for a fleet the user cannot see
    nodes = queries.nodes(request.user, fleet=fleet, label=request.GET.get("label") or None)
    page = offset_page(nodes, limit=NODES_PER_PAGE)
    template = "edgenodes/dashboard.html#node-table" if request.htmx else "edgenodes/dashboard.html"
    return render(
        request,
        template,
        {"fleets": queries.fleets(request.user), "nodes": page.items, "page": page},
    )
