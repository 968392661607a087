"""Login hardening, for every login path (the dashboard form and /admin/): failed logins are
recorded (a LoginFailure row and an audit record) and throttled, and sessions get a short idle
timeout for anyone who can see a HIPAA fleet.

The throttle never locks an account as such (five wrong passwords from anywhere used to lock its
owner out for everyone). It counts failures over LOGIN_FAILURE_WINDOW_S by who tries from where:

- per account and address: past LOGIN_FAILURE_LIMIT failures, each attempt waits 2, 4, 8...
  seconds after the last failure, at most LOGIN_LOCKOUT_S;
- per address (any account, password spraying): the same past LOGIN_ADDRESS_FAILURE_LIMIT,
  except for an account that signed in from that address recently (its `auth.login` audit
  records, while they keep their source address);
- a known device (a browser that signed in to the account before: a signed cookie naming it)
  is throttled only by its own failures, so its owner signs in whatever others try from
  elsewhere or from behind the same address.

The address is `controlplane.tokens.client_ip` (REMOTE_ADDR, or the client a trusted proxy saw).
An attempt refused by the throttle checks no password and is not recorded again. When an account
reaches LOGIN_FAILURE_LIMIT failures within the window from anything but its known devices, an
`auth.account_guessed` audit record is written, and its owner's next sign-in shows a notice of the
failed sign-ins from elsewhere since the previous one (the project sends no e-mail).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.dispatch import receiver
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from controlplane.accounts.access import VIEW, fleet_ids
from controlplane.accounts.models import LoginFailure
from controlplane.audit.models import AuditRecord
from controlplane.audit.services import pseudonym, record, user_ref
from controlplane.fleets.models import Fleet
from controlplane.tokens import client_ip, throttle_address
from wire.schemas import ComplianceMode

DEVICE_COOKIE = "edgefleet_device"
DEVICE_SALT = "controlplane.accounts.auth.device"
DEVICE_DAYS = 90  # a browser stays known this long after its last sign-in
DEVICE_ACCOUNTS = 8  # accounts one browser is remembered for
NOTICE_KEY = "edgefleet_login_notice"
THROTTLED = "_edgefleet_login_throttled"  # set on a request the throttle refused
ATTEMPT = "_edgefleet_login_attempt"  # the failure row written before the password is checked


def username_hash(username: str) -> str:
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()


def _ip(request) -> str | None:
    """The address failures count under (tokens.throttle_address: an IPv6 /64 as one)."""
    return throttle_address(client_ip(request.META)) if request is not None else None


# --- known devices --------------------------------------------------------------------------------


def _device_data(request) -> dict[str, Any]:
    """The device cookie's content when its signature and age are good: {"d": id, "a": [...]}."""
    value = request.COOKIES.get(DEVICE_COOKIE) if request is not None else None
    if not value:
        return {}
    try:
        data = signing.loads(value, salt=DEVICE_SALT, max_age=DEVICE_DAYS * 86_400)
    except signing.BadSignature:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("a"), list):
        return {}
    return data if isinstance(data.get("d"), str) else {}


def known_device(request, username: str) -> str:
    """The id of this browser when it signed in to `username` before, else ""."""
    data = _device_data(request)
    return data["d"][:32] if data and username_hash(username)[:16] in data["a"] else ""


def remember_device(request, response, user) -> None:
    """Set (or extend) the device cookie so this browser is known for `user`'s account."""
    data = _device_data(request)
    mine = username_hash(user.get_username())[:16]
    accounts = [a for a in data.get("a", []) if a != mine][-(DEVICE_ACCOUNTS - 1) :] + [mine]
    value = {"d": data.get("d") or secrets.token_urlsafe(16), "a": accounts}
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps(value, salt=DEVICE_SALT),
        max_age=DEVICE_DAYS * 86_400,
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Lax",
    )


# --- the throttle ---------------------------------------------------------------------------------


def failure_delay_s(failures: int, limit: int) -> int:
    """How long after the last failure the next attempt waits, once `failures` reach `limit`:
    2 s, then 4, 8, 16... seconds, at most LOGIN_LOCKOUT_S."""
    if failures < limit:
        return 0
    return min(settings.EDGEFLEET["LOGIN_LOCKOUT_S"], 2 ** min(failures - limit + 1, 40))


