"""Bodies and parameters are read as what they are: a JSON body of the wrong type, a wrongly typed
field or an unparseable date is a 422 naming the field, and every error answer is JSON with a code
(issue 23: `[null, null]` minted an enrollment token, `until=0` was a date, `false` a priority)."""

from __future__ import annotations

import json

import httpx
import pytest
from django.test import Client

from controlplane.accounts.services import do_create_personal_token
from controlplane.fleets.models import Fleet
from controlplane.nodes.models import DesiredStateLayer, EnrollmentToken

pytestmark = pytest.mark.django_db

NOT_OBJECTS = [[None, None], [], "x", 5, True, None]


def fields_named(response) -> set[str]:
    """The fields a 422 names (the last part of each error's `loc`)."""
    return {str(e["loc"][-1]) for e in response.json()["detail"]}


@pytest.mark.parametrize("body", NOT_OBJECTS, ids=repr)
def test_a_body_that_is_not_an_object_mints_no_enrollment_token(alice, north, admin_api, body):
    r = admin_api(alice).call("post", "/fleets/north/enrollment-tokens", body=_raw(body))
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid_input"
    assert "expected a JSON object" in str(r.json()["detail"])
    assert not EnrollmentToken.objects.exists()


def _raw(body) -> str:
    """The JSON text of `body`; the client sends a str as is (so None and "x" are JSON too)."""
    return json.dumps(body)


@pytest.mark.parametrize(
    "path", ["/fleets/north", "/fleets/north/compliance", "/nodes/{node}"], ids=str
)
def test_a_patch_whose_body_is_an_array_changes_nothing(alice, north_node, admin_api, path):
    node, _ = north_node
    before = Fleet.objects.get(slug="north").__dict__.copy()
    r = admin_api(alice).call("patch", path.format(node=node.pk), body="[null, null]")
    assert r.status_code == 422, r.content
    after = Fleet.objects.get(slug="north").__dict__
    assert {k: v for k, v in after.items() if k != "_state"} == {
        k: v for k, v in before.items() if k != "_state"
    }


@pytest.mark.parametrize(
    "field,value",
    [("priority", False), ("priority", "5"), ("priority", 5.5), ("priority", None)],
    ids=repr,
)
def test_a_layer_field_of_the_wrong_json_type_is_a_422_naming_it(
    alice, north, admin_api, field, value
):
    body = {"scope": "fleet", "sections": {}, field: value}
    r = admin_api(alice).put("/fleets/north/layers/extra", body)
    assert r.status_code == 422, r.content
    assert field in fields_named(r)
    assert not DesiredStateLayer.objects.filter(name="extra").exists()


@pytest.mark.parametrize("value", ["5", True, [5], {"n": 5}], ids=repr)
def test_a_budget_of_the_wrong_type_is_refused(alice, north, admin_api, value):
    r = admin_api(alice).put("/fleets/north/budgets", {"node_month_tokens": value})
    assert r.status_code == 422, r.content
    assert "node_month_tokens" in fields_named(r)


def test_the_same_values_as_their_own_types_are_accepted(alice, north, admin_api):
    api = admin_api(alice)
    assert api.put("/fleets/north/budgets", {"node_month_tokens": 5}).status_code == 200
    r = api.put("/fleets/north/layers/extra", {"scope": "fleet", "sections": {}, "priority": 5})
    assert r.status_code == 200, r.content
    r = api.post("/fleets/north/enrollment-tokens", {"ttl_hours": 2, "max_uses": 3})
    assert r.status_code == 201, r.content


@pytest.mark.parametrize("until", ["0", "1700000000", "1.5", "yesterday"])
@pytest.mark.parametrize("usage", ["cloud-usage", "local-usage"])
def test_a_date_that_is_not_iso_8601_is_a_422_naming_it(alice, north, admin_api, usage, until):
    r = admin_api(alice).get(f"/fleets/north/{usage}?until={until}")
    assert r.status_code == 422, r.content
    assert "until" in fields_named(r)


def test_an_iso_date_is_accepted(alice, north, admin_api):
    assert admin_api(alice).get("/fleets/north/cloud-usage?until=2026-12-01").status_code == 200


def test_an_empty_multipart_upload_is_a_json_error_with_a_code(alice, admin_api):
    api = admin_api(alice)
    r = api.client.post(
        "/api/v1/models", data=b"", content_type="multipart/form-data; boundary=xyz"
    )
    assert 400 <= r.status_code < 500, r.content
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["code"], r.content
    assert r.json()["detail"]


