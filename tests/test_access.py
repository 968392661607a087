"""Memberships and invitations through the admin API (the dashboard's Access page uses the same
services): who may grant roles, the rules the service keeps, and their audit records."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from controlplane.accounts.models import Membership
from controlplane.audit.models import AuditRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user(username="bob", password="pw-bob-123456")


def test_a_fleet_admin_grants_a_role_and_the_person_then_sees_the_fleet(
    north, fiona, bob, admin_api
):
    assert admin_api(bob).get("/fleets/north").status_code == 404
    r = admin_api(fiona).put("/fleets/north/members/bob", {"role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert admin_api(bob).get("/fleets/north").status_code == 200
    record = AuditRecord.objects.filter(action="membership.set").last()
    assert record.after == {"role": "viewer"} and record.before is None


def test_changing_and_removing_a_role_is_audited_with_before_and_after(
    north, fiona, bob, admin_api
):
    admin_api(fiona).put("/fleets/north/members/bob", {"role": "viewer"})
    admin_api(fiona).put("/fleets/north/members/bob", {"role": "operator"})
    assert AuditRecord.objects.filter(action="membership.set").last().before == {"role": "viewer"}
    assert admin_api(fiona).delete("/fleets/north/members/bob").status_code == 204
    assert not Membership.objects.filter(user=bob).exists()
    last = AuditRecord.objects.filter(action="membership.set").last()
    assert last.before == {"role": "operator"} and last.after == {"role": None}


def test_a_fleet_admin_cannot_change_their_own_role(north, fiona, admin_api):
    r = admin_api(fiona).put("/fleets/north/members/fiona", {"role": "viewer"})
    assert r.status_code == 403 and "your own role" in r.json()["detail"]
    assert Membership.objects.get(user=fiona).role == "admin"


def test_granting_a_role_to_an_unknown_username_is_not_found(north, fiona, admin_api):
    r = admin_api(fiona).put("/fleets/north/members/nobody", {"role": "viewer"})
    assert r.status_code == 404 and "user 'nobody' not found" in r.json()["detail"]


def test_an_unknown_role_is_refused_by_the_schema(north, fiona, bob, admin_api):
    assert admin_api(fiona).put("/fleets/north/members/bob", {"role": "owner"}).status_code == 422


def test_members_are_listed_to_admins_and_compliance_officers_only(
    north, fiona, carol, olivia, victor, admin_api
):
    names = {m["username"] for m in admin_api(carol).get("/fleets/north/members").json()}
    assert names == {"fiona", "carol", "olivia", "victor"}
    assert admin_api(olivia).get("/fleets/north/members").status_code == 404


def test_an_invitation_creates_an_account_whose_one_time_link_sets_the_password(
    north, fiona, admin_api
):
    r = admin_api(fiona).post(
        "/users",
        {"username": "dora", "email": "dora@example.com", "fleet": "north", "role": "viewer"},
    )
    assert r.status_code == 201, r.content
    link = r.json()["set_password_url"]
    dora = get_user_model().objects.get(username="dora")
    assert not dora.has_usable_password()
    assert Membership.objects.get(user=dora).role == "viewer"
    client = Client()
    form = client.get(link, follow=True)
    assert form.status_code == 200
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-long-new-passphrase-9", "new_password2": "a-long-new-passphrase-9"},
    )
    assert done.status_code == 302
    assert Client().login(username="dora", password="a-long-new-passphrase-9")
    assert Client().get(link, follow=True).context["validlink"] is False  # used once
    assert AuditRecord.objects.filter(action="user.invite").exists()


def test_someone_who_administers_no_fleet_cannot_invite(north, olivia, victor, admin_api):
    for person in (olivia, victor):
        r = admin_api(person).post("/users", {"username": "eve"})
        assert r.status_code == 403 and "admin of a fleet" in r.json()["detail"]


@pytest.mark.parametrize(
    "body, status, text",
    [
        ({"username": "fiona"}, 409, "is taken"),
        ({"username": "has space"}, 400, "valid username"),
        ({"username": "gus", "role": "viewer"}, 400, "a role needs a fleet"),
        ({"username": "gus", "email": "not-an-address"}, 400, "not an e-mail address"),
        ({"username": "gus", "fleet": "south", "role": "viewer"}, 404, "not found"),
    ],
)
def test_a_bad_invitation_gets_a_clear_4xx(north, south, fiona, admin_api, body, status, text):
    r = admin_api(fiona).post("/users", body)
    assert r.status_code == status and text in r.json()["detail"], r.content


def test_only_a_global_admin_lists_every_account(north, alice, fiona, admin_api):
    users = admin_api(alice).get("/users")
    assert users.status_code == 200
    assert {"alice", "fiona"} <= {u["username"] for u in users.json()}
    assert admin_api(fiona).get("/users").status_code == 403
