"""A bounded schemathesis run over the admin API's own OpenAPI schema, in the suite.

Every operation, positive and negative cases and then the stateful phase, with every check
schemathesis has, authenticated as one persona per role (a personal API token each) through the
real WSGI application, in a world of two fleets with a node, a token, a layer, an approval and a
rollout each. Path parameters often name those real objects, in the persona's fleet and in the
other one. Then:

- no 5xx, no undeclared status, every response as declared, schema-valid data accepted and invalid
  data rejected (settings: schemathesis.toml);
- no successful answer shows anything of a fleet the persona has no role in (the other fleet's
  node id, name and fleet name are canaries);
- nothing the matrix forbids the persona changed (the fleets' rows compared before and after).

`make fuzz` runs it with many more examples and writes bench/results/fuzz.md.
"""

from __future__ import annotations

import pytest
from django.core import serializers

from controlplane.accounts.models import Membership
from controlplane.accounts.services import do_create_personal_token
from controlplane.fleets.models import Fleet
from controlplane.nodes.models import (
    DesiredStateLayer,
    EnrollmentToken,
    Node,
    Rollout,
    ToolApproval,
)

from .conftest import ADMINISTER, OPERATE, RIGHTS, targets
from .fuzz import fuzz, load, operations, stateful

pytestmark = pytest.mark.django_db(transaction=False)

PERSONAS = ["alice", "fiona", "olivia", "carol", "victor", "mallory"]
REVOKE = "/api/v1/tokens/{token_id}/revoke"

# What each right may change in a fleet: the rows compared before and after the fuzz.
CHANGED_BY = {
    OPERATE: {
        "nodes": (Node, "fleet"),
        "enrollment tokens": (EnrollmentToken, "fleet"),
        "layers": (DesiredStateLayer, "fleet"),
        "approvals": (ToolApproval, "fleet"),
        "rollouts": (Rollout, "fleet"),
    },
    ADMINISTER: {"fleet": (Fleet, "pk"), "members": (Membership, "fleet")},
}


def snapshot(fleet: Fleet, rights: set[str]) -> dict[str, str]:
    """The rows of `fleet` that someone holding only `rights` there may not change."""
    rows = {}
    for right, parts in CHANGED_BY.items():
        if right not in rights:
            for part, (model, key) in parts.items():
                qs = model.objects.filter(**{key: fleet.pk}).order_by("pk")
                rows[part] = serializers.serialize("json", qs)
    return rows


@pytest.mark.parametrize("persona", PERSONAS, indirect=True)
def test_the_admin_api_survives_a_bounded_fuzz_and_never_lets_a_persona_past_the_matrix(
    persona, world, wsgi_in_test_transaction
):
    north, south = world["north"], world["south"]
    rights = RIGHTS[persona.username]
    global_admin = persona.is_superuser
    own, token = do_create_personal_token(persona, name="fuzz")
    mine, other = targets(north), targets(south)
    known = {
        "slug": ["north", "south"],
        "node_id": [str(mine["node"]), str(other["node"])],
        "token_id": [mine["token"], other["token"]],
        "approval_id": [mine["approval"], other["approval"]],
        "rollout_id": [mine["rollout"], other["rollout"]],
        "name": ["existing"],
        "username": ["olivia", "victor", "bob", persona.username],
    }
    south_node = Node.objects.get(fleet=south)
    canaries = [str(south_node.pk), south_node.name, south.name]

    def oracle(case, response) -> None:
        if global_admin or not 200 <= response.status_code < 300:
            return
        body = response.text
        seen = [c for c in canaries if c in body]
        assert not seen, f"{persona} saw the other fleet ({seen}) in {case.method} {case.path}"

    before = {
        "north": snapshot(north, rights),
        "south": snapshot(south, set() if not global_admin else set(CHANGED_BY)),
    }
    schema = load("/api/v1/openapi.json", token)
    ops = operations("/api/v1/openapi.json", token, schema=schema)
    assert len(ops) >= 35
    # Revoking a token could revoke the fuzzer's own (tested in test_admin_api.py).
    ops = [op for op in ops if op.path != REVOKE]
    run = fuzz(ops, token, examples=5, known=known, oracle=oracle)

    def harmless(case) -> None:
        if case.path == REVOKE and str(case.path_parameters.get("token_id")) == str(own.pk):
            case.path_parameters["token_id"] = 10**9

    stateful(schema, token, run, examples=5, harmless=harmless)
    run.report("admin", persona.username)
    assert not run.failures, "\n\n".join(run.failures)
    if not global_admin:
        north.refresh_from_db()
        assert snapshot(north, rights) == before["north"]
        assert snapshot(south, set()) == before["south"]
