"""Accounts in the admin API: personal tokens (/tokens), people (/users) and fleet memberships
(/fleets/{slug}/members)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from django.http import HttpResponse
from ninja import Field, Query, Router, Schema, Status

from controlplane.accounts import access, queries, services
from controlplane.accounts.access import ADMINISTER, VIEW
from controlplane.accounts.models import Membership, PersonalToken
from controlplane.errors import ERRORS
from controlplane.pagination import PageQuery, headers, offset_page
from controlplane.schemas import In
from wire.fields import Name, SafeName

router = Router(tags=["accounts"])

RoleName = Literal["admin", "operator", "compliance", "viewer"]


class PersonalTokenIn(In):
    name: Name
    role: Literal["", "admin", "operator", "compliance", "viewer"] = Field(
        "", description="Cap the token below your own role ('' = your role)."
    )
    fleets: Annotated[list[str], Field(max_length=100)] = Field(
        [], description="Fleet slugs ([] = all of yours)."
    )
    ttl_days: Annotated[int, Field(ge=1, le=3650)] | None = 90


class PersonalTokenOut(Schema):
    id: int
    name: str
    prefix: str
    role: str
    fleets: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @staticmethod
    def resolve_fleets(obj: PersonalToken) -> list[str]:
        return [f.slug for f in obj.fleets.all()]


class PersonalTokenCreatedOut(PersonalTokenOut):
    token: str = Field(description="Shown once; only its hash is stored.")


@router.get("/tokens", response={200: list[PersonalTokenOut], **ERRORS})
def list_tokens(request):
    """Your own tokens, newest first (a person has few: not paginated)."""
    return queries.personal_tokens(request.auth)


@router.post("/tokens", response={201: PersonalTokenCreatedOut, **ERRORS})
def create_token(request, payload: PersonalTokenIn):
    fleets = [access.access_fleet(request.auth, slug, VIEW) for slug in payload.fleets]
    token, plaintext = services.do_create_personal_token(
        request.auth,
        name=payload.name,
        role=payload.role,
        fleets=fleets,
        ttl_days=payload.ttl_days,
        request=request,
    )
    token.token = plaintext  # type: ignore[attr-defined]
    return Status(201, token)


@router.post("/tokens/{token_id}/revoke", response={200: PersonalTokenOut, **ERRORS})
def revoke_token(request, token_id: int):
    return services.do_revoke_personal_token(
        request.auth, access.access_personal_token(request.auth, token_id), request=request
    )


# --- people and memberships -------------------------------------------------------------------


class MemberOut(Schema):
    username: str
    role: str
    since: datetime

    @staticmethod
    def resolve_username(obj: Membership) -> str:
        return obj.user.username

    @staticmethod
    def resolve_since(obj: Membership) -> datetime:
        return obj.created_at


class MemberIn(In):
    role: RoleName


class InviteIn(In):
    username: Annotated[SafeName, Field(min_length=1, max_length=150)]
    email: Annotated[str, Field(max_length=254)] = ""
    fleet: Annotated[str, Field(max_length=63)] | None = Field(
        None, description="grant a role in this fleet at once (you must administer it)"
    )
    role: RoleName | None = None


class InvitedOut(Schema):
    username: str
    set_password_url: str = Field(
        description="One-time link where the person sets a password. Shown once."
    )


class UserOut(Schema):
    username: str
    email: str
    is_active: bool
    global_admin: bool
    roles: dict[str, str] = Field(description="fleet slug -> role")
    last_login: datetime | None

    @staticmethod
    def resolve_global_admin(obj) -> bool:
        return obj.is_superuser

    @staticmethod
    def resolve_roles(obj) -> dict[str, str]:
        return {m.fleet.slug: m.role for m in obj.memberships.all()}


@router.get("/fleets/{slug}/members", response={200: list[MemberOut], **ERRORS})
def list_members(request, response: HttpResponse, slug: str, page: Query[PageQuery]):
    """Who holds which role in the fleet: for its admins and compliance officers (reviews)."""
    fleet = access.access_fleet(request.auth, slug, access.READ_MEMBERS)
    page_ = offset_page(queries.members(fleet), limit=page.limit, offset=page.offset)
    return headers(request, response, page_)


@router.put("/fleets/{slug}/members/{username}", response={200: MemberOut, **ERRORS})
def set_member(request, slug: str, username: str, payload: MemberIn):
    """Grant `username` a role in the fleet, or change it."""
    fleet = access.access_fleet(request.auth, slug, ADMINISTER)
    user = queries.access_user(username)
    return services.do_set_membership(
        actor=request.auth, user=user, fleet=fleet, role=payload.role, request=request
    )


@router.delete("/fleets/{slug}/members/{username}", response={204: None, **ERRORS})
def remove_member(request, slug: str, username: str):
    """Take away `username`'s role in the fleet (nothing to do if they have none)."""
    fleet = access.access_fleet(request.auth, slug, ADMINISTER)
    user = queries.access_user(username)
    services.do_set_membership(
        actor=request.auth, user=user, fleet=fleet, role=None, request=request
    )
    return Status(204, None)


@router.get("/users", response={200: list[UserOut], **ERRORS})
def list_users(request, response: HttpResponse, page: Query[PageQuery]):
    """Every account and its roles (global admins only)."""
    return headers(
        request,
        response,
        offset_page(queries.users(request.auth), limit=page.limit, offset=page.offset),
    )


@router.post("/users", response={201: InvitedOut, **ERRORS})
def invite_user(request, payload: InviteIn):
    """Create an account and get its one-time set-password link (admins of a fleet)."""
    fleet = access.access_fleet(request.auth, payload.fleet, ADMINISTER) if payload.fleet else None
    user, path = services.do_invite_user(
        actor=request.auth,
        username=payload.username,
        email=payload.email,
        fleet=fleet,
        role=payload.role,
        request=request,
    )
    return Status(
        201, {"username": user.username, "set_password_url": request.build_absolute_uri(path)}
    )
