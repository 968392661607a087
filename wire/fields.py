"""The field types, the strictness and the error shape every document of the wire contract uses.

Names and prose refuse control characters and bidirectional overrides (`unsafe_text`); request
bodies are checked against their own JSON Schema before pydantic reads them (`strict_json`,
`Strict`); an error answer is `{"detail": ..., "code": ...}` with a code from `ERROR_CODES`
(docs/architecture.md, "Errors"). The documents themselves are in `wire/schemas.py`."""

from __future__ import annotations

import itertools
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

import jsonschema_rs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

MAX_SEQ = 2**63 - 1


MAX_JSON_DEPTH = 8


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


# Names, labels and other identifiers are shown on pages, in terminals and in logs, so they hold no
# C0 or C1 control character (an ESC sequence rewrites a terminal) and no Unicode bidirectional
# formatting (overrides, isolates, marks: a name that displays as another). Prose (descriptions,
# notes, reasons) may keep tabs and line breaks. This is the one rule: the schemas below, the admin
# API's and the services (controlplane.schemas.refuse_unsafe) all apply `unsafe_text`. The same
# character classes, written so that Python's re and JSON Schema (ECMA 262) read them alike, are
# the schemas' `pattern`, so a client (and the fuzz) knows what is refused.
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"


_NAME_UNSAFE = r"\x00-\x1f\x7f-\x9f" + _BIDI


_PROSE_UNSAFE = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + _BIDI  # keeps \t \n \r


NAME_PATTERN = f"^[^{_NAME_UNSAFE}]*$"


PROSE_PATTERN = f"^[^{_PROSE_UNSAFE}]*$"


_UNSAFE = {False: re.compile(f"[{_NAME_UNSAFE}]"), True: re.compile(f"[{_PROSE_UNSAFE}]")}


UNSAFE_CODE = "unsafe_characters"  # the 422's error `type`, the 400's `code`


def unsafe_text(value: str, *, prose: bool = False) -> str | None:
    """Why `value` cannot be a name (with `prose`: free text), or None if it can."""
    found = _UNSAFE[prose].search(value)
    if found is None:
        return None
    return (
        "must not contain control characters or bidirectional overrides "
        f"(found U+{ord(found.group()):04X})"
    )


def _refuse_unsafe(prose: bool):
    def check(value: Any, info: ValidationInfo) -> Any:
        problem = unsafe_text(value, prose=prose) if isinstance(value, str) else None
        if problem:
            where = f"{info.field_name}: " if info.field_name else ""
            raise PydanticCustomError(UNSAFE_CODE, where + problem)
        return value

    return BeforeValidator(check)


# Checked before length and pattern, so that the message says what is wrong.
SafeName = Annotated[str, Field(json_schema_extra={"pattern": NAME_PATTERN}), _refuse_unsafe(False)]


SafeProse = Annotated[
    str, Field(json_schema_extra={"pattern": PROSE_PATTERN}), _refuse_unsafe(True)
]


NAME_CHECK = _refuse_unsafe(False)  # for names that have a stricter pattern of their own


