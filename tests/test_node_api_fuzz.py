"""A bounded schemathesis run over the node API's own OpenAPI schema, in the suite.

Positive and negative cases for every operation and the stateful phase, sent with a real node
credential through the real WSGI application: no 5xx, every response conforms to the schema
(status, content type, body), schema-valid data is accepted and schema-violating data refused.
"""

from __future__ import annotations

import pytest
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from .fuzz import fuzz, load, operations, stateful

pytestmark = pytest.mark.django_db(transaction=False)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


def test_the_node_api_survives_a_bounded_fuzz_with_no_server_errors_or_schema_violations(
    north_node, settings_override, wsgi_in_test_transaction
):
    _, credential = north_node
    schema = load("/api/node/v1/openapi.json", credential)
    ops = operations("/api/node/v1/openapi.json", credential, schema=schema)
    assert len(ops) == 12
    run = fuzz(ops, credential, examples=40, checks=CHECKS)
    stateful(schema, credential, run, examples=20, checks=CHECKS)
    run.report("node", "a node")
    assert not run.failures, "\n\n".join(run.failures)


@pytest.fixture
def settings_override(settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "NODE_RATE_PER_MIN": 1_000_000}
