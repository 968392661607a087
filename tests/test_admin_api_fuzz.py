"""A bounded schemathesis run over the admin API's own OpenAPI schema, in the suite.

Every operation, positive and negative cases, with every check schemathesis has, authenticated as
one persona per role (a personal API token each) through the real WSGI application: no 5xx, no
undeclared status, every response as declared, schema-valid data accepted and invalid data
rejected (settings: schemathesis.toml). `make fuzz` runs it with more examples.
"""

from __future__ import annotations

import pytest

from controlplane.accounts.services import do_create_personal_token

from .fuzz import fuzz, operations

pytestmark = pytest.mark.django_db(transaction=False)

PERSONAS = ["alice", "fiona", "olivia", "carol", "victor", "mallory"]


@pytest.mark.parametrize("persona", PERSONAS, indirect=True)
def test_the_admin_api_survives_a_bounded_fuzz_with_every_check(
    persona, south, wsgi_in_test_transaction
):
    _, token = do_create_personal_token(persona, name="fuzz")
    ops = operations("/api/v1/openapi.json", token)
    assert len(ops) >= 35
    # Revoking a token could revoke the fuzzer's own (tested in test_admin_api.py).
    ops = [op for op in ops if op.path != "/api/v1/tokens/{token_id}/revoke"]
    failures = fuzz(ops, token, examples=5)
    assert not failures, "\n\n".join(failures)
