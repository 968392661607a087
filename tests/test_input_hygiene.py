"""Names, labels and other identifiers refuse C0/C1 control characters and Unicode bidirectional
overrides, isolates and marks (wire.schemas.unsafe_text, the one rule): a 422 from the schemas
(error type `unsafe_characters`) or a 400 from the services (`ServiceError(..., field=...)`), the
field named, never a 500. Prose keeps tabs and line breaks. Rows stored before stay readable."""

from __future__ import annotations

import html

import pytest
from django.test import Client

from controlplane.accounts.services import do_create_personal_token, do_invite_user
from controlplane.errors import ServiceError
from controlplane.nodes import layers, services
from controlplane.nodes.models import EnrollmentToken, Fleet, Node, ToolApproval

from .conftest import HARDWARE

pytestmark = pytest.mark.django_db

BAD = {
    "BEL": "\x07",
    "ESC": "\x1b[31m",
    "NEL": "\x85",
    "RLO": "\u202e",
    "LRI": "\u2066",
}
CODEPOINT = {"BEL": "U+0007", "ESC": "U+001B", "NEL": "U+0085", "RLO": "U+202E", "LRI": "U+2066"}
GOOD = ["Zoë", "東京-1"]


def refused_by_the_schema(r, field: str, kind: str) -> None:
    """A 422 in the project's JSON error shape whose first error names `field` and the character."""
    assert r.status_code == 422, r.content
    error = r.json()["detail"][0]
    assert error["type"] == "unsafe_characters"
    assert field in error["loc"]
    assert error["msg"] == (
        f"{field}: must not contain control characters or bidirectional overrides "
        f"(found {CODEPOINT[kind]})"
    )


def refused_by_the_service(r, field: str, kind: str) -> None:
    assert r.status_code == 400, r.content
    assert r.json()["code"] == "unsafe_characters"
    assert r.json()["detail"].startswith(f"{field}: must not contain control characters")
    assert CODEPOINT[kind] in r.json()["detail"]


def token(fleet) -> str:
    return services.do_create_enrollment_token(fleet, max_uses=5, actor=None)[1]


# --- through the APIs -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BAD)
def test_a_node_cannot_enroll_under_a_name_with_control_or_bidi_characters(north, node_api, kind):
    body = {"token": token(north), "name": f"edge{BAD[kind]}1", "hardware": HARDWARE.model_dump()}
    refused_by_the_schema(node_api().post("/enroll", body), "name", kind)
    assert not Node.objects.exists()


@pytest.mark.parametrize("name", GOOD)
def test_plain_unicode_node_names_still_enroll(north, node_api, name):
    body = {"token": token(north), "name": name, "hardware": HARDWARE.model_dump()}
    r = node_api().post("/enroll", body)
    assert r.status_code == 201, r.content
    assert Node.objects.get(pk=r.json()["node_id"]).name == name


@pytest.mark.parametrize("kind", BAD)
def test_renaming_a_node_refuses_control_and_bidi_characters(olivia, north_node, admin_api, kind):
    node, _ = north_node
    r = admin_api(olivia).patch(f"/nodes/{node.pk}", {"name": f"north{BAD[kind]}"})
    refused_by_the_schema(r, "name", kind)
    node.refresh_from_db()
    assert node.name == "north-1"


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("where", ["key", "value"])
def test_node_labels_refuse_control_and_bidi_characters(olivia, north_node, admin_api, kind, where):
    node, _ = north_node
    labels = {f"site{BAD[kind]}": "oslo"} if where == "key" else {"site": f"oslo{BAD[kind]}"}
    r = admin_api(olivia).patch(f"/nodes/{node.pk}", {"labels": labels})
    refused_by_the_schema(r, "labels", kind)


@pytest.mark.parametrize("name", GOOD)
def test_renaming_a_node_to_a_plain_unicode_name_works(olivia, north_node, admin_api, name):
    node, _ = north_node
    r = admin_api(olivia).patch(f"/nodes/{node.pk}", {"name": name})
    assert r.status_code == 200 and r.json()["name"] == name


