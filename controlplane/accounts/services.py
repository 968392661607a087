"""Writes for accounts: personal API tokens and memberships."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from controlplane import tokens
from controlplane.audit.services import pseudonym, record
from controlplane.errors import ServiceError

from .access import is_global_admin
from .models import Membership, PersonalToken, Role


@transaction.atomic
def do_create_personal_token(
    user, *, name: str, role: str = "", fleets=(), ttl_days: int | None = 90, request=None
) -> tuple[PersonalToken, str]:
    """A token for `user`, capped at `role` ("" = the user's own) in `fleets` (() = all of theirs).
    A token narrowed itself can only create tokens with an explicit role and fleets."""
    scoped = getattr(user, "token_scope", None) and not is_global_admin(user)
    if scoped and (not fleets or not role):
        raise ServiceError("a scoped token can only create tokens with an explicit role and fleets")
    if role and role not in Role.values:
        raise ServiceError(f"unknown role '{role}'")
    plaintext, token_hash, prefix = tokens.new_token(tokens.PERSONAL_PREFIX)
    token = PersonalToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        token_hash=token_hash,
        role=role,
        expires_at=timezone.now() + timedelta(days=ttl_days) if ttl_days else None,
    )
    token.fleets.set(fleets)
    record(
        "personal_token.create",
        token,
        user=user,
        after={"name": name, "prefix": prefix, "role": role, "fleets": [f.slug for f in fleets]},
        request=request,
    )
    return token, plaintext


@transaction.atomic
def do_revoke_personal_token(user, token: PersonalToken, *, request=None) -> PersonalToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(
            "personal_token.revoke",
            token,
            user=user,
            after={"prefix": token.prefix},
            request=request,
        )
    return token


@transaction.atomic
def do_set_membership(*, actor, user, fleet, role: str | None, request=None) -> Membership | None:
    """Give `user` a role in `fleet` (None removes it)."""
    current = Membership.objects.filter(user=user, fleet=fleet).first()
    before = {"role": current.role} if current else None
    if role is None:
        if current:
            current.delete()
        result = None
    else:
        if role not in Role.values:
            raise ServiceError(f"unknown role '{role}'")
        result, _ = Membership.objects.update_or_create(
            user=user, fleet=fleet, defaults={"role": role}
        )
    record(
        "membership.set",
        ("user", pseudonym("user", str(user.pk))),
        user=actor,
        fleet=fleet,
        before=before,
        after={"role": role},
        request=request,
    )
    return result
