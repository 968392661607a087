"""Who may do what: the one place that answers it, one access function per object type.

Every access function returns the object or raises NotFound, for a missing object and a forbidden
one alike, so a caller cannot learn that a fleet or node it may not see exists.

Actions: VIEW (read), OPERATE (nodes, tokens, desired state), ADMINISTER (fleet settings,
memberships). See docs/permissions.md for the matrix.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from controlplane.accounts.models import Membership, PersonalToken, Role
from controlplane.errors import NotFound
from controlplane.fleets.models import Fleet

M = TypeVar("M", bound=Model)

VIEW = "view"
OPERATE = "operate"
ADMINISTER = "administer"
VIEW_AUDIT = "view_audit"  # audit log, exports, compliance settings, records of processing
ERASE = "erase"  # GDPR erasure of a data subject served by the fleet's nodes
# Who may read a fleet's member list (names and roles): the API, the Access page and the live
# `membership.set` event (controlplane/dashboard/consumers.py) all ask this one right.
READ_MEMBERS = VIEW_AUDIT

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset({VIEW, OPERATE, ADMINISTER, VIEW_AUDIT, ERASE}),
    Role.OPERATOR: frozenset({VIEW, OPERATE}),
    Role.COMPLIANCE: frozenset({VIEW, VIEW_AUDIT, ERASE}),
    Role.VIEWER: frozenset({VIEW}),
}


def _token_scope(user) -> tuple[str, set[int]] | None:
    """A personal token may narrow its user's rights: (role cap, fleet ids); set by the API auth."""
    return getattr(user, "token_scope", None)


def is_global_admin(user) -> bool:
    scope = _token_scope(user)
    if scope and (scope[0] or scope[1]):
        return False  # a narrowed token is never global
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def allowed(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


def remember_roles(user) -> None:
    """Read `user`'s roles at most once from now on: for the user object of one request (a
    dashboard page's, `controlplane.dashboard.common.page`), whose access checks and navigation
    then share one query. Never for an object that outlives a request: roles change."""
    user._roles_once = {}


def roles(user) -> dict[int, str]:
    """fleet id -> `user`'s role there (every fleet is "admin" for a superuser)."""
    once = getattr(user, "_roles_once", None)
    if once is not None and "roles" in once:
        return once["roles"]
    found: dict[int, str]
    if user.is_superuser:
        found = dict.fromkeys(Fleet.objects.values_list("id", flat=True), str(Role.ADMIN))
    else:
        found = {
            fid: str(role)
            for fid, role in Membership.objects.filter(user=user).values_list("fleet_id", "role")
        }
    if once is not None:
        once["roles"] = found
    return found


def fleet_ids(user, action: str) -> set[int] | None:
    """Fleet ids where `user` may do `action`; None means every fleet (global admin)."""
    if not (user and user.is_authenticated and user.is_active):
        return set()
    if is_global_admin(user):
        return None
    scope = _token_scope(user)
    ids = {fid for fid, role in roles(user).items() if allowed(role, action)}
    if scope:
        cap, scoped_fleets = scope
        if cap:
            ids = {fid for fid in ids if allowed(cap, action)}
        if scoped_fleets:
            ids &= scoped_fleets
    return ids


def restrict(queryset: QuerySet[M], user, action: str) -> QuerySet[M]:
    """Narrow any queryset to the rows in fleets where `user` may do `action`. Each restricted
    model says how it reaches its fleet in `fleet_field` ("id" on Fleet, "fleet_id" on the objects
    of one fleet, "node__fleet_id" for a node's data): this module never imports the domain."""
    ids = fleet_ids(user, action)
    if ids is None:
        return queryset
    field = queryset.model.fleet_field  # type: ignore[attr-defined]
    return queryset.filter(**{f"{field}__in": ids})


def get(queryset: QuerySet[M], user, action: str, missing: str, **lookup: Any) -> M:
    """The one object `lookup` names among those `user` may `action`, or NotFound(`missing`) for a
    missing and a forbidden one alike. The per-type access functions (access_node, ...) call this.
    """
    obj = restrict(queryset, user, action).filter(**lookup).first()
    if obj is None:
        raise NotFound(missing)
    return obj


def can(user, fleet_id: int, action: str) -> bool:
    ids = fleet_ids(user, action)
    return ids is None or fleet_id in ids


def access_fleet(user, slug: str, action: str = VIEW) -> Fleet:
    return get(Fleet.objects.all(), user, action, f"fleet '{slug}' not found", slug=slug)


def access_personal_token(user, token_id: int) -> PersonalToken:
    """A personal API token is visible to its owner only."""
    token = PersonalToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise NotFound(f"token {token_id} not found")
    return token
