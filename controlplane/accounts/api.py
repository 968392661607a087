"""Personal API tokens (/api/v1/tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from ninja import Field, Router, Schema, Status

from agents.schemas import Name
from controlplane.accounts import access
from controlplane.accounts.access import VIEW
from controlplane.errors import ERRORS

from . import services
from .models import PersonalToken

router = Router(tags=["tokens"])


class PersonalTokenIn(Schema):
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


@router.get("", response={200: list[PersonalTokenOut], **ERRORS})
def list_tokens(request):
    """Your own tokens, newest first (a person has few: not paginated)."""
    return (
        PersonalToken.objects.filter(user=request.auth)
        .prefetch_related("fleets")
        .order_by("-created_at", "-id")
    )


@router.post("", response={201: PersonalTokenCreatedOut, **ERRORS})
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


@router.post("/{token_id}/revoke", response={200: PersonalTokenOut, **ERRORS})
def revoke_token(request, token_id: int):
    return services.do_revoke_personal_token(
        request.auth, access.access_personal_token(request.auth, token_id), request=request
    )
