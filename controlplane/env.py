"""Settings from the environment: typed, bounded, and wrong values named in one line.

An empty value counts as unset (compose files write `VAR=` for "not set"), so it gets the
default. A value that is malformed or out of range raises ImproperlyConfigured naming the variable,
the value and what is expected; `manage.py`, `wsgi.py` and `asgi.py` print that one line and exit
non-zero (`exit_on_bad_configuration`) instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    """The one-line error; a password in a URL is masked, a long value shortened."""
    shown = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ImproperlyConfigured(f"{name}={shown!r}: expected {expected}")


def string(name: str, default: str) -> str:
    value = raw(name)
    return default if value is None else value


def boolean(name: str, default: bool) -> bool:
    value = raw(name)
    if value is None:
        return default
    if value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    raise bad(name, value, "one of 1, 0, true, false, yes, no, on, off")


def _bounded(
    name: str, default: Any, low: float | None, high: float | None, parse: Callable, kind: str
):
    value = raw(name)
    if value is None:
        return default
    if low is not None and high is not None:
        expected = f"{kind} from {low} to {high}"
    elif low is not None:
        expected = f"{kind} of at least {low}"
    else:
        expected = kind
    try:
        number = parse(value)
    except ValueError:
        raise bad(name, value, expected) from None
    too_low = low is not None and number < low
    if number != number or too_low or (high is not None and number > high):  # NaN too
        raise bad(name, value, expected)
    return number


def integer(name: str, default: int, low: int | None = None, high: int | None = None) -> int:
    return _bounded(name, default, low, high, int, "an integer")


def number(name: str, default: float, low: float | None = None, high: float | None = None) -> float:
    return _bounded(name, default, low, high, float, "a number")


def choice(name: str, default: str, choices: Sequence[str]) -> str:
    value = raw(name)
    if value is None:
        return default
    if value.upper() in choices:
        return value.upper()
    raise bad(name, value, "one of " + ", ".join(choices))


def url(name: str, default: str, schemes: Sequence[str]) -> str:
    value = raw(name)
    if value is None:
        return default
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise bad(name, value, f"a {' or '.join(s + '://' for s in schemes)} URL")
    return value


def file_path(name: str, default: str) -> str:
    """A file the process writes: when set, its directory is created now, so a path that cannot
    hold the file stops the start with one line instead of failing at its first write."""
    value = raw(name)
    if value is None:
        return default
    path = Path(value)
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "not a directory" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        raise bad(name, value, f"a file path whose directory can be created ({why})") from None
    return value


def words(name: str, default: str) -> list[str]:
    """A comma-separated list (spaces around items dropped)."""
    return [w.strip() for w in string(name, default).split(",") if w.strip()]


def networks(name: str, default: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of addresses or CIDR networks (`10.0.0.1, 192.168.0.0/16, ::1`)."""
    out = []
    for word in words(name, default):
        try:
            out.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise bad(
                name, word, "IP addresses or networks such as 10.0.0.1,192.168.0.0/16"
            ) from None
    return tuple(out)


def database(name: str, default: str, **options: Any) -> dict[str, Any]:
    """DATABASE_URL as Django's DATABASES entry (dj-database-url's `options`): PostgreSQL or
    SQLite only."""
    import dj_database_url

    value = raw(name) or default
    expected = "a database URL: postgres://user:pass@host:5432/name or sqlite:///path"
    if urlsplit(value).scheme not in ("postgres", "postgresql", "sqlite"):
        raise bad(name, value, expected)
    try:
        config = dj_database_url.parse(value, **options)
    except (ValueError, KeyError, TypeError):
        raise bad(name, value, expected) from None
    if not config.get("NAME"):
        raise bad(name, value, expected + " (the database name is missing)")
    return dict(config)


def exit_on_bad_configuration(load: Callable[[], Any]) -> Any:
    """Run `load` (which reads the settings); on bad configuration print one line and exit 2."""
    try:
        return load()
    except ImproperlyConfigured as exc:
        print(f"edgefleet: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
