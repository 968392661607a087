"""Login hardening: failed logins are recorded (a LoginFailure row and an audit record) and, past
a limit per username or per address, refused for a while; sessions get a short idle timeout for
anyone who can see a HIPAA fleet. Works for every login path (the dashboard form and /admin/)."""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from agents.schemas import ComplianceMode
from controlplane.audit.services import pseudonym, record
from controlplane.fleets.models import Fleet

from .access import VIEW, fleet_ids
from .models import LoginFailure


def username_hash(username: str) -> str:
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def lockout_remaining_s(username: str, ip: str | None) -> int:
    """Seconds until another attempt is allowed (0: allowed now)."""
    cfg = settings.EDGEFLEET
    window = timedelta(seconds=cfg["LOGIN_LOCKOUT_S"])
    since = timezone.now() - window
    who = Q(username_hash=username_hash(username))
    if ip:
        who |= Q(ip=ip)
    failures = list(
        LoginFailure.objects.filter(who, ts__gte=since)
        .order_by("-ts")
        .values_list("ts", "username_hash", "ip")[: cfg["LOGIN_FAILURE_LIMIT"] * 2]
    )
    uh = username_hash(username)
    for key in (lambda f: f[1] == uh, lambda f: ip is not None and f[2] == ip):
        mine = [f[0] for f in failures if key(f)]
        if len(mine) >= cfg["LOGIN_FAILURE_LIMIT"]:
            oldest = mine[cfg["LOGIN_FAILURE_LIMIT"] - 1]
            return max(1, math.ceil((oldest + window - timezone.now()).total_seconds()))
    return 0


class LockoutBackend(ModelBackend):
    """Refuses to authenticate while the username or address is locked out."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and lockout_remaining_s(username, _ip(request)):
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)


class LoginForm(AuthenticationForm):
    """The dashboard's login form: says plainly when a login is locked out."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        remaining = lockout_remaining_s(username, _ip(self.request)) if username else 0
        if remaining:
            raise forms.ValidationError(
                f"Too many failed logins. Try again in {math.ceil(remaining / 60)} minute(s).",
                code="locked_out",
            )
        return super().clean()


@receiver(user_login_failed)
def _record_failure(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username") or "")
    user = get_user_model().objects.filter(username=username).first() if username else None
    with transaction.atomic():
        LoginFailure.objects.create(username_hash=username_hash(username), ip=_ip(request))
        record(
            "auth.login_failed",
            ("user", pseudonym("user", str(user.pk)) if user else ""),
            user=user,
            after={"known_user": user is not None},
            request=request,
        )


@receiver(user_logged_in)
def _on_login(sender, request, user, **kwargs):
    ids = fleet_ids(user, VIEW)
    hipaa = Fleet.objects.filter(compliance_mode=ComplianceMode.HIPAA)
    if ids is not None:
        hipaa = hipaa.filter(id__in=ids)
    if hipaa.exists():
        request.session.set_expiry(settings.EDGEFLEET["HIPAA_SESSION_IDLE_S"])
    record("auth.login", ("user", pseudonym("user", str(user.pk))), user=user, request=request)


def purge_failures(now=None) -> int:
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.EDGEFLEET["RETENTION_LOGIN_FAILURES_DAYS"])
    deleted, _ = LoginFailure.objects.filter(ts__lt=cutoff).delete()
    return deleted
