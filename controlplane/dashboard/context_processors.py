"""What the signed-in person may do somewhere, for the navigation: pages a role may not use are not
offered (the pages themselves still check every object through the access functions)."""

from __future__ import annotations

from controlplane.accounts.access import ADMINISTER, OPERATE, PERMISSIONS, VIEW, VIEW_AUDIT
from controlplane.accounts.models import Membership


def rights(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"rights": {}}
    if user.is_superuser:
        roles = set(PERMISSIONS)
    else:
        roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    can = set().union(*(PERMISSIONS[r] for r in roles)) if roles else set()
    return {
        "rights": {
            "view": VIEW in can,
            "operate": OPERATE in can,
            "administer": ADMINISTER in can,
            "audit": VIEW_AUDIT in can,
            "global_admin": user.is_superuser,
        }
    }
