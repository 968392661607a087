"""Identifiers, dates, ages and addresses by format, checksum and label: the expressions."""

from __future__ import annotations

import re

from wire.phi.base import Finding
from wire.phi.words import _NOT_NAMES

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
