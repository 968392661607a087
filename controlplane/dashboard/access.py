"""The Access page: fleet members and their roles, invitations, and your personal API tokens.
One view per form: setting a member's role, inviting, creating and revoking a token.

The same access functions, reads and services as the admin API (accounts/api.py): members are
listed to a fleet's admins and compliance officers, changed by its admins; an invitation and a
personal token are shown once.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from controlplane.accounts import access, queries, services
from controlplane.accounts.access import ADMINISTER, VIEW, access_fleet
from controlplane.accounts.api import InviteIn, MemberIn, PersonalTokenIn
from controlplane.accounts.models import Role
from controlplane.dashboard.common import PEOPLE, page
from controlplane.errors import NotFound, ServiceError
from controlplane.fleets.models import Fleet
from controlplane.forms import ALL, submit


def _fleets(user, action: str) -> list[Fleet]:
    return list(access.restrict(Fleet.objects.order_by("slug"), user, action))


def _render(request, fleet: Fleet | None = None, *, errors=None, **extra: Any):
    """The Access page for `fleet` (`?fleet=`, else the first whose members the person may read),
    with what a form left to show: its errors (a 400), a one-time token or invitation link."""
    user = request.user
    member_fleets = _fleets(user, access.READ_MEMBERS)
    if fleet is None:
        slug = request.GET.get("fleet") or request.POST.get("fleet")
        fleet = (
            access_fleet(user, slug, access.READ_MEMBERS)
            if slug
            else (member_fleets[0] if member_fleets else None)
        )
    ctx: dict[str, Any] = {
        "fleet": fleet,
        "choices": member_fleets,
        "roles": Role.choices,
        "errors": errors or {},
        "admin_fleets": _fleets(user, ADMINISTER),
        "view_fleets": _fleets(user, VIEW),
        "may_invite": services.may_invite(user),
        "global_admin": access.is_global_admin(user),
        **extra,
    }
    if fleet is not None:
        ctx["members"] = list(queries.members(fleet))
        ctx["administer"] = access.can(user, fleet.pk, ADMINISTER)
    ctx["tokens"] = list(queries.personal_tokens(user))
    if ctx["global_admin"]:
        ctx["users"] = list(queries.users(user)[:PEOPLE])
    return render(request, "accounts/access.html", ctx, status=400 if errors else 200)


@page
@require_GET
def access_page(request):
    return _render(request)


@page
@require_POST
def member_set(request):
    """Grant, change or remove (role "none") a member's role in a fleet."""
    user = request.user
    fleet = access_fleet(user, request.POST.get("fleet", ""), ADMINISTER)
    member = queries.access_user(request.POST.get("username", "").strip())
    role = request.POST.get("role") or None
    errors: dict[str, str] = {}
    if role == "none":
        try:
            services.do_set_membership(
                actor=user, user=member, fleet=fleet, role=None, request=request
            )
        except NotFound:
            raise
        except ServiceError as exc:
            errors = {exc.field or ALL: exc.message}
    else:
        _, errors = submit(
            MemberIn,
            {"role": role},
            lambda p: services.do_set_membership(
                actor=user, user=member, fleet=fleet, role=p.role, request=request
            ),
        )
    if errors:
        return _render(request, fleet, errors=errors)
    return redirect(f"{reverse('accounts:access')}?fleet={fleet.slug}")


@page
@require_POST
def invite(request):
    """Invite a person (optionally into a fleet with a role); the link is shown once."""
    user = request.user
    invite_fleet = (
        access_fleet(user, request.POST["invite_fleet"], ADMINISTER)
        if request.POST.get("invite_fleet")
        else None
    )
    invited, errors = submit(
        InviteIn,
        {
            "username": request.POST.get("username", ""),
            "email": request.POST.get("email", ""),
            "fleet": invite_fleet.slug if invite_fleet else None,
            "role": request.POST.get("role") or None,
        },
        lambda p: services.do_invite_user(
            actor=user,
            username=p.username,
            email=p.email,
            fleet=invite_fleet,
            role=p.role,
            request=request,
        ),
    )
    extra: dict[str, Any] = {"invite_form": request.POST}
    if invited:
        extra["invited"] = {"user": invited[0], "url": request.build_absolute_uri(invited[1])}
    return _render(request, errors=errors, **extra)


@page
@require_POST
def token_create(request):
    """Create a personal API token; its secret is shown once, on this answer."""
    user = request.user
    scoped = [access_fleet(user, s, VIEW) for s in request.POST.getlist("fleets")]
    created, errors = submit(
        PersonalTokenIn,
        {
            "name": request.POST.get("name", ""),
            "role": request.POST.get("role", ""),
            "fleets": [f.slug for f in scoped],
            "ttl_days": request.POST.get("ttl_days") or None,
        },
        lambda p: services.do_create_personal_token(
            user, name=p.name, role=p.role, fleets=scoped, ttl_days=p.ttl_days, request=request
        ),
    )
    extra: dict[str, Any] = {"token_form": request.POST}
    if created:
        extra["token"] = {"row": created[0], "plaintext": created[1]}
    return _render(request, errors=errors, **extra)


@page
@require_POST
def token_revoke(request, token_id: int):
    token = access.access_personal_token(request.user, token_id)
    services.do_revoke_personal_token(request.user, token, request=request)
    return redirect(reverse("accounts:access"))
