"""Writes for accounts: personal API tokens, invitations and memberships; and who a live
connection (a dashboard websocket, an audit export being streamed) acts as now."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.signals import user_logged_out
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from controlplane import tokens
from controlplane.accounts import queries
from controlplane.accounts.access import ADMINISTER, fleet_ids, is_global_admin
from controlplane.accounts.models import Membership, PersonalToken, Role
from controlplane.audit.services import pseudonym, record
from controlplane.errors import Conflict, Forbidden, ServiceError
from controlplane.events import access_changed_on_commit, publish_on_commit
from controlplane.schemas import refuse_unsafe


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
        access_changed_on_commit(token.user_id, "token_revoked")
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
    access_changed_on_commit(user.pk, "membership")
    return result


# --- access that follows the person, live ---------------------------------------------------------
# A dashboard socket and a streamed audit export outlive the request that opened them. Whatever
# changes what a person may see tells their open sockets at once (`access_changed_on_commit`: the
# services above, and the receivers below for logouts and changed or deleted accounts); each socket
# then asks `current_user` who it acts as now (controlplane/dashboard/consumers.py;
# docs/permissions.md).

# Saving an account with these fields (or all of them: update_fields=None) may change its access:
# a deactivated or erased account, a global admin made or unmade, a changed password (which ends
# the person's other sessions: Django's session hash).
ACCESS_FIELDS = {"is_active", "is_superuser", "password"}


@receiver(user_logged_out)
def _on_logout(sender, request=None, user=None, **kwargs):
    if user is not None and user.pk is not None:
        # Django sends this before it flushes the session: flushed first, so that a socket that
        # re-checks at once (outside a transaction, on_commit runs now) finds it gone.
        session = getattr(request, "session", None)
        if session is not None:
            session.flush()
        access_changed_on_commit(user.pk, "logout")


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _on_account_saved(sender, instance, created=False, update_fields=None, **kwargs):
    if not created and (update_fields is None or ACCESS_FIELDS & set(update_fields)):
        access_changed_on_commit(instance.pk, "account")


@receiver(post_delete, sender=settings.AUTH_USER_MODEL)
def _on_account_deleted(sender, instance, **kwargs):
    access_changed_on_commit(instance.pk, "account")


# Why a live connection lost its credentials: code -> what the person is told.
ENDED = {
    "session_ended": "Your session ended (logged out, expired or password changed).",
    "token_revoked": "The API token of this connection was revoked or has expired.",
    "account_disabled": "Your account was deactivated or erased.",
}


def credentials_of(request, user) -> dict[str, Any]:
    """What authenticated `request` as `user`, for `current_user` to check again later: a personal
    token (its hash: the API sets `token_scope` on its user), the session, or the user alone."""
    if getattr(user, "token_scope", None) is not None and request is not None:
        auth = request.headers.get("Authorization", "")
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            return {"token_hash": tokens.hash_token(secret.strip())}
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if key:
        return {"session_key": key, "user_id": user.pk}
    return {"user_id": getattr(user, "pk", None)}


def current_user(
    *, token_hash: str | None = None, session_key: str | None = None, user_id: int | None = None
) -> tuple[Any, str]:
    """Who a live connection acts as now: (user, "") or (None, a code of ENDED). By a personal
    token: it is still usable and its user active (the token's narrowing is set again, as the API
    does). Otherwise the account still exists and is active, and by a session: the session still
    exists, unexpired, for this user and their current password.
    """
    User = get_user_model()
    if token_hash:
        pt, token_user = queries.token_holder(token_hash)
        if token_user is not None:
            return token_user, ""
        disabled = pt is not None and pt.is_usable(timezone.now()) and not pt.user.is_active
        return None, "account_disabled" if disabled else "token_revoked"
    if user_id is None:
        return None, "session_ended"
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return None, "account_disabled"
    if session_key and not _session_holds(session_key, user):
        return None, "session_ended"
    return user, ""


def _session_holds(session_key: str, user) -> bool:
    """Whether the session still exists, unexpired, logged in as `user` with their current password
    (Django's session hash, as `django.contrib.auth.get_user` checks it, without its flush: the
    request that owns the session may be changing the password right now)."""
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    stored = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored, h) for h in hashes)
