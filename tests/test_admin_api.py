"""The admin API: every endpoint for every persona, in their own fleet and in another one.

Forbidden and missing look the same (404), so nobody learns what exists in fleets they cannot see.
"""

from __future__ import annotations

import pytest

from controlplane.accounts.models import PersonalToken
from controlplane.accounts.services import do_create_personal_token
from controlplane.approvals import services as approvals_services
from controlplane.audit.models import AuditRecord
from controlplane.audit.services import user_ref
from controlplane.nodes import services
from controlplane.nodes.models import EnrollmentToken, Node, Rollout, ToolApproval
from controlplane.rollouts import services as rollouts
from wire.schemas import ApprovalIn

from .conftest import (
    ADMINISTER,
    AUDIT,
    ERASE,
    OPERATE,
    RIGHTS,
    ROLLOUT_MODEL,
    VIEW,
    targets,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    # (name, action needed, method, path, body)
    ("get fleet", VIEW, "get", "/fleets/{slug}", None),
    ("patch fleet", ADMINISTER, "patch", "/fleets/{slug}", {"poll_interval_s": 60}),
    ("get cloud budgets", VIEW, "get", "/fleets/{slug}/budgets", None),
    ("set cloud budgets", ADMINISTER, "put", "/fleets/{slug}/budgets", {"fleet_day_usd": 5}),
    ("get cloud usage", VIEW, "get", "/fleets/{slug}/cloud-usage?by=agent", None),
    ("get local usage", VIEW, "get", "/fleets/{slug}/local-usage?by=agent", None),
    ("list enrollment tokens", OPERATE, "get", "/fleets/{slug}/enrollment-tokens", None),
    (
        "create enrollment token",
        OPERATE,
        "post",
        "/fleets/{slug}/enrollment-tokens",
        {"labels": {"site": "x"}},
    ),
    ("revoke enrollment token", OPERATE, "post", "/enrollment-tokens/{token}/revoke", {}),
    ("get node", VIEW, "get", "/nodes/{node}", None),
    ("patch node", OPERATE, "patch", "/nodes/{node}", {"labels": {"site": "y"}}),
    ("revoke node", OPERATE, "post", "/nodes/{node}/revoke", {}),
    ("preview desired state", VIEW, "get", "/nodes/{node}/desired-state", None),
    ("metric series", VIEW, "get", "/nodes/{node}/metrics?name=request.latency_ms", None),
    (
        "metric rollups",
        VIEW,
        "get",
        "/nodes/{node}/metrics?name=request.latency_ms&resolution=minute",
        None,
    ),
    ("node events", VIEW, "get", "/nodes/{node}/events", None),
    ("list layers", VIEW, "get", "/fleets/{slug}/layers", None),
    (
        "put layer",
        OPERATE,
        "put",
        "/fleets/{slug}/layers/base",
        {"scope": "fleet", "sections": {"routing": {"threshold": 0.1}}},
    ),
    ("delete layer", OPERATE, "delete", "/fleets/{slug}/layers/existing", None),
    ("list node secrets", OPERATE, "get", "/fleets/{slug}/secrets", None),
    ("set a node secret", ADMINISTER, "put", "/fleets/{slug}/secrets/new-key", {"value": "v"}),
    ("delete a node secret", ADMINISTER, "delete", "/fleets/{slug}/secrets/existing", None),
    ("list rollouts", VIEW, "get", "/fleets/{slug}/rollouts", None),
    ("get rollout", VIEW, "get", "/rollouts/{rollout}", None),
    ("pause rollout", OPERATE, "post", "/rollouts/{rollout}/pause", {}),
    ("abort rollout", OPERATE, "post", "/rollouts/{rollout}/abort", {}),
    ("approve tool call", OPERATE, "post", "/approvals/{approval}/approve", {}),
    ("deny tool call", OPERATE, "post", "/approvals/{approval}/deny", {}),
    ("read compliance settings", AUDIT, "get", "/fleets/{slug}/compliance", None),
    (
        "preview a redaction",
        AUDIT,
        "post",
        "/fleets/{slug}/compliance/redaction-preview",
        {"text": "Patient John Smith, MRN 48213377"},
    ),
    (
        "change compliance mode",
        ADMINISTER,
        "patch",
        "/fleets/{slug}/compliance",
        {"mode": "gdpr", "allowed_regions": ["eu-west-1"]},
    ),
    ("read the audit log", AUDIT, "get", "/audit/records?fleet={slug}", None),
    ("export the audit log", AUDIT, "get", "/audit/export?fleet={slug}&format=csv", None),
    ("records of processing", AUDIT, "get", "/privacy/records-of-processing?fleet={slug}", None),
    (
        "erase an edge data subject",
        ERASE,
        "post",
        "/privacy/erasure",
        {"kind": "subject", "ref": "patient-7", "fleet": "{slug}"},
    ),
    ("list the fleet's members", AUDIT, "get", "/fleets/{slug}/members", None),
    ("grant a role", ADMINISTER, "put", "/fleets/{slug}/members/bob", {"role": "viewer"}),
    ("take a role away", ADMINISTER, "delete", "/fleets/{slug}/members/bob", None),
]


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
@pytest.mark.parametrize("where", ["own fleet", "other fleet"])
def test_starting_a_rollout_needs_the_operate_right_in_that_fleet(world, admin_api, persona, where):
    fleet = world["north"] if where == "own fleet" else world["south"]
    rollouts.do_abort_rollout(Rollout.objects.get(fleet=fleet), actor=None)
    r = admin_api(persona).post(f"/fleets/{fleet.slug}/rollouts", {"model": ROLLOUT_MODEL})
    allowed = OPERATE in RIGHTS[persona.username] and (
        where == "own fleet" or persona.username == "alice"
    )
    assert r.status_code == (201 if allowed else 404), r.content


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
@pytest.mark.parametrize("where", ["own fleet", "other fleet"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_each_endpoint_allows_exactly_the_roles_the_matrix_names(
    world, admin_api, persona, where, endpoint
):
    name, action, method, path, body = endpoint
    fleet = world["north"] if where == "own fleet" else world["south"]
    url = path.format(**targets(fleet))
    if body:
        body = {k: v.format(slug=fleet.slug) if isinstance(v, str) else v for k, v in body.items()}
    api = admin_api(persona)
    r = api.call(method, url, body)
    allowed = action in RIGHTS[persona.username] and (
        where == "own fleet" or persona.username == "alice"
    )
    if allowed:
        assert r.status_code in (200, 201, 204), (name, r.content)
    else:
        assert r.status_code == 404, (name, r.status_code, r.content)
        assert "not found" in r.json()["detail"]


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
def test_lists_show_only_what_the_persona_may_see(world, admin_api, persona):
    api = admin_api(persona)
    fleets = {f["slug"] for f in api.get("/fleets").json()}
    nodes = {n["fleet"] for n in api.get("/nodes").json()}
    drift = {n["fleet"] for n in api.get("/nodes/drift").json()}
    approvals = {a["fleet"] for a in api.get("/approvals?pending=true").json()}
    expected = {"alice": {"north", "south"}, "mallory": set()}.get(persona.username, {"north"})
    assert fleets == nodes == drift == approvals == expected


def test_an_approval_is_decided_once_and_expiry_means_deny(world, admin_api, olivia):
    approval = ToolApproval.objects.get(fleet__slug="north")
    assert (
        admin_api(olivia).post(f"/approvals/{approval.pk}/approve").json()["status"] == "approved"
    )
    r = admin_api(olivia).post(f"/approvals/{approval.pk}/deny")
    assert r.status_code == 409 and "already approved" in r.json()["detail"]
    from datetime import timedelta

    from django.utils import timezone

    node = Node.objects.get(fleet__slug="north")
    late = approvals_services.do_request_approval(
        node, ApprovalIn(tool="clock", agent="ops", timeout_s=1)
    )
    ToolApproval.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = admin_api(olivia).post(f"/approvals/{late.pk}/approve")
    assert r.status_code == 409 and "expired" in r.json()["detail"]


def test_an_anonymous_caller_gets_401_everywhere(world, admin_api):
    for _, _, method, path, body in ENDPOINTS:
        r = admin_api().call(method, path.format(**targets(world["north"])), body)
        assert r.status_code == 401, path


def test_only_a_global_admin_creates_fleets(world, admin_api, alice, olivia):
    r = admin_api(olivia).post("/fleets", {"slug": "east", "name": "East"})
    assert r.status_code == 403
    r = admin_api(alice).post("/fleets", {"slug": "east", "name": "East"})
    assert r.status_code == 201
    assert r.json()["poll_interval_s"] == 30
    r = admin_api(alice).post("/fleets", {"slug": "east", "name": "East again"})
    assert r.status_code == 409


def test_an_enrollment_token_is_shown_once_and_stored_hashed(world, admin_api, olivia):
    r = admin_api(olivia).post(
        "/fleets/north/enrollment-tokens", {"labels": {"site": "oslo"}, "max_uses": 3}
    )
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith("efe_")
    listed = admin_api(olivia).get("/fleets/north/enrollment-tokens").json()
    assert all("token" not in t for t in listed)
    assert not EnrollmentToken.objects.filter(token_hash=token).exists()
    assert AuditRecord.objects.filter(
        action="enrollment_token.create", actor=user_ref(olivia)
    ).exists()


def test_writes_are_audited_with_actor_and_before_after(world, admin_api, alice):
    admin_api(alice).patch("/fleets/north", {"poll_interval_s": 90}, **{"X-Request-ID": "req-123"})
    rec = AuditRecord.objects.filter(action="fleet.update").latest("id")
    assert rec.actor == user_ref(alice) and "alice" not in rec.content
    assert rec.before["poll_interval_s"] is None and rec.after["poll_interval_s"] == 90
    assert rec.request_id == "req-123"


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/fleets/north/layers/base", {"scope": "fleet", "sections": {"nonsense": {}}}, 400),
        ("/fleets/north/layers/base", {"scope": "label", "sections": {}}, 400),
        ("/fleets/north/layers/base", {"scope": "node", "sections": {}}, 400),
        ("/fleets/north/layers/base", {"scope": "galaxy", "sections": {}}, 422),
        ("/fleets/north/layers/ba%20se", {"scope": "fleet", "sections": {}}, 400),
        (
            "/fleets/north/layers/base",
            {"scope": "fleet", "sections": {"tools": {"rules": {"clock": {"rate_per_min": 0}}}}},
            400,
        ),
        (
            "/fleets/north/layers/base",
            {"scope": "fleet", "sections": {"model": {"name": "m", "sha256": "nothex"}}},
            400,
        ),
        (
            "/fleets/north/layers/base",
            {"scope": "fleet", "sections": {"agents": {"a": {"max_tokens": 0}}}},
            400,
        ),
    ],
)
def test_bad_layer_input_is_a_4xx_with_a_message(world, admin_api, olivia, path, body, status):
    """422 where the schema says no, 400 where the service's rule does (docs/architecture.md)."""
    r = admin_api(olivia).put(path, body)
    assert r.status_code == status, r.content
    assert r.json()["detail"]


