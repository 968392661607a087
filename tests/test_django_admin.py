"""Django's /admin/ is read-only (docs/permissions.md, "Django's /admin/"): every change to people
and permissions goes through the audited services, so the stock admin changes nothing, for every
model registered on it, while its lists and detail pages still open for global admins."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client, RequestFactory

from controlplane.accounts.models import Membership
from controlplane.audit.models import AuditRecord

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_form(user) -> dict[str, str]:
    """What the stock change form posts, with e-mail and the flags changed."""
    return {
        "username": user.username,
        "email": "attacker@example.com",
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }


def test_a_superuser_posting_the_admin_change_form_changes_nothing_and_gets_403(alice, victor):
    victor.email = "victor@example.com"
    victor.save()
    client = logged_in(alice)
    audited = AuditRecord.objects.count()
    r = client.post(f"/admin/auth/user/{victor.pk}/change/", change_form(victor))
    assert r.status_code == 403
    victor.refresh_from_db()
    assert victor.email == "victor@example.com"
    assert not victor.is_superuser and not victor.is_staff
    assert AuditRecord.objects.count() == audited and not LogEntry.objects.exists()


def test_the_lists_and_detail_pages_still_open_with_a_read_only_note(alice, victor, north):
    client = logged_in(alice)
    for path in (
        "/admin/",
        "/admin/auth/user/",
        f"/admin/auth/user/{victor.pk}/change/",
        "/admin/auth/group/",
        "/admin/accounts/membership/",
        f"/admin/accounts/membership/{Membership.objects.get(user=victor).pk}/change/",
    ):
        r = client.get(path)
        assert r.status_code == 200, path
        assert b'id="read-only-note"' in r.content, path
    page = client.get(f"/admin/auth/user/{victor.pk}/change/").content.decode()
    assert "victor" in page and 'name="_save"' not in page  # shown, not editable
    assert 'href="/admin/auth/user/add/"' not in client.get("/admin/auth/user/").content.decode()


def test_no_add_change_delete_or_password_path_remains_for_users_groups_and_memberships(
    alice, victor, north
):
    group = Group.objects.create(name="ops")
    membership = Membership.objects.get(user=victor)
    client = logged_in(alice)
    posts = {
        "/admin/auth/user/add/": {
            "username": "eve",
            "password1": "x-Long-passw0rd!",
            "password2": "x-Long-passw0rd!",
        },
        f"/admin/auth/user/{victor.pk}/password/": {
            "password1": "x-Long-passw0rd!",
            "password2": "x-Long-passw0rd!",
        },
        f"/admin/auth/user/{victor.pk}/delete/": {"post": "yes"},
        "/admin/auth/group/add/": {"name": "admins"},
        f"/admin/auth/group/{group.pk}/change/": {"name": "renamed"},
        f"/admin/auth/group/{group.pk}/delete/": {"post": "yes"},
        "/admin/accounts/membership/add/": {
            "user": str(victor.pk),
            "fleet": str(north.pk),
            "role": "admin",
        },
        f"/admin/accounts/membership/{membership.pk}/change/": {
            "user": str(victor.pk),
            "fleet": str(north.pk),
            "role": "admin",
        },
        f"/admin/accounts/membership/{membership.pk}/delete/": {"post": "yes"},
    }
    for path, data in posts.items():
        # A change page opens read-only (200); the add, delete and password pages do not open.
        assert client.get(path).status_code == (200 if path.endswith("/change/") else 403), path
        assert client.post(path, data).status_code == 403, path
    # The bulk "delete selected" action is not offered either.
    r = client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [victor.pk], "post": "yes"},
    )
    assert r.status_code in (200, 302)
    victor.refresh_from_db()
    assert victor.has_usable_password() and victor.check_password("correct horse battery staple")
    assert not get_user_model().objects.filter(username="eve").exists()
    assert Group.objects.get(pk=group.pk).name == "ops"
    assert Group.objects.count() == 1
    assert Membership.objects.get(pk=membership.pk).role == "viewer"
    assert not LogEntry.objects.exists()


def test_every_model_registered_on_the_admin_is_read_only_even_for_a_superuser(alice):
    request = RequestFactory().get("/admin/")
    request.user = alice
    assert admin.site._registry, "nothing registered"
    for model, model_admin in admin.site._registry.items():
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model
        assert not model_admin.get_actions(request), model  # no bulk delete either


def test_only_global_admins_may_look(fiona):
    """Staff with Django permissions is not a global admin: the accounts list stays theirs alone
    (docs/permissions.md)."""
    fiona.is_staff = True
    fiona.save()
    fiona.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "view_group"]))
    client = logged_in(fiona)
    assert client.get("/admin/auth/user/").status_code == 403
    assert client.get("/admin/accounts/membership/").status_code == 403
