"""What every dashboard page shares: its page size, the fleet a page is about, and rendering.

The pages (one module per area: overview, nodes, enrollment, layers, rollouts, approvals,
registry, compliance, costs, access, audit) are thin, like the API handlers: an access function
finds the object (a missing or forbidden one is the
404 page, through ServiceErrorMiddleware), a read from `queries.py` fills the page, a service does
every write. Forms are checked by the admin API's own In schemas and the services' rules
(`controlplane.forms.submit`), and a rejected form shows that message next to its field with a 400.
An htmx request gets the partial it swaps (a row, a form, a list), never the whole page.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.shortcuts import render

from controlplane.accounts import access
from controlplane.accounts.access import access_fleet
from controlplane.nodes import queries
from controlplane.nodes.models import Fleet

PAGE = 50  # rows per page on the dashboard's lists
# The short lists a page shows beside its main one (the full lists are paginated, in the API too).
RECENT = 10  # the latest exports, the latest audit activity on the overview
SHORT = 20  # a node's latest events, the latest quantization jobs
TOP = 50  # the largest cloud and local consumers on the costs page
CHOICES = 200  # nodes offered in a form's picker
PEOPLE = 500  # accounts a global admin picks from on the Access page


def page_number(request: HttpRequest) -> int:
    try:
        return max(0, int(request.GET.get("offset", 0)))
    except ValueError:
        return 0


def fleet_for(request: HttpRequest, action: str) -> tuple[Fleet | None, list[Fleet]]:
    """The fleet a fleet-scoped page is about (`?fleet=`, else the first one the person may
    `action` in) and the fleets to choose from. A named fleet they may not use is the 404 page."""
    choices = list(queries.fleets(request.user, action))
    slug = request.GET.get("fleet") or request.POST.get("fleet")
    if slug:
        return access_fleet(request.user, slug, action), choices
    return (choices[0] if choices else None), choices


def render_page(request, template: str, partial: str | None, ctx: dict[str, Any], errors=None):
    """The whole page, or for htmx only `partial`; 400 when a form was rejected."""
    name = f"{template}#{partial}" if request.htmx and partial else template
    return render(request, name, ctx, status=400 if errors else 200)


def page(view):
    """A dashboard page: signed in (else the login page), and the viewer's roles read once for the
    whole request: the page's access checks and the navigation share one query
    (`accounts.access.remember_roles`)."""

    @login_required
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        access.remember_roles(request.user)
        return view(request, *args, **kwargs)

    return wrapper
