"""Writes for accounts: personal API tokens, invitations and memberships."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from controlplane import tokens
from controlplane.audit.services import pseudonym, record
from controlplane.errors import Conflict, Forbidden, ServiceError
from controlplane.events import publish_on_commit
from controlplane.schemas import refuse_unsafe

from .access import ADMINISTER, fleet_ids, is_global_admin
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
    refuse_unsafe("name", name)
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


def may_invite(actor) -> bool:
    """Global admins, and admins of at least one fleet, may create accounts."""
    ids = fleet_ids(actor, ADMINISTER)
    return ids is None or bool(ids)


def set_password_path(user) -> str:
    """The one-time link where an invited person sets their password (Django's password-reset
    confirmation: it stops working once the password is set, or after PASSWORD_RESET_TIMEOUT)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})


@transaction.atomic
def do_invite_user(
    *,
    actor,
    username: str,
    email: str = "",
    fleet=None,
    role: str | None = None,
    request=None,
):
    """Create an account without a password and return (user, set-password path), the path shown
    once to whoever invites. With `fleet` and `role`, the role is granted in the same transaction
    (the caller has checked that `actor` administers `fleet`)."""
    if not may_invite(actor):
        raise Forbidden("only an admin of a fleet can invite people")
    if (fleet is None) != (not role):
        raise ServiceError("a role needs a fleet, and a fleet needs a role", field="role")
    User = get_user_model()
    refuse_unsafe("username", username)  # before strip(), which drops some of them
    refuse_unsafe("email", email)
    username = username.strip()
    try:
        User.username_validator(username)  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages), field="username") from None
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ServiceError(f"'{email}' is not an e-mail address", field="email") from None
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"username '{username}' is taken", field="username")
    user = User(username=username, email=email)
    user.set_unusable_password()
    user.save()
    record(
        "user.invite",
        ("user", pseudonym("user", str(user.pk))),
        user=actor,
        after={"fleet": fleet.slug if fleet else None, "role": role},
        request=request,
    )
    if fleet is not None and role:
        do_set_membership(actor=actor, user=user, fleet=fleet, role=role, request=request)
    return user, set_password_path(user)


@transaction.atomic
def do_set_membership(*, actor, user, fleet, role: str | None, request=None) -> Membership | None:
    """Give `user` a role in `fleet` (None removes it). The caller has checked that `actor`
    administers `fleet`; a fleet admin cannot change their own role (another admin must), so no one
    locks themselves out by a slip."""
    if user.pk == getattr(actor, "pk", None) and not is_global_admin(actor):
        raise Forbidden("you cannot change your own role; ask another admin of the fleet")
    if not user.is_active:
        raise ServiceError(f"user '{user.username}' is deactivated")
    current = Membership.objects.filter(user=user, fleet=fleet).first()
    before = {"role": current.role} if current else None
    if role is None:
        if current:
            current.delete()
        result = None
    else:
        if role not in Role.values:
            raise ServiceError(f"unknown role '{role}'", field="role")
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
    publish_on_commit(fleet.pk, "membership.set", user=user.username, role=role)
    return result
