"""Input types the admin API's routers share (the wire contract with nodes is agents/schemas.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

Slug = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


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
