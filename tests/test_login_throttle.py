"""Failed logins slow down whoever makes them, never the account's owner elsewhere
(controlplane/accounts/auth.py): failures count per account and address and per address, each
attempt past the limit waits twice as long as the last, a browser that signed in before (a known
device) or an address the account signed in from recently keeps working, and an account being
guessed is recorded for its owner and shown at their next sign-in."""

from __future__ import annotations

import re
from datetime import timedelta
from ipaddress import ip_network

import pytest
from django.test import Client
from django.utils import timezone

from controlplane.accounts.auth import DEVICE_COOKIE, failure_delay_s, username_hash
from controlplane.accounts.models import LoginFailure
from controlplane.audit.models import AuditRecord
from controlplane.audit.services import pseudonym

LOGIN = "/accounts/login/"
PASSWORD = "correct horse battery staple"
LIMIT = 5  # EDGEFLEET_LOGIN_FAILURE_LIMIT's default
GUESSER = "203.0.113.9"
HOME = "198.51.100.7"
OFFICE = "192.0.2.10"  # a NAT that many people share


def sign_in(client: Client, username: str, password: str = PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra})


def guessed(username: str, ip: str, n: int, ago_s: float = 0, device: str = "") -> None:
    """n failures for `username` from `ip`, the newest `ago_s` seconds ago: a guesser's trail,
    without n requests."""
    ts = timezone.now() - timedelta(seconds=ago_s)
    LoginFailure.objects.bulk_create(
        LoginFailure(username_hash=username_hash(username), ip=ip, device=device, ts=ts)
        for _ in range(n)
    )


def refused(response) -> bool:
    return response.status_code == 200 and b"Too many failed logins from here" in response.content


def test_a_guesser_at_one_address_does_not_lock_the_owner_out_from_another(olivia):
    guesser = Client(REMOTE_ADDR=GUESSER)
    for _ in range(LIMIT):
        assert not refused(sign_in(guesser, "olivia", "wrong"))
    assert LoginFailure.objects.filter(ip=GUESSER).count() == LIMIT
    guessed("olivia", GUESSER, 5)  # ... and it kept going
    assert refused(sign_in(guesser, "olivia"))  # even with the right password
    assert not guesser.session.get("_auth_user_id")
    assert sign_in(Client(REMOTE_ADDR=HOME), "olivia").status_code == 302


def test_a_known_device_signs_in_while_guessers_behind_its_address_are_throttled(olivia):
    owner = Client(REMOTE_ADDR=OFFICE)
    assert sign_in(owner, "olivia").status_code == 302
    assert DEVICE_COOKIE in owner.cookies  # this browser is now a known device of the account
    owner.post("/accounts/logout/")
    guessed("olivia", OFFICE, 12)  # someone else behind the office's NAT
    assert refused(sign_in(Client(REMOTE_ADDR=OFFICE), "olivia"))
    assert sign_in(owner, "olivia").status_code == 302


def test_a_known_device_is_throttled_by_its_own_failures_only(olivia):
    owner = Client(REMOTE_ADDR=HOME)
    assert sign_in(owner, "olivia").status_code == 302
    owner.post("/accounts/logout/")
    for _ in range(LIMIT):
        sign_in(owner, "olivia", "wrong")
    mine = LoginFailure.objects.exclude(device="")
    assert mine.count() == LIMIT  # counted against the device, not the address
    (device,) = set(mine.values_list("device", flat=True))
    guessed("olivia", HOME, 10, device=device)
    assert refused(sign_in(owner, "olivia"))
    # Another browser at the same address is not that device.
    assert sign_in(Client(REMOTE_ADDR=HOME), "olivia").status_code == 302


def test_an_address_the_account_signed_in_from_is_not_blocked_by_spraying_there(alice, mallory):
    assert sign_in(Client(REMOTE_ADDR=OFFICE), "alice").status_code == 302
    for i in range(25):  # one address trying many accounts
        guessed(f"user{i}", OFFICE, 1)
    assert refused(sign_in(Client(REMOTE_ADDR=OFFICE), "mallory"))
    assert sign_in(Client(REMOTE_ADDR=OFFICE), "alice").status_code == 302  # a new browser too
    assert sign_in(Client(REMOTE_ADDR=HOME), "mallory").status_code == 302


def test_the_wait_doubles_with_each_failure_past_the_limit_up_to_the_cap(olivia, settings):
    assert [failure_delay_s(n, LIMIT) for n in range(3, 10)] == [0, 0, 2, 4, 8, 16, 32]
    assert failure_delay_s(10**6, LIMIT) == settings.EDGEFLEET["LOGIN_LOCKOUT_S"] == 900
    # 12 failures, the last 200 s ago: 256 s after it, so still waiting, and told how long.
    guessed("olivia", GUESSER, 12, ago_s=200)
    r = sign_in(Client(REMOTE_ADDR=GUESSER), "olivia")
    assert refused(r) and re.search(rb"Try again in \d+ seconds\.", r.content)
    # 11 such failures: 128 s, passed.
    LoginFailure.objects.filter(pk=LoginFailure.objects.first().pk).delete()
    assert sign_in(Client(REMOTE_ADDR=GUESSER), "olivia").status_code == 302
    # At the cap, the page says so in minutes.
    guessed("olivia", GUESSER, 40)
    assert b"Try again in 15 minutes." in sign_in(Client(REMOTE_ADDR=GUESSER), "olivia").content