def test_a_node_layer_for_a_node_in_another_fleet_is_not_found(world, admin_api, alice):
    south_node = Node.objects.get(fleet__slug="south")
    r = admin_api(alice).put(
        "/fleets/north/layers/x", {"scope": "node", "node": str(south_node.pk), "sections": {}}
    )
    assert r.status_code == 404


def test_nodes_can_be_listed_by_status_and_label(world, admin_api, alice):
    api = admin_api(alice)
    assert len(api.get("/nodes?status=never").json()) == 2
    assert api.get("/nodes?status=online").json() == []
    api.patch(f"/nodes/{Node.objects.get(fleet__slug='north').pk}", {"labels": {"site": "oslo"}})
    assert [n["name"] for n in api.get("/nodes?label=site=oslo").json()] == ["north-1"]
    assert api.get("/nodes?status=bogus").status_code == 422


def test_a_node_id_that_is_not_a_uuid_is_not_found(world, admin_api, alice):
    assert admin_api(alice).get("/nodes/not-a-uuid").status_code == 404


# --- personal API tokens --------------------------------------------------------------------------


def test_a_personal_token_acts_as_its_user_within_its_role_and_fleets(world, admin_api, alice):
    token, plaintext = do_create_personal_token(
        alice, name="ci", role="viewer", fleets=[world["north"]]
    )
    api = admin_api(bearer=plaintext)
    assert {f["slug"] for f in api.get("/fleets").json()} == {"north"}
    assert api.patch("/fleets/north", {"poll_interval_s": 60}).status_code == 404
    assert api.post("/fleets", {"slug": "x", "name": "x"}).status_code == 403


