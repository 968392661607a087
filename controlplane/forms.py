"""Dashboard forms without rules of their own: the admin API's In schema checks the input's shape,
the service applies every rule, and either's message comes back keyed by the field it is about
(`"form"` when it is about none), for the page to show next to that field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pydantic

from controlplane.errors import NotFound, ServiceError

T = TypeVar("T")
ALL = "form"  # the key of a message about the whole form


def labels_from_text(text: str, field: str = "labels") -> dict[str, str]:
    """`site=oslo, tier=a` (commas or new lines) -> {"site": "oslo", "tier": "a"}; the schema then
    checks keys and values as the API does."""
    labels: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ServiceError(f"'{part}' is not key=value", field=field)
        labels[key.strip()] = value.strip()
    return labels


def submit(
    schema: type[pydantic.BaseModel],
    data: Callable[[], dict[str, Any]] | dict[str, Any],
    action: Callable[[Any], T],
) -> tuple[T | None, dict[str, str]]:
    """Validate `data` with `schema`, then run `action(parsed)`. Returns (result, {}) or
    (None, {field: message}). NotFound is not a form error: it becomes the 404 page."""
    try:
        parsed = schema.model_validate(data() if callable(data) else data)
    except pydantic.ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ALL
            errors.setdefault(field, err["msg"])
        return None, errors
    except NotFound:
        raise
    except ServiceError as exc:
        return None, {exc.field or ALL: exc.message}
    try:
        return action(parsed), {}
    except NotFound:
        raise
    except ServiceError as exc:
        return None, {exc.field or ALL: exc.message}
