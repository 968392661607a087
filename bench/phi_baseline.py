"""The baseline of bench/phi.py: wire/phi.py as it was at commit 4a83878, before its rewrite.

Copied unchanged (`git show 4a83878:wire/phi.py`) but for this paragraph and `detect_kinds`
at the end, which names what it finds with the benchmark's kinds (`KINDS`). Its own docstring:

PHI / personal-data detection with Microsoft Presidio (pattern recognizers, no model download).

Presidio's predefined recognizers find emails, phone numbers, SSNs, dates, credit cards, IP
addresses, medical licence numbers and more. spaCy's statistical models cannot be downloaded here,
so Presidio runs on a blank spaCy pipeline: names are found only through the extra pattern
recognizers below (titles such as "Mr."/"Dr.", and "patient/name:" labels), as are medical record
numbers and street addresses. Install with the `phi` extra; without it, `available()` is false and
HIPAA policy fails closed (escalation to a non-BAA endpoint is refused).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import types
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENTITIES = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "DATE_TIME",
    "MEDICAL_RECORD_NUMBER",
    "STREET_ADDRESS",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "MEDICAL_LICENSE",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "IBAN_CODE",
    "UK_NHS",
]
MIN_SCORE = 0.35

_engine = None
_lock = threading.Lock()


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def available() -> bool:
    try:
        import presidio_analyzer  # noqa: F401
        import spacy  # noqa: F401
    except ImportError:
        return False
    return True


def _extra_recognizers():
    from presidio_analyzer import Pattern, PatternRecognizer

    street = (
        r"\b\d{1,6}\s+(?:[A-Z][a-z]+\s){1,3}"
        r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl)\b\.?"
    )
    return [
        PatternRecognizer(
            supported_entity="MEDICAL_RECORD_NUMBER",
            patterns=[
                Pattern("mrn", r"\b(?:MRN|medical record(?: number| no\.?)?)[:#\s]*\d{5,12}\b", 0.9)
            ],
        ),
        PatternRecognizer(
            supported_entity="STREET_ADDRESS", patterns=[Pattern("street", street, 0.7)]
        ),
        PatternRecognizer(
            supported_entity="PERSON",
            patterns=[
                Pattern(
                    "titled",
                    r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?",
                    0.8,
                ),
                Pattern(
                    "labelled",
                    r"(?i:\b(?:patient|name|pt)\s*[:\-]\s*)[A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2}",
                    0.8,
                ),
            ],
        ),
    ]


def _build():
    import spacy

    # The email recognizer checks domains with tldextract, which would fetch the public suffix list
    # from the internet on first use; an edge device must not phone home: use the bundled snapshot.
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    offline = tldextract.TLDExtract(suffix_list_urls=())
    email_recognizer.tldextract = types.SimpleNamespace(extract=offline)  # type: ignore[assignment]

    blank = Path(tempfile.mkdtemp(prefix="edgefleet-spacy-")) / "en_blank"
    spacy.blank("en").to_disk(blank)
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": str(blank)}],
        }
    )
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    for recognizer in _extra_recognizers():
        engine.registry.add_recognizer(recognizer)
    return engine


def _get():
    global _engine
    with _lock:
        if _engine is None:
            _engine = _build()
        return _engine


def detect(text: str) -> list[Finding]:
    """PHI spans in `text`, longest first where they overlap."""
    if not text.strip():
        return []
    results = _get().analyze(text=text, language="en", entities=ENTITIES, score_threshold=MIN_SCORE)
    spans: list[Finding] = []
    for r in sorted(results, key=lambda r: (r.start, -(r.end - r.start))):
        if spans and r.start < spans[-1].end:
            continue  # overlaps a longer or earlier finding
        spans.append(Finding(r.entity_type, r.start, r.end))
    return spans


def redact(text: str, findings: list[Finding]) -> str:
    out, pos = [], 0
    for f in findings:
        out.append(text[pos : f.start])
        out.append(f"<{f.kind}>")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


# --- for bench/phi.py: Presidio's entity names as the benchmark's kinds ---------------------------

KINDS = {
    "PERSON": "PERSON",
    "DATE_TIME": "DATE",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "SSN",
    "US_ITIN": "SSN",
    "EMAIL_ADDRESS": "EMAIL",
    "MEDICAL_RECORD_NUMBER": "MRN",
    "UK_NHS": "MRN",
    "STREET_ADDRESS": "ADDRESS",
    "LOCATION": "ADDRESS",
    "IP_ADDRESS": "IP",
    "MEDICAL_LICENSE": "LICENSE",
    "US_DRIVER_LICENSE": "LICENSE",
    "US_PASSPORT": "LICENSE",
    "URL": "URL",
    "CREDIT_CARD": "ACCOUNT",
    "IBAN_CODE": "ACCOUNT",
    "US_BANK_NUMBER": "ACCOUNT",
}


def detect_kinds(text: str) -> list[Finding]:
    """`detect`, with the benchmark's kind names (a name it does not know is kept)."""
    return [Finding(KINDS.get(f.kind, f.kind), f.start, f.end) for f in detect(text)]
