"""Numbered placeholders the node can undo (`Redactor`, `restore`, `Restorer` for streams)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from wire.phi.base import KINDS, PLACEHOLDER, Finding
from wire.phi.detector import detect

# --- reversible redaction ---------------------------------------------------------------------


@dataclass
class Redactor:
    """Redacts the messages of one request with numbered placeholders; `mapping` (placeholder ->
    original) stays on the node and is dropped after the answer."""

    mapping: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _numbers: Counter[str] = field(default_factory=Counter)

    def redact(self, text: str, findings: list[Finding] | None = None) -> str:
        """`text` (neutralised: see `neutralise`) with `findings` replaced by placeholders."""
        if findings is None:
            findings = detect(text)
        out, pos = [], 0
        for f in findings:
            value = text[f.start : f.end]
            key = (f.kind, value.casefold())
            placeholder = self._by_value.get(key)
            if placeholder is None:
                self._numbers[f.kind] += 1
                placeholder = f"<{f.kind}_{self._numbers[f.kind]}>"
                self._by_value[key] = placeholder
                self.mapping[placeholder] = value
            self.counts[f.kind] += 1
            out += [text[pos : f.start], placeholder]
            pos = f.end
        out.append(text[pos:])
        return "".join(out)


def neutralise(text: str) -> str:
    """A placeholder the user typed ("<PERSON_1>") would be taken for the node's: it becomes
    "(PERSON_1)" before detection, so that only the node's placeholders have the shape."""
    return PLACEHOLDER.sub(lambda m: f"({m.group(1)}_{m.group(2)})", text)


def redact(text: str, findings: list[Finding]) -> str:
    """`text` with each finding replaced by a numbered placeholder (one-off; see Redactor)."""
    return Redactor().redact(text, findings)


def count_placeholders(text: str) -> Counter[str]:
    """Placeholders per kind in `text` (what the control plane sees of the node's redaction)."""
    return Counter(m.group(1) for m in PLACEHOLDER.finditer(text))


def restore(text: str, mapping: dict[str, str]) -> str:
    """The originals put back for the placeholders of `mapping` (unknown ones are left alone)."""
    return PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)


_LONGEST = max(len(k) for k in KINDS) + 9


class Restorer:
    """`restore` for a stream: feed chunks, get text with placeholders replaced, holding back only
    what could still be the start of a placeholder."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping
        self.pending = ""

    def feed(self, chunk: str) -> str:
        text = self.pending + chunk
        cut = text.rfind("<")
        if cut != -1 and ">" not in text[cut:] and len(text) - cut <= _LONGEST:
            text, self.pending = text[:cut], text[cut:]
        else:
            self.pending = ""
        return restore(text, self.mapping)

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return restore(text, self.mapping)
