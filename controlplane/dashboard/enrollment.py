"""controlplane.dashboard.enrollment"""

from __future__ import annotations

from typing import Any

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.accounts.access import OPERATE
from controlplane.dashboard.common import PAGE, fleet_for, page, page_number, render_page
from controlplane.forms import labels_from_text, submit
from controlplane.nodes import queries, services
from controlplane.nodes.api import (
    EnrollmentTokenIn,
)
from controlplane.pagination import offset_page


def _enroll_command(request, token: str) -> str:
    server = request.build_absolute_uri("/").rstrip("/")
    # The token goes in on standard input: a command line is visible to every process of the node
    # (docs/agent.md, "The enrollment token stays off the command line").
    return (
        f"printf %s '{token}' | edgefleet-agent --state-dir /var/lib/edgefleet enroll "
        f"--server {server} --token - && edgefleet-agent --state-dir /var/lib/edgefleet run"
    )


@page
def enrollment(request):
    fleet, choices = fleet_for(request, OPERATE)
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
            queries.enrollment_tokens(fleet), limit=PAGE, offset=page_number(request)
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
    return render_page(request, "dashboard/enrollment.html", "token-list", ctx, ctx["errors"])


@page
@require_POST
def enrollment_revoke(request, token_id: int):
    token = queries.access_enrollment_token(request.user, token_id, OPERATE)
    token = services.do_revoke_enrollment_token(token, actor=request.user, request=request)
    if request.htmx:
        return render(request, "dashboard/enrollment.html#token-row", {"t": token})
    return redirect(f"{reverse('dashboard:enrollment')}?fleet={token.fleet.slug}")