def test_a_revoked_or_expired_personal_token_is_refused(world, admin_api, olivia):
    r = admin_api(olivia).post("/tokens", {"name": "automation"})
    assert r.status_code == 201
    plaintext, token_id = r.json()["token"], r.json()["id"]
    assert plaintext.startswith("efp_")
    assert admin_api(bearer=plaintext).get("/fleets").status_code == 200
    assert admin_api(olivia).post(f"/tokens/{token_id}/revoke").status_code == 200
    r = admin_api(bearer=plaintext).get("/fleets")
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


def test_a_user_cannot_see_or_revoke_someone_elses_token(world, admin_api, olivia, victor):
    token, _ = do_create_personal_token(olivia, name="mine")
    assert admin_api(victor).post(f"/tokens/{token.pk}/revoke").status_code == 404
    assert admin_api(victor).get("/tokens").json() == []
    assert PersonalToken.objects.get(pk=token.pk).revoked_at is None


def test_a_node_metric_can_be_read_raw_and_per_minute_and_events_listed(world, admin_api, victor):
    from datetime import timedelta

    from django.utils import timezone

    from controlplane.nodes import metrics
    from wire.schemas import EventBatchIn, MetricBatchIn

    node = Node.objects.get(fleet__slug="north")
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    services.do_ingest_metrics(
        node,
        MetricBatchIn(
            samples=[
                {
                    "seq": i,
                    "ts": minute + timedelta(seconds=10 * i),
                    "name": "request.latency_ms",
                    "value": float(10 * i),
                }
                for i in range(1, 4)
            ]
        ),
    )
    services.do_ingest_events(
        node,
        EventBatchIn(
            events=[{"seq": 1, "ts": minute, "kind": "tool.denied", "data": {"tool": "http_get"}}]
        ),
    )
    metrics.rollup()
    api = admin_api(victor)
    raw = api.get(f"/nodes/{node.pk}/metrics?name=request.latency_ms").json()
    assert [p["mean"] for p in raw["points"]] == [10.0, 20.0, 30.0]
    rolled = api.get(f"/nodes/{node.pk}/metrics?name=request.latency_ms&resolution=minute").json()
    assert rolled["points"] == [
        {"ts": rolled["points"][0]["ts"], "count": 3, "mean": 20.0, "min": 10.0, "max": 30.0}
    ]
    assert [e["kind"] for e in api.get(f"/nodes/{node.pk}/events").json()] == ["tool.denied"]
    assert api.get(f"/nodes/{node.pk}/metrics?name=Bad Name").status_code == 422
    assert api.get(f"/nodes/{node.pk}/metrics").status_code == 422


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
@pytest.mark.parametrize("where", ["own fleet", "other fleet"])
def test_an_export_manifest_is_readable_only_by_its_creator_and_global_admins(
    world, admin_api, persona, where, carol, alice
):
    # carol exports her own fleet; alice exports the other one.
    creator, fleet = (carol, "north") if where == "own fleet" else (alice, "south")
    export = admin_api(creator).get(f"/audit/export?fleet={fleet}&format=csv")
    assert export.status_code == 200
    b"".join(export.streaming_content)  # the manifest is signed once the download finished
    r = admin_api(persona).get(f"/audit/exports/{export['X-Export-Id']}/manifest")
    if persona.username in ("alice", creator.username):
        assert r.status_code == 200 and r.json()["manifest"]["records"] >= 1, r.content
    else:
        assert r.status_code == 404 and "not found" in r.json()["detail"]


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
def test_the_public_key_and_the_verifier_are_the_same_for_everyone_signed_in(
    world, admin_api, persona
):
    assert admin_api(persona).get("/audit/public-key").status_code == 200
    assert admin_api(persona).get("/audit/verifier.py").status_code == 200


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
def test_only_a_global_admin_erases_an_account(world, admin_api, persona, victor):
    r = admin_api(persona).post("/privacy/erasure", {"kind": "user", "ref": victor.username})
    if persona.username == "alice":
        assert r.status_code == 200, r.content
    else:  # accounts are global, like creating fleets: forbidden, not hidden
        assert r.status_code == 403, r.content


@pytest.mark.parametrize("what", ["cloud-usage", "local-usage"])
def test_a_usage_window_ending_on_the_first_day_of_the_calendar_is_answered_not_a_500(
    north, victor, admin_api, what
):
    r = admin_api(victor).get(f"/fleets/north/{what}?until=0001-01-01&by=agent")
    assert (r.status_code, r.json()) == (200, [])
