"""A bounded schemathesis run over the admin API's own OpenAPI schema, in the suite.

Every operation, positive and negative cases, with every check schemathesis has, authenticated as
one persona per role (a personal API token each) through the real WSGI application: no 5xx, no
undeclared status, every response as declared, schema-valid data accepted and invalid data
rejected. The full run (more examples, a fixed seed) is `make fuzz`.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from controlplane.accounts.services import do_create_personal_token

pytestmark = pytest.mark.django_db(transaction=False)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
PERSONAS = ["alice", "fiona", "olivia", "carol", "victor", "mallory"]


@pytest.mark.parametrize("persona", PERSONAS, indirect=True)
def test_the_admin_api_survives_a_bounded_fuzz_with_every_check(persona, south, settings_override):
    _, token = do_create_personal_token(persona, name="fuzz")
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", get_wsgi_application(), headers={"Authorization": f"Bearer {token}"}
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35
    failures = []
    for operation in operations:
        if operation.path == "/api/v1/tokens/{token_id}/revoke":
            continue  # it would revoke the fuzzer's own token (tested in test_admin_api.py)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call(headers={"Authorization": f"Bearer {token}"})
                case.validate_response(response, headers={"Authorization": f"Bearer {token}"})

            try:
                run()
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
            except (Exception, BaseExceptionGroup) as exc:  # all operations run; all failures shown
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


@pytest.fixture
def settings_override():
    # Like Django's test client: the WSGI calls must not close the test transaction's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
