"""Reads of accounts: a fleet's members, people, your personal tokens (API and pages alike)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from controlplane.errors import Forbidden, NotFound

from .access import is_global_admin
from .models import Membership, PersonalToken


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
