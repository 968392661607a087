"""Who may do what: the one place that answers it, one access function per object type.

Every access function returns the object or raises NotFound, for a missing object and a forbidden
one alike, so a caller cannot learn that a fleet or node it may not see exists.

Actions: VIEW (read), OPERATE (nodes, tokens, desired state), ADMINISTER (fleet settings,
memberships). See docs/permissions.md for the matrix.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from controlplane.errors import Forbidden, NotFound

from .models import Membership, Role

if TYPE_CHECKING:
    from controlplane.audit.models import AuditExport
    from edgenodes.models import (
        DesiredStateLayer,
        EnrollmentToken,
        Fleet,
        Node,
        Rollout,
        ToolApproval,
    )
    from edgenodes.registry.models import Artifact, QuantizationJob

VIEW = "view"
OPERATE = "operate"
ADMINISTER = "administer"
VIEW_AUDIT = "view_audit"  # audit log, exports, compliance settings, records of processing
ERASE = "erase"  # GDPR erasure of a data subject served by the fleet's nodes

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


def fleet_ids(user, action: str) -> set[int] | None:
    """Fleet ids where `user` may do `action`; None means every fleet (global admin)."""
    if not (user and user.is_authenticated and user.is_active):
        return set()
    if is_global_admin(user):
        return None
    scope = _token_scope(user)
    roles: dict[int, str]
    if user.is_superuser:
        from edgenodes.models import Fleet

        roles = dict.fromkeys(Fleet.objects.values_list("id", flat=True), str(Role.ADMIN))
    else:
        roles = {
            fid: str(role)
            for fid, role in Membership.objects.filter(user=user).values_list("fleet_id", "role")
        }
    ids = {fid for fid, role in roles.items() if allowed(role, action)}
    if scope:
        cap, scoped_fleets = scope
        if cap:
            ids = {fid for fid in ids if allowed(cap, action)}
        if scoped_fleets:
            ids &= scoped_fleets
    return ids


def restrict(queryset: QuerySet, user, action: str, fleet_field: str = "fleet_id") -> QuerySet:
    """Narrow any queryset to the rows in fleets where `user` may do `action`."""
    ids = fleet_ids(user, action)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{fleet_field}__in": ids})


def can(user, fleet_id: int, action: str) -> bool:
    ids = fleet_ids(user, action)
    return ids is None or fleet_id in ids


def access_fleet(user, slug: str, action: str = VIEW) -> Fleet:
    from edgenodes.models import Fleet

    fleet = restrict(Fleet.objects.all(), user, action, "id").filter(slug=slug).first()
    if fleet is None:
        raise NotFound(f"fleet '{slug}' not found")
    return fleet


def access_node(user, node_id, action: str = VIEW) -> Node:
    from edgenodes.models import Node

    try:
        pk = node_id if isinstance(node_id, uuid.UUID) else uuid.UUID(str(node_id))
    except ValueError:
        raise NotFound(f"node '{node_id}' not found") from None
    node = restrict(Node.objects.select_related("fleet"), user, action).filter(pk=pk).first()
    if node is None:
        raise NotFound(f"node '{node_id}' not found")
    return node


def access_enrollment_token(user, token_id: int, action: str = VIEW) -> EnrollmentToken:
    from edgenodes.models import EnrollmentToken

    token = (
        restrict(EnrollmentToken.objects.select_related("fleet"), user, action)
        .filter(pk=token_id)
        .first()
    )
    if token is None:
        raise NotFound(f"enrollment token {token_id} not found")
    return token


def access_layer(user, fleet_slug: str, name: str, action: str = VIEW) -> DesiredStateLayer:
    from edgenodes.models import DesiredStateLayer

    layer = (
        restrict(DesiredStateLayer.objects.select_related("fleet"), user, action)
        .filter(fleet__slug=fleet_slug, name=name)
        .first()
    )
    if layer is None:
        raise NotFound(f"layer '{name}' not found in fleet '{fleet_slug}'")
    return layer


def access_approval(user, approval_id: int, action: str = VIEW) -> ToolApproval:
    from edgenodes.models import ToolApproval

    approval = (
        restrict(ToolApproval.objects.select_related("fleet", "node"), user, action)
        .filter(pk=approval_id)
        .first()
    )
    if approval is None:
        raise NotFound(f"approval {approval_id} not found")
    return approval


def access_export(user, export_id: int) -> AuditExport:
    """An audit export is visible to the person who made it (and global admins)."""
    from controlplane.audit.models import AuditExport
    from controlplane.audit.services import user_ref

    export = AuditExport.objects.filter(pk=export_id).first()
    if export is None or not (
        is_global_admin(user) or (user.is_authenticated and export.actor == user_ref(user))
    ):
        raise NotFound(f"export {export_id} not found")
    return export


def access_rollout(user, rollout_id: int, action: str = VIEW) -> Rollout:
    from edgenodes.models import Rollout

    rollout = (
        restrict(Rollout.objects.select_related("fleet"), user, action)
        .filter(pk=rollout_id)
        .first()
    )
    if rollout is None:
        raise NotFound(f"rollout {rollout_id} not found")
    return rollout


# The model registry is shared by all fleets: anyone with a role in some fleet may read it; writing
# (registering, quantizing) needs the admin role in some fleet. Someone with no role sees nothing.


def _registry_check(user, action: str) -> None:
    ids = fleet_ids(user, VIEW)
    if ids is not None and not ids:
        raise NotFound("model registry not found")
    if action != VIEW:
        ids = fleet_ids(user, ADMINISTER)
        if ids is not None and not ids:
            raise Forbidden("changing the model registry needs the admin role in some fleet")


def access_registry(user, action: str = VIEW) -> None:
    _registry_check(user, action)


def access_artifact(user, name: str, variant: str, action: str = VIEW) -> Artifact:
    from edgenodes.registry.models import Artifact

    _registry_check(user, action)
    artifact = Artifact.objects.filter(name=name, variant=variant).first()
    if artifact is None:
        raise NotFound(f"model '{name}' has no variant '{variant}'")
    return artifact


def access_quantization_job(user, job_id: int) -> QuantizationJob:
    from edgenodes.registry.models import QuantizationJob

    _registry_check(user, VIEW)
    job = QuantizationJob.objects.select_related("source", "result").filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"quantization job {job_id} not found")
    return job
