"""`UNSET`: "leave this field as it is" in a service's keyword arguments (a PATCH's absent keys),
told apart from None, which some fields accept as a value (a poll interval of None means the global
default)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Final, Literal


class _Unset(Enum):
    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not UNSET: what a PATCH asks to change."""
    return {k: v for k, v in values.items() if v is not UNSET}