@pytest.mark.parametrize("kind", BAD)
def test_a_fleet_name_refuses_control_and_bidi_characters(alice, admin_api, kind):
    r = admin_api(alice).post("/fleets", {"slug": "east", "name": f"East{BAD[kind]}"})
    refused_by_the_schema(r, "name", kind)
    assert not Fleet.objects.filter(slug="east").exists()
    r = admin_api(alice).post("/fleets", {"slug": f"east{BAD[kind]}", "name": "East"})
    refused_by_the_schema(r, "slug", kind)


@pytest.mark.parametrize("name", GOOD)
def test_a_fleet_may_have_a_plain_unicode_name(alice, admin_api, name):
    r = admin_api(alice).post("/fleets", {"slug": "east", "name": name})
    assert r.status_code == 201 and r.json()["name"] == name


def test_a_fleet_description_is_prose_new_lines_and_tabs_stay_bidi_does_not(
    alice, north, admin_api
):
    text = "Clinics in the north.\n\tOpen 8-18.\r\n"
    r = admin_api(alice).patch("/fleets/north", {"description": text})
    assert r.status_code == 200 and r.json()["description"] == text
    for kind in ("BEL", "ESC", "NEL", "RLO", "LRI"):
        r = admin_api(alice).patch("/fleets/north", {"description": f"a{BAD[kind]}b"})
        refused_by_the_schema(r, "description", kind)


@pytest.mark.parametrize("kind", BAD)
def test_enrollment_token_labels_and_note_refuse_control_and_bidi_characters(
    olivia, north, admin_api, kind
):
    api = admin_api(olivia)
    for labels in ({f"k{BAD[kind]}": "v"}, {"k": f"v{BAD[kind]}"}):
        r = api.post("/fleets/north/enrollment-tokens", {"labels": labels})
        refused_by_the_schema(r, "labels", kind)
    r = api.post("/fleets/north/enrollment-tokens", {"note": f"for the lab{BAD[kind]}"})
    refused_by_the_schema(r, "note", kind)
    assert not EnrollmentToken.objects.exists()


@pytest.mark.parametrize("kind", BAD)
def test_a_personal_token_name_refuses_control_and_bidi_characters(victor, admin_api, kind):
    r = admin_api(victor).post("/tokens", {"name": f"ci{BAD[kind]}"})
    refused_by_the_schema(r, "name", kind)
    assert admin_api(victor).post("/tokens", {"name": "Zoë's CI"}).status_code == 201


@pytest.mark.parametrize("kind", BAD)
def test_an_invited_username_refuses_control_and_bidi_characters(fiona, admin_api, kind):
    r = admin_api(fiona).post("/users", {"username": f"eve{BAD[kind]}"})
    refused_by_the_schema(r, "username", kind)


@pytest.mark.parametrize("kind", BAD)
def test_a_layer_refuses_such_a_name_and_such_agent_names(olivia, north, admin_api, kind):
    api = admin_api(olivia)
    r = api.put(f"/fleets/north/layers/web{BAD[kind]}", {"scope": "fleet", "sections": {}})
    refused_by_the_service(r, "name", kind)
    body = {"scope": "fleet", "sections": {"agents": {f"ops{BAD[kind]}": {}}}}
    refused_by_the_service(api.put("/fleets/north/layers/web", body), "sections", kind)
    for sections in (
        {"model": {"name": f"tiny{BAD[kind]}", "variant": "auto"}},
        {"agents": {"ops": {"model": f"tiny{BAD[kind]}"}}},
    ):
        r = api.put("/fleets/north/layers/web", {"scope": "fleet", "sections": sections})
        assert r.status_code == 400 and CODEPOINT[kind] in r.json()["detail"], r.content
    assert not north.layers.exists()


