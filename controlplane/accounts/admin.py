"""Django's /admin/ as a read-only window (docs/permissions.md, "Django's /admin/").

Every change to people, roles and tokens goes through `services.py` (the dashboard's Access page and
the admin API), which checks the rules and writes the audit record. The stock admin would change a
user's e-mail, flags, groups or password with neither, so here every model can be listed and opened
by a global admin, and nothing can be added, changed or deleted through the admin (403).
`tests/test_django_admin.py` checks every model registered on the site, so one registered later
(by an app of ours or a library) cannot bring an unaudited write back.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from controlplane.accounts.access import is_global_admin
from controlplane.accounts.models import Membership


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and detail pages for global admins; no add, change or delete for anyone."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return is_global_admin(request.user)

    def has_module_permission(self, request: Any) -> bool:
        return is_global_admin(request.user)


class ReadOnlyUserAdmin(ReadOnlyAdmin, UserAdmin):
    """Accounts: invited (`do_invite_user`), erased (`do_erase_user`), never edited here."""


class ReadOnlyGroupAdmin(ReadOnlyAdmin, GroupAdmin):
    """Django groups carry no rights in edgefleet (roles are per-fleet memberships)."""


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Roles in fleets: granted, changed and removed by `do_set_membership` only."""

    list_display = ("user", "fleet", "role", "created_at")
    list_filter = ("role",)
    list_select_related = ("user", "fleet")
    search_fields = ("user__username", "fleet__slug")


User = get_user_model()
for model, model_admin in ((User, ReadOnlyUserAdmin), (Group, ReadOnlyGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
admin.site.site_header = "edgefleet administration (read-only)"
admin.site.site_title = "edgefleet admin (read-only)"
