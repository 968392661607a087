"""`detect`: every rule run over a text, findings merged, names propagated, failing closed."""

from __future__ import annotations

import ipaddress
import re
import time

from wire.phi.base import PLACEHOLDER, DetectionError, Finding
from wire.phi.model import load
from wire.phi.names import (
    _candidate_names,
    _listed_names,
    _shape_names,
    _spacy_names,
    _with_particles,
)
from wire.phi.patterns import (
    _CODE_BEFORE,
    _IP_CANDIDATE,
    _MONTH_DAY,
    _NOT_A_DATE_AFTER,
    _NOT_A_DATE_BEFORE,
    _PATTERNS,
    _addresses,
    _plates,
    _valid,
)
from wire.phi.words import _NOT_NAMES, _NOT_PEOPLE

TIMEOUT_S = 5.0  # detection slower than this fails closed (a text of 100 KB takes about 3 s)


def _merge(findings: list[Finding]) -> list[Finding]:
    """Overlapping findings joined into one (the kind of the longest; a pattern's over a name's
    for the same extent), sorted by position."""
    out: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, f.start - f.end, f.kind == "PERSON")):
        if out and f.start < out[-1].end:
            last = out[-1]
            if f.end > last.end:
                longer = f if f.end - f.start > last.end - last.start else last
                out[-1] = Finding(longer.kind, last.start, f.end)
            continue
        out.append(f)
    return out


def _propagate(text: str, findings: list[Finding]) -> list[Finding]:
    """Every other occurrence of a name word already found once (a surname repeated later)."""
    words = set()
    for f in findings:
        if f.kind == "PERSON":
            for w in re.findall(r"[^\W\d_]{3,}", text[f.start : f.end]):
                if w.lower() not in _NOT_NAMES and w.lower() not in _NOT_PEOPLE:
                    words.add(w.lower())
    if not words:
        return findings
    extra = [
        Finding("PERSON", m.start(), m.end())
        for m in re.finditer(r"[^\W\d_]{3,}", text)
        if m.group().lower() in words
    ]
    return findings + extra


def detect(text: str, *, timeout_s: float | None = -1) -> list[Finding]:
    """PHI spans in `text`, sorted and not overlapping. Raises DetectionError when detection
    cannot run or takes longer than `timeout_s` (default TIMEOUT_S; None: no limit), so that the
    caller fails closed."""
    if timeout_s == -1:
        timeout_s = TIMEOUT_S
    started = time.monotonic()
    load()  # not installed: an error even for a text the model would not be asked about
    if not text.strip():
        return []
    try:
        letters = [c for c in text if c.isalpha()]
        lower_text = bool(letters) and sum(c.isupper() for c in letters) < 0.02 * len(letters)
        found: list[Finding] = []
        for kind, regex, group in _PATTERNS:
            for m in regex.finditer(text):
                s, e = m.start(group), m.end(group)
                value = text[s:e].rstrip(".,;:)")
                e = s + len(value)
                if e > s and _valid(kind, value, text, s, e, lower_text):
                    found.append(Finding(kind, s, e))
        found = [
            f
            for f in found
            if f.kind != "ACCOUNT" or not _CODE_BEFORE.search(text, max(0, f.start - 24), f.start)
        ]
        for m in _MONTH_DAY.finditer(text):
            if not _NOT_A_DATE_AFTER.match(text, m.end()) and not _NOT_A_DATE_BEFORE.search(
                text, max(0, m.start() - 16), m.start()
            ):
                found.append(Finding("DATE", m.start(), m.end()))
        for m in _IP_CANDIDATE.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            found.append(Finding("IP", m.start(), m.end()))
        found += _addresses(text, found) + _plates(text, lower_text)
        names = _candidate_names(text, lower_text)
        names += _shape_names(text, found + names, lower_text)
        names += _listed_names(text, found + names, lower_text)
        names += _spacy_names(text, found + names)
        for f in names:  # "J. Smith's": the name without its possessive
            end = f.end - 2 if text[f.start : f.end].endswith(("'s", "’s")) else f.end
            if end > f.start:
                found.append(_with_particles(text, Finding("PERSON", f.start, end)))
        found = _propagate(text, found)
    except DetectionError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the detector fails closed
        raise DetectionError(f"PHI detection failed ({type(exc).__name__})") from None
    if timeout_s is not None and time.monotonic() - started > timeout_s:
        raise DetectionError(f"PHI detection took longer than {timeout_s:g} s")
    placeholders = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    if placeholders:  # what an earlier pass redacted is not found again
        found = [f for f in found if not any(f.start < e and s < f.end for s, e in placeholders)]
    return _merge(found)
