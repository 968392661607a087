"""The Access page: fleet members and their roles, invitations, and your personal API tokens.

The same access functions, reads and services as the admin API (accounts/api.py): members are
listed to a fleet's admins and compliance officers, changed by its admins; an invitation and a
personal token are shown once.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse

from controlplane.accounts import access, queries, services
from controlplane.accounts.access import ADMINISTER, VIEW, access_fleet
from controlplane.accounts.api import InviteIn, MemberIn, PersonalTokenIn
from controlplane.accounts.models import Role
from controlplane.errors import NotFound, ServiceError
from controlplane.fleets.models import Fleet
from controlplane.forms import ALL, submit


def _fleets(user, action: str) -> list[Fleet]:
    return list(access.restrict(Fleet.objects.order_by("slug"), user, action))


@login_required
def access_page(request):
    user = request.user
    member_fleets = _fleets(user, access.READ_MEMBERS)
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
        "errors": {},
        "admin_fleets": _fleets(user, ADMINISTER),
        "view_fleets": _fleets(user, VIEW),
        "may_invite": services.may_invite(user),
        "global_admin": access.is_global_admin(user),
    }
    form = request.POST.get("form")
    if request.method == "POST" and form == "member":
        fleet = access_fleet(user, request.POST.get("fleet", ""), ADMINISTER)
        member = queries.access_user(request.POST.get("username", "").strip())
        role = request.POST.get("role") or None
        if role == "none":
            try:
                services.do_set_membership(
                    actor=user, user=member, fleet=fleet, role=None, request=request
                )
            except NotFound:
                raise
            except ServiceError as exc:
                ctx["errors"] = {exc.field or ALL: exc.message}
        else:
            _, ctx["errors"] = submit(
                MemberIn,
                {"role": role},
                lambda p: services.do_set_membership(
                    actor=user, user=member, fleet=fleet, role=p.role, request=request
                ),
            )
        if not ctx["errors"]:
            return redirect(f"{reverse('accounts:access')}?fleet={fleet.slug}")
    elif request.method == "POST" and form == "invite":
        invite_fleet = (
            access_fleet(user, request.POST["invite_fleet"], ADMINISTER)
            if request.POST.get("invite_fleet")
            else None
        )
        invited, ctx["errors"] = submit(
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
        if invited:
            ctx["invited"] = {"user": invited[0], "url": request.build_absolute_uri(invited[1])}
        ctx["invite_form"] = request.POST
    elif request.method == "POST" and form == "token":
        scoped = [access_fleet(user, s, VIEW) for s in request.POST.getlist("fleets")]
        created, ctx["errors"] = submit(
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
        if created:
            ctx["token"] = {"row": created[0], "plaintext": created[1]}
        ctx["token_form"] = request.POST
    elif request.method == "POST" and form == "revoke-token":
        token = access.access_personal_token(user, int(request.POST.get("token", 0) or 0))
        services.do_revoke_personal_token(user, token, request=request)
        return redirect(reverse("accounts:access"))
    ctx["fleet"] = fleet
    if fleet is not None:
        ctx["members"] = list(queries.members(fleet))
        ctx["administer"] = access.can(user, fleet.pk, ADMINISTER)
    ctx["tokens"] = list(queries.personal_tokens(user))
    if ctx["global_admin"]:
        ctx["users"] = list(queries.users(user)[:500])
    status = 400 if ctx["errors"] else 200
    return render(request, "accounts/access.html", ctx, status=status)
