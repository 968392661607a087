"""Input types the admin API's routers share (the wire contract with nodes is agents/schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

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


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]
