"""What the signed-in person may do somewhere, for the navigation: pages a role may not use are not
offered (the pages themselves still check every object through the access functions)."""

from __future__ import annotations

from controlplane.accounts import access
from controlplane.accounts.access import ADMINISTER, OPERATE, PERMISSIONS, VIEW, VIEW_AUDIT


def rights(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"rights": {}}
    roles = set(PERMISSIONS) if user.is_superuser else set(access.roles(user).values())
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
