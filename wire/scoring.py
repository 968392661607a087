"""The learned part of the local-vs-cloud router: a difficulty score for a query, and for a cascade
a reliability score for the local answer. Pure Python, no numpy: it runs on every request.

Features are hashed (CRC-32, stable across processes and machines, unlike `hash`) into 2**bits
buckets: lowercased word unigrams and bigrams, numbers by shape, and a few counts (length, numbers,
question marks) as bucketed tokens. A linear model per answering model over them gives the score
(see Scorer). The control plane trains the weights (`manage.py router train`) and ships them as a
signed artifact in the desired state; `Scorer.from_artifact` verifies it before the node uses it.
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature

from wire import manifest

FORMATS = (1, 2)  # 1: summed feature counts; 2: adds `norm` (see Head)
TOKEN = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*|[^\sa-z\d]")
NUMBER_OR_WORD = re.compile(r"\d")


class RouterError(Exception):
    """The router artifact is malformed or not signed by the pinned key."""


def _bucket(value: int) -> int:
    return value.bit_length()  # 0, 1, 2-3, 4-7, ...


def tokens(text: str) -> list[str]:
    out = []
    for t in TOKEN.findall(text.lower()):
        if t[0].isdigit():
            t = "#" + str(len(t))  # numbers by shape: 7, 42, 1,000 -> #1, #2, #5
        out.append(t)
    return out


def features(text: str, bits: int, prefix: str = "") -> list[int]:
    """Hashed feature indices of `text` (a list with repeats; the model sums their weights)."""
    mask = (1 << bits) - 1
    crc = zlib.crc32
    seed = crc(prefix.encode()) if prefix else 0
    toks = tokens(text)
    out = []
    prev = crc(b"^", seed)
    for t in toks:
        h = crc(t.encode(), seed)
        out.append(h & mask)
        out.append(crc(t.encode(), prev) & mask)  # the bigram (previous token, this one)
        prev = h
    numbers = sum(1 for t in toks if t[0] == "#")
    for name, value in (
        ("len", len(toks)),
        ("chars", len(text) // 16),
        ("nums", numbers),
        ("lines", text.count("\n")),
        ("qmarks", text.count("?")),
    ):
        out.append(crc(f"{name}={_bucket(value)}".encode(), seed) & mask)
    return out


@dataclass
class Head:
    """One linear model: P(this model answers well) = sigmoid(bias + the weights of its features).

    With `norm` "l2" (format 2) the word features count once each and their weights are divided
    by the square root of how many there are (binary, L2-normalised), so a long query is not
    judged by its length alone; the answer's signals (`answer_features`) keep weight 1. Without
    it (format 1) every occurrence adds its weight."""

    bias: float
    weights: dict[int, float]
    answer: bool = False  # reads the local answer too (a cascade's weak head)

    def probability(
        self, words: list[int], answer_words: list[int], signals: list[int], norm: str = ""
    ) -> float:
        w = self.weights
        if self.answer:
            words = words + answer_words
        if norm:
            unique = set(words)
            m = sum(w.get(i, 0.0) for i in unique) / math.sqrt(len(unique)) if unique else 0.0
        else:
            m = sum(w.get(i, 0.0) for i in words)
        if self.answer:
            m += sum(w.get(i, 0.0) for i in signals)
        m += self.bias
        return 1.0 / (1.0 + math.exp(-m)) if m > -500 else 0.0


@dataclass
class Scorer:
    """score = P(the cloud model answers well) - P(the local model does): the expected gain of
    sending this query to the cloud, in [-1, 1]. `kind` "query" reads the query only; "cascade"
    reads the local answer too, so it runs after the local model answered."""

    kind: str
    bits: int
    strong: Head
    weak: Head
    version: str = ""
    # Score at each cloud share 0%, 1%, ..., 100% of the training queries (highest first), so a
    # node turns a target cloud share into a threshold without the training data.
    quantiles: list[float] = field(default_factory=list)
    # PGR reached at each share 0..100% on held-out data, to turn a quality target into a share.
    pgr: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    norm: str = "l2"  # "" in format 1 artifacts (see Head)

    def score(self, query: str, answer: str | None = None) -> float:
        q = features(query, self.bits)
        a: list[int] = []
        signals: list[int] = []
        if self.kind == "cascade":
            text = answer or ""
            a = features(text, self.bits, prefix="a:")
            signals = answer_features(text, self.bits, query if self.norm else None)
        return self.strong.probability(q, a, signals, self.norm) - self.weak.probability(
            q, a, signals, self.norm
        )

    def threshold_for_share(self, share: float) -> float:
        """The score above which about `share` of queries go to the cloud."""
        if not self.quantiles:
            return 0.0
        share = min(max(share, 0.0), 1.0)
        i = round(share * (len(self.quantiles) - 1))
        return self.quantiles[i] if share < 1.0 else -math.inf

    def share_for_quality(self, target_pgr: float) -> float:
        """The smallest cloud share whose held-out PGR reaches `target_pgr` (1.0 when none)."""
        for i, value in enumerate(self.pgr):
            if value >= target_pgr:
                return i / (len(self.pgr) - 1)
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        def head(h: Head) -> dict[str, Any]:
            return {
                "bias": round(h.bias, 6),
                "answer": h.answer,
                "weights": {str(k): round(v, 5) for k, v in sorted(h.weights.items()) if v},
            }

        return {
            "format": 2 if self.norm else 1,
            "norm": self.norm,
            "kind": self.kind,
            "bits": self.bits,
            "version": self.version,
            "strong": head(self.strong),
            "weak": head(self.weak),
            "quantiles": [round(q, 6) for q in self.quantiles],
            "pgr": [round(p, 4) for p in self.pgr],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorer:
        def head(h: dict[str, Any]) -> Head:
            return Head(
                bias=float(h["bias"]),
                weights={int(k): float(v) for k, v in h["weights"].items()},
                answer=bool(h.get("answer", False)),
            )

        try:
            if data["format"] not in FORMATS:
                raise RouterError(f"unsupported router format {data['format']!r}")
            norm = str(data.get("norm") or "") if data["format"] == 2 else ""
            if norm not in ("", "l2"):
                raise RouterError(f"unknown router feature norm {norm!r}")
            if data["kind"] not in ("query", "cascade"):
                raise RouterError(f"unknown router kind {data['kind']!r}")
            bits = int(data["bits"])
            if not 8 <= bits <= 24:
                raise RouterError(f"router bits {bits} out of range 8..24")
            return cls(
                kind=data["kind"],
                bits=bits,
                strong=head(data["strong"]),
                weak=head(data["weak"]),
                version=str(data.get("version", "")),
                quantiles=[float(q) for q in data.get("quantiles") or []],
                pgr=[float(p) for p in data.get("pgr") or []],
                meta=dict(data.get("meta") or {}),
                norm=norm,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RouterError(f"malformed router artifact: {exc!r}") from None

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_artifact(cls, raw: bytes, signature: str, public_pem: str) -> Scorer:
        """Verify `raw` (the artifact's bytes) against the pinned key, then load it."""
        try:
            key = manifest.load_public(public_pem)
            key.verify(base64.b64decode(signature, validate=True), raw)
        except (InvalidSignature, ValueError, manifest.ManifestError):
            raise RouterError("the router artifact's signature does not verify") from None
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RouterError(f"the router artifact is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RouterError("the router artifact is not a JSON object")
        return cls.from_dict(data)


FINAL = re.compile(r"####\s*([-\d.,/$ ]+)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def answer_features(answer: str, bits: int, question: str | None = None) -> list[int]:
    """Signals that a worked answer went wrong: no final answer, several candidate finals,
    a hedge ("however", "actually"), arithmetic in <<a=b>> annotations that does not hold; with
    the `question` (format 2 routers), the further checks of `_checks`."""
    mask = (1 << bits) - 1
    signals = []
    finals = FINAL.findall(answer)
    signals.append(f"finals={min(len(finals), 3)}")
    if finals:
        final = finals[-1].strip().rstrip(".")
        signals.append("final_fraction" if "/" in final else "final_int")
        if "." in final.replace(",", ""):
            signals.append("final_decimal")
        if final.startswith("-"):
            signals.append("final_negative")
    wrong = 0
    for expr, result in re.findall(r"<<([^=<>]+)=([^<>]+)>>", answer):
        try:
            value = _evaluate(expr)
            if value is None:
                continue
            if abs(value - float(result.replace(",", ""))) > 1e-6 * max(1.0, abs(value)):
                wrong += 1
        except ValueError:
            continue
    signals.append(f"bad_arith={min(wrong, 2)}")
    lowered = answer.lower()
    for hedge in ("however", "actually", "but since", "round", "approximately", "assume", "can't"):
        if hedge in lowered:
            signals.append(f"hedge:{hedge}")
    signals.append(f"steps={_bucket(answer.count(chr(10)))}")
    out = [zlib.crc32(s.encode(), 7) & mask for s in signals]
    if question is not None:
        out += [zlib.crc32(s.encode(), 9) & mask for s in _checks(question, answer, finals)]
    return out


INLINE = re.compile(
    r"(\d[\d,]*(?:\.\d+)?(?:\s*[-+*/x×]\s*\$?\d[\d,]*(?:\.\d+)?)+)\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)"
)


def _checks(question: str, answer: str, finals: list[str]) -> list[str]:
    """Format 2's further signals: arithmetic written inline ("12 x 3 = 36") that does not hold,
    how much of it there is, a final answer copied from the question, the final's magnitude."""
    bad = checked = 0
    for expr, result in INLINE.findall(answer):
        value = _evaluate(expr.replace("x", "*").replace("×", "*").replace("$", ""))
        if value is None:
            continue
        checked += 1
        try:
            if abs(value - float(result.replace(",", ""))) > 1e-6 * max(1.0, abs(value)):
                bad += 1
        except ValueError:
            continue
    out = [f"bad_inline={min(bad, 2)}", f"inline={_bucket(checked)}"]
    if finals:
        final = finals[-1].strip().rstrip(".").replace(",", "").replace("$", "").strip()
        if final in {n.replace(",", "") for n in NUMBER.findall(question)}:
            out.append("final_in_question")
        if final and final.replace(".", "").replace("-", "").isdigit():
            out.append(f"final_digits={min(len(final.split('.')[0]), 6)}")
    return out


ARITH = re.compile(r"^[\d.+\-*/() ]+$")


def _evaluate(expr: str) -> float | None:
    expr = expr.replace(",", "").strip()
    if not ARITH.match(expr) or "**" in expr or len(expr) > 80:
        return None
    try:
        return float(eval(expr, {"__builtins__": {}}, {}))  # noqa: S307 - digits and + - * / ( ) only
    except (SyntaxError, ZeroDivisionError, TypeError, OverflowError):
        return None
