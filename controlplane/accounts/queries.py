"""Reads of accounts: a fleet's members, people, your personal tokens (API and pages alike)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from controlplane.accounts.access import is_global_admin
from controlplane.accounts.models import Membership, PersonalToken
from controlplane.errors import Forbidden, NotFound


def access_user(username: str):
    """An active or inactive account by username, for granting a role. Fleet admins add people by
    name, so whether a username exists is not hidden from them (docs/permissions.md)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"user '{username}' not found")
    return user


def members(fleet) -> QuerySet[Membership]:
    return Membership.objects.filter(fleet=fleet).select_related("user").order_by("user__username")


def users(actor) -> QuerySet:
    """Every account, with their memberships: global admins only."""
    if not is_global_admin(actor):
        raise Forbidden("only a global admin can list every account")
    return get_user_model().objects.prefetch_related("memberships__fleet").order_by("username")


def personal_tokens(user) -> QuerySet[PersonalToken]:
    """Your own tokens, newest first (a person has few: not paginated)."""
    return (
        PersonalToken.objects.filter(user=user)
        .prefetch_related("fleets")
        .order_by("-created_at", "-id")
    )


def token_holder(token_hash: str) -> tuple[PersonalToken | None, Any]:
    """(the personal token with this hash or None, its user narrowed to the token's role and
    fleets if the token is usable and the user active, else None): the API's authentication and a
    live connection's re-check (services.current_user) ask this one question."""
    pt = (
        PersonalToken.objects.select_related("user")
        .prefetch_related("fleets")
        .filter(token_hash=token_hash)
        .first()
    )
    if pt is None or not pt.is_usable(timezone.now()) or not pt.user.is_active:
        return pt, None
    user = pt.user
    user.token_scope = (pt.role, {f.pk for f in pt.fleets.all()})  # type: ignore[attr-defined]
    return pt, user