def _json_clean(value: Any, depth: int = 0) -> Any:
    """Reject what JSON columns cannot store (NUL bytes, non-finite floats) and deep nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        return no_nul(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("NaN and infinity are not allowed")
    if isinstance(value, dict):
        return {no_nul(str(k)): _json_clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v, depth + 1) for v in value]
    return value


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """Aware UTC, its year as written within 2000-2199 (a node whose clock says 0001 has a clock
    problem, and years at the edge of the calendar overflow when converted). The year is checked as
    written, before conversion, so that the schema can say the same (TIMESTAMP_PATTERN)."""
    if not EARLIEST.year <= value.year < LATEST.year:
        raise ValueError(
            "timestamp must be between 2000-01-01 and 2200-01-01 (check the node's clock)"
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# What _utc accepts, in the OpenAPI schema: an RFC 3339 date-time whose year is 2000-2199.
TIMESTAMP_PATTERN = r"^2[01][0-9]{2}-"


Str = Annotated[str, AfterValidator(no_nul)]


Name = Annotated[SafeName, Field(min_length=1, max_length=100)]


ShortStr = Annotated[str, Field(max_length=200), AfterValidator(no_nul)]


LongStr = Annotated[str, Field(max_length=4000), AfterValidator(no_nul)]


JsonDict = Annotated[dict[str, Any], AfterValidator(_json_clean)]


Timestamp = Annotated[
    datetime,
    AfterValidator(_utc),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]


Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]


LabelKey = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"), NAME_CHECK
]


LabelValue = Annotated[str, Field(max_length=63, pattern=r"^[A-Za-z0-9._/-]*$"), NAME_CHECK]


LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"


# The JSON schema says what the validation does: keys that do not match are refused, not ignored.
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=32,
        json_schema_extra={
            "additionalProperties": False,
            "propertyNames": {"minLength": 1, "maxLength": 63, "pattern": LABEL_KEY},
        },
    ),
]


JSON_KINDS = {
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


# What pydantic checks after the JSON types, with messages of its own (a range, a pattern, a
# missing or unknown field): left out of the schema the types are checked with.
NOT_TYPES = {
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "required",
    "enum",
    "const",
    "default",
}


def _types_only(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_types_only(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties"):  # names -> schemas
            out[key] = {name: _types_only(sub) for name, sub in value.items()}
        elif key not in NOT_TYPES and not (key == "additionalProperties" and value is False):
            out[key] = _types_only(value)
    return out


@cache
def _json_type_validator(cls: type[BaseModel]) -> Any:
    """A compiled validator of the JSON types `cls`'s JSON Schema (the one the OpenAPI document
    publishes) states, for every field at every depth."""
    return jsonschema_rs.validator_for(_types_only(cls.model_json_schema(mode="validation")))


def _type_message(instance: Any) -> str:
    return f"wrong JSON type: {JSON_KINDS.get(type(instance), 'null')} is not accepted here"


def strict_json(
    cls: type[BaseModel], values: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    """Read a request body as the JSON it is: an object whose every field has the JSON type its
    JSON Schema states, before pydantic reads it.

    pydantic's lax mode reads `false` as 0, `"5"` as 5 and `0` as 1970-01-01, and ninja's schemas
    read any non-object (`[null, null]`) as an object with every field left out, so a body the
    published schema refuses could be accepted. A body that arrived through an API (ninja passes
    the request in the validation context) has its JSON types checked against the model's own
    JSON Schema first (jsonschema_rs, compiled once per model): each wrongly typed field is a 422
    naming its path; pydantic then checks the rest (ranges, patterns) with its own messages.
    Forms (whose values are strings), stored documents and the agent's own reads stay lax."""
    context = info.context or {}
    # ninja passes the request when it reads a response too ("response_status"): not a body.
    if "request" not in context or "response_status" in context or _CHECKED.get():
        return handler(values)
    if not isinstance(values, dict):
        kind = JSON_KINDS.get(type(values), "null" if values is None else type(values).__name__)
        raise PydanticCustomError(
            "object_type", "expected a JSON object, got {kind}", {"kind": kind}
        )
    errors = [
        InitErrorDetails(
            type=PydanticCustomError("json_type", _type_message(e.instance)),
            loc=tuple(e.instance_path),
            input=e.instance,
        )
        for e in itertools.islice(_json_type_validator(cls).iter_errors(values), 20)
    ]
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
    checked = _CHECKED.set(True)  # the nested models were checked with it
    try:
        return handler(values)
    finally:
        _CHECKED.reset(checked)


class Strict(BaseModel):
    """A document of the wire contract: no field it does not declare; as a request body, strict."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _strict_json(cls, values: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo):
        return strict_json(cls, values, handler, info)


# Every error answer of both APIs is `{"detail": ..., "code": ...}`: `detail` for a person (a
# message, or ninja's list of field errors for a 422), `code` for a program. A refusal with a
# reason of its own has its own code ("phi_refused", "unsafe_characters"); the others are these.
ERROR_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(status: int, detail: Any, code: str = "") -> dict[str, Any]:
    """The body of an error answer: the detail and a code (the status's, unless one is given)."""
    return {"detail": detail, "code": code or ERROR_CODES.get(status, "error")}


class ErrorOut(BaseModel):
    detail: Any = Field(description="for a person: a message, or the list of invalid fields")
    code: str = Field(description="for a program: why (e.g. not_found, invalid_input, phi_refused)")


_CHECKED: ContextVar[bool] = ContextVar("json_checked", default=False)
