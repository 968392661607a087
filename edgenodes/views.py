"""Dashboard pages. Reads go through the access functions; writes through the same services the API uses."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from controlplane.accounts import access

from .models import Fleet, Node


@login_required
def dashboard(request):
    fleets = access.restrict(Fleet.objects.order_by("slug"), request.user, access.VIEW, "id")
    nodes = access.restrict(
        Node.objects.select_related("fleet"), request.user, access.VIEW
    ).order_by("fleet__slug", "name")[:500]
    template = "edgenodes/dashboard.html#node-table" if request.htmx else "edgenodes/dashboard.html"
    return render(request, template, {"fleets": fleets, "nodes": nodes})