@pytest.mark.parametrize(
    "method,path,body,status,code",
    [
        ("get", "/fleets/nowhere", None, 404, "not_found"),
        ("post", "/fleets/north/enrollment-tokens", "{not json", 400, "invalid"),
        ("put", "/fleets/north/budgets", {"nope": 1}, 422, "invalid_input"),
        ("post", "/fleets", {"slug": "north", "name": "again"}, 409, "conflict"),
    ],
    ids=lambda v: str(v)[:20],
)
def test_every_error_answer_is_json_with_a_code(
    alice, north, admin_api, method, path, body, status, code
):
    r = admin_api(alice).call(method, path, body=body)
    assert r.status_code == status, r.content
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["code"] == code
    assert r.json()["detail"]


def test_a_request_without_credentials_is_a_401_with_a_code(admin_api, node_api):
    r = admin_api().get("/fleets")
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = node_api("efn_not-a-credential").post("/reported-state", {"health": "ok"})
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        [{"applied_revision": 1, "health": "ok"}],
        {"applied_revision": "1", "health": "ok"},
        {"applied_revision": True, "health": "ok"},
        {"applied_revision": 1.5, "health": "ok"},
    ],
    ids=repr,
)
def test_the_node_api_reads_a_report_as_the_json_it_is(north_node, node_api, body):
    _, cred = north_node
    r = node_api(cred).call("post", "/reported-state", body=_raw(body))
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid_input"


def test_a_well_typed_report_is_still_accepted(north_node, node_api):
    _, cred = north_node
    r = node_api(cred).post("/reported-state", {"applied_revision": 1, "health": "ok"})
    assert r.status_code == 200, r.content


def test_a_form_on_the_dashboard_still_sends_strings(client, alice, north):
    """The pages validate with the same In schemas, leniently: a form's values are strings."""
    client.force_login(alice)
    r = client.post("/enrollment/?fleet=north", {"ttl_hours": "2", "max_uses": "3", "note": ""})
    assert r.status_code in (200, 302), r.content[:300]
    assert EnrollmentToken.objects.filter(max_uses=3).exists()


@pytest.mark.parametrize("query", ["limt=5", "=true", "fleet=north&bogus=1"])
def test_a_query_parameter_the_operation_does_not_declare_is_a_422_naming_it(
    alice, north, admin_api, query
):
    r = admin_api(alice).get(f"/approvals?{query}")
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid_input"
    assert r.json()["detail"][0]["type"] == "unknown_parameter"


def test_declared_query_parameters_are_accepted(alice, north, admin_api):
    assert admin_api(alice).get("/approvals?fleet=north&pending=true&limit=5").status_code == 200


def test_no_such_api_path_or_method_is_json_with_a_code(alice, admin_api):
    r = admin_api(alice).get("/no-such-thing")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = admin_api(alice).call("delete", "/fleets")
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")
    assert "GET" in r["Allow"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body", [b"", b"garbage", b"--xyz--"], ids=repr)
def test_a_malformed_multipart_upload_under_the_real_server_is_json_with_a_code(
    asgi_server, alice, body
):
    """Under uvicorn, which `make run` (manage.py runserver) now serves with too: daphne's Twisted
    answered a malformed multipart body itself, with an empty 400 and no content type."""
    _, token = do_create_personal_token(alice, name="upload")
    r = httpx.post(
        f"{asgi_server}/api/v1/models",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "multipart/form-data; boundary=xyz",
        },
    )
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["code"] and r.json()["detail"]


def relay(credential: str, **change):
    body = {"model": "cloud:main", "messages": [{"role": "user", "content": "hi"}], **change}
    return Client().post(
        "/api/node/v1/chat/completions",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {credential}"},
    )


@pytest.mark.parametrize(
    "change",
    [{"max_tokens": "5"}, {"stream": "true"}, {"temperature": "1"}, {"messages": {"0": {}}}],
    ids=repr,
)
def test_the_relay_reads_its_body_as_the_json_it_is(north_node, change):
    r = relay(north_node[1], **change)
    assert r.status_code == 422, r.content
    assert r.json()["code"] == "invalid_input"


def test_the_relay_takes_a_whole_number_temperature_as_json_does(north_node):
    """JSON Schema's number includes 1: strict JSON takes an int where a float is declared."""
    r = relay(north_node[1], temperature=1)
    assert r.status_code != 422, r.content  # refused for the policy (no such endpoint)