def test_a_throttled_attempt_checks_no_password_and_is_not_recorded_on_any_login_page(alice):
    guessed("alice", GUESSER, 12)
    before = AuditRecord.objects.count()
    for page in (LOGIN, "/admin/login/"):
        client = Client(REMOTE_ADDR=GUESSER)
        r = client.post(page, {"username": "alice", "password": PASSWORD})
        assert r.status_code == 200 and not client.session.get("_auth_user_id")
    assert LoginFailure.objects.count() == 12
    assert AuditRecord.objects.count() == before


def test_an_account_being_guessed_is_recorded_and_its_owner_told_at_the_next_sign_in(olivia):
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.1", "203.0.113.2"):
        sign_in(Client(REMOTE_ADDR=ip), "olivia", "wrong")
    sign_in(Client(REMOTE_ADDR="203.0.113.4"), "olivia", "wrong")  # one alert, not one a guess
    (alert,) = AuditRecord.objects.filter(action="auth.account_guessed")
    assert alert.object_id == pseudonym("user", str(olivia.pk))
    assert alert.after == {"failures": LIMIT, "addresses": 3, "window_s": 86_400}
    # Her next sign-in, from her own address, goes through a notice first, once.
    owner = Client(REMOTE_ADDR=HOME)
    r = sign_in(owner, "olivia", next="/fleets/")
    assert r.status_code == 302 and r["Location"] == f"{LOGIN}?next=%2Ffleets%2F"
    page = owner.get(r["Location"]).content.decode()
    assert "6 failed sign-ins</strong>" in page and "(4 addresses)" in page
    assert 'href="/fleets/">Continue' in page
    assert b"Failed sign-ins to your account" not in owner.get(r["Location"]).content


def test_the_owners_own_typos_are_not_reported_back_to_them(olivia):
    owner = Client(REMOTE_ADDR=HOME)
    sign_in(owner, "olivia", "wrong")
    assert sign_in(owner, "olivia")["Location"] == "/"
    assert not LoginFailure.objects.exists()  # signed in: that address's failures are forgiven


def test_behind_a_trusted_proxy_the_throttle_counts_the_forwarded_client(olivia, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "TRUSTED_PROXIES": (ip_network("10.0.0.0/8"),)}
    guessed("olivia", GUESSER, 12)
    proxy = "10.0.0.2"
    assert refused(sign_in(Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=GUESSER), "olivia"))
    # Someone else behind the same proxy signs in.
    assert (
        sign_in(Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=HOME), "olivia").status_code == 302
    )
    # A client that writes the header itself is still its own address.
    assert refused(sign_in(Client(REMOTE_ADDR=GUESSER, HTTP_X_FORWARDED_FOR=HOME), "olivia"))


@pytest.mark.parametrize("cookie", ["garbage", "e30:1t0:abc"])
def test_a_forged_device_cookie_is_no_known_device(olivia, cookie):
    guessed("olivia", GUESSER, 12)
    client = Client(REMOTE_ADDR=GUESSER)
    client.cookies[DEVICE_COOKIE] = cookie
    assert refused(sign_in(client, "olivia"))


def test_addresses_of_one_ipv6_64_count_as_one_guesser(olivia):
    for i in range(LIMIT):
        assert not refused(sign_in(Client(REMOTE_ADDR=f"2001:db8:7:7::{i + 1:x}"), "olivia", "x"))
    assert set(LoginFailure.objects.values_list("ip", flat=True)) == {"2001:db8:7:7::"}
    guessed("olivia", "2001:db8:7:7::", 5)
    assert refused(sign_in(Client(REMOTE_ADDR="2001:db8:7:7:ffff::1"), "olivia"))
    assert sign_in(Client(REMOTE_ADDR="2001:db8:7:8::1"), "olivia").status_code == 302


def test_many_addresses_guessing_one_account_slow_new_browsers_but_not_its_known_device(olivia):
    owner = Client(REMOTE_ADDR=HOME)
    assert sign_in(owner, "olivia").status_code == 302
    owner.post("/accounts/logout/")
    for i in range(60):  # a botnet: one guess from each address, each under every other limit
        guessed("olivia", f"203.0.113.{i}", 1)
    assert refused(sign_in(Client(REMOTE_ADDR="198.18.0.1"), "olivia"))
    assert sign_in(owner, "olivia").status_code == 302  # the known device


def test_an_attempt_counts_once_before_its_password_is_checked_and_not_when_it_succeeds(olivia):
    """The failure row is written before the (slow) password check, so parallel guesses meet
    each other's; a wrong password leaves exactly that one row, a right one none."""
    client = Client(REMOTE_ADDR=GUESSER)
    sign_in(client, "olivia", "wrong")
    assert LoginFailure.objects.count() == 1
    assert sign_in(Client(REMOTE_ADDR=HOME), "olivia").status_code == 302
    assert LoginFailure.objects.count() == 1  # the guesser's; the owner's attempt is gone
