"""Guessing bearer secrets is limited per address and recorded (controlplane/accounts/guesses.py):
node credentials, enrollment tokens and personal API tokens alike. Only the unknown secrets of a
blocked address are refused: a right one is accepted from it, so one guesser behind a proxy or a
site's NAT does not lock out everyone sharing its address. Revoked and expired secrets do not
count as guesses. The address is the client a trusted proxy saw, and only a trusted one
(EDGEFLEET_TRUSTED_PROXIES, controlplane.tokens.client_ip)."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network

import pytest
from django.test import RequestFactory
from django.utils import timezone

from controlplane.accounts import guesses
from controlplane.accounts.models import TokenFailure
from controlplane.accounts.services import do_create_personal_token
from controlplane.audit.models import AuditRecord
from controlplane.nodes import services
from controlplane.nodes.models import NodeCredential
from controlplane.tokens import client_ip

from .conftest import HARDWARE, enroll

LIMIT = 5
ATTACKER = "203.0.113.9"


@pytest.fixture(autouse=True)
def low_limit(settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "TOKEN_FAILURE_LIMIT": LIMIT}


def call(client_call, path: str, token: str, ip: str = ATTACKER, **kwargs):
    return client_call(path, headers={"authorization": f"Bearer {token}"}, REMOTE_ADDR=ip, **kwargs)


def test_an_address_guessing_node_credentials_gets_429_for_its_unknown_ones(north, client):
    enroll(north, "n1")
    for i in range(LIMIT - 1):
        assert call(client.get, "/api/node/v1/desired-state", f"efn_guess{i}").status_code == 401
    r = call(client.get, "/api/node/v1/desired-state", "efn_guess-last")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert "too many unknown tokens" in r.json()["detail"]
    # Blocked: further guesses are refused on the poll and on every other endpoint, uncounted.
    assert call(client.get, "/api/node/v1/desired-state", "efn_more").status_code == 429
    assert call(client.post, "/api/node/v1/metrics", "efn_more").status_code == 429
    assert TokenFailure.objects.filter(ip=ATTACKER, kind="node credential").count() == LIMIT
    (audit,) = AuditRecord.objects.filter(action="auth.guessing")
    assert audit.after == {"kind": "node credential", "failures": LIMIT, "window_s": 600}
    assert audit.source_ip == ATTACKER


def test_a_valid_node_credential_is_accepted_from_an_address_blocked_for_guessing(north, client):
    # One guesser behind a site's NAT (or a proxy that does not pass the client's address) must
    # not lock out every node behind it.
    _, credential = enroll(north, "n1")
    for i in range(LIMIT):
        call(client.get, "/api/node/v1/desired-state", f"efn_guess{i}")
    assert guesses.blocked(ATTACKER)
    assert call(client.get, "/api/node/v1/desired-state", credential).status_code == 200
    assert call(client.get, "/api/node/v1/signing-key", credential).status_code == 200
    assert call(client.get, "/api/node/v1/desired-state", "efn_guess-again").status_code == 429


def test_a_valid_enrollment_token_is_accepted_from_an_address_blocked_for_guessing(north, client):
    for i in range(LIMIT):
        call(client.get, "/api/node/v1/desired-state", f"efn_guess{i}")
    _, token = services.do_create_enrollment_token(north, labels={}, actor=None)
    body = {"token": token, "name": "behind-the-nat", "hardware": HARDWARE.model_dump()}
    r = client.post(
        "/api/node/v1/enroll", body, content_type="application/json", REMOTE_ADDR=ATTACKER
    )
    assert r.status_code == 201, r.content


def test_guessing_enrollment_tokens_is_limited(north, client):
    body = {"token": "efe_not-a-token", "name": "n"}
    codes = [
        client.post(
            "/api/node/v1/enroll", body, content_type="application/json", REMOTE_ADDR=ATTACKER
        ).status_code
        for _ in range(LIMIT + 1)
    ]
    assert codes == [401] * (LIMIT - 1) + [429, 429]
    assert TokenFailure.objects.filter(kind="enrollment token").count() == LIMIT


def test_guessing_personal_api_tokens_is_limited_but_a_valid_one_still_works(client, alice):
    _, token = do_create_personal_token(alice, name="automation")
    codes = [call(client.get, "/api/v1/fleets", f"efp_guess{i}").status_code for i in range(LIMIT)]
    assert codes == [401] * (LIMIT - 1) + [429]
    assert call(client.get, "/api/v1/fleets", "efp_guess-again").status_code == 429
    assert call(client.get, "/api/v1/fleets", token).status_code == 200
    assert call(client.get, "/api/v1/fleets", token, ip="198.51.100.7").status_code == 200


def test_a_revoked_credential_polling_on_does_not_lock_out_its_site(north, client):
    node, credential = enroll(north, "n1")
    _, other = enroll(north, "n2")
    NodeCredential.objects.filter(node=node).update(revoked_at=timezone.now())
    for _ in range(LIMIT * 2):
        assert call(client.get, "/api/node/v1/desired-state", credential).status_code == 401
    assert call(client.get, "/api/node/v1/desired-state", other).status_code == 200
    assert not TokenFailure.objects.exists()


def test_old_failures_are_purged_with_the_login_failures(north, client, settings):
    call(client.get, "/api/node/v1/desired-state", "efn_x")
    days = settings.EDGEFLEET["RETENTION_LOGIN_FAILURES_DAYS"]
    assert guesses.purge(timezone.now() + timedelta(days=days + 1)) == 1
    assert not TokenFailure.objects.exists()


# --- the client's address behind a trusted proxy ----------------------------------------------

PROXY = "10.0.0.2"


@pytest.fixture
def behind_a_proxy(settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "TRUSTED_PROXIES": (ip_network("10.0.0.0/24"),)}


def meta(remote: str, forwarded: str | None = None) -> dict:
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return request.META


def test_the_forwarded_address_is_believed_only_from_a_trusted_proxy(behind_a_proxy):
    # From the proxy: the rightmost address it did not add itself; what the client wrote to the
    # left of it is never believed.
    assert client_ip(meta(PROXY, "192.0.2.1, 203.0.113.9")) == "203.0.113.9"
    assert client_ip(meta(PROXY, "203.0.113.9, 10.0.0.7")) == "203.0.113.9"  # two proxies
    assert client_ip(meta(PROXY, "[2001:db8::5]:4711")) == "2001:db8::5"
    assert client_ip(meta(PROXY, "203.0.113.9:4711")) == "203.0.113.9"
    assert client_ip(meta(PROXY, "garbage, 10.0.0.7")) == "10.0.0.7"  # stops at the last proxy
    assert client_ip(meta(PROXY)) == PROXY  # a proxy that passes nothing
    # From anyone else the header is the client's own writing.
    assert client_ip(meta("198.51.100.50", "203.0.113.9")) == "198.51.100.50"


def test_without_trusted_proxies_the_forwarded_header_is_ignored():
    assert client_ip(meta(PROXY, "203.0.113.9")) == PROXY


def test_behind_a_trusted_proxy_one_guesser_blocks_only_itself(behind_a_proxy, north, client):
    _, credential = enroll(north, "n1")
    via_proxy = {"REMOTE_ADDR": PROXY}
    for i in range(LIMIT):
        r = client.get(
            "/api/node/v1/desired-state",
            headers={"authorization": f"Bearer efn_guess{i}", "x-forwarded-for": ATTACKER},
            **via_proxy,
        )
    assert r.status_code == 429
    assert set(TokenFailure.objects.values_list("ip", flat=True)) == {ATTACKER}
    # Someone else behind the same proxy is not the guesser: their unknown secret is a plain 401.
    r = client.get(
        "/api/node/v1/desired-state",
        headers={"authorization": "Bearer efn_typo", "x-forwarded-for": "198.51.100.7"},
        **via_proxy,
    )
    assert r.status_code == 401
    # An untrusted client cannot pose as another address by writing the header itself.
    r = client.get(
        "/api/node/v1/desired-state",
        headers={"authorization": "Bearer efn_x", "x-forwarded-for": "198.51.100.99"},
        REMOTE_ADDR="192.0.2.44",
    )
    assert r.status_code == 401
    assert TokenFailure.objects.filter(ip="192.0.2.44").count() == 1
    assert not TokenFailure.objects.filter(ip="198.51.100.99").exists()
