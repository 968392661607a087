"""Guessing bearer secrets is limited per address and recorded (controlplane/accounts/guesses.py):
node credentials, enrollment tokens and personal API tokens alike. Revoked and expired secrets
do not count as guesses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.accounts import guesses
from controlplane.accounts.models import TokenFailure
from controlplane.accounts.services import do_create_personal_token
from controlplane.audit.models import AuditRecord
from edgenodes.models import NodeCredential

from .conftest import enroll

LIMIT = 5
ATTACKER = "203.0.113.9"


@pytest.fixture(autouse=True)
def low_limit(settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "TOKEN_FAILURE_LIMIT": LIMIT}


def call(client_call, path: str, token: str, ip: str = ATTACKER, **kwargs):
    return client_call(path, headers={"authorization": f"Bearer {token}"}, REMOTE_ADDR=ip, **kwargs)


def test_an_address_guessing_node_credentials_is_refused_even_a_right_one_then(north, client):
    _, credential = enroll(north, "n1")
    for i in range(LIMIT - 1):
        assert call(client.get, "/api/node/v1/desired-state", f"efn_guess{i}").status_code == 401
    r = call(client.get, "/api/node/v1/desired-state", "efn_guess-last")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert "too many unknown tokens" in r.json()["detail"]
    # Blocked: a right guess teaches nothing either, on the poll and on every other endpoint.
    assert call(client.get, "/api/node/v1/desired-state", credential).status_code == 429
    assert call(client.post, "/api/node/v1/metrics", credential).status_code == 429
    # Another address is not affected.
    ok = call(client.get, "/api/node/v1/desired-state", credential, ip="198.51.100.7")
    assert ok.status_code == 200
    assert TokenFailure.objects.filter(ip=ATTACKER, kind="node credential").count() == LIMIT
    (audit,) = AuditRecord.objects.filter(action="auth.guessing")
    assert audit.after == {"kind": "node credential", "failures": LIMIT, "window_s": 600}
    assert audit.source_ip == ATTACKER


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


def test_guessing_personal_api_tokens_is_limited(client, alice):
    _, token = do_create_personal_token(alice, name="automation")
    codes = [call(client.get, "/api/v1/fleets", f"efp_guess{i}").status_code for i in range(LIMIT)]
    assert codes == [401] * (LIMIT - 1) + [429]
    assert call(client.get, "/api/v1/fleets", token).status_code == 429
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