def _wait_s(failures: QuerySet, limit: int, now: datetime) -> float:
    seen = failures.aggregate(n=Count("id"), last=Max("ts"))
    delay = failure_delay_s(seen["n"], limit)
    return (seen["last"] + timedelta(seconds=delay) - now).total_seconds() if delay else 0.0


def _recent_failures(now: datetime) -> QuerySet:
    window = timedelta(seconds=settings.EDGEFLEET["LOGIN_FAILURE_WINDOW_S"])
    return LoginFailure.objects.filter(ts__gte=now - window)


def _from(ip: str | None) -> Q:
    return Q(ip=ip) if ip else Q(ip__isnull=True)


def signed_in_recently(username: str, ip: str) -> bool:
    """Whether `username` signed in from `ip` while the audit trail keeps source addresses."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        return False
    since = timezone.now() - timedelta(days=settings.EDGEFLEET["RETENTION_SOURCE_IP_DAYS"])
    logins = AuditRecord.objects.filter(actor=user_ref(user), action="auth.login", ts__gte=since)
    return logins.filter(source_ip=ip).exists()


def login_wait_s(username: str, request) -> int:
    """Seconds until this request may try to sign in as `username` (0: now)."""
    cfg = settings.EDGEFLEET
    now = timezone.now()
    recent = _recent_failures(now)
    uh = username_hash(username)
    ip = _ip(request)
    device = known_device(request, username)
    if device:
        mine = recent.filter(username_hash=uh, device=device)
        wait = _wait_s(mine, cfg["LOGIN_FAILURE_LIMIT"], now)
    else:
        here = recent.filter(_from(ip), device="")
        wait = _wait_s(here.filter(username_hash=uh), cfg["LOGIN_FAILURE_LIMIT"], now)
        if ip:
            spraying = _wait_s(here, cfg["LOGIN_ADDRESS_FAILURE_LIMIT"], now)
            if spraying > wait and not signed_in_recently(username, ip):
                wait = spraying
        # Many addresses guessing one account (a botnet, rotated addresses): past its ceiling,
        # browsers that never signed in to it wait too; its known devices and recent addresses
        # do not, so the owner is not locked out.
        unknown = recent.filter(username_hash=uh, device="")
        distributed = _wait_s(unknown, cfg["LOGIN_ACCOUNT_FAILURE_LIMIT"], now)
        if distributed > wait and not (ip and signed_in_recently(username, ip)):
            wait = distributed
    return max(0, math.ceil(wait))


def wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LockoutBackend(ModelBackend):
    """Refuses to check a password while this account or address is throttled (login_wait_s)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or request is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if login_wait_s(username, request):
            setattr(request, THROTTLED, True)  # not a guess: nothing was checked
            raise PermissionDenied("too many failed logins")
        # Counted as a failure before the password is checked (a hash takes a few hundred ms), so
        # a burst of parallel guesses meets its own failures instead of all passing one check.
        attempt = LoginFailure.objects.create(
            username_hash=username_hash(username),
            ip=_ip(request),
            device=known_device(request, username),
        )
        setattr(request, ATTEMPT, attempt.pk)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            LoginFailure.objects.filter(pk=attempt.pk).delete()
        return user


