"""PHI detection and reversible redaction for HIPAA mode (no Django; node and relay share it).

What it finds, offline, on one CPU core (measured recall: docs/compliance.md, "PHI detection"):

- identifiers by format, checksum and context: e-mail, URL, IPv4/IPv6, SSN (any 3-2-4 number, test
  ranges included), phone and fax (US and international), Medicare MBIs, VINs, DEA numbers, GS1
  device identifiers, ZIP codes after a state or a "ZIP" label, and any number-like value after a
  label that names it (MRN, member/subscriber/policy/group id, account/claim, licence/DEA/NPI,
  plate/VIN, serial/UDI...); a long number or digit-bearing code with no label is redacted as an
  identifier too;
- dates more precise than a year, numeric and written out ("3/14/62", "2024-03-14", "March 14th",
  "the 14th of March", "Mar 1962", "DOB 031462"); relative ones ("last Tuesday") are left alone;
- ages over 89; street addresses (US, and common European forms), PO boxes and the city of an
  address line;
- names: spaCy's small English pipeline's named-entity recogniser (PERSON), plus context rules
  (titles, "Name:"-style labels, "spoke with", relatives, signatures), "Last, First" forms,
  initials, and every other occurrence in the same text of a name found once.

Not caught (stated on the Compliance page): a bare first name in lower case with no cue around it,
a city or place name outside an address, free-text descriptions that identify without a name
("the mayor's wife"), and identifiers inside images or attachments.

`redact` replaces each finding with a numbered placeholder (`<PERSON_1>`): the same value gets the
same placeholder across the messages of one request, and `Redactor.mapping` lets the node put the
originals back into the cloud's answer (`restore`, or `Restorer` for a stream). The mapping never
leaves the node. `count_placeholders` lets the control plane count what the node redacted.

The package: `base` (kinds, findings, figures), `patterns` (identifiers, dates, ages, addresses),
`words` (word lists, WordNet, Census names), `names` (person names), `model` (the recogniser),
`detector` (`detect`), `redact` (placeholders).
"""

from wire.phi.base import KINDS, PLACEHOLDER, SPACY_PACKAGE, DetectionError, Finding
from wire.phi.detector import TIMEOUT_S, detect
from wire.phi.measured import MEASURED
from wire.phi.model import load
from wire.phi.redact import Redactor, Restorer, count_placeholders, neutralise, redact, restore

__all__ = [
    "KINDS",
    "MEASURED",
    "PLACEHOLDER",
    "SPACY_PACKAGE",
    "TIMEOUT_S",
    "DetectionError",
    "Finding",
    "Redactor",
    "Restorer",
    "count_placeholders",
    "detect",
    "load",
    "neutralise",
    "redact",
    "restore",
]
