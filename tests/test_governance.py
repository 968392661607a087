"""Governance: audit export and its offline verifier, erasure, compliance modes, escalation policy,
edge events in the audit chain, and login hardening."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from controlplane.accounts.models import LoginFailure
from controlplane.audit import services as audit
from controlplane.audit.models import AuditRecord, SubjectKey
from controlplane.nodes import services
from controlplane.nodes.models import NodeEventRecord
from wire import compliance
from wire.schemas import CompliancePolicy

pytestmark = pytest.mark.django_db
VERIFIER = Path(__file__).parent.parent / "controlplane" / "compliance" / "verify_export.py"
PASSWORD = "correct horse battery staple"
PHI_TEXT = (
    "Patient: John Smith, MRN 48213377, born 03/14/1962, SSN 536-22-1234, phone (555) 123-4567, "
    "email john.smith@example.com, lives at 42 Elm Street. Is 20 mg of lisinopril a safe dose?"
)


def events(node_api, credential, *items, start=1):
    body = {
        "events": [
            {"seq": start + i, "ts": datetime.now(UTC).isoformat(), "kind": kind, "data": data}
            for i, (kind, data) in enumerate(items)
        ]
    }
    r = node_api(credential).post("/events", body)
    assert r.status_code == 200, r.content
    return r.json()


def download(admin_api, user, query):
    r = admin_api(user).get(f"/audit/export?{query}")
    assert r.status_code == 200, r.content
    body = b"".join(r.streaming_content)
    manifest = admin_api(user).get(f"/audit/exports/{r['X-Export-Id']}/manifest")
    assert manifest.status_code == 200, manifest.content
    return body, manifest.json()


def offline_verify(tmp_path, body: bytes, manifest: dict, public_key: str, fmt: str):
    (tmp_path / f"audit.{fmt}").write_bytes(body)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "key.pub").write_text(public_key)
    return subprocess.run(
        [
            sys.executable,
            str(VERIFIER),
            str(tmp_path / f"audit.{fmt}"),
            str(tmp_path / "manifest.json"),
            "--public-key",
            str(tmp_path / "key.pub"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- export -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_has_a_signed_manifest_that_the_offline_verifier_accepts(
    alice, north, admin_api, tmp_path, fmt, settings
):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "AUDIT_CHECKPOINT_EVERY": 5}
    for i in range(12):
        services.do_update_fleet(north, poll_interval_s=40 + i, actor=alice)
    body, manifest = download(admin_api, alice, f"format={fmt}")
    # 12 updates and alice's login; not the export's own record, which comes after its snapshot.
    assert manifest["manifest"]["complete"] and manifest["manifest"]["records"] == 13
    assert [c["seq"] for c in manifest["manifest"]["checkpoints"]] == [5, 10]
    key = admin_api().get("/audit/public-key").content.decode()
    ok = offline_verify(tmp_path, body, manifest, key, fmt)
    assert ok.returncode == 0 and "OK: 13 records #1..#13 (complete range)" in ok.stdout, (
        ok.stdout + ok.stderr
    )

    edited = body.replace(b"poll_interval_s", b"poll_interval_x", 1)
    bad = offline_verify(tmp_path, edited, manifest, key, fmt)
    assert bad.returncode == 1 and "sha256 differs" in bad.stdout

    forged = json.loads(json.dumps(manifest))
    forged["manifest"]["file_sha256"] = __import__("hashlib").sha256(edited).hexdigest()
    bad = offline_verify(tmp_path, edited, forged, key, fmt)
    assert bad.returncode == 1 and "signature is not valid" in bad.stdout


def test_the_export_itself_is_audited_and_a_compliance_officer_sees_only_their_fleet(
    alice, carol, north, south, admin_api, tmp_path
):
    services.do_update_fleet(north, poll_interval_s=41, actor=alice)
    services.do_update_fleet(south, poll_interval_s=42, actor=alice)
    body, manifest = download(admin_api, carol, "format=jsonl")
    lines = [json.loads(x) for x in body.decode().splitlines()]
    assert lines and {x["fleet"] for x in lines} == {north.pk}
    assert not manifest["manifest"]["complete"]  # a selection: links are not checked offline
    key = admin_api().get("/audit/public-key").content.decode()
    assert offline_verify(tmp_path, body, manifest, key, "jsonl").returncode == 0
    export = AuditRecord.objects.get(action="audit.export")
    assert export.actor == audit.user_ref(carol) and export.fleet_id is None


def test_someone_elses_export_manifest_is_not_found(alice, carol, north, admin_api):
    services.do_update_fleet(north, poll_interval_s=41, actor=alice)
    r = admin_api(carol).get("/audit/export?format=csv")
    b"".join(r.streaming_content)
    other = admin_api(alice).get(f"/audit/exports/{r['X-Export-Id']}/manifest")
    assert other.status_code == 200  # global admin
    assert admin_api(carol).get("/audit/exports/999/manifest").status_code == 404


def test_the_cli_export_and_the_audit_log_filters_by_actor(
    alice, olivia, north, admin_api, tmp_path
):
    from django.core.management import call_command

    services.do_update_fleet(north, poll_interval_s=41, actor=alice)
    services.do_create_enrollment_token(north, actor=olivia)
    records = admin_api(alice).get("/audit/records?actor=user:olivia").json()
    assert [r["action"] for r in records] == ["enrollment_token.create"]
    assert records[0]["actor_name"] == "olivia" and "olivia" not in json.dumps(
        AuditRecord.objects.get(action="enrollment_token.create").content
    )
    call_command("audit", "export", "--format", "csv", "--out", str(tmp_path / "a.csv"))
    assert (tmp_path / "a.csv.manifest.json").exists()
    with pytest.raises(Exception, match="not a date"):
        call_command("audit", "export", "--out", str(tmp_path / "b.csv"), "--since", "yesterday")


# --- erasure ------------------------------------------------------------------------------------


def test_an_erased_account_leaves_unlinkable_records_and_the_chain_still_verifies(
    alice, olivia, north, admin_api
):
    services.do_create_enrollment_token(north, actor=olivia)
    ref = audit.user_ref(olivia)
    r = admin_api(alice).post("/privacy/erasure", {"kind": "user", "ref": "olivia"})
    assert r.status_code == 200, r.content
    olivia.refresh_from_db()
    assert olivia.username.startswith("erased-") and not olivia.is_active
    assert not SubjectKey.objects.filter(kind="user", ref=str(olivia.pk)).exists()
    assert AuditRecord.objects.filter(actor=ref).exists()  # history stays ...
    assert audit.user_ref(olivia) != ref  # ... but no longer leads to her
    assert audit.verify_all()[1] is None
    assert admin_api(alice).get("/audit/records?actor=user:olivia").json() == []


def test_only_global_admins_erase_accounts(carol, olivia, admin_api):
    r = admin_api(carol).post("/privacy/erasure", {"kind": "user", "ref": "olivia"})
    assert r.status_code == 403


def test_an_erased_edge_subject_loses_their_events_and_their_pseudonym(
    north, north_node, carol, node_api, admin_api
):
    node, credential = north_node
    events(
        node_api,
        credential,
        ("tool.allowed", {"tool": "clock", "subject": "patient-7"}),
        ("tool.allowed", {"tool": "clock", "subject": "patient-8"}),
    )
    stored = list(NodeEventRecord.objects.values_list("data", flat=True))
    assert all(
        d["subject"].startswith("subject:") and "patient" not in d["subject"] for d in stored
    )
    r = admin_api(carol).post(
        "/privacy/erasure", {"kind": "subject", "ref": "patient-7", "fleet": "north"}
    )
    assert r.status_code == 200, r.content
    assert NodeEventRecord.objects.count() == 1
    assert audit.verify_all()[1] is None
    again = admin_api(carol).post(
        "/privacy/erasure", {"kind": "subject", "ref": "patient-7", "fleet": "north"}
    )
    assert again.status_code == 404


# --- compliance modes ---------------------------------------------------------------------------


def test_changing_a_fleets_mode_is_audited_and_reaches_its_nodes_with_the_next_poll(
    alice, north, north_node, admin_api, node_api
):
    node, credential = north_node
    etag = node_api(credential).get("/desired-state")["ETag"]
    r = admin_api(alice).patch(
        "/fleets/north/compliance",
        {
            "mode": "hipaa",
            "phi_action": "refuse",
            "cloud_endpoints": [
                {
                    "name": "azure-east",
                    "region": "us-east-1",
                    "baa": True,
                    "base_url": "https://example.invalid/v1",
                    "api_key_env": "AZ_KEY",
                }
            ],
        },
    )
    assert r.status_code == 200, r.content
    assert r.json()["nodes_changed"] == 1 and r.json()["effective"]["store_content"] is False
    poll = node_api(credential).get("/desired-state", **{"If-None-Match": etag})
    assert poll.status_code == 200
    pushed = poll.json()["compliance"]
    assert pushed["mode"] == "hipaa" and pushed["endpoints"] == [
        {
            "name": "azure-east",
            "region": "us-east-1",
            "baa": True,
            "base_url": None,
            "model": "",
            "api_key_env": None,
            "api_key_file": None,
            "price_in_per_1k": 0.0,
            "price_out_per_1k": 0.0,
            "timeout_s": None,
            "fallback": None,
        }
    ]  # the URL and the key's name stay on the control plane
    rec = AuditRecord.objects.get(action="fleet.compliance")
    assert rec.before["mode"] == "none" and rec.after["mode"] == "hipaa"


def test_bad_compliance_settings_get_a_clear_400(alice, north, admin_api):
    r = admin_api(alice).patch("/fleets/north/compliance", {"mode": "hipaa", "store_content": True})
    assert r.status_code == 400 and "never stores content" in r.json()["detail"]
    r = admin_api(alice).patch("/fleets/north/compliance", {"cloud_endpoints": [{"name": "x"}]})
    assert r.status_code == 422
    r = admin_api(alice).put(
        "/fleets/north/layers/sneaky",
        {"scope": "fleet", "sections": {"compliance": {"mode": "none"}}},
    )
    assert r.status_code == 400 and "set per fleet" in r.json()["detail"]


def test_under_hipaa_no_content_reaches_the_control_plane_and_audit_records_never_hold_any(
    alice, north, north_node, node_api
):
    node, credential = north_node
    services.do_set_compliance(north, mode="hipaa", actor=alice)
    events(
        node_api,
        credential,
        ("tool.allowed", {"tool": "create_ticket", "arguments": {"title": PHI_TEXT}}),
        ("request.served", {"content": PHI_TEXT}),
    )
    stored = NodeEventRecord.objects.get(seq=1).data
    assert "arguments" not in stored and stored["arguments_keys"] == ["title"]
    assert "John" not in json.dumps(list(NodeEventRecord.objects.values_list("data", flat=True)))
    audited = AuditRecord.objects.filter(action="tool.allowed").get()
    assert audited.actor == f"node:{node.pk}" and "John" not in audited.content
    assert not AuditRecord.objects.filter(action="request.served").exists()  # not an audited kind


def test_a_gdpr_fleet_stores_content_only_when_it_opts_in(alice, north, north_node, node_api):
    node, credential = north_node
    services.do_set_compliance(north, mode="gdpr", allowed_regions=["eu-west-1"], actor=alice)
    events(node_api, credential, ("request.served", {"content": "hello"}))
    assert "content" not in NodeEventRecord.objects.get(seq=1).data
    services.do_set_compliance(north, store_content=True, actor=alice)
    events(node_api, credential, ("request.served", {"content": "hello"}), start=2)
    assert NodeEventRecord.objects.get(seq=2).data["content"] == "hello"


def test_audited_edge_events_enter_the_chain_in_one_batch(north_node, node_api):
    node, credential = north_node
    before = AuditRecord.objects.count()
    ack = events(
        node_api,
        credential,
        *[("tool.denied", {"tool": "http_get"})] * 20,
        ("model.swap", {"to": "abc"}),
        ("request.served", {}),
    )
    assert ack["accepted"] == 22
    assert AuditRecord.objects.count() == before + 21
    events(node_api, credential, ("tool.denied", {"tool": "http_get"}))  # a replay of seq 1
    assert AuditRecord.objects.count() == before + 21
    assert audit.verify_all()[1] is None


def test_the_records_of_processing_describe_each_fleet_as_configured(
    alice, north, carol, admin_api
):
    services.do_set_compliance(
        north,
        mode="gdpr",
        allowed_regions=["eu-west-1"],
        cloud_endpoints=[{"name": "openai-us", "region": "us-east-1"}],
        actor=alice,
    )
    r = admin_api(carol).get("/privacy/records-of-processing")
    assert r.status_code == 200
    (activity,) = r.json()["activities"]
    assert activity["compliance_mode"] == "gdpr" and activity["content_stored_centrally"] is False
    assert activity["recipients"][0]["transfer_outside_allow_list"] is True
    assert activity["retention"]["audit_records_days"] >= 2190


def test_hipaa_keeps_audit_records_at_least_six_years(alice, north, settings):
    settings.EDGEFLEET = {**settings.EDGEFLEET, "AUDIT_RETENTION_DAYS": 30}
    assert audit.retention_days() == 30
    services.do_set_compliance(north, mode="hipaa", actor=alice)
    assert audit.retention_days() >= 6 * 365


# --- PHI and escalation -------------------------------------------------------------------------


POLICY = {
    "endpoints": [
        {"name": "baa-cloud", "region": "us-east-1", "baa": True},
        {"name": "plain-cloud", "region": "us-east-1"},
        {"name": "eu-cloud", "region": "eu-west-1"},
    ]
}


@pytest.mark.parametrize(
    "mode, phi_action, endpoint, outcome",
    [
        ("hipaa", "redact", "baa-cloud", "as is"),
        ("hipaa", "redact", "plain-cloud", "redacted"),
        ("hipaa", "refuse", "plain-cloud", "refused: contains PHI"),
        ("gdpr", "redact", "plain-cloud", "refused: outside this fleet's GDPR region"),
        ("gdpr", "redact", "eu-cloud", "as is"),
        ("none", "redact", "elsewhere", "refused: not on this fleet's allow-list"),
    ],
)
def test_escalation_policy_decides_per_mode_and_endpoint(mode, phi_action, endpoint, outcome):
    policy = CompliancePolicy.model_validate(
        {**POLICY, "mode": mode, "phi_action": phi_action, "regions": ["eu-west-1"]}
    )
    messages = [{"role": "user", "content": PHI_TEXT}]
    if outcome.startswith("refused"):
        with pytest.raises(compliance.EscalationRefused, match=outcome.split(": ")[1]):
            compliance.guard_escalation(policy, endpoint, messages)
        return
    out = compliance.guard_escalation(policy, endpoint, messages)
    assert (out.messages == messages) == (outcome == "as is")
    assert ("John Smith" in out.messages[0]["content"]) == (outcome == "as is")


def test_the_edge_strips_content_before_events_leave_the_device(tmp_path):
    from agents.runtime import SUBJECT, Active, Runtime, StateDir

    state = StateDir(tmp_path)
    state.ensure()
    state.save_node({"server": "http://127.0.0.1:9", "node_id": "n", "credential": "efn_x"})
    runtime = Runtime(state)
    runtime.applier.active = Active(1, {"compliance": {"mode": "hipaa"}}, None, None, "")
    token = SUBJECT.set("patient-7")
    runtime.telemetry.event(
        "tool.allowed", {"tool": "read_file", "arguments": {"path": "notes/john.txt"}}
    )
    SUBJECT.reset(token)
    (item,) = runtime.outbox.peek("events", 10).items
    data = item["data"]
    assert "arguments" not in data and data["arguments_keys"] == ["path"]
    assert "john" not in json.dumps(item)
    assert data["subject"] == "patient-7"  # pseudonymised by the control plane on arrival
    with pytest.raises(compliance.EscalationRefused):
        runtime.escalator.escalate([{"role": "user", "content": PHI_TEXT}], "nowhere")


# --- login hardening ----------------------------------------------------------------------------


def test_failed_logins_are_recorded_and_rate_limited_with_a_clear_message(olivia, settings):
    client = Client()
    for _ in range(5):
        r = client.post("/accounts/login/", {"username": "olivia", "password": "wrong"})
        assert r.status_code == 200
    assert LoginFailure.objects.count() == 5
    assert AuditRecord.objects.filter(action="auth.login_failed").count() == 5
    assert "olivia" not in AuditRecord.objects.filter(action="auth.login_failed").first().content
    r = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert r.status_code == 200 and b"Too many failed logins" in r.content
    assert not client.session.get("_auth_user_id")
    LoginFailure.objects.update(ts=timezone.now() - timedelta(hours=1))
    r = client.post("/accounts/login/", {"username": "olivia", "password": PASSWORD})
    assert r.status_code == 302 and AuditRecord.objects.filter(action="auth.login").exists()


def test_sessions_time_out_when_idle_and_sooner_for_people_who_see_a_hipaa_fleet(
    alice, olivia, victor, north, south, settings
):
    services.do_set_compliance(south, mode="hipaa", actor=alice)
    for user, expected in (
        (olivia, settings.SESSION_COOKIE_AGE),
        (alice, settings.EDGEFLEET["HIPAA_SESSION_IDLE_S"]),
    ):
        client = Client()
        r = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
        assert r.status_code == 302, r.content
        assert client.session.get_expiry_age() == expected
    assert settings.SESSION_SAVE_EVERY_REQUEST  # the expiry slides: an idle timeout


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL-only behaviour")
def test_on_postgresql_the_application_cannot_update_or_delete_audit_records(
    alice, north, admin_api
):
    from django.db import DatabaseError, transaction

    assert admin_api(alice).patch("/fleets/north", {"poll_interval_s": 41}).status_code == 200
    for sql in ("UPDATE audit_auditrecord SET action = 'x'", "DELETE FROM audit_auditrecord"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql)
    # ... but the retention function may clear source addresses (outside the hash).
    assert AuditRecord.objects.filter(source_ip__isnull=False).exists()
    audit.forget_sources(timezone.now() + timedelta(days=400))
    assert not AuditRecord.objects.filter(source_ip__isnull=False).exists()
    assert audit.verify_all()[1] is None
