"""Input types the admin API's routers share (the wire contract with nodes is wire/schemas.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from controlplane.errors import ServiceError
from wire.fields import NAME_CHECK, UNSAFE_CODE, strict_json, unsafe_text

Slug = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$"), NAME_CHECK
]


def _iso_only(value: Any) -> Any:
    """pydantic reads a bare number as a Unix time; the schema says ISO 8601, so that is refused."""
    if isinstance(value, int | float) or (isinstance(value, str) and _numeric(value)):
        raise ValueError("expected an ISO 8601 date or time, e.g. 2026-12-01T12:00:00Z")
    return value


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """In UTC (PostgreSQL refuses offsets beyond ±15:59) and clamped to 1970-2200: as a filter's
    bound, the year 1267 selects what 1970 does (nothing is older)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return EARLIEST if value.year < 1970 else LATEST
    return min(max(value, EARLIEST), LATEST)


IsoTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_utc)]
IsoDate = Annotated[date, BeforeValidator(_iso_only)]


class In(Schema):
    """An admin-API request body: a JSON object of exactly the declared types
    (wire.schemas.strict_json). The dashboard's forms validate with the same class, leniently:
    a form sends every value as a string."""

    @model_validator(mode="wrap")
    @classmethod
    def _run_root_validator(  # replaces ninja's, which reads a non-object as an empty object
        cls, values: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        return strict_json(cls, values, handler, info)


class UnsafeText(ServiceError):
    """A 400 whose `code` is the schemas' error type for the same rule."""

    code = UNSAFE_CODE


def refuse_unsafe(field: str, *values: str, prose: bool = False) -> None:
    """The services' side of the schemas' rule on names (wire.schemas.unsafe_text): a 400 naming
    `field` if one of `values` holds a control character or a bidirectional override (prose may
    keep tabs and line breaks). For callers that reach a service without the API's In schema."""
    for value in values:
        problem = unsafe_text(value, prose=prose) if isinstance(value, str) else None
        if problem:
            raise UnsafeText(f"{field}: {problem}", field=field)


def refuse_unsafe_labels(field: str, labels: dict[str, str] | None) -> None:
    """`refuse_unsafe` over a label map's keys and values."""
    for key, value in (labels or {}).items():
        refuse_unsafe(field, key, value)
