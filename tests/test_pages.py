"""The dashboard's pages: every page and every form per persona, in their own fleet and in another
one (a forbidden or missing object is the 404 page), what a role may not do is not offered, and a
rejected form shows the service's message next to its field with a 400."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.approvals import services as approvals_services
from controlplane.audit.models import AuditRecord
from controlplane.compliance import verify_export
from controlplane.nodes import services
from controlplane.nodes.models import (
    CloudUsage,
    EnrollmentToken,
    Fleet,
    Node,
    Rollout,
    ToolApproval,
)
from wire.schemas import ApprovalIn

from .conftest import ADMINISTER, AUDIT, OPERATE, RIGHTS, VIEW, enroll, targets

pytestmark = pytest.mark.django_db

PAGES = [
    # (name, action needed, path)
    ("node list of a fleet", VIEW, "/nodes/?fleet={slug}"),
    ("node page", VIEW, "/nodes/{node}/"),
    ("node row", VIEW, "/nodes/{node}/row"),
    ("node chart data", VIEW, "/nodes/{node}/series?range=24h"),
    ("enrollment", OPERATE, "/enrollment/?fleet={slug}"),
    ("desired state", VIEW, "/desired-state/?fleet={slug}"),
    ("desired-state preview", VIEW, "/desired-state/?fleet={slug}&preview={node}"),
    ("rollouts", VIEW, "/rollouts/?fleet={slug}"),
    ("rollout", VIEW, "/rollouts/{rollout}/"),
    ("approvals of a fleet", VIEW, "/approvals/?fleet={slug}"),
    ("cloud costs of a fleet", VIEW, "/costs/?fleet={slug}"),
    ("audit log of a fleet", AUDIT, "/audit/?fleet={slug}"),
    ("compliance settings", AUDIT, "/compliance/?fleet={slug}"),
    ("records of processing", AUDIT, "/audit/records-of-processing/?fleet={slug}"),
    ("members", AUDIT, "/access/?fleet={slug}"),
]

FORMS = [
    # (name, action needed, path, form fields)
    ("create an enrollment token", OPERATE, "/enrollment/?fleet={slug}", {"max_uses": "2"}),
    ("revoke an enrollment token", OPERATE, "/enrollment/{token}/revoke", {}),
    ("rename a node", OPERATE, "/nodes/{node}/edit", {"name": "renamed", "labels": "a=b"}),
    ("revoke a node", OPERATE, "/nodes/{node}/revoke", {}),
    (
        "write a layer",
        OPERATE,
        "/desired-state/?fleet={slug}",
        {"name": "web", "scope": "fleet", "sections": '{"routing": {"threshold": 0.1}}'},
    ),
    ("delete a layer", OPERATE, "/desired-state/{slug}/existing/delete", {}),
    ("pause a rollout", OPERATE, "/rollouts/{rollout}/pause", {}),
    ("approve a tool call", OPERATE, "/approvals/{approval}/approve", {"reason": "ok"}),
    ("deny a tool call", OPERATE, "/approvals/{approval}/deny", {}),
    ("set alert thresholds", ADMINISTER, "/fleets/{slug}/alerts", {"alert_error_rate": "0.1"}),
    ("set cloud budgets", ADMINISTER, "/costs/?fleet={slug}", {"fleet_day_usd": "5"}),
    (
        "preview a redaction",
        AUDIT,
        "/compliance/preview?fleet={slug}",
        {"text": "Patient John Smith, MRN 48213377"},
    ),
    (
        "change compliance settings",
        ADMINISTER,
        "/compliance/?fleet={slug}",
        {"mode": "gdpr", "phi_action": "redact", "allowed_regions": "eu-west-1"},
    ),
    (
        "grant a role",
        ADMINISTER,
        "/access/members",
        {"fleet": "{slug}", "username": "bob", "role": "viewer"},
    ),
]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def allowed(persona, action: str, where: str) -> bool:
    return action in RIGHTS[persona.username] and (
        where == "own fleet" or persona.username == "alice"
    )


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
@pytest.mark.parametrize("where", ["own fleet", "other fleet"])
@pytest.mark.parametrize("page", PAGES, ids=[p[0] for p in PAGES])
def test_each_page_opens_for_exactly_the_roles_the_matrix_names(world, persona, where, page):
    name, action, path = page
    fleet = world["north"] if where == "own fleet" else world["south"]
    r = client_for(persona).get(path.format(**targets(fleet)))
    if allowed(persona, action, where):
        assert r.status_code == 200, (name, r.status_code)
    else:
        assert r.status_code == 404 and b"not found" in r.content, (name, r.status_code)


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
@pytest.mark.parametrize("where", ["own fleet", "other fleet"])
@pytest.mark.parametrize("form", FORMS, ids=[f[0] for f in FORMS])
def test_each_form_works_for_exactly_the_roles_the_matrix_names(world, persona, where, form):
    name, action, path, fields = form
    fleet = world["north"] if where == "own fleet" else world["south"]
    data = {k: v.replace("{slug}", fleet.slug) for k, v in fields.items()}
    r = client_for(persona).post(path.format(**targets(fleet)), data)
    if allowed(persona, action, where):
        assert r.status_code in (200, 302), (name, r.status_code, r.content[:2000])
        assert b'class="field-error"' not in r.content and b'class="errors"' not in r.content
    else:
        assert r.status_code == 404, (name, r.status_code)


@pytest.mark.parametrize("persona", list(RIGHTS), indirect=True)
def test_pages_without_a_fleet_open_for_everyone_signed_in(world, persona):
    client = client_for(persona)
    for path in ("/", "/nodes/", "/approvals/", "/access/", "/audit/erasure/"):
        assert client.get(path).status_code == 200, path
    registry = client.get("/models/").status_code
    assert registry == (404 if persona.username == "mallory" else 200)


ROLE_READ = 'FROM "accounts_membership" WHERE "accounts_membership"."user_id" = '
EVERY_PAGE = (
    "/",
    "/nodes/",
    "/nodes/{node}/",
    "/enrollment/?fleet=north",
    "/desired-state/?fleet=north",
    "/rollouts/?fleet=north",
    "/rollouts/{rollout}/",
    "/approvals/",
    "/models/",
    "/compliance/?fleet=north",
    "/costs/?fleet=north",
    "/access/?fleet=north",
    "/audit/?fleet=north",
    "/audit/erasure/",
    "/audit/records-of-processing/",
)


@pytest.mark.parametrize("path", EVERY_PAGE)
def test_a_page_reads_the_viewers_roles_once_for_its_checks_and_its_navigation(world, fiona, path):
    ids = targets(Fleet.objects.get(slug="north"))
    client = client_for(fiona)
    with CaptureQueriesContext(connection) as queries:
        r = client.get(path.format(**ids))
    assert r.status_code == 200, path
    reads = [q["sql"] for q in queries.captured_queries if ROLE_READ in q["sql"]]
    assert len(reads) == 1, (path, reads)


def test_a_page_says_what_a_role_cannot_do_by_not_offering_it(world, olivia, victor, carol, fiona):
    node = Node.objects.get(fleet__slug="north")
    viewer_node = client_for(victor).get(f"/nodes/{node.pk}/").content.decode()
    assert "Revoke credentials" not in viewer_node and 'name="labels"' not in viewer_node
    operator_node = client_for(olivia).get(f"/nodes/{node.pk}/").content.decode()
    assert "Revoke credentials" in operator_node and 'name="labels"' in operator_node
    assert "Alert thresholds" not in client_for(olivia).get("/").content.decode()
    assert "Alert thresholds" in client_for(fiona).get("/").content.decode()
    olivia_nav = client_for(olivia).get("/").content.decode()
    assert 'href="/audit/"' not in olivia_nav and 'href="/enrollment/"' in olivia_nav
    victor_nav = client_for(victor).get("/").content.decode()
    assert 'href="/enrollment/"' not in victor_nav
    compliance = client_for(carol).get("/compliance/?fleet=north").content.decode()
    assert "Save settings" not in compliance and "Effective policy" in compliance
    assert "Grant a role" not in client_for(carol).get("/access/?fleet=north").content.decode()
    approvals = client_for(victor).get("/approvals/").content.decode()
    assert "clock" in approvals and ">Approve<" not in approvals


def test_an_enrollment_token_is_shown_once_with_the_command_that_enrolls_and_runs_a_node(
    north, olivia
):
    r = client_for(olivia).post(
        "/enrollment/?fleet=north", {"labels": "site=oslo", "expiry": "never", "max_uses": "3"}
    )
    body = r.content.decode()
    token = EnrollmentToken.objects.get()
    assert token.expires_at is None and token.labels == {"site": "oslo"} and token.max_uses == 3
    assert "efe_" in body and "Never expires" in body
    assert (
        "edgefleet-agent --state-dir /var/lib/edgefleet enroll --server http://testserver" in body
    )
    assert "&amp;&amp; edgefleet-agent --state-dir /var/lib/edgefleet run" in body
    plaintext = body.split('<code id="enroll-token">', 1)[1].split("<", 1)[0]
    assert plaintext.startswith("efe_") and len(plaintext) > 30
    again = client_for(olivia).get("/enrollment/?fleet=north").content.decode()
    assert plaintext not in again and f"{token.prefix}…" in again  # only the prefix, ever again


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"labels": "no-equals"}, "labels", "is not key=value"),
        ({"max_uses": "0"}, "max_uses", "greater than or equal to 1"),
        ({"ttl_hours": "-1"}, "ttl_hours", "greater than 0"),
    ],
)
def test_a_rejected_enrollment_form_shows_the_message_next_to_its_field(
    north, olivia, fields, field, message
):
    r = client_for(olivia).post("/enrollment/?fleet=north", fields)
    assert r.status_code == 400
    body = r.content.decode()
    assert f'id="{field}-error">' in body and message in body
    assert not EnrollmentToken.objects.exists()


def test_an_htmx_enrollment_swaps_only_the_form_and_asks_the_list_to_refresh(north, olivia):
    r = client_for(olivia).post(
        "/enrollment/?fleet=north", {"max_uses": "1"}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200 and r["HX-Trigger"] == "tokens-changed"
    assert r.content.decode().lstrip().startswith('<div id="create">')


def test_a_layer_the_service_refuses_shows_its_message_and_writes_nothing(north, olivia):
    r = client_for(olivia).post(
        "/desired-state/?fleet=north",
        {"name": "bad", "scope": "fleet", "sections": '{"compliance": {}}'},
    )
    assert r.status_code == 400 and "compliance is set per fleet" in r.content.decode()
    r = client_for(olivia).post(
        "/desired-state/?fleet=north", {"name": "bad", "scope": "fleet", "sections": "{oops"}
    )
    assert r.status_code == 400 and 'id="sections-error">not JSON' in r.content.decode()
    assert not north.layers.exists()


def test_a_node_form_with_bad_labels_keeps_the_node_as_it_was(north_node, olivia):
    node, _ = north_node
    r = client_for(olivia).post(f"/nodes/{node.pk}/edit", {"name": "x", "labels": "=v"})
    assert r.status_code == 400 and "is not key=value" in r.content.decode()
    node.refresh_from_db()
    assert node.name == "north-1" and node.labels == {"site": "oslo"}


def test_an_approval_is_decided_from_the_queue_with_a_reason_once(north_node, olivia, alice):
    node, _ = north_node
    approval = approvals_services.do_request_approval(
        node, ApprovalIn(tool="create_ticket", agent="ops", arguments={"api_key": "sk-123"})
    )
    queue = client_for(olivia).get("/approvals/").content.decode()
    assert "create_ticket" in queue and "sk-123" not in queue and "••••" in queue
    r = client_for(olivia).post(
        f"/approvals/{approval.pk}/approve",
        {"reason": "ticket is fine"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200 and "ticket is fine" in r.content.decode()
    approval.refresh_from_db()
    assert approval.status == "approved" and approval.decision_reason == "ticket is fine"
    record = AuditRecord.objects.filter(action="approval.approved").last()
    assert record.after["reason"] == "ticket is fine"
    again = client_for(alice).post(
        f"/approvals/{approval.pk}/deny", {}, headers={"HX-Request": "true"}
    )
    assert again.status_code == 409 and "already approved" in again.content.decode()


def test_a_rollout_is_started_watched_and_aborted_from_the_pages(north_node, olivia, tiny_f32):
    from controlplane.registry import services as registry

    registry.do_register_artifact(tiny_f32, name="tiny", actor=None)
    r = client_for(olivia).post(
        "/rollouts/?fleet=north", {"model": "tiny", "variant": "auto", "waves": "1, 100%"}
    )
    assert r.status_code == 302, r.content[:1500]
    rollout = Rollout.objects.get()
    page = client_for(olivia).get(r["Location"]).content.decode()
    assert "canary" in page and "Abort and roll back" in page
    client_for(olivia).post(f"/rollouts/{rollout.pk}/abort")
    rollout.refresh_from_db()
    assert rollout.status == "aborted"


def test_a_bad_rollout_shows_the_message_next_to_the_field(north_node, olivia):
    r = client_for(olivia).post("/rollouts/?fleet=north", {"model": "tiny", "waves": "1, 200%"})
    assert r.status_code == 400 and 'id="waves-error">' in r.content.decode()
    assert not Rollout.objects.exists()


def test_alert_thresholds_are_validated_and_raise_alerts_on_the_overview(north_node, fiona):
    node, credential = north_node
    r = client_for(fiona).post("/fleets/north/alerts", {"alert_error_rate": "2"})
    assert r.status_code == 400 and "less than or equal to 1" in r.content.decode()
    client_for(fiona).post("/fleets/north/alerts", {"alert_error_rate": "0.1"})
    from django.utils import timezone

    from wire.schemas import MetricBatchIn

    now = timezone.now().isoformat()
    samples = [
        {"seq": i + 1, "ts": now, "name": "request.error", "value": i % 2} for i in range(10)
    ]
    services.do_ingest_metrics(node, MetricBatchIn(samples=samples))
    body = client_for(fiona).get("/").content.decode()
    assert "error rate 50.0% is over 10.0%" in body


def test_the_audit_page_filters_in_the_url_and_says_the_shown_chain_verifies(north_node, carol):
    body = client_for(carol).get("/audit/?fleet=north&action=node.enroll").content.decode()
    assert "node.enroll" in body and "enrollment_token.create</code>" not in body
    assert "verified" in body
    r = client_for(carol).get("/audit/?since=yesterday")
    assert r.status_code == 400 and "is not a date and time" in r.content.decode()


def test_a_compliance_officer_exports_the_audit_log_and_verifies_it_offline(
    north_node, carol, tmp_path
):
    client = client_for(carol)
    page = client.get("/audit/?fleet=north").content.decode()
    link = page.split('href="', 1)[1]
    link = next(
        part.split('"')[0]
        for part in page.split('href="')
        if part.startswith("/api/v1/audit/export")
    ).replace("&amp;", "&")
    export = client.get(link)
    assert export.status_code == 200
    (tmp_path / "audit.csv").write_bytes(b"".join(export.streaming_content))
    export_id = export["X-Export-Id"]
    assert f"manifest-{export_id}.json" in client.get("/audit/?fleet=north").content.decode()
    manifest = client.get(f"/api/v1/audit/exports/{export_id}/manifest")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest.json()))
    (tmp_path / "key.pem").write_bytes(client.get("/api/v1/audit/public-key").content)
    code = verify_export.main(
        [
            str(tmp_path / "audit.csv"),
            str(tmp_path / "manifest.json"),
            "--public-key",
            str(tmp_path / "key.pem"),
        ]
    )
    assert code == 0


def test_a_fleet_admin_grants_a_role_on_the_access_page_and_it_is_audited(north, fiona, mallory):
    r = client_for(fiona).post(
        "/access/members",
        {"fleet": "north", "username": "mallory", "role": "compliance"},
    )
    assert r.status_code == 302
    assert client_for(mallory).get("/audit/?fleet=north").status_code == 200
    assert AuditRecord.objects.filter(action="membership.set").exists()
    r = client_for(fiona).post(
        "/access/members", {"fleet": "north", "username": "fiona", "role": "viewer"}
    )
    assert r.status_code == 400 and "your own role" in r.content.decode()


def test_an_invitation_and_a_personal_token_are_shown_once_on_the_access_page(north, fiona):
    r = client_for(fiona).post(
        "/access/invitations",
        {"username": "dora", "invite_fleet": "north", "role": "viewer"},
    )
    assert r.status_code == 200 and "/accounts/reset/" in r.content.decode()
    r = client_for(fiona).post(
        "/access/tokens", {"name": "ci", "role": "viewer", "fleets": ["north"]}
    )
    body = r.content.decode()
    plaintext = body.split('<pre id="new-token">', 1)[1].split("<", 1)[0]
    assert r.status_code == 200 and plaintext.startswith("efp_") and len(plaintext) > 30
    assert plaintext not in client_for(fiona).get("/access/").content.decode()


def test_the_node_list_filters_sorts_and_pages_in_the_url(north, alice):
    for i in range(55):
        enroll(north, f"n-{i:02d}", {"rack": "a" if i % 2 else "b"})
    client = client_for(alice)
    first = client.get("/nodes/?sort=-name").content.decode()
    assert "n-54" in first and "of 55" in first and "offset=50" in first
    assert "n-00" in client.get("/nodes/?sort=-name&offset=50").content.decode()
    only_a = client.get("/nodes/?label=rack=a&q=n-0").content.decode()
    assert "n-01" in only_a and "n-02" not in only_a
    assert client.get("/nodes/?sort=bogus").status_code == 400


def test_the_node_list_costs_the_same_queries_for_50_or_500_nodes(
    north, alice, django_assert_max_num_queries
):
    client = client_for(alice)
    client.get("/nodes/")  # session, rights: warm
    for count in (50, 500):
        while Node.objects.count() < count:
            enroll(north, f"q-{Node.objects.count():04d}")
        with django_assert_max_num_queries(9):
            assert client.get("/nodes/?status=online&sort=-last_seen").status_code == 200


def test_a_page_for_a_missing_object_is_the_404_page(alice):
    client = client_for(alice)
    for path in ("/nodes/not-a-uuid/", "/rollouts/999/", "/approvals/999/approve"):
        r = client.get(path) if "approve" not in path else client.post(path)
        assert r.status_code == 404 and b"Back to the dashboard" in r.content, path


def test_the_api_docs_load_swagger_from_the_apps_own_static_files(alice):
    body = client_for(alice).get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in body and "cdn" not in body.lower()
    assert ToolApproval.objects.count() == 0


def test_the_prometheus_endpoint_is_off_without_a_token_and_needs_it_when_on(
    world, settings, client
):
    assert client.get("/metrics").status_code == 404
    settings.EDGEFLEET = {**settings.EDGEFLEET, "METRICS_TOKEN": "scrape-secret"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    body = r.content.decode()
    assert r.status_code == 200 and r["Content-Type"].startswith("text/plain")
    assert 'edgefleet_nodes{fleet="north",status="never"} 1.0' in body
    assert 'edgefleet_pending_approvals{fleet="south"} 1.0' in body
    assert 'edgefleet_active_rollouts{fleet="north"} 1.0' in body


def test_quantization_is_queued_from_the_models_page_and_a_bad_choice_says_why(
    north, fiona, olivia, tiny_f32
):
    from controlplane.registry import services as registry
    from controlplane.registry.models import QuantizationJob

    registry.do_register_artifact(tiny_f32, name="tiny", actor=None)
    page = client_for(fiona).get("/models/").content.decode()
    assert '<option value="tiny:F32">' in page and "Queue quantization" in page
    assert "Queue quantization" not in client_for(olivia).get("/models/").content.decode()
    r = client_for(fiona).post("/models/", {"source": "tiny:F32"})
    assert r.status_code == 400 and 'id="variants-error">' in r.content.decode()
    r = client_for(fiona).post("/models/", {"source": "tiny:F32", "variants": ["Q8_0"]})
    assert r.status_code == 302 and QuantizationJob.objects.filter(variant="Q8_0").exists()
    assert client_for(olivia).post("/models/", {"source": "tiny:F32"}).status_code == 403


def test_the_costs_page_shows_usage_and_a_bad_budget_is_refused_next_to_its_field(alice, north):
    node, _ = enroll(north, "n1")
    CloudUsage.objects.create(
        fleet=north,
        node=node,
        agent="desk",
        endpoint="main",
        day=timezone.now().date(),
        requests=3,
        prompt_tokens=30,
        completion_tokens=12,
        cost_usd=0.25,
    )
    c = client_for(alice)
    page = c.get("/costs/?fleet=north").content.decode()
    assert "<code>desk</code>" in page and "$0.2500" in page
    r = c.post("/costs/?fleet=north", {"fleet_day_usd": "-3"})
    assert r.status_code == 400
    assert 'id="fleet_day_usd-error"' in r.content.decode()
    r = c.post("/costs/?fleet=north", {"fleet_day_usd": "2.5", "soft_fraction": "0.9"})
    assert r.status_code == 200 and Fleet.objects.get(pk=north.pk).budgets().fleet_day_usd == 2.5