@pytest.mark.parametrize("kind", BAD)
def test_an_approval_reason_is_prose_that_refuses_control_and_bidi_characters(
    olivia, world, admin_api, kind
):
    pending = ToolApproval.objects.filter(fleet=world["north"]).first()
    r = admin_api(olivia).post(f"/approvals/{pending.pk}/approve", {"reason": f"ok{BAD[kind]}"})
    refused_by_the_schema(r, "reason", kind)
    pending.refresh_from_db()
    assert pending.decision == "pending"


# --- the services, for callers without the API's schema (commands, scripts) -----------------------


@pytest.mark.parametrize("kind", BAD)
def test_the_services_refuse_the_same_characters_naming_the_field(
    alice, victor, fiona, north, north_node, kind
):
    node, _ = north_node
    bad = f"x{BAD[kind]}"
    calls = {
        "name": [
            lambda: services.do_create_fleet(actor=alice, slug="east", name=bad),
            lambda: services.do_update_node(node, actor=alice, name=bad),
            lambda: do_create_personal_token(victor, name=bad),
            lambda: layers.do_put_layer(north, actor=alice, name=bad, scope="fleet", sections={}),
        ],
        "description": [lambda: services.do_update_fleet(north, actor=alice, description=bad)],
        "labels": [
            lambda: services.do_update_node(node, actor=alice, labels={"site": bad}),
            lambda: services.do_create_enrollment_token(north, actor=alice, labels={bad: "a"}),
        ],
        "note": [lambda: services.do_create_enrollment_token(north, actor=alice, note=bad)],
        "username": [lambda: do_invite_user(actor=fiona, username=bad)],
    }
    for field, attempts in calls.items():
        for attempt in attempts:
            with pytest.raises(ServiceError) as caught:
                attempt()
            assert caught.value.status == 400 and caught.value.field == field
            assert caught.value.code == "unsafe_characters"
            assert caught.value.message.startswith(f"{field}: must not contain control")
            assert CODEPOINT[kind] in caught.value.message


# --- the dashboard's forms get the rule from the same schema ---------------------------------


@pytest.mark.parametrize("kind", ["ESC", "RLO"])
def test_the_node_form_shows_the_refusal_next_to_the_name(olivia, north_node, kind):
    node, _ = north_node
    client = Client()
    client.force_login(olivia)
    r = client.post(f"/nodes/{node.pk}/edit", {"name": f"north{BAD[kind]}", "labels": ""})
    assert r.status_code == 400
    page = r.content.decode()
    assert 'id="name-error"' in page and CODEPOINT[kind] in page
    node.refresh_from_db()
    assert node.name == "north-1"


# --- rows stored before the rule stay readable ----------------------------------------------------


def test_a_node_stored_with_such_a_name_still_shows_on_its_page_and_in_the_api(
    olivia, north_node, admin_api
):
    """Written straight to the table (as before the rule): the page shows the name as stored,
    HTML-escaped, and the API returns it as stored (JSON escapes the characters as \\uXXXX)."""
    node, _ = north_node
    stored = "evil\u202e1-htron\x1b[31m<b>"
    Node.objects.filter(pk=node.pk).update(name=stored)
    client = Client()
    client.force_login(olivia)
    for path in (f"/nodes/{node.pk}/", "/nodes/"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert html.escape(stored, quote=False) in r.content.decode(), path
    r = admin_api(olivia).get("/nodes?fleet=north")
    assert r.status_code == 200
    assert [n["name"] for n in r.json()] == [stored]
    assert b"\\u202e" in r.content.lower() and b"\\u001b" in r.content.lower()
    assert admin_api(olivia).get(f"/nodes/{node.pk}").json()["name"] == stored
    # Renaming it to a clean name is the fix, through the same service.
    r = admin_api(olivia).patch(f"/nodes/{node.pk}", {"name": "north-1"})
    assert r.status_code == 200 and r.json()["name"] == "north-1"