class LoginForm(AuthenticationForm):
    """The dashboard's login form: says plainly how long a throttled login waits."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        wait = login_wait_s(username, self.request) if username else 0
        if wait:
            raise forms.ValidationError(
                f"Too many failed logins from here. Try again in {wait_text(wait)}.",
                code="throttled",
            )
        return super().clean()


# --- telling the owner ----------------------------------------------------------------------------


def _failures_elsewhere(user, request, since: datetime | None) -> QuerySet:
    """The account's failures since `since` (within the window) but not from this browser: its
    device, or this address where it is not a known device."""
    now = timezone.now()
    failures = _recent_failures(now).filter(username_hash=username_hash(user.get_username()))
    if since is not None:
        failures = failures.filter(ts__gt=since)
    device = known_device(request, user.get_username())
    if device:
        return failures.exclude(device=device)
    return failures.exclude(_from(_ip(request)) & Q(device=""))


def login_notice(user, request) -> dict[str, Any] | None:
    """What to tell `user` about failed sign-ins from elsewhere since their last sign-in."""
    seen = _failures_elsewhere(user, request, user.last_login).aggregate(
        n=Count("id"), addresses=Count("ip", distinct=True), last=Max("ts")
    )
    if not seen["n"]:
        return None
    return {"failures": seen["n"], "addresses": seen["addresses"], "last": seen["last"].isoformat()}


class LoginView(auth_views.LoginView):
    """Django's login view with the throttle's form; it remembers the browser as a known device
    and, when the account had failed sign-ins from elsewhere since the last one, shows a notice
    before going on."""

    authentication_form = LoginForm

    def form_valid(self, form):
        user = form.get_user()
        notice = login_notice(user, self.request)  # before login() moves last_login
        response = super().form_valid(form)
        if notice:
            self.request.session[NOTICE_KEY] = notice
            query = urlencode({"next": self.get_success_url()})
            response = HttpResponseRedirect(f"{self.request.path}?{query}")
        remember_device(self.request, response, user)
        return response

    def get(self, request, *args, **kwargs):
        notice = request.session.pop(NOTICE_KEY, None) if request.user.is_authenticated else None
        if not notice:
            return super().get(request, *args, **kwargs)
        context = {**notice, "last": parse_datetime(notice["last"]), "next": self.get_success_url()}
        return render(request, "registration/login_notice.html", context)


# --- signals --------------------------------------------------------------------------------------


def _alert_if_guessed(user, request) -> None:
    """One `auth.account_guessed` record when the account's failures (its known devices aside)
    reach LOGIN_FAILURE_LIMIT within the window."""
    cfg = settings.EDGEFLEET
    failures = _recent_failures(timezone.now()).filter(
        username_hash=username_hash(user.get_username()), device=""
    )
    seen = failures.aggregate(n=Count("id"), addresses=Count("ip", distinct=True))
    if seen["n"] != cfg["LOGIN_FAILURE_LIMIT"]:
        return
    record(
        "auth.account_guessed",
        ("user", pseudonym("user", str(user.pk))),
        user=user,
        after={
            "failures": seen["n"],
            "addresses": seen["addresses"],
            "window_s": cfg["LOGIN_FAILURE_WINDOW_S"],
        },
        request=request,
    )


@receiver(user_login_failed)
def _record_failure(sender, credentials, request=None, **kwargs):
    if getattr(request, THROTTLED, False):
        return  # refused by the throttle: no password was checked, nothing more to count
    username = str(credentials.get("username") or "")
    user = get_user_model().objects.filter(username=username).first() if username else None
    device = known_device(request, username)
    with transaction.atomic():
        if getattr(request, ATTEMPT, None) is None:  # not through LockoutBackend: counted now
            LoginFailure.objects.create(
                username_hash=username_hash(username), ip=_ip(request), device=device
            )
        record(
            "auth.login_failed",
            ("user", pseudonym("user", str(user.pk)) if user else ""),
            user=user,
            after={"known_user": user is not None},
            request=request,
        )
        if user is not None and not device:
            _alert_if_guessed(user, request)


@receiver(user_logged_in)
def _on_login(sender, request, user, **kwargs):
    ids = fleet_ids(user, VIEW)
    hipaa = Fleet.objects.filter(compliance_mode=ComplianceMode.HIPAA)
    if ids is not None:
        hipaa = hipaa.filter(id__in=ids)
    if hipaa.exists():
        request.session.set_expiry(settings.EDGEFLEET["HIPAA_SESSION_IDLE_S"])
    # Signed in: this browser's (or, without a device cookie, this address's) failures for the
    # account no longer count against it.
    mine = LoginFailure.objects.filter(username_hash=username_hash(user.get_username()))
    device = known_device(request, user.get_username())
    (mine.filter(device=device) if device else mine.filter(_from(_ip(request)), device="")).delete()
    record("auth.login", ("user", pseudonym("user", str(user.pk))), user=user, request=request)


def purge_failures(now=None) -> int:
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.EDGEFLEET["RETENTION_LOGIN_FAILURES_DAYS"])
    deleted, _ = LoginFailure.objects.filter(ts__lt=cutoff).delete()
    return deleted
