"""A bounded schemathesis run over the node API's own OpenAPI schema, in the suite.

Positive and negative cases for every operation, sent with a real node credential through the real
WSGI application: no 5xx, and every response conforms to the schema (status, content type, body).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db(transaction=False)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))


def test_the_node_api_survives_a_bounded_fuzz_with_no_server_errors_or_schema_violations(
    north_node, settings_override
):
    _, credential = north_node
    schema = schemathesis.openapi.from_wsgi("/api/node/v1/openapi.json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call(headers={"Authorization": f"Bearer {credential}"})
                case.validate_response(response, checks=CHECKS)

            run()


@pytest.fixture
def settings_override(settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_RATE_PER_MIN": 1_000_000}
    # Like Django's test client: the WSGI calls must not close the test transaction's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
