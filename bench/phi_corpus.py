"""A synthetic clinical corpus with labelled PHI, for measuring a PHI detector (bench/phi.py).

What it makes. `generate(seed, n, split)` returns samples (`Sample`: text, gold `Span`s, genre) of
at least `n` sentences in all: clinical notes (progress notes, SOAP fragments, discharge summaries,
referral letters, telephone encounters: 1-4 sentences a sample), patient portal and SMS messages
(lower case, abbreviations, typos: 1-3 a sample) and intake forms (`Field: value` lines: 2-4 a
sample; a form line counts as a sentence). Every sentence comes from a template whose `{SLOT}`s are
filled with generated values; a labelled slot becomes a gold span of one of the 16 HIPAA Safe
Harbor kinds below (`KINDS`; `text[start:end]` is exactly the entity, without cue words, titles or
the surrounding punctuation). Lower-case slots (`{drug}`, `{eponym}`, `{lab}`, `{year}`,
`{reldate}`, `{young_age}`...) are HARD NEGATIVES, never labelled: drug names and brands, eponymous
diseases and signs, doses and lab values (BP 130/85, 2/3 of the dose), ICD-10 and CPT codes, rooms,
facilities and departments, years alone, relative dates, times, durations, ages of 89 or less, and
capitalised words that are also first names ("Will continue...", "Grace period"). Which template
fills a sentence is balanced over the kinds (names and dates get a larger share, `SHARE`), so that
each kind appears at least 100 times in 2,000 sentences; about two samples in five name a person.

What is labelled, and how (`Span.style` records the form, `STYLES` lists them all):
- PERSON: patients, relatives, clinicians. The style joins with "+" a form (full, middle_initial,
  last_first, initial_last, first_only, titled: the span is the name after "Dr."/"Mrs."..., without
  the title, initials), optionally a casing (upper, lower) and optionally an origin: "intl" for a
  name from a non-US Faker locale (Spanish, German, French, Italian, Polish, Brazilian, Dutch,
  Turkish, Indian, Japanese and Chinese romanised, Vietnamese, Igbo, Yoruba, Hausa, Swahili, Twi,
  Indonesian, Romanian, Irish, Hungarian, Zulu, Finnish, Swedish, Czech), "invented" for a name made
  of random syllables ("Tavrelo Quenbury"); neither means a US (en_US) name. E.g.
  "last_first+upper+intl". About a third of all names are invented: a detector that only looks
  names up in lists (first-name lists, census surnames, the locales Faker draws from) must not
  pass, since real patients carry names no list holds.
- DATE: any date more precise than a year (month/day, day/month/year, ISO, "March 14th", "the 14th
  of March", "March 2019", DOB written 03141962); years alone, relative dates and times are not.
- AGE: ages over 89 only; the span is the number ("92" in "92-year-old", "ninety-four" in words).
- PHONE (and fax), EMAIL, SSN (test-range and invalid-looking ones too), MRN, HEALTH_PLAN (member,
  group, Medicaid ids, and Medicare MBIs in the real MBI format), ACCOUNT (account, billing, claim
  and card numbers), LICENSE (driver's licences, DEA, NPI, state medical licences), VEHICLE (VINs
  with a valid check digit, plates), DEVICE (implant and pump serials, GS1 and HIBCC UDIs), URL,
  IP (v4 and v6), ADDRESS (street lines with their unit, PO boxes, foreign street lines, and the
  city of a postal address line as a separate span; the state is not labelled), ZIP (5 and 9 digit
  ZIP codes, and foreign postcodes: style "postcode").

The four families. Every template is written in exactly one of four lists, `TEMPLATES["dev"]`,
`TEMPLATES["eval"]`, `TEMPLATES["test"]` and `TEMPLATES["holdout"]` (the fixed rule: the list it
stands in), each with its own wording and contexts; `split=` draws only from the family of that
name.
- dev: the detector's author develops on it (reads its samples and his errors on them).
- eval: validation. Written apart from the detector, but used during development: its figures
  were consulted and its errors studied, so it is no longer held out.
- test: validation too. Written after the detector, from scratch, in other clinical situations,
  with hard negatives of its own besides the shared ones; it too has since been used during
  development (its errors were read), so it is no longer held out either.
- holdout: written after the detector's last change, from scratch, by someone who never read the
  detector, in clinical situations none of the others uses (occupational health, therapy and
  driver rehab, behavioural-health intake, vaccination and travel clinics, wound care, the sleep
  lab, ophthalmology, audiology, prior-authorisation letters, critical-value calls, complaints,
  research consent, ambulance transport and billing, death-certificate worksheets, chats with a
  virtual assistant), with hard negatives of its own (its vocabularies and negative slots stand
  with its templates, at the end of the template section). No figure of it is consulted before
  the reported run; bench/phi.py reports its figures, and eval's and test's as validation.
The test and holdout families' own vocabularies stand below the line the detector's author does
not read. Every family covers every kind in every genre, and every style (the value generators,
which pick the styles and the names, are shared: the families differ in their sentences and
negatives, not in the forms the entities take). Adding the test family changed nothing dev or
eval generate, and adding the holdout family changed nothing dev, eval or test generate.

Deterministic: the same (seed, n, split) gives the same samples, in any process (`random.Random`
and `Faker.seed_instance`, both seeded from the arguments; no set or hash order is relied on), for
a given Faker version (its name and address lists change between releases: bench/phi.py records
the version). Needs only the standard library and Faker. `python bench/phi_corpus.py dev 40`
prints a few samples with their spans marked (the first argument is the family).
"""

from __future__ import annotations

import random
import re
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from wire.phi import KINDS  # the kinds are the contract; nothing else of the detector

IDENTIFIERS = tuple(k for k in KINDS if k not in ("PERSON", "DATE"))
GENRES = ("note", "message", "form")

PERSON_FORMS = (
    "full",
    "middle_initial",
    "last_first",
    "initial_last",
    "first_only",
    "titled",
    "initials",
)
PERSON_CASINGS = ("upper", "lower")
PERSON_ORIGINS = ("intl", "invented")
STYLES: dict[str, tuple[str, ...]] = {
    # PERSON's style is "+"-joined components: one form, at most one casing, at most one origin.
    "PERSON": PERSON_FORMS + PERSON_CASINGS + PERSON_ORIGINS,
    "DATE": (
        "mdy_slash",
        "mdy_short",
        "md",
        "iso",
        "dmy_dot",
        "dmy_slash",
        "month_d_y",
        "d_month_y",
        "month_d",
        "ordinal",
        "month_y",
        "compact",
    ),
    "AGE": ("digits", "words"),
    "PHONE": ("us_paren", "us_dash", "us_dot", "us_plain", "us_plus1", "intl"),
    "EMAIL": ("personal", "work"),
    "SSN": ("dashed", "spaced", "plain", "test", "invalid"),
    "MRN": ("digits", "prefixed", "hyphenated"),
    "HEALTH_PLAN": ("member", "group", "medicaid", "mbi"),
    "ACCOUNT": ("account", "billing", "claim", "card"),
    "LICENSE": ("drivers", "dea", "npi", "medical"),
    "VEHICLE": ("vin", "plate"),
    "DEVICE": ("serial", "udi_gs1", "udi_hibcc"),
    "URL": ("scheme", "www", "bare"),
    "IP": ("v4", "v6"),
    "ADDRESS": ("us_street", "unit", "po_box", "intl_street", "city"),
    "ZIP": ("zip5", "zip9", "postcode"),
}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str
    style: str = ""


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[Span, ...]
    genre: str  # "note" | "message" | "form"


# --- hard negatives (never labelled) -------------------------------------------------------------

DRUGS = (
    "metformin",
    "Lipitor",
    "Humalog",
    "lisinopril",
    "atorvastatin",
    "Eliquis",
    "Ozempic",
    "levothyroxine",
    "amlodipine",
    "Xarelto",
    "Keppra",
    "gabapentin",
    "Zoloft",
    "sertraline",
    "Januvia",
    "Lantus",
    "Tylenol",
    "ibuprofen",
    "prednisone",
    "amoxicillin",
    "Augmentin",
    "Coumadin",
    "warfarin",
    "Plavix",
    "Synthroid",
    "Lasix",
    "furosemide",
    "Norco",
    "oxycodone",
    "Narcan",
    "Trulicity",
    "Jardiance",
    "Farxiga",
    "Entresto",
    "Humira",
    "Keytruda",
    "Dupixent",
    "Benadryl",
    "Zofran",
    "Protonix",
    "omeprazole",
    "Flomax",
    "Seroquel",
    "Wellbutrin",
    "Lexapro",
    "Ativan",
    "Ambien",
    "Aricept",
    "Sinemet",
    "Brilinta",
    "Spiriva",
    "Symbicort",
    "Mounjaro",
    "Paxlovid",
)
DOSES = ("5 mg", "10 mg", "20 mg", "40 mg", "500 mg", "1000 mg", "0.5 mg", "75 mcg", "10 units")
FREQS = ("daily", "BID", "TID", "qHS", "q6h PRN", "weekly", "with meals", "PRN")
EPONYMS = (
    "Parkinson's disease",
    "Hodgkin lymphoma",
    "Crohn's disease",
    "Graves' disease",
    "Bell's palsy",
    "Alzheimer's dementia",
    "Hashimoto's thyroiditis",
    "Cushing's syndrome",
    "Addison's disease",
    "Down syndrome",
    "Guillain-Barre syndrome",
    "Kaposi sarcoma",
    "Sjogren's syndrome",
    "Raynaud's phenomenon",
    "Barrett's esophagus",
    "Wilms tumor",
    "Huntington's disease",
    "Meniere's disease",
    "Dupuytren's contracture",
    "Stevens-Johnson syndrome",
    "Wolff-Parkinson-White",
    "Osgood-Schlatter disease",
    "Tourette syndrome",
    "Lou Gehrig's disease",
    "Paget's disease",
    "Marfan syndrome",
    "Hirschsprung disease",
    "Kawasaki disease",
)
SIGNS = (
    "Babinski sign",
    "Murphy's sign",
    "Homans sign",
    "Apgar 9",
    "Glasgow Coma Scale 15",
    "Mallampati II",
    "Tanner stage 3",
    "Gleason 7",
    "Kernig sign negative",
    "Romberg positive",
    "Epley maneuver done",
    "Foley removed",
    "Cheyne-Stokes respirations",
    "Holter monitor placed",
)
FACILITIES = (
    "the ED",
    "cardiology clinic",
    "the MICU",
    "St. Luke's",
    "Mercy General",
    "Riverside Family Medicine",
    "the infusion center",
    "Mayo Clinic",
    "Kaiser Permanente",
    "PT/OT",
    "St. Mary's Hospital",
    "Good Samaritan",
    "Johns Hopkins",
    "Mass General",
    "Sloan Kettering",
    "the wound care center",
    "4 North",
    "urgent care",
)
RELDATES = (
    "yesterday",
    "today",
    "tomorrow",
    "last Tuesday",
    "this morning",
    "next week",
    "in 3 weeks",
    "2 days ago",
    "on Monday",
    "Friday",
    "last night",
    "next month",
    "in 6 months",
    "over the weekend",
    "earlier this week",
    "last spring",
    "a week ago",
    "on Thursday",
)
CODES = (
    "E11.9",
    "I10",
    "J44.1",
    "Z79.4",
    "N18.3",
    "F32.1",
    "M54.5",
    "I48.91",
    "E78.5",
    "K21.9",
    "G20",
    "C81.90",
    "K50.90",
    "E05.00",
    "G51.0",
    "CPT 99213",
    "CPT 99214",
    "99215",
    "93000",
    "80053",
    "36415",
    "71046",
    "G0439",
    "J1100",
)
ROOMS = ("Rm 412", "room 3B", "bed 12", "bay 4", "OR 6", "Exam 3", "PACU bay 2", "room 718")
RELATIONS = ("wife", "husband", "daughter", "son", "mother", "father", "sister", "friend")
PAYERS = ("Aetna", "Cigna", "Humana", "BCBS", "UnitedHealthcare", "Medicare", "Medicaid", "Kaiser")
CARS = ("Honda Civic", "Ford F-150", "Toyota Camry", "Chevy Malibu", "Subaru Outback", "Tesla")
LANGS = ("Spanish", "Vietnamese", "Polish", "Portuguese", "Yoruba", "Haitian Creole", "Tagalog")
DEVICE_TYPES = ("dual-chamber pacemaker", "ICD", "insulin pump", "CGM", "cochlear implant")
STATES = ("CA", "NY", "TX", "FL", "IL", "OH", "PA", "MA", "WA", "GA", "MN", "AZ", "OR", "NC")
CITIES = (
    "Springfield",
    "Columbus",
    "Dayton",
    "Fresno",
    "Tulsa",
    "Boise",
    "Albany",
    "Toledo",
    "Durham",
    "Spokane",
    "Eugene",
    "Macon",
    "Duluth",
    "Yonkers",
    "Lowell",
    "Chandler",
    "Gainesville",
    "Peoria",
    "Brockton",
    "Oxnard",
)
IT_CITIES = ("Torino", "Bologna", "Bari", "Pisa", "Verona", "Lecce", "Parma", "Udine", "Rimini")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WORDS_1_19 = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty"}
TENS[9] = "ninety"


def _number_words(n: int) -> str:
    if n >= 100:
        rest = n - 100
        return "one hundred" + (f" and {_number_words(rest)}" if rest else "")
    if n < 20:
        return WORDS_1_19[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] + (f"-{WORDS_1_19[ones]}" if ones else "")


# --- names -------------------------------------------------------------------------------------

INTL_LOCALES = (
    "es_ES",
    "es_MX",
    "de_DE",
    "fr_FR",
    "it_IT",
    "pl_PL",
    "pt_BR",
    "nl_NL",
    "tr_TR",
    "en_IN",
    "ja_JP",
    "zh_CN",
    "vi_VN",
    "ig_NG",
    "yo_NG",
    "ha_NG",
    "sw",
    "tw_GH",
    "id_ID",
    "ro_RO",
    "ga_IE",
    "hu_HU",
    "zu_ZA",
    "fi_FI",
    "sv_SE",
    "cs_CZ",
)
ONSETS = [
    "b",
    "br",
    "c",
    "ch",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "j",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "qu",
    "r",
    "s",
    "sh",
    "st",
    "t",
    "tr",
    "th",
    "v",
    "w",
    "z",
    "zh",
    "",
    "",
    "",
]
NUCLEI = ["a", "e", "i", "o", "u", "a", "e", "o", "ae", "ai", "ei", "ou", "y", "ia", "eo"]
CODAS = ["", "", "", "n", "r", "l", "s", "th", "m", "x", "nd", "rk", "v"]
GIVEN_ENDINGS = ["", "", "a", "o", "el", "is", "an", "ine", "ette", "iel"]
SURNAME_ENDINGS = [
    "",
    "",
    "bury",
    "wick",
    "stein",
    "ano",
    "ez",
    "ov",
    "ski",
    "sson",
    "mann",
    "ford",
    "ley",
] + ["ton", "oglu", "ara", "ini", "ek", "by", "ova", "enko", "idis", "wala", "sen", "quist"]
# Invented names must not collide with words the corpus uses as hard negatives.
_NEGATIVE_WORDS = {
    w.lower() for phrase in DRUGS + EPONYMS + SIGNS for w in re.findall(r"\w+", phrase)
}


def _syllables(rng: random.Random, count: int) -> str:
    return "".join(
        rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS) for _ in range(count)
    )


def _invented(rng: random.Random, surname: bool, avoid: set[str] = _NEGATIVE_WORDS) -> str:
    while True:
        if surname:
            word = _syllables(rng, rng.choice((1, 2, 2))) + rng.choice(SURNAME_ENDINGS)
        else:
            word = _syllables(rng, rng.choice((1, 2, 2, 3))) + rng.choice(GIVEN_ENDINGS)
        if 3 <= len(word) <= 11 and word not in avoid and word[0].isalpha():
            return word.capitalize()


VI_GIVEN_FALLBACK = ("Minh", "Lan", "Thu", "Quang", "Huong", "Tuan", "Ngoc Anh", "Bao", "Linh")


@dataclass(frozen=True)
class _Name:
    first: str
    last: str
    origin: str  # "" (en_US), "intl" or "invented"


# --- the pieces a template is filled with -------------------------------------------------------

Piece = list[tuple[str, str, str]]  # (text, kind or "", style)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class _Maker:
    """Value generators for one generate() call: labelled kinds and hard negatives."""

    def __init__(self, rng: random.Random, seed: int, avoid: set[str] = _NEGATIVE_WORDS) -> None:
        self.rng = rng
        self.seed = seed
        self.avoid = avoid  # words an invented name must not be
        self._fakers: dict = {}

    def faker(self, locale: str):
        if locale not in self._fakers:
            from faker import Faker

            if locale not in _FAKERS:
                _FAKERS[locale] = Faker(locale)
            f = _FAKERS[locale]
            f.seed_instance(self.seed * 1_000_003 + zlib.crc32(locale.encode()))
            self._fakers[locale] = f
        return self._fakers[locale]

    def pick(self, weights: dict[str, float]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def letters(self, n: int, alphabet: str = string.ascii_uppercase) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    # PERSON ------------------------------------------------------------------------------------

    def name(self) -> _Name:
        r = self.rng.random()
        if r < 0.33:
            first, last = (
                _invented(self.rng, False, self.avoid),
                _invented(self.rng, True, self.avoid),
            )
            return _Name(first, last, "invented")
        if r < 0.66:
            f = self.faker("en_US")
            return _Name(f.first_name(), f.last_name(), "")
        loc = self.rng.choice(INTL_LOCALES)
        f = self.faker(loc)
        if loc in ("ja_JP", "zh_CN"):
            return _Name(f.first_romanized_name(), f.last_romanized_name(), "intl")
        if loc == "vi_VN":
            given = self.rng.choice((f.first_name_female, f.first_name_male))()
            if given in ("John", "Jane"):
                given = self.rng.choice(VI_GIVEN_FALLBACK)
            return _Name(given, f.last_name(), "intl")
        return _Name(f.first_name(), f.last_name(), "intl")

    def person(self, genre: str, variant: str = "") -> Piece:
        parts = variant.split("+") if variant else []
        forms = [p for p in parts if p in PERSON_FORMS or p == "clinician"]
        form = forms[0] if forms else ""
        if not form:
            form = self.pick(
                {
                    "note": {
                        "full": 24,
                        "middle_initial": 6,
                        "last_first": 8,
                        "initial_last": 10,
                        "first_only": 12,
                        "titled": 25,
                        "initials": 8,
                    },
                    "message": {
                        "full": 30,
                        "middle_initial": 2,
                        "last_first": 3,
                        "initial_last": 4,
                        "first_only": 32,
                        "titled": 25,
                        "initials": 4,
                    },
                    "form": {
                        "full": 34,
                        "middle_initial": 14,
                        "last_first": 38,
                        "initial_last": 6,
                        "first_only": 1,
                        "titled": 4,
                        "initials": 3,
                    },
                }[genre]
            )
        casing = next((p for p in parts if p in PERSON_CASINGS), "")
        if not casing:
            r = self.rng.random()
            up, low = {"note": (0.06, 0.04), "message": (0.0, 0.55), "form": (0.35, 0.02)}[genre]
            casing = "upper" if r < up else "lower" if r < up + low else ""
        n = self.name()
        first, last = n.first, n.last
        before, after = "", ""
        if form == "clinician":
            if self.rng.random() < 0.6:
                form = "titled"
            else:
                form = self.rng.choice(("full", "last_first", "initial_last", "middle_initial"))
                after = self.rng.choice((", MD", ", MD", " MD", ", DO", ", NP", ", PA-C", ", RN"))
        if form == "full":
            text = f"{first} {last}"
        elif form == "middle_initial":
            text = f"{first} {self.letters(1)}. {last}"
        elif form == "last_first":
            text = f"{last}, {first}" if self.rng.random() < 0.8 else f"{last},{first}"
        elif form == "initial_last":
            text = f"{first[0]}. {last}" if self.rng.random() < 0.8 else f"{first[0]} {last}"
        elif form == "first_only":
            text = first.split()[0]
        elif form == "titled":
            title = self.rng.choice(
                ("Dr. ", "Dr. ", "Dr ", "Mr. ", "Mrs. ", "Ms. ", "Miss ", "Prof. ", "Mr ", "Ms ")
            )
            before = title
            text = last if self.rng.random() < 0.75 else f"{first} {last}"
        else:  # initials
            letters = [w[0] for w in first.split()[:1]] + [
                w[0] for w in last.split() if w[:1].isupper()
            ][-1:]
            if len(letters) < 2:
                letters.append(last[0].upper())
            sep = self.rng.choice((".", ".", ""))
            text = sep.join(letters) + sep
        if casing == "upper":
            text, before, after = text.upper(), before.upper(), after.upper()
        elif casing == "lower":
            text, before, after = text.lower(), before.lower(), after.lower()
        style = "+".join(p for p in (form, casing, n.origin) if p)
        return [(before, "", ""), (text, "PERSON", style), (after, "", "")]

    # DATE --------------------------------------------------------------------------------------

    def date(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        year = rng.randint(1921, 2010) if rng.random() < 0.5 else rng.randint(2015, 2026)
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        full = (
            "mdy_slash",
            "mdy_short",
            "iso",
            "dmy_dot",
            "dmy_slash",
            "month_d_y",
            "d_month_y",
            "compact",
        )
        style = variant if variant in STYLES["DATE"] else ""
        if not style:
            options = full if variant == "full" else STYLES["DATE"]
            style = rng.choice(options)
        mon = MONTHS[month - 1]
        abbr = mon[:3]
        z = rng.random() < 0.6  # zero padded
        mm, dd = (f"{month:02d}", f"{day:02d}") if z else (str(month), str(day))
        if style == "mdy_slash":
            text = f"{mm}/{dd}/{year}" if rng.random() < 0.8 else f"{mm}-{dd}-{year}"
        elif style == "mdy_short":
            text = f"{month}/{day}/{year % 100:02d}"
        elif style == "md":
            text = f"{month}/{day}"
        elif style == "iso":
            text = f"{year}-{month:02d}-{day:02d}"
        elif style == "dmy_dot":
            text = f"{day:02d}.{month:02d}.{year}"
        elif style == "dmy_slash":
            day = rng.randint(13, 28)  # unambiguous as day first
            text = f"{day}/{month:02d}/{year}"
        elif style == "month_d_y":
            text = rng.choice(
                (f"{mon} {day}, {year}", f"{abbr} {day}, {year}", f"{abbr}. {day} {year}")
            )
        elif style == "d_month_y":
            text = rng.choice(
                (f"{day} {mon} {year}", f"{day:02d}-{abbr.upper()}-{year}", f"{day}{abbr}{year}")
            )
        elif style == "month_d":
            text = rng.choice((f"{mon} {day}", f"{abbr} {day}"))
        elif style == "ordinal":
            suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
            text = rng.choice((f"{mon} {day}{suffix}", f"{day}{suffix} of {mon}"))
        elif style == "month_y":
            text = rng.choice((f"{mon} {year}", f"{abbr} {year}", f"{month:02d}/{year}"))
        else:  # compact
            text = (
                f"{month:02d}{day:02d}{year}"
                if rng.random() < 0.6
                else f"{year}{month:02d}{day:02d}"
            )
        if genre == "message" and rng.random() < 0.6:
            text = text.lower()
        return [(text, "DATE", style)]

    # AGE (over 89) -----------------------------------------------------------------------------

    def _age_phrase(self, n: int, variant: str, kind: str) -> Piece:
        words = kind == "AGE" and self.rng.random() < 0.12
        num = _number_words(n) if words else str(n)
        style = "words" if words else "digits"
        form = variant or self.rng.choice(("adj", "np"))
        if form == "num":
            parts = [("", ""), (num, kind)]
        elif form == "adj":
            after = self.rng.choice(
                ("-year-old", " yo", " y/o", " y.o.", "yo", " year old", "-yr-old", " YO")
            )
            parts = [(num, kind), (after, "")]
        else:
            before = self.rng.choice(("age ", "aged ", "age "))
            if self.rng.random() < 0.3:
                parts = [(num, kind), (" years old", "")]
            else:
                parts = [(before, ""), (num, kind)]
        return [(t, k, style if k else "") for t, k in parts]

    def age(self, genre: str, variant: str = "") -> Piece:
        n = self.rng.choice((90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104))
        return self._age_phrase(n, variant, "AGE")

    def young_age(self, variant: str = "") -> str:
        piece = self._age_phrase(self.rng.randint(18, 89), variant, "")
        return "".join(t for t, _, _ in piece)

    # contact -----------------------------------------------------------------------------------

    def phone(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["PHONE"] else rng.choice(STYLES["PHONE"])
        a = f"{rng.randint(2, 9)}{self.digits(2)}"
        e = f"{rng.randint(2, 9)}{self.digits(2)}"
        line = self.digits(4)
        if style == "us_paren":
            text = f"({a}) {e}-{line}" if rng.random() < 0.85 else f"({a}){e}-{line}"
        elif style == "us_dash":
            text = f"{a}-{e}-{line}"
        elif style == "us_dot":
            text = f"{a}.{e}.{line}"
        elif style == "us_plain":
            text = f"{a}{e}{line}"
        elif style == "us_plus1":
            text = rng.choice((f"+1 {a} {e} {line}", f"+1-{a}-{e}-{line}", f"1-{a}-{e}-{line}"))
        else:
            text = rng.choice(
                (
                    f"+44 20 {self.digits(4)} {self.digits(4)}",
                    f"+44 7{self.digits(3)} {self.digits(6)}",
                    f"+49 30 {self.digits(8)}",
                    f"+33 6 {self.digits(2)} {self.digits(2)} {self.digits(2)} {self.digits(2)}",
                    f"+91 9{self.digits(4)} {self.digits(5)}",
                    f"+52 55 {self.digits(4)} {self.digits(4)}",
                    f"+234 80{self.digits(1)} {self.digits(3)} {self.digits(4)}",
                    f"+81 90-{self.digits(4)}-{self.digits(4)}",
                    f"+55 11 9{self.digits(4)}-{self.digits(4)}",
                    f"+63 917 {self.digits(3)} {self.digits(4)}",
                    f"0171 {self.digits(7)}",
                    f"07700 {self.digits(6)}",
                )
            )
        return [(text, "PHONE", style)]

    def handle(self, sep: str = ".") -> str:
        n = self.name()
        first = re.sub(r"[^a-z]", "", _ascii(n.first).lower()) or "pat"
        last = re.sub(r"[^a-z]", "", _ascii(n.last).lower()) or "doe"
        return self.rng.choice(
            (
                f"{first}{sep}{last}",
                f"{first[0]}{last}",
                f"{first}{last}{self.rng.randint(1, 99)}",
                f"{first}_{last[0]}",
                f"{last}{first[0]}{self.rng.randint(1950, 2005)}",
                f"{first}{sep}{last}{self.digits(2)}",
            )
        )

    def email(self, genre: str, variant: str = "") -> Piece:
        style = variant if variant in STYLES["EMAIL"] else self.rng.choice(STYLES["EMAIL"])
        if style == "personal":
            domain = self.rng.choice(
                (
                    "gmail.com",
                    "yahoo.com",
                    "hotmail.com",
                    "outlook.com",
                    "icloud.com",
                    "aol.com",
                    "proton.me",
                    "comcast.net",
                    "web.de",
                    "orange.fr",
                    "libero.it",
                    "uol.com.br",
                    "wp.pl",
                    "att.net",
                )
            )
        else:
            domain = self.rng.choice(
                (
                    "stmarys-health.org",
                    "acmelogistics.com",
                    "cityofdayton.gov",
                    "uw.edu",
                    "northwell.edu",
                    "brightline-dental.com",
                    "mail.mil",
                    "k12.oh.us",
                )
            )
        text = f"{self.handle()}@{domain}"
        if genre == "form" and self.rng.random() < 0.2:
            text = text.upper()
        return [(text, "EMAIL", style)]

    # numbers -----------------------------------------------------------------------------------

    def ssn(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["SSN"] else rng.choice(STYLES["SSN"])
        area = rng.choice([i for i in range(1, 900) if i != 666])
        a, g, s = f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"
        if style == "dashed":
            text = f"{a}-{g}-{s}"
        elif style == "spaced":
            text = f"{a} {g} {s}"
        elif style == "plain":
            text = f"{a}{g}{s}"
        elif style == "test":
            text = rng.choice(("123-45-6789", "078-05-1120", "219-09-9999", "457-55-5462"))
            if rng.random() < 0.3:
                text = text.replace("-", "")
        else:
            text = rng.choice(
                (f"000-{g}-{s}", f"666-{g}-{s}", f"9{self.digits(2)}-{g}-{s}", f"{a}-00-{s}")
            )
        return [(text, "SSN", style)]

    def mrn(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["MRN"] else rng.choice(STYLES["MRN"])
        if style == "digits":
            text = rng.choice(
                (self.digits(7), "00" + self.digits(6), self.digits(8), self.digits(10))
            )
        elif style == "prefixed":
            text = rng.choice(
                (
                    "E" + self.digits(7),
                    "MR" + self.digits(7),
                    "A00" + self.digits(6),
                    "HSP-" + self.digits(7),
                    "M" + self.digits(9),
                    "RX" + self.digits(6),
                )
            )
        else:
            text = rng.choice(
                (
                    f"{self.digits(2)}-{self.digits(2)}-{self.digits(2)}",
                    f"{self.digits(3)}-{self.digits(3)}-{self.digits(3)}",
                    f"{rng.randint(2015, 2026)}-{self.digits(7)}",
                    f"{self.digits(4)}-{self.digits(4)}",
                )
            )
        return [(text, "MRN", style)]

    def mbi(self) -> str:
        alpha = "ACDEFGHJKMNPQRTUVWXY"  # no S, L, O, I, B, Z
        an = alpha + string.digits
        c = [
            self.rng.choice("123456789"),
            self.rng.choice(alpha),
            self.rng.choice(an),
            self.rng.choice(string.digits),
            self.rng.choice(alpha),
            self.rng.choice(an),
            self.rng.choice(string.digits),
            self.rng.choice(alpha),
            self.rng.choice(alpha),
            self.rng.choice(string.digits),
            self.rng.choice(string.digits),
        ]
        raw = "".join(c)
        return f"{raw[:4]}-{raw[4:7]}-{raw[7:]}" if self.rng.random() < 0.6 else raw

    def health_plan(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["HEALTH_PLAN"] else rng.choice(STYLES["HEALTH_PLAN"])
        if style == "member":
            text = rng.choice(
                (
                    self.letters(3) + self.digits(9),
                    "W" + self.digits(9),
                    "H" + self.digits(8),
                    self.digits(9) + "01",
                    f"{self.letters(3)} {self.digits(7)} {self.digits(2)}",
                    "MEM-" + self.digits(10),
                    "U" + self.digits(8) + "01",
                )
            )
        elif style == "group":
            text = rng.choice(
                (
                    "GRP-" + self.digits(6),
                    self.digits(5),
                    f"{self.digits(7)}-{self.digits(3)}",
                    "G" + self.digits(5),
                    self.digits(6) + "M" + self.digits(3),
                )
            )
        elif style == "medicaid":
            text = rng.choice(
                (
                    self.letters(2) + self.digits(5) + self.letters(1),
                    self.digits(8) + self.letters(1),
                    self.digits(10),
                    "MCD" + self.digits(9),
                )
            )
        else:
            text = self.mbi()
        return [(text, "HEALTH_PLAN", style)]

    def luhn_digit(self, payload: str) -> str:
        total = 0
        for i, ch in enumerate(reversed(payload)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return str((10 - total % 10) % 10)

    def account(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["ACCOUNT"] else rng.choice(STYLES["ACCOUNT"])
        if style == "account":
            text = rng.choice(
                (
                    self.digits(11),
                    f"{self.digits(4)}-{self.digits(4)}-{self.digits(2)}",
                    "ACCT-" + self.digits(8),
                    self.digits(8),
                )
            )
        elif style == "billing":
            text = rng.choice(
                (
                    f"B-{rng.randint(2018, 2026)}-{self.digits(5)}",
                    "HB" + self.digits(7),
                    "GUAR-" + self.digits(8),
                    "PB" + self.digits(9),
                )
            )
        elif style == "claim":
            text = rng.choice(
                (
                    f"{rng.randint(2018, 2026)}{self.digits(9)}",
                    f"CLM-{self.digits(5)}-{self.digits(2)}",
                    "C" + self.digits(10),
                    f"{self.digits(2)}-{self.digits(2)}-{self.digits(6)}",
                )
            )
        else:
            head = rng.choice(("4", "51", "55", "6011"))
            payload = head + self.digits(15 - len(head))
            num = payload + self.luhn_digit(payload)
            sep = rng.choice((" ", "-", ""))
            text = sep.join(num[i : i + 4] for i in range(0, 16, 4))
        return [(text, "ACCOUNT", style)]

    def license(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["LICENSE"] else rng.choice(STYLES["LICENSE"])
        if style == "drivers":
            text = rng.choice(
                (
                    self.letters(1) + self.digits(7),
                    f"{self.digits(3)} {self.digits(3)} {self.digits(3)}",
                    f"{self.letters(1)}{self.digits(3)}-{self.digits(3)}-{self.digits(2)}-"
                    f"{self.digits(3)}-{self.digits(1)}",
                    self.digits(8),
                    f"{self.letters(1)}{self.digits(3)}-{self.digits(4)}-{self.digits(4)}",
                    "S" + self.digits(8),
                    f"{self.digits(2)} {self.digits(3)} {self.digits(3)}",
                )
            )
        elif style == "dea":
            d = [rng.randint(0, 9) for _ in range(6)]
            check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
            text = rng.choice("ABFGMPRX") + self.letters(1) + "".join(map(str, d)) + str(check)
        elif style == "npi":
            payload = rng.choice("12") + self.digits(8)
            text = payload + self.luhn_digit("80840" + payload)
        else:
            text = rng.choice(
                (
                    rng.choice("AGC") + self.digits(5),
                    "MD" + self.digits(8),
                    "ME" + self.digits(6),
                    self.digits(6),
                    "RN" + self.digits(7),
                    f"{rng.choice(('MD', 'DO', 'PA'))}-{self.digits(5)}",
                    "0101" + self.digits(6),
                )
            )
        return [(text, "LICENSE", style)]

    def vin(self) -> str:
        chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
        values = dict(zip("ABCDEFGH", range(1, 9), strict=True))
        values |= dict(zip("JKLMNPR", (1, 2, 3, 4, 5, 7, 9), strict=True))
        values |= dict(zip("STUVWXYZ", range(2, 10), strict=True))
        values |= {str(i): i for i in range(10)}
        weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
        wmi = self.rng.choice(
            ("1HG", "1FT", "2T1", "3VW", "JHM", "WBA", "5YJ", "KMH", "1G1", "WDD")
        )
        year = self.rng.choice("ABCDEFGHJKLMNPRSTVWXY123456789")
        body = list(
            wmi
            + "".join(self.rng.choice(chars) for _ in range(5))
            + "0"
            + year
            + self.rng.choice(chars)
            + self.digits(6)
        )
        check = sum(values[c] * w for c, w in zip(body, weights, strict=True)) % 11
        body[8] = "X" if check == 10 else str(check)
        return "".join(body)

    def vehicle(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["VEHICLE"] else rng.choice(STYLES["VEHICLE"])
        if style == "vin":
            text = self.vin()
        else:
            text = rng.choice(
                (
                    f"{rng.randint(1, 9)}{self.letters(3)}{self.digits(3)}",
                    f"{self.letters(3)}-{self.digits(4)}",
                    f"{self.letters(3)} {self.digits(4)}",
                    f"{self.letters(2)} {self.digits(4)}",
                    f"{self.letters(1)}-{self.letters(2)} {self.digits(4)}",
                    f"{self.letters(2)}-{self.digits(3)}-{self.letters(2)}",
                    f"{self.digits(3)} {self.letters(3)}",
                )
            )
        if genre == "message" and rng.random() < 0.4:
            text = text.lower()
        return [(text, "VEHICLE", style)]

    def gtin(self) -> str:
        payload = "00" + self.digits(11)  # 13 digits, then the mod-10 check
        total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
        return payload + str((10 - total % 10) % 10)

    def device(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["DEVICE"] else rng.choice(STYLES["DEVICE"])
        yymmdd = f"{rng.randint(24, 30)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        lot = self.letters(1) + self.digits(3) + self.letters(1) + self.digits(1)
        if style == "serial":
            text = rng.choice(
                (
                    "PJN" + self.digits(6) + "H",
                    "RNK" + self.digits(6) + "S",
                    "NG" + self.digits(7) + "H",
                    self.digits(1)
                    + self.letters(1)
                    + self.digits(2)
                    + self.letters(1)
                    + self.digits(4),
                    f"{self.letters(1)}{self.digits(1)}{self.letters(1)}{self.digits(1)}-"
                    f"{self.digits(2)}{self.letters(1)}{self.digits(1)}",
                    "SN" + self.digits(9),
                    self.letters(3) + self.digits(7),
                )
            )
        elif style == "udi_gs1":
            serial = self.digits(rng.randint(4, 8))
            if rng.random() < 0.7:
                text = f"(01){self.gtin()}(17){yymmdd}(10){lot}"
                text += f"(21){serial}" if rng.random() < 0.6 else ""
            else:
                text = f"01{self.gtin()}17{yymmdd}10{lot}"
        else:
            text = (
                f"+{self.letters(1)}{self.letters(3, string.ascii_uppercase + string.digits)}"
                f"{self.letters(6, string.ascii_uppercase + string.digits)}{self.digits(1)}"
                f"/$$3{yymmdd}{lot}{self.letters(1)}"
            )
        return [(text, "DEVICE", style)]

    def url(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["URL"] else rng.choice(STYLES["URL"])
        h = self.handle(rng.choice((".", "-", "")))
        token = self.letters(rng.randint(6, 11), string.ascii_letters + string.digits)
        path = rng.choice(
            (
                f"facebook.com/{h}",
                f"instagram.com/{h}",
                f"linkedin.com/in/{h}",
                f"x.com/{h}",
                f"tiktok.com/@{h}",
                f"youtube.com/@{h}",
                f"gofundme.com/f/help-{h.replace('.', '-')}-recover",
                f"caringbridge.org/visit/{h.replace('.', '')}",
                h.replace(".", "").replace("_", "")
                + rng.choice(("photo.com", "art.com", "blog.net", "tax.com")),
                f"mychart.riversidehealth.org/MyChart/app/letters?pid={self.digits(7)}",
                f"portal.northbay-clinic.com/patient/{self.digits(8)}",
                f"photos.app.goo.gl/{token}",
                f"dropbox.com/s/{token.lower()}/rash.jpg",
                f"imgur.com/a/{token}",
                f"bit.ly/{token[:7]}",
            )
        )
        if style == "scheme":
            text = rng.choice(("https://", "https://www.", "http://")) + path
        elif style == "www":
            text = "www." + path
        else:
            text = path
        return [(text, "URL", style)]

    def ip(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["IP"] else rng.choice(STYLES["IP"])
        if style == "v4":
            first = rng.choice((rng.randint(1, 223), 10, 192, 172))
            text = f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        else:
            groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
            groups[0] = rng.choice(("2001", "2600", "2a02", "fe80", "2607", "2804"))
            r = rng.random()
            if r < 0.3:
                text = ":".join(g.zfill(4) for g in groups)
            elif r < 0.7:
                text = ":".join(groups[:2]) + "::" + ":".join(groups[5:])
            else:
                text = ":".join(groups)
            if rng.random() < 0.2:
                text = text.upper()
        return [(text, "IP", style)]

    # places ------------------------------------------------------------------------------------

    def street(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return self.faker("en_US").street_address().split(" Apt.")[0].split(" Suite")[0]
        n = str(rng.choice((rng.randint(1, 99), rng.randint(100, 9999), rng.randint(10000, 99999))))
        direction = rng.choice(("", "", "", "N ", "S ", "E ", "W ", "NE ", "North "))
        name = rng.choice(
            (
                rng.choice(("Oak", "Maple", "Cedar", "Elm", "Pine", "Birch", "Willow", "Walnut")),
                rng.choice(("Main", "Park", "Lake", "Hill", "Sunset", "Highland", "Church")),
                rng.choice(("Washington", "Lincoln", "Jefferson", "Mill", "River", "Bay")),
                rng.choice(("3rd", "14th", "42nd", "1st", "2nd", "101st", "7th")),
                self.faker("en_US").last_name(),
                _invented(rng, True, self.avoid),
            )
        )
        suffix = rng.choice(
            ("Street", "St", "St.", "Ave", "Avenue", "Rd", "Road", "Blvd", "Lane", "Ln", "Dr")
            + ("Drive", "Ct", "Way", "Pl", "Terrace", "Circle", "Hwy", "Pkwy", "Trail")
        )
        if rng.random() < 0.06:
            return rng.choice((f"County Road {rng.randint(1, 99)}", f"Route {rng.randint(1, 99)}"))
        return f"{n} {direction}{name} {suffix}"

    def address(self, genre: str, variant: str = "") -> Piece:
        rng = self.rng
        style = variant if variant in STYLES["ADDRESS"] else ""
        if not style:
            style = rng.choice(("us_street", "us_street", "unit", "po_box", "intl_street"))
        if style == "us_street":
            text = self.street()
        elif style == "unit":
            unit = rng.choice(
                (
                    f"Apt {rng.randint(1, 30)}{rng.choice('ABCD')}",
                    f"Apt. {rng.randint(1, 999)}",
                    f"Unit {rng.randint(1, 40)}",
                    f"#{rng.randint(100, 999)}",
                    f"Ste {rng.randint(100, 900)}",
                    f"Fl {rng.randint(2, 9)}",
                )
            )
            text = f"{unit}, {self.street()}" if rng.random() < 0.3 else f"{self.street()}, {unit}"
        elif style == "po_box":
            text = rng.choice(
                (
                    f"PO Box {rng.randint(1, 9999)}",
                    f"P.O. Box {rng.randint(1, 999)}",
                    f"Post Office Box {rng.randint(1, 999)}",
                    f"RR {rng.randint(1, 9)} Box {rng.randint(1, 199)}",
                    f"HC {rng.randint(1, 80)} Box {rng.randint(1, 99)}{rng.choice(('', 'A'))}",
                    f"PMB {rng.randint(100, 999)}",
                )
            )
        elif style == "intl_street":
            if rng.random() < 0.25:
                text = rng.choice(
                    (
                        f"{rng.randint(1, 150)} Rue de {rng.choice(('Rivoli', 'la Paix', 'Lyon'))}",
                        f"Calle Mayor {rng.randint(1, 90)}, {rng.randint(1, 6)}º B",
                        f"Via Roma {rng.randint(1, 200)}",
                        f"ul. Kwiatowa {rng.randint(1, 50)}/{rng.randint(1, 30)}",
                        f"Hauptstraße {rng.randint(1, 200)}",
                        f"Rua das Flores, {rng.randint(1, 999)}",
                    )
                )
            else:
                loc = rng.choice(("de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "pt_BR", "nl_NL"))
                text = " ".join(self.faker(loc).street_address().split())
        else:
            text = self.city()
        if genre == "message" and rng.random() < 0.5:
            text = text.lower()
        return [(text, "ADDRESS", style)]

    def city(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice(CITIES)
        return self.faker("en_US").city()

    def zip(self, genre: str, variant: str = "") -> Piece:
        style = variant if variant in ("zip5", "zip9") else self.rng.choice(("zip5", "zip9"))
        text = self.digits(5) if style == "zip5" else f"{self.digits(5)}-{self.digits(4)}"
        return [(text, "ZIP", style)]

    def postal(self, genre: str, variant: str = "") -> Piece:
        """A full postal line: street (+ unit), city, state (unlabelled), ZIP; or a foreign one."""
        rng = self.rng
        low = genre == "message" and rng.random() < 0.5

        def lo(s: str) -> str:
            return s.lower() if low else s

        if rng.random() < 0.8:
            street = self.address(genre, rng.choice(("us_street", "us_street", "unit", "po_box")))
            s_text, _, s_style = street[0]
            return [
                (lo(s_text), "ADDRESS", s_style),
                (", ", "", ""),
                (lo(self.city()), "ADDRESS", "city"),
                (rng.choice((", ", " ", ", ")) + rng.choice(STATES) + " ", "", ""),
                *self.zip(genre),
            ]
        loc = rng.choice(("de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR"))
        f = self.faker(loc)
        street = " ".join(f.street_address().split())
        code = f.postcode()
        # Faker's it_IT city() is not deterministic across processes (it draws from a set).
        city = rng.choice(IT_CITIES) if loc == "it_IT" else f.city()
        if loc == "nl_NL" and " " not in code:
            code = f"{code[:4]} {code[4:]}"
        return [
            (lo(street), "ADDRESS", "intl_street"),
            (", ", "", ""),
            (code, "ZIP", "postcode"),
            (" ", "", ""),
            (lo(city), "ADDRESS", "city"),
        ]

    # hard negatives ----------------------------------------------------------------------------

    def negative(self, name: str, variant: str) -> str:
        rng = self.rng
        if name == "drug":
            drug = rng.choice(DRUGS)
            text = drug if variant == "name" else f"{drug} {rng.choice(DOSES)} {rng.choice(FREQS)}"
        elif name == "eponym":
            text = rng.choice(EPONYMS)
        elif name == "sign":
            text = rng.choice(SIGNS)
        elif name == "lab":
            text = rng.choice(
                (
                    f"HbA1c {rng.uniform(5, 11):.1f}%",
                    f"BP {rng.randint(95, 185)}/{rng.randint(55, 110)}",
                    f"INR {rng.uniform(0.9, 4):.1f}",
                    f"K {rng.uniform(3, 6):.1f}",
                    f"Cr {rng.uniform(0.5, 3):.2f}",
                    f"eGFR {rng.randint(15, 110)}",
                    f"SpO2 {rng.randint(86, 100)}% on RA",
                    f"HR {rng.randint(48, 140)}",
                    f"T {rng.uniform(36, 39.5):.1f} C",
                    f"BMI {rng.uniform(17, 45):.1f}",
                    f"WBC {rng.uniform(2, 20):.1f}",
                    f"Hgb {rng.uniform(7, 17):.1f}",
                    f"plt {rng.randint(40, 450)}",
                    f"LDL {rng.randint(50, 220)}",
                    f"TSH {rng.uniform(0.1, 9):.2f}",
                    f"glucose {rng.randint(60, 400)} mg/dL",
                    f"pain {rng.randint(0, 10)}/10",
                    f"EF {rng.randint(20, 65)}%",
                    f"Wt {rng.randint(40, 150)} kg",
                    f"PSA {rng.uniform(0.2, 12):.1f}",
                    f"RR {rng.randint(10, 30)}",
                    "troponin <0.01",
                    f"takes {rng.choice(('2/3', '1/2', '3/4'))} of the dose",
                    f"{rng.choice(('1/2', '1/4'))} tab",
                )
            )
        elif name == "code":
            text = rng.choice(CODES)
        elif name == "room":
            text = rng.choice(ROOMS)
        elif name == "dept":
            text = rng.choice(FACILITIES)
        elif name == "year":
            text = str(rng.randint(1960, 2025))
        elif name == "reldate":
            text = rng.choice(RELDATES)
        elif name == "time":
            h, m = rng.randint(0, 23), rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50))
            text = rng.choice(
                (f"{h:02d}:{m:02d}", f"{h % 12 or 12}:{m:02d} {'am' if h < 12 else 'pm'}")
                + (f"{h:02d}{m:02d}", "noon")
            )
        elif name == "duration":
            text = rng.choice(
                (
                    f"{rng.randint(2, 14)} days",
                    f"{rng.randint(2, 10)} weeks",
                    f"{rng.randint(2, 11)} months",
                    f"{rng.randint(15, 90)} min",
                    f"{rng.randint(2, 20)} years",
                )
            )
        elif name == "young_age":
            text = self.young_age(variant)
        elif name == "sex":
            text = rng.choice(("F", "M", "female", "male"))
        elif name == "state":
            text = rng.choice(STATES)
        elif name == "relation":
            text = rng.choice(RELATIONS)
        elif name == "payer":
            text = rng.choice(PAYERS)
        elif name == "car":
            text = rng.choice(CARS)
        elif name == "lang":
            text = rng.choice(LANGS)
        elif name == "device_type":
            text = rng.choice(DEVICE_TYPES)
        else:  # the test and holdout families' own negatives (below), or a KeyError
            text = _test_negative(self, name, variant)
        return _cap(text) if variant == "cap" else text


_FAKERS: dict = {}


def _ascii(s: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()


# --- the templates: four disjoint families ------------------------------------------------------
#
# `{KIND}` or `{KIND:variant}` is a labelled slot (PERSON variants name a form and/or casing, e.g.
# `{PERSON:last_first+upper}`, or `clinician`; DATE: a style or `full`; AGE: adj, np or num; other
# kinds: a style). `{POSTAL}` is a full postal address line (street, city, state, ZIP). Lower-case
# slots are hard negatives (`{drug:name}`: the name alone; `:cap`: capitalised).

_RAW = {
    "dev": {
        "note": """
Pt is a {young_age:adj} {sex} seen {DATE:md} for f/u of {eponym}; on {drug}.
{PERSON} is a {AGE:adj} {sex} with {eponym}, admitted from {dept}.
Seen by {PERSON:clinician} in {room} on {DATE}; {lab}, {lab}.
Daughter {PERSON} (cell {PHONE}) is the health care proxy.
DOB {DATE:full}, MRN {MRN}; allergic to {drug:name}.
Discharged home to {POSTAL} on {drug}, f/u in {duration}.
S: {PERSON:first_only} reports {duration} of worsening dyspnea since {reldate}.
O: {lab}, {lab}, {lab}. A/P: {code}, continue {drug}.
Insurance verified: member ID {HEALTH_PLAN:member}, Medicare MBI {HEALTH_PLAN:mbi}.
Pacemaker (SN {DEVICE}) interrogated {reldate}, normal function, {lab}.
Pt reports the insulin pump serial {DEVICE:serial} alarmed at {time}.
Dear {PERSON:clinician}, I am writing about our mutual patient {PERSON}, DOB {DATE:full}.
He was involved in an MVC; vehicle VIN {VEHICLE:vin}, plate {VEHICLE:plate}.
Billing: account {ACCOUNT}, claim {ACCOUNT:claim} submitted for {code}.
Rx for {drug} signed, prescriber DEA {LICENSE:dea}, NPI {LICENSE:npi}.
Patient emailed from {EMAIL} asking whether to hold {drug:name}.
Portal login from IP {IP} on {DATE} was flagged by security.
Photo of the rash shared at {URL}, c/w {eponym}.
SSN {SSN} verified with {PERSON:full}, {young_age:adj} {sex}, at registration.
{PERSON:titled} was called at {PHONE} re: {lab}.
Lives alone at {ADDRESS}; her {relation} {PERSON} lives nearby (ZIP {ZIP}).
Hx {eponym} dx {year}, {eponym} in remission since {year}, {sign}.
FHx: father with {eponym} (died at {young_age:np}), mother {AGE:adj} and living.
Driver's license {LICENSE:drivers} copied; not to drive until {DATE}.
Dr. visit on Monday with cardiology. Will continue {drug} and recheck {lab} {reldate}.
Case discussed with {PERSON:clinician} ({PHONE}); plan to start {drug:name} {reldate}.
State medical license {LICENSE:medical} on file for {PERSON:clinician}.
Pt paid the {payer} copay with card {ACCOUNT:card} at {time}.
CGM transmitter SN {DEVICE:serial} replaced; UDI {DEVICE:udi_gs1}.
Her {relation} {PERSON} can be reached at {EMAIL} or {PHONE}.
Pt {PERSON:initials}, {young_age:adj} {sex}, {eponym}, {lab}.
Remote monitoring data uploaded from {IP:v6} at {time}.
Group number {HEALTH_PLAN:group}, subscriber {PERSON}, plan {payer}.
Patient's blog ({URL}) describes living with {eponym}.
{sign}; baby {PERSON} born {DATE} at {time}, {lab}.
Mail returned from {ADDRESS:po_box}, {ZIP}; new address requested.
Home health to visit {POSTAL} twice weekly for {drug:name} injections.
{PERSON:last_first} seen in {dept} on {DATE:month_d}, {AGE:np}, {eponym}.
Medicaid ID {HEALTH_PLAN:medicaid} confirmed; {code}.
{PERSON:first_only} called back, {lab} at home; Hope to taper {drug:name} {reldate}.
Spoke with {PERSON:lower} from the pharmacy about {drug:name} {reldate}.
Billing account {ACCOUNT:billing} flagged; guarantor {PERSON:middle_initial}.
She has been on {drug} since {year}; A1c goal discussed, {lab}.
Parked car (plate {VEHICLE:plate}) was towed from the garage on {DATE}.
Registered with the state registry as SSN {SSN:plain}, DOB {DATE:compact}.
A {young_age:adj} {sex} with {eponym} on {drug}, {lab}; seen {reldate}.
Her {relation}, {young_age:adj}, has {eponym}; Will start {drug:name} for both.
""",
        "message": """
hi this is {PERSON:lower} my {lab} this am, is that ok
can u call me back at {PHONE} pls, {PERSON:first_only}
my dob is {DATE} and my mrn is {MRN}
pls send the refill for {drug:name} to {EMAIL} thx
i moved!! new address is {POSTAL}
{PERSON:titled} said to stop the {drug:name} {reldate} is that right?
my husband {PERSON} is {AGE:adj} and i'm {young_age:num}, he fell {reldate}
insurance changed, new member id {HEALTH_PLAN:member} group {HEALTH_PLAN:group}
whats my medicare number? card says {HEALTH_PLAN:mbi}
the pump sn {DEVICE} keeps beeping, started {reldate}
got a bill for acct {ACCOUNT} but i already paid
claim {ACCOUNT:claim} was denied why??
they towed my car, plate {VEHICLE:plate}, can u send a note
my ssn is {SSN} for the disability form
here is the link {URL}
portal says my ip {IP} is blocked
appt tmrw at {time}? {PERSON:first_only} here
need my license # on the form? its {LICENSE:drivers}
thx for seeing me {reldate}, the {drug:name} is helping
mom is {AGE:adj} now, can she still get the flu shot
the vin is {VEHICLE:vin} for the handicap placard form
zip code is {ZIP} not the old one
email me at {EMAIL} or text {PHONE}
im at {ADDRESS} come to the back door
pharmacy needs ur dea # {LICENSE:dea} for the {drug:name} script
pls fax to {PHONE:us_dash} attn {PERSON:full}
pls tell {PERSON:lower+titled} my {lab} hes asking
my medicaid # is {HEALTH_PLAN:medicaid}
here is the udi from the box {DEVICE:udi_hibcc}
the npi on the form is {LICENSE:npi}? {PERSON:lower+titled} signed
is {PERSON:lower+full} ok to pick up my {drug:name}, she's my {relation}
im {young_age:num} and on {drug:name}, is {drug:name} ok too?
dr said {drug} but the bottle says {drug} ??
""",
        "form": """
Name: {PERSON}
DOB: {DATE:full}    Age: {young_age:num}
MRN: {MRN}    Acct #: {ACCOUNT}
Address: {ADDRESS}
City/State/ZIP: {ADDRESS:city}, {state} {ZIP}
Phone (home): {PHONE}    Cell: {PHONE}
Email: {EMAIL}
SSN: {SSN}
Primary insurance: {payer}   Member ID: {HEALTH_PLAN:member}   Group: {HEALTH_PLAN:group}
Medicare ID (MBI): {HEALTH_PLAN:mbi}
Emergency contact: {PERSON} ({relation})  {PHONE}
Referring physician: {PERSON:clinician}   NPI: {LICENSE:npi}
Driver license #: {LICENSE:drivers}   State: {state}
Vehicle (parking permit): {car}, plate {VEHICLE:plate}   VIN: {VEHICLE:vin}
Implanted device: {device_type}   Serial: {DEVICE:serial}
UDI: {DEVICE}
Portal username: {EMAIL}   Last login IP: {IP}
Personal website: {URL}
Visit date: {DATE}   Time: {time}   Room: {room}
Diagnosis: {code} {eponym}   Meds: {drug}
Guarantor: {PERSON:last_first}   Billing acct: {ACCOUNT:billing}
Mailing address: {ADDRESS:po_box}, {ADDRESS:city}, {state} {ZIP}
Age: {AGE:num}   Sex: {sex}
Prescriber: {PERSON:clinician}   DEA: {LICENSE:dea}   Lic: {LICENSE:medical}
Allergies: {drug:name}   Last A1c: {lab}   Seen since: {year}
Home address: {POSTAL}
Medicaid #: {HEALTH_PLAN:medicaid}   Claim #: {ACCOUNT:claim}
PATIENT: {PERSON:last_first+upper}   {MRN}   {DATE:full}
Age: {young_age:num}   Meds: {drug}   Hx: {eponym}
""",
    },
    # EVAL family: the detector's author does not read below this line.
    "eval": {
        "note": """
This {AGE:adj} {sex} with a hx of {eponym} presents with {duration} of cough.
HPI: {PERSON:full} presented to {dept} on {DATE} with chest pain, {lab}.
Per her son {PERSON:first_only}, she has been confused since {reldate}.
Telephone encounter: {PERSON:titled} called from {PHONE} at {time} asking about {drug:name}.
Attending: {PERSON:clinician}. Fellow: {PERSON:clinician}.
Transferred from OSH (their MRN {MRN}), our medical record number {MRN}.
Discharge summary for {PERSON:last_first} (DOB {DATE:full}); admitted {DATE}, discharged {DATE}.
ICD {DEVICE} checked in device clinic; {lab}, battery ok.
Plan: return in {duration}, sooner if {eponym} symptoms worsen; {drug}.
Social: lives with partner {PERSON} at {POSTAL}; retired since {year}.
Contact info updated to {EMAIL} and {PHONE}.
Coverage: {payer} member {HEALTH_PLAN:member} (group {HEALTH_PLAN:group}); MBI {HEALTH_PLAN:mbi}.
Financial counseling: balance on account {ACCOUNT} referred; claim {ACCOUNT:claim} pending.
Identity confirmed with SSN {SSN} and date of birth {DATE:full}.
Prescribed by {PERSON:clinician} (DEA {LICENSE:dea}, state lic {LICENSE:medical}).
Police report: patient's car (VIN {VEHICLE:vin}) was struck at {time}; plate {VEHICLE:plate}.
Telehealth session ({young_age:adj} {sex}) from {IP} dropped twice, reconnected via {URL}.
Mother is {AGE:np}; father deceased at {young_age:np} of {eponym}.
{PERSON:initials} is a {young_age:adj} {sex} G2P1 at 32 weeks, {lab}.
Insulin pump (serial {DEVICE:serial}) downloaded; UDI {DEVICE:udi_hibcc}.
Letter on behalf of {PERSON}, DL {LICENSE:drivers}, for a disabled parking permit.
Home visit at {ADDRESS}, {ADDRESS:city} ({ZIP}); {drug} reconciled.
Family posts updates on {URL} for friends.
Seen on {DATE:md} and again {reldate}; {lab}, {lab}.
Brother {PERSON:middle_initial} was tested as a donor, HLA match pending.
She is now {AGE:adj}, still living independently at {ADDRESS:unit}.
Call back number {PHONE}; ok to leave a message with {PERSON:first_only}.
Vendor recorded the device's address {IP:v6} at {time}.
Records mailed to {ADDRESS:po_box}, {ADDRESS:city}, {state} {ZIP}.
{eponym:cap} diagnosed in {year}; {eponym} excluded; started {drug}.
Pt to see PCP on Monday; Grace period for the copay explained, {code}.
Copay charged to card {ACCOUNT:card} per {relation}'s request.
Seen with interpreter ({lang}); {PERSON:lower} signed consent on {DATE:ordinal}.
Next of kin {PERSON:upper} notified by phone at {PHONE:intl}.
Billing guarantor account {ACCOUNT:billing}; {payer} Medicaid {HEALTH_PLAN:medicaid}.
Provider NPI {LICENSE:npi} ordered {code}; {sign}.
Bill to {PERSON:full}, {POSTAL}.
Symptoms began the week of {DATE:month_d}, worse after {drug:name}; {AGE:np} per chart.
Plate {VEHICLE:plate} noted on the EMS run sheet; {lab}.
{PERSON:first_only} brought in a copy of her SSN card ({SSN:test}).
MRN {MRN}: {eponym}, last seen {DATE:month_y}.
Consulted {PERSON:clinician} re: anticoagulation, {drug}; {lab}.
Patient forwarded the lab PDF from {EMAIL:personal} at {time}.
Last admission at {dept} in {year}; {PERSON:titled} declined {drug:name} then.
Known {eponym}; {young_age:adj} {sex} on {drug}, {lab}, seen at {dept}.
Partner is {young_age:np}, also on {drug:name}; {sign}.
""",
        "message": """
hey its {PERSON:first_only} again, still dizzy after the {drug:name}
this is {PERSON:lower}'s {relation}, she is {AGE:adj}, can i pick up her rx
pls update my phone to {PHONE} and email {EMAIL}
born {DATE}, chart # {MRN}, need my records
new insurance card member {HEALTH_PLAN} thx
my mbi is {HEALTH_PLAN:mbi} the lady on the phone asked
sending the pic here {URL}
cant log in from {IP} help
whats the serial for my pacer? card says {DEVICE}
paid acct {ACCOUNT} online {reldate}
dmv form: dl {LICENSE:drivers}, plate {VEHICLE:plate}
need u to sign the form for my car {VEHICLE:vin}
ssn {SSN} for the fmla paperwork
new addr {POSTAL}
ride picks me up at {ADDRESS} at {time}
zip is {ZIP} btw
tell {PERSON:titled} thank u so much!!
{PERSON:lower} here, is my appt still on {DATE:md}?
the dea on the rx is {LICENSE:dea}, pharmacy says its wrong
grandpa turned {AGE:num} {reldate}, grandma is {young_age:num}, is the home visit still ok
call {PERSON:first_only} at {PHONE} if i dont answer
thx!! {lab} :) see u {reldate}
my email changed to {EMAIL}
group # is {HEALTH_PLAN:group} and claim {ACCOUNT:claim}
{PERSON:lower+titled} told me the {device_type} udi is {DEVICE:udi_gs1}
my npi is {LICENSE:npi}, im the home nurse for {PERSON:lower+initial_last}
my license number is {LICENSE:medical} for the volunteer form
im {PERSON:lower+full}, born {DATE:full}, pls call back
my son is {young_age:num} and takes {drug:name}, can he have {drug:name} with it
still on the {drug} since {year}, {lab} last wk
""",
        "form": """
PATIENT: {PERSON:last_first+upper}  MRN: {MRN}  DOB: {DATE:full}
Patient name (last, first): {PERSON:last_first}
Date of birth: {DATE:full}
Street address: {ADDRESS}
City: {ADDRESS:city}  State: {state}  Zip: {ZIP}
Home #: {PHONE}  Work #: {PHONE}  Fax: {PHONE}
E-mail address: {EMAIL}
Social Security #: {SSN}
Subscriber: {PERSON}  Subscriber ID: {HEALTH_PLAN:member}
Medicaid #: {HEALTH_PLAN:medicaid}   MBI: {HEALTH_PLAN:mbi}
Next of kin: {PERSON} - {relation} - {PHONE}
PCP: {PERSON:clinician}  Lic #: {LICENSE:medical}
ID verified: DL {LICENSE:drivers} exp {DATE}
Vehicle: {car} {VEHICLE:plate}
VIN: {VEHICLE:vin}
Device serial #: {DEVICE:serial}   UDI-DI: {DEVICE:udi_gs1}
Account #: {ACCOUNT}   Claim #: {ACCOUNT:claim}
Statement for acct {ACCOUNT:billing}   Card on file: {ACCOUNT:card}
Access log: {IP} {time}
Website / social media: {URL}
Patient age (yrs): {AGE:num}
Date of service: {DATE}   CPT: {code}   Dx: {code}
Ordering provider: {PERSON:clinician}  NPI {LICENSE:npi}  DEA {LICENSE:dea}
Interpreter needed: Y   Language: {lang}   Height: 165 cm
Mailing: {ADDRESS:po_box} / ZIP {ZIP}
Permanent address: {POSTAL}
Group #: {HEALTH_PLAN:group}   Payer: {payer}
Responsible party: {PERSON:middle_initial}   Relationship: {relation}
Device UDI (HIBCC): {DEVICE:udi_hibcc}   Implanted: {year}
Current meds: {drug}; {drug}   PMH: {eponym}   Age at dx: {young_age:num}
""",
    },
    # TEST family: written after the detector, from scratch, in other clinical situations (ED
    # triage and EMS, pharmacy calls, home health, insurance appeals, school nursing, telehealth,
    # discharge teaching, lab requisitions, referral faxes, hospice, dialysis, dental, OB...). The
    # detector's author does not read it; it has since been used during development (its errors
    # were studied), so it is validation now. The holdout family stands further down.
    "test": {
        "note": """
Triage: {young_age:adj} {sex} in at {time} with {duration} of flank pain; ESI 3, {lab}, {measure}.
EMS run: {PERSON:initial_last} found on the kitchen floor at {ADDRESS}, {score} on scene, {lab}.
Brought in by granddaughter {PERSON:first_only}; patient is {AGE:adj}, uses a rollator at baseline.
Security moved a car idling in the ambulance bay (plate {VEHICLE:plate}) at {time}; keys at triage.
Rollover MVC, trauma team paged; the tow slip lists VIN {VEHICLE:vin} for the patient's {car}.
Pharmacist {PERSON:full} ({org}) phoned at {time} to clarify the {med:name} sig; callback {PHONE}.
PA for {med} faxed to {payer} at {PHONE:us_dash}; cardholder ID {HEALTH_PLAN:member}, BIN 610014.
Controlled-substance pickup by the patient's {relation}; driver license {LICENSE:drivers} checked.
Verbal order taken from {PERSON:clinician} (DEA {LICENSE:dea}) for {med}, read back and verified.
Dispensed {ndc}, {med}; counselled on the {drug:name} interaction, {measure}.
Home health SOC {DATE}: {PERSON:titled} lives alone in a second-floor walk-up, {ADDRESS:unit}.
Aide says the {relation}, {PERSON:middle_initial}, fills the pillbox now; {med}, {drug} reconciled.
Homebound status: leaves the house only for dialysis at {org}; {score}, {measure}.
Appeal: {payer} denied claim {ACCOUNT:claim} for {condition}; P2P with {PERSON:clinician}.
Second-level appeal mailed {DATE:month_d_y} for enrollee {HEALTH_PLAN:member} ({PERSON:full}).
Medical necessity: {young_age:adj} {sex}, {condition}; failed {drug:name}, {med:name} since {year}.
School nurse: {PERSON:first_only} (grade 4) wheezing after recess at {time}; albuterol, sats 97%.
Reached the mother, {PERSON}, at {PHONE}; she is on her way, child afebrile and resting.
Pump occlusion alert in gym class; set swapped, serial {DEVICE:serial} noted for the vendor.
Student's CGM (UDI {DEVICE:udi_gs1}) alarmed low at {time}; juice given, recheck in 15 min.
Video visit: {young_age:adj} {sex} joined from {IP} at {time}, at home in ZIP {ZIP}; consent given.
Telehealth check-in: the invite never arrived, so the link {URL} was re-sent to {EMAIL:personal}.
Telehealth provider holds license {LICENSE:medical} in the patient's state; billed as {code}.
Discharge teaching with {PERSON:lower} and her {relation}; see {PERSON:titled} on {DATE:month_d}.
Return precautions: call 911 or text 988 for thoughts of self-harm. May drive again in {duration}.
Frank blood in the urine or a temp over 101 F: call. {drug} as before, {med}; recheck {when:future}.
Lab requisition: fasting specimen drawn {DATE:iso} at {time}, tubes labelled with MRN {MRN}.
Specimen rejected: wristband read {MRN:hyphenated} but the tube said {MRN:digits}; redraw ordered.
Duplicate charts merged, {MRN:prefixed} retired in favour of {MRN}.
Referral received by fax from {org} for {PERSON:last_first}, born {DATE:full}, re: {condition}.
Faxed the consult note back to {PHONE} attn. referral coordinator {PERSON:initial_last}; 4 pages.
Hospice consent signed by agent {PERSON:full} ({young_age:np}); Medicare MBI {HEALTH_PLAN:mbi}.
Patient is {AGE:np}, DNR/DNI, with {condition}; {med} for air hunger, {score}.
Family meeting with son {PERSON:upper}, {young_age:np}; Hope is for his mother to die at home.
Dialysis chair 6: fistula thrill present, {measure}; machine {DEVICE:serial} logged, {lab}.
Subrogation: other driver's VIN {VEHICLE:vin}; auto carrier billed on acct {ACCOUNT:account}.
Payment plan set up with autopay on card {ACCOUNT:card}; first draft {DATE:mdy_slash}.
Balance on {ACCOUNT:billing} split between {payer} and the auto insurer; {code}.
Refund of the duplicate payment issued to card {ACCOUNT:card} after the billing dispute.
Disability paperwork: SSN {SSN} and date of injury {DATE} entered for {PERSON:full}.
Medicaid application held: SSN on it ({SSN}) does not match the card; {PERSON:initials} to bring it.
Occupational health: forklift driver, {young_age:np}, {score}; modified duty from {reldate}.
POD 2 after a Whipple; {lab}, {measure}, on {drug}. Bill the brace to the secondary payer.
MRI safety screen: spinal cord stimulator, implant card serial {DEVICE} checked with radiology.
Nurse line: caller {PERSON:first_only}, {young_age:np}, says her {AGE:adj} father has not eaten.
Privacy office reviewed a break-the-glass open of this chart from {IP:v4} by {PERSON:last_first}.
E-prescription for {med:name} transmitted from {IP:v6}; prescriber NPI {LICENSE:npi}.
Prenatal visit: G3P2, LMP {DATE}, EDD {DATE}; {measure}, {lab}.
OB intake for {PERSON:full}, {young_age:np}; partner {PERSON:first_only} here, {lang} interpreter.
Newborn {PERSON:last_first}, Apgars 8 and 9, 3.4 kg; mother ({young_age:np}) has MRN {MRN}.
Wound care: stage 3 sacral ulcer, {measure}; next visit at the home, {POSTAL}.
Supplies ship to {ADDRESS:po_box} in {ADDRESS:city}; the carrier will not deliver to the farm road.
Wheelchair van from {POSTAL} to {org} booked for {time}.
Case management: moved in with her {relation} in {ADDRESS:city}, ZIP {ZIP:zip9}; agency changed.
Social work: the family posts updates at {URL:www} and asked that it stay out of the chart.
Records released to {EMAIL:work} at the attorney's office under a signed authorization.
Dental: {young_age:adj} {sex}, tooth #19 extracted, {med}; {PERSON:titled} reviewed post-op care.
PT eval: {condition}, {score}, {young_age:np}; Hope to progress to a cane {when:future}.
Interpreter {PERSON:full} assisted by video in {lang}; teach-back completed.
Sleep medicine: CPAP serial {DEVICE:serial} and UDI {DEVICE:udi_hibcc} recorded by the DME vendor.
Valet ticket for the {car}, plate {VEHICLE:plate}, stapled to the belongings bag.
Pharmacy abroad called from {PHONE:intl} re lost {med:name}; {PERSON:titled} okayed a 7-day supply.
Discharged to {org}: {PERSON:upper} to continue {drug}, stop {med:name}, follow up in {duration}.
History: {eponym} since {year}, {condition} diagnosed in {year}; Gene panel pending.
Home visit: she turned {AGE:num} {reldate}, her {relation} is {young_age:np}; {lab}, {measure}.
Rose to 38.9 C overnight; {drug} given, {lab}, blood cultures x2 at {time}.
Incision photo arrived from {EMAIL}; reviewed with {PERSON:clinician}, no erythema.
Skilled nursing visit by {PERSON:initials} at {time}: {lab}, {measure}; SN 2x/week x 4 weeks.
Coverage through the employer plan, group {HEALTH_PLAN:group}; RxBIN 004336, RxPCN ADV.
Medicaid recipient ID {HEALTH_PLAN:medicaid} checked for school speech therapy, enrolled in {year}.
Return label for the {device_type} printed to {POSTAL}.
""",
        "message": """
reminder: {PERSON:first_only} has an appt w/ {PERSON:titled} on {DATE} at {time}. reply C to confirm
ur {med:name} is ready for pickup at {org}. txt STOP to opt out
hi its {PERSON:lower}, is the nurse still coming to {ADDRESS} tmrw? buzzer is broken just knock
grandma is {AGE:num} and keeps spitting out the {drug:name}, any tips
[video chat] pt: cant hear u, my ip is {IP} if the tech guy needs it
[video chat] provider: pls close the app and reopen {URL}, then allow the camera
can u fax the inhaler form to the school at {PHONE}? its for {PERSON:first_only}
this is {PERSON:lower+full}, {PERSON:first_only}'s mom, he left his {med:name} at home can u call me
school nurse wants the pump serial, its {DEVICE:serial} on the back
appeal is in, claim # {ACCOUNT:claim}, they said 30 days for a decision
rx insurance: id {HEALTH_PLAN:member} grp {HEALTH_PLAN:group} bin 610014 pcn adv
wait is {HEALTH_PLAN:mbi} my medicare # or is that the old red white and blue card
transport lady needs my medicaid # {HEALTH_PLAN:medicaid}
walgreens says they need the npi {LICENSE:npi} and dea {LICENSE:dea} on the script ugh
they wouldnt give me the {med:name} without my dl # {LICENSE:drivers}
new number! its {PERSON:first_only}, save {PHONE}
can the after-visit summary go to {EMAIL} instead of paper, im {young_age:adj} not 100 lol
hospice intake needs the ssn, its {SSN}, and hes {young_age:num} not {young_age:num} on ur form
my card {ACCOUNT:card} got charged twice for the visit {reldate}
can i do a payment plan on hospital bill {ACCOUNT:billing}
omw to quest, is my mrn {MRN}? the lab slip is smudged and says age {young_age:num}
{PERSON:lower+titled} wants me to do the sleep study {DATE:md}, will insurance cover it
mom {PERSON} ({AGE:adj}) fell {reldate}, the aide is w her at {POSTAL}
we moved to {ADDRESS:city}, zip {ZIP}, pls update so home health can find us
send supplies to {ADDRESS:po_box} pls, porch pirates lol
got towed during my infusion!! plate {VEHICLE:plate}, can someone vouch
the claims adjuster wants the vin {VEHICLE:vin}, is that in my chart?
cgm udi {DEVICE:udi_hibcc} for the warranty replacement
lmp was {DATE} and the test was positive {when:past}!!
feeling better, {lab} on my home cuff, been on {drug} since {year}
can i take {med:name} with my {drug:name}? im {young_age:num} if that matters
video visit w {PERSON:clinician} at {time}? never got the link, pls use {EMAIL:personal}
{PERSON:first_only} here, dob {DATE:full}, pharmacy says ur system has it wrong
leave a vm at {PHONE:us_plain} after 5 pls
im the visiting nurse for {PERSON:initial_last}, my lic is {LICENSE:medical}, pls call back
dads page is {URL:bare} if the team wants updates
got an email that someone signed in from {IP:v6}, was that u guys??
coach needs a note, {PERSON:first_only} has {condition} and takes {med}
{PERSON:lower+middle_initial} checking in, {measure} this am, took the {med:name} at {time}
dad is {AGE:np} now and refuses the walker, pls talk to {PERSON:first_only} (shes {young_age:adj})
denial letter is dated {DATE:month_d_y}, member id {HEALTH_PLAN}
{PERSON:first_only} threw up at school {when:past}, nurse gave {med:name}, ok w his {drug:name}?
home health office # is {PHONE:us_dot} if they call u
May i double up on the {med:name} if i missed it {when:past}?
thx for squeezing me in {reldate}!! the {drug:name} is already helping
the ortho says its a {condition}, do i still take the {med:name}
they wrote {score} at {org}, what does that mean
{PERSON:lower} here, they sent me to {org} for the {condition}, new cell is {PHONE}
""",
        "form": """
Ordering clinician: {PERSON:clinician}   NPI: {LICENSE:npi}
Specimen: serum   Collected: {DATE} {time}   Fasting: Y
Order codes: {code}, {code}   Priority: routine   Specimen: urine
Pt MRN: {MRN}   Bill to: {payer}   Draw site: {org}
TO: {org}   FAX: {PHONE}   FROM: {PERSON:clinician}
RE: {PERSON:last_first+upper}   DOB: {DATE:full}   Pages: 4 incl. cover
Reason for referral: {young_age:adj} {sex} with {condition}; {score}
Student: {PERSON:last_first}   Grade: 5   Homeroom: {PERSON:titled}
Parent/guardian: {PERSON:full}   Age: {young_age:num}   Cell: {PHONE}   Work: {PHONE}
Allergies: peanut, tree nut   Emergency med: EpiPen 0.3 mg IM   Asthma action plan: Y
Medication given at school: {med}   By: {PERSON:initials}   Time: {time}
Claim number: {ACCOUNT:claim}   Date of denial: {DATE}
Enrollee: {PERSON}, {young_age:np}   Enrollee #: {HEALTH_PLAN:member}   Plan: {payer}, since {year}
Group/employer plan #: {HEALTH_PLAN:group}   Rx BIN: 610014   PCN: ADV
Denied service: {med:name} ({code})   Appeal level: 2   Expedited: N
Release records to: {PERSON:full}, {POSTAL}
Send by e-mail to: {EMAIL}   or fax: {PHONE:us_paren}
Expires: {DATE:month_d_y}   Signed by: {PERSON:middle_initial}   Relationship: {relation}
Start of care: {DATE}   Cert period: 60 days   Homebound: Y
Service address: {ADDRESS:unit}   Dog on premises: Y   Stairs: 12
Town: {ADDRESS:city}   Zip code: {ZIP}   Rural: Y
Certifying physician: {PERSON:clinician}   State license: {LICENSE:medical}
Caregiver: {PERSON:first_only} ({relation}, {young_age:np})   Lives with pt: Y   Pt age: {AGE:num}
SSN (verified {when:past}): {SSN}
Photo ID type: driver's license   ID #: {LICENSE:drivers}   Issuing state: {state}
Prescriber DEA #: {LICENSE:dea}   Written: {DATE:iso}   Refills: 2   {ndc}
Refund to card: {ACCOUNT:card}   Amount: $85.00
Item: CPAP (HCPCS E0601)   Serial: {DEVICE:serial}   Delivered: {DATE}
Implant log - UDI: {DEVICE:udi_gs1}   Site: L chest   Type: {device_type}
HIBCC barcode: {DEVICE:udi_hibcc}   Lot on box matches: Y
Pickup address: {POSTAL}   Wheelchair: Y   Escort: {relation}
Parking validation - vehicle: {car}   Tag: {VEHICLE:plate}   Level 3
MVC report - VIN: {VEHICLE:vin}   Date of injury: {DATE}
Telehealth consent - client IP: {IP}   Browser: Chrome 121   Signed at: {time}
E-signature captured from {IP:v6} at {time}
Visit link: {URL}   Sent by SMS to: {PHONE:us_plus1}
Fundraising page (charity-care file): {URL:www}
Location during visit: {ADDRESS}
Hospital acct #: {ACCOUNT:account}   Guarantor: {PERSON:last_first}   Balance: $240.00
Statement #: {ACCOUNT:billing}   Due in 30 days   Financial assistance: applied
MBI: {HEALTH_PLAN:mbi}   Part A effective: {DATE:month_y}
Medicaid recipient #: {HEALTH_PLAN:medicaid}   Spend-down: N
Hospice - pt age: {AGE:num}   Terminal dx: {condition}   PPS 30%
Immunizations today: Tdap, influenza   Next due: {when:future}   VIS given: Y
Vitals: {lab}   {measure}   Wt: 61 kg
Contact e-mail: {EMAIL:work}   Language: {lang}
SSN/ITIN (financial assistance): {SSN}
Nurse signature: {PERSON:initials}, RN   Date: {DATE:mdy_short}
Wristband MRN: {MRN:prefixed}   Area: ED   Arrival: {time}
NAME: {PERSON:upper}   SEX: {sex}   AGE: {young_age:num}
Date of birth (MM/DD/YYYY): {DATE:mdy_slash}
Emergency contact email / phone: {EMAIL} / {PHONE}
Home meds: {drug}; {med}   PMH: {condition}, {eponym} dx {year}
""",
    },
}
# --- hard negatives that only the test family's templates draw on ----------------------------
#
# The test family was written after the detector, with vocabularies of its own besides the shared
# ones above: other drugs (brands that read like given names among them: Allegra, Ella, Aleve),
# eponymous conditions and fractures named after common surnames (Jones, Smith, Baker, Turner,
# Williams, Hunter), eponymous scores and clinical tests, other facilities (Cedars-Sinai, Lurie
# Children's, MD Anderson...), lab values in other forms, other relative dates, NDC product codes.
# Adding them here changes nothing the dev and eval families generate.

TEST_DRUGS = (
    "Depakote",
    "Bactrim DS",
    "Keflex",
    "cephalexin",
    "Cymbalta",
    "duloxetine",
    "Lovenox",
    "enoxaparin",
    "albuterol",
    "Flovent",
    "EpiPen",
    "Tamiflu",
    "Macrobid",
    "nitrofurantoin",
    "Valtrex",
    "Imitrex",
    "Topamax",
    "Lamictal",
    "Abilify",
    "Haldol",
    "Klonopin",
    "Suboxone",
    "methadone",
    "Vyvanse",
    "Singulair",
    "Allegra",
    "Ella",
    "Aleve",
    "Diflucan",
    "Flagyl",
    "Cipro",
    "doxycycline",
    "Medrol",
    "Toradol",
    "Dilaudid",
    "Percocet",
    "tramadol",
    "Lyrica",
    "Victoza",
    "Tresiba",
    "Novolog",
    "Otezla",
    "Stelara",
    "Skyrizi",
    "Evista",
    "Tradjenta",
    "Xeljanz",
    "hydroxyzine",
    "Miralax",
    "Reglan",
    "Phenergan",
    "spironolactone",
    "Coreg",
    "Cardizem",
    "digoxin",
    "Celexa",
    "Effexor",
    "Ritalin",
)
TEST_DOSES = (
    "250 mg",
    "875 mg",
    "2 puffs",
    "0.3 mg",
    "1 g",
    "15 mL",
    "8 units",
    "25 mcg",
    "300 mg",
    "1 tab",
    "2 tabs",
    "40 mg/0.4 mL",
    "12.5 mg",
)
TEST_SIGS = (
    "PO q8h x 7 days",
    "IM once",
    "q4h PRN wheeze",
    "at bedtime",
    "SC daily",
    "every other day",
    "BID with food",
    "x1 now",
    "taper over 5 days",
    "q12h",
    "PO TID PRN nausea",
)
TEST_EPONYMS = (
    "Ehlers-Danlos syndrome",
    "Legg-Calve-Perthes disease",
    "Sever's disease",
    "Tay-Sachs disease",
    "von Willebrand disease",
    "Peyronie's disease",
    "Baker's cyst",
    "Colles fracture",
    "Jones fracture",
    "Smith fracture",
    "Bennett fracture",
    "Bartholin cyst",
    "Turner syndrome",
    "Williams syndrome",
    "Hunter syndrome",
    "Klinefelter syndrome",
    "Fabry disease",
    "Gaucher disease",
    "Lyme disease",
    "Chiari malformation",
    "Horner syndrome",
    "Wernicke encephalopathy",
    "Takayasu arteritis",
    "Behcet's disease",
    "Still's disease",
    "Charcot foot",
    "Conn syndrome",
    "de Quervain tenosynovitis",
    "Morton's neuroma",
    "Mallory-Weiss tear",
    "Zenker's diverticulum",
    "Ludwig's angina",
    "Fournier's gangrene",
    "Brugada syndrome",
    "Prinzmetal angina",
    "Lambert-Eaton syndrome",
    "Sheehan syndrome",
    "Reye syndrome",
)
TEST_SCORES = (
    "Wells score 4",
    "CHA2DS2-VASc 3",
    "Bishop score 6",
    "Child-Pugh class B",
    "Killip class II",
    "Hunt and Hess grade 2",
    "Braden 14",
    "Morse fall score 45",
    "NIHSS 4",
    "Centor 3",
    "Alvarado 7",
    "PHQ-9 of 12",
    "GAD-7 of 9",
    "Ranson 2",
    "Breslow depth 1.2 mm",
    "Lachman negative",
    "McMurray positive",
    "Tinel sign positive",
    "Phalen test positive",
    "Finkelstein test positive",
    "Ottawa ankle rules negative",
    "Duke criteria not met",
    "Beighton 6/9",
    "Karnofsky 60",
    "ECOG 2",
    "Wagner grade 2",
    "MoCA 24/30",
    "Barthel index 60",
    "Hoehn and Yahr stage 2",
    "modified Rankin 3",
    "Glasgow-Blatchford 6",
    "Fitzpatrick type III",
)
TEST_FACILITIES = (
    "Walgreens",
    "CVS",
    "Quest Diagnostics",
    "LabCorp",
    "Cleveland Clinic",
    "Cedars-Sinai",
    "Brigham and Women's",
    "Shriners Children's",
    "Ronald McDonald House",
    "St. Jude",
    "Vanderbilt",
    "Emory",
    "Duke",
    "Baylor Scott & White",
    "Geisinger",
    "Ochsner",
    "the VA clinic",
    "Hospice of the Valley",
    "the Visiting Nurse Service",
    "DaVita dialysis",
    "the school-based health center",
    "Lurie Children's",
    "Nemours",
    "Scripps",
    "Sutter Health",
    "Dana-Farber",
    "MD Anderson",
)
TEST_RELDATES_PAST = (
    "the day before yesterday",
    "three days ago",
    "this past Saturday",
    "a few weeks back",
    "two Sundays ago",
    "late last week",
    "earlier this afternoon",
    "the night before last",
    "a couple of days ago",
)
TEST_RELDATES_FUTURE = (
    "at the next visit",
    "the week after next",
    "in two weeks",
    "in 10 days",
    "later today",
    "by the end of next month",
    "first thing tomorrow",
    "sometime next week",
    "after the follow-up call",
)
# The test family's invented names avoid these words too (a set of its own: dev and eval, which
# never draw them, keep the invented names they had).
_TEST_NEGATIVE_WORDS = _NEGATIVE_WORDS | {
    w.lower()
    for phrase in TEST_DRUGS + TEST_EPONYMS + TEST_SCORES + TEST_FACILITIES
    for w in re.findall(r"\w+", phrase)
}


def _test_negative(maker: _Maker, name: str, variant: str) -> str:
    """The hard negatives only the test family's templates have slots for."""
    rng = maker.rng
    if name == "med":
        med = rng.choice(TEST_DRUGS)
        text = (
            med if variant == "name" else f"{med} {rng.choice(TEST_DOSES)} {rng.choice(TEST_SIGS)}"
        )
    elif name == "condition":
        text = rng.choice(TEST_EPONYMS)
    elif name == "score":
        text = rng.choice(TEST_SCORES)
    elif name == "org":
        text = rng.choice(TEST_FACILITIES)
    elif name == "when":  # when:past, when:future
        text = rng.choice(TEST_RELDATES_PAST if variant == "past" else TEST_RELDATES_FUTURE)
    elif name == "ndc":
        text = rng.choice(
            (
                f"NDC {maker.digits(5)}-{maker.digits(4)}-{maker.digits(2)}",
                f"NDC {maker.digits(4)}-{maker.digits(4)}-{maker.digits(2)}",
                f"NDC {maker.digits(5)}-{maker.digits(3)}-{maker.digits(2)}",
            )
        )
    elif name == "measure":
        text = rng.choice(
            (
                f"Na {rng.randint(126, 147)}",
                f"lactate {rng.uniform(0.6, 6):.1f}",
                f"CK {rng.randint(40, 9000)}",
                f"CRP {rng.uniform(0.2, 180):.1f} mg/L",
                f"ESR {rng.randint(2, 110)}",
                f"BNP {rng.randint(20, 3000)}",
                f"d-dimer {rng.uniform(0.1, 4):.2f}",
                f"Mg {rng.uniform(1.2, 2.6):.1f}",
                f"lipase {rng.randint(10, 900)}",
                f"AST/ALT {rng.randint(12, 400)}/{rng.randint(8, 500)}",
                f"peak flow {rng.randint(120, 550)} L/min",
                f"FEV1 {rng.randint(30, 110)}% predicted",
                f"ANC {rng.uniform(0.1, 9):.1f}",
                f"vitamin D {rng.randint(6, 80)}",
                f"ferritin {rng.randint(3, 900)}",
                f"fingerstick glucose {rng.randint(38, 480)}",
                f"temp {rng.uniform(96.5, 104.5):.1f} F",
                f"pulse ox {rng.randint(84, 100)}%",
                f"on {rng.randint(1, 6)} L NC",
                "urine hCG negative",
                "rapid strep negative",
                f"wound {rng.randint(1, 9)} x {rng.randint(1, 6)} cm",
                f"{rng.randint(92, 196)}/{rng.randint(48, 118)} mmHg",
                f"weight {rng.uniform(90, 320):.1f} lb",
                f"QTc {rng.randint(380, 540)} ms",
                f"{rng.choice(('1+', '2+', '3+'))} pitting edema",
                f"UOP {rng.randint(100, 2400)} mL",
                f"blood alcohol {rng.randint(0, 350)} mg/dL",
            )
        )
    else:  # the holdout family's own negatives (below), or a KeyError
        text = _holdout_negative(maker, name, variant)
    return text


# --- the holdout family: templates and hard negatives of its own -------------------------------
#
# Written after the detector's last change, from scratch, by someone who never read the detector,
# in clinical situations none of the other families uses: occupational health (DOT exams,
# needlesticks, drug-screen collection, workers' comp), physical and occupational therapy and
# driver rehabilitation, behavioural-health intake, vaccination and travel clinics, wound care and
# hyperbaric medicine, the sleep lab, ophthalmology, audiology, prior-authorisation letters,
# critical-value calls from the lab, patient complaints, research consent, ambulance transport
# and its billing, death-certificate worksheets, and chats with a virtual assistant. Its hard
# negatives, besides the shared ones: other drugs and vaccines (among them contraceptive brands
# that are women's given names, Heather, Camila, Errin, Skyla, Mirena..., only ever with their
# dose), eponymous conditions named after common names (Todd's paralysis, Gilbert's syndrome,
# Christmas disease, May-Thurner, Wilson's disease, Ramsay Hunt, Tommy John), eponymous signs and
# scales (Austin Flint murmur, Sister Mary Joseph nodule, Grey Turner sign, Berg, Tinetti,
# Epworth...), facilities named after people (Hazelden Betty Ford, Shirley Ryan AbilityLab, Henry
# Ford Hospital, Walter Reed, Mary Free Bed...), readings of its own (audiograms, visual acuity,
# sleep indices, wound sizes, numbers of 90 and over that are not ages: "REM latency 94 min",
# "95 dB", "Days supply: 90"), ages of 80 to 89 near the ages over 89, product codes (CVX,
# HCPCS, LOINC, CPT, intraocular-lens and CPAP models), and sentences that begin with a common word
# that is also a given name (Mark, Pat, Max, Misty, Clay, Chase, Iris, Faith, Summer). Adding it
# changed nothing the dev, eval and test families generate.

HOLDOUT_DRUGS = (
    "Nurtec",
    "Ubrelvy",
    "Aimovig",
    "Emgality",
    "Rexulti",
    "Vraylar",
    "Caplyta",
    "Trintellix",
    "Wegovy",
    "Zepbound",
    "Rybelsus",
    "Invokana",
    "Kerendia",
    "Multaq",
    "Ranexa",
    "Repatha",
    "Praluent",
    "Nexletol",
    "Linzess",
    "Xifaxan",
    "Creon",
    "Dificid",
    "Zyvox",
    "Bactroban",
    "mupirocin",
    "Silvadene",
    "Santyl",
    "Restasis",
    "Xiidra",
    "Lumigan",
    "latanoprost",
    "timolol",
    "Combigan",
    "Eylea",
    "Ciprodex",
    "Flonase",
    "Belsomra",
    "Dayvigo",
    "Quviviq",
    "Xyrem",
    "Wakix",
    "Nuvigil",
    "modafinil",
    "trazodone",
    "mirtazapine",
    "buspirone",
    "Strattera",
    "Qelbree",
    "naltrexone",
    "Vivitrol",
    "Sublocade",
    "Chantix",
    "varenicline",
    "Antabuse",
    "Campral",
    "lithium",
    "clozapine",
    "Invega Sustenna",
    "meloxicam",
    "cyclobenzaprine",
    "baclofen",
    "tizanidine",
    "Robaxin",
    "Paxil",
    "Xanax",
    "Valium",
    "Zyrtec",
    "Claritin",
    "Maxalt",
    "Tessalon",
    "Effient",
    "Lupron",
    "Nexplanon",
    "Malarone",
    "Dukoral",
)
HOLDOUT_DOSES = (
    "75 mg",
    "2 mg",
    "0.25 mg",
    "150 mg",
    "1 drop",
    "1 spray each nostril",
    "3 g",
    "2.4 mg",
    "380 mg",
    "0.5 mL",
    "7.5 mg",
    "100 mg",
    "4 mg",
)
HOLDOUT_SIGS = (
    "at onset of migraine",
    "OU nightly",
    "OS BID",
    "SC weekly",
    "IM monthly",
    "PO at bedtime",
    "PO q8h PRN spasm",
    "topically to the wound bed daily",
    "with the first bite of each meal",
    "PO daily x 14 days",
    "half an hour before sleep",
    "every 12 weeks",
)
# Contraceptive and hormone brands that are also women's given names: only with their dose.
HOLDOUT_NAMELIKE_DRUGS = (
    ("Heather", "0.35 mg PO daily"),
    ("Camila", "0.35 mg daily"),
    ("Errin", "0.35 mg daily"),
    ("Jolivette", "0.35 mg PO daily"),
    ("Alora", "0.05 mg/day patch 2x/week"),
    ("Mirena", "52 mg IUD, placed"),
    ("Kyleena", "19.5 mg IUD in place"),
    ("Skyla", "13.5 mg IUD in place"),
)
HOLDOUT_VACCINES = (
    "Shingrix",
    "Prevnar 20",
    "Gardasil 9",
    "Arexvy",
    "Abrysvo",
    "Boostrix",
    "Adacel",
    "Comirnaty",
    "Spikevax",
    "Fluzone High-Dose",
    "Flublok",
    "Fluad",
    "Heplisav-B",
    "Twinrix",
    "Havrix",
    "Engerix-B",
    "Vaxchora",
    "Typhim Vi",
    "Ixiaro",
    "Imovax Rabies",
    "RabAvert",
    "Menveo",
    "MenQuadfi",
    "Bexsero",
    "Trumenba",
    "Pneumovax 23",
    "Vaxneuvance",
    "Beyfortus",
    "ProQuad",
    "Varivax",
    "YF-Vax",
    "Jynneos",
)
HOLDOUT_EPONYMS = (
    "Ramsay Hunt syndrome",
    "Todd's paralysis",
    "Gilbert's syndrome",
    "May-Thurner syndrome",
    "Wilson's disease",
    "Lynch syndrome",
    "Bowen's disease",
    "Gardner syndrome",
    "Christmas disease",
    "Vincent's angina",
    "Bernard-Soulier syndrome",
    "Tommy John injury",
    "Scheuermann's kyphosis",
    "Bankart lesion",
    "Hill-Sachs lesion",
    "Salter-Harris II fracture",
    "Maisonneuve fracture",
    "Monteggia fracture",
    "Lisfranc injury",
    "Kienbock disease",
    "Haglund deformity",
    "Fuchs dystrophy",
    "Stargardt disease",
    "Coats disease",
    "Adie tonic pupil",
    "Sturge-Weber syndrome",
    "Waardenburg syndrome",
    "Usher syndrome",
    "Pendred syndrome",
    "Alport syndrome",
    "Korsakoff syndrome",
    "Asperger's",
    "Capgras delusion",
    "Kleine-Levin syndrome",
    "Willis-Ekbom disease",
    "Pickwickian syndrome",
    "Marjolin ulcer",
    "Buerger disease",
    "Martorell ulcer",
    "Pott's disease",
    "Hansen's disease",
    "Chagas disease",
    "Brown-Sequard syndrome",
    "Erb's palsy",
    "Tietze syndrome",
    "Burkitt lymphoma",
    "Ewing sarcoma",
    "Merkel cell carcinoma",
    "Budd-Chiari syndrome",
    "Fanconi anemia",
    "Henoch-Schonlein purpura",
)
HOLDOUT_EXAMS = {
    "ear": (
        "Weber lateralizes left",
        "Rinne negative on the right",
        "Dix-Hallpike positive to the right",
        "Romberg steady",
        "Stenger negative",
        "HINTS exam benign",
    ),
    "eye": (
        "Amsler grid normal",
        "Ishihara 14/14 plates",
        "Marcus Gunn pupil absent",
        "Seidel negative",
        "Schirmer 6 mm at 5 min",
        "Hirschberg centered",
    ),
    "msk": (
        "Berg Balance 41/56",
        "Tinetti 19/28",
        "Thompson test negative",
        "Trendelenburg gait",
        "Spurling test positive",
        "Hawkins-Kennedy positive",
        "Neer sign positive",
        "Apley scratch limited",
        "Oswestry 34%",
        "Lysholm 62",
        "Tegner 4",
        "Allen test normal",
        "Semmes-Weinstein monofilament absent",
        "Rutherford class 3",
        "Stemmer sign positive",
    ),
    "bh": (
        "C-SSRS screen negative",
        "Mini-Cog 3/5",
        "Folstein MMSE 26/30",
        "Clinical Frailty Scale 5",
        "RASS -1",
        "Columbia screen low risk",
    ),
    "sign": (
        "Austin Flint murmur",
        "Graham Steell murmur",
        "Sister Mary Joseph nodule",
        "Grey Turner sign",
        "Cullen sign",
        "Chvostek sign positive",
        "Trousseau sign negative",
        "Rovsing sign positive",
        "McBurney point tender",
        "Levine sign",
        "Kussmaul respirations",
        "Osler nodes",
        "Janeway lesions",
        "Roth spots",
        "Virchow node palpable",
        "Lhermitte sign",
        "Hoffmann sign negative",
        "Norton scale 12",
        "Bristol stool type 6",
        "Epworth 15/24",
        "STOP-BANG 6",
    ),
}
HOLDOUT_FACILITIES = (
    "Hazelden Betty Ford",
    "Shirley Ryan AbilityLab",
    "Henry Ford Hospital",
    "Walter Reed",
    "Mary Free Bed Rehabilitation",
    "Helen DeVos Children's",
    "Lucile Packard Children's",
    "Craig Hospital",
    "Grady Memorial",
    "Jackson Memorial",
    "Sister Kenny Rehabilitation",
    "Frazier Rehab",
    "Mary Bridge Children's",
    "Bascom Palmer",
    "Wills Eye",
    "Mass Eye and Ear",
    "House Ear Clinic",
    "McLean Hospital",
    "Sheppard Pratt",
    "Spaulding Rehabilitation",
    "Kessler Institute",
    "Rancho Los Amigos",
    "Mount Sinai",
    "NYU Langone",
    "Intermountain",
    "Banner Health",
    "AdventHealth",
    "Atrium Health",
    "Barnes-Jewish",
    "Harborview",
    "Concentra",
    "Passport Health",
    "Acadian Ambulance",
    "LifeFlight",
    "Planned Parenthood",
    "the Red Cross",
)
HOLDOUT_PHARMACIES = (
    "MinuteClinic",
    "Rite Aid",
    "Kroger Pharmacy",
    "Publix Pharmacy",
    "Costco Pharmacy",
    "Walmart Pharmacy",
    "Express Scripts",
    "OptumRx",
)
HOLDOUT_RELDATES_PAST = (
    "the Tuesday before last",
    "a fortnight ago",
    "since the weekend",
    "five nights ago",
    "at the last visit",
    "earlier in the shift",
    "on the prior admission",
    "about ten days back",
    "late yesterday",
    "first thing this morning",
    "ninety days ago",
)
HOLDOUT_RELDATES_FUTURE = (
    "this coming Monday",
    "at the six-week recheck",
    "in a month or so",
    "in ninety days",
    "before the next dose",
    "at the 3-month mark",
    "within 48 hours",
    "two weeks from Friday",
    "the day after tomorrow",
    "at the next fitting",
)
HOLDOUT_CVX = ("03", "08", "21", "33", "62", "115", "121", "133", "141", "150", "187", "197", "300")
HOLDOUT_PRODUCTS = {
    "transport": (
        "HCPCS A0427 (ALS1 emergency)",
        "A0429 BLS emergency",
        "A0433 ALS2",
        "A0434 specialty care transport",
        "A0428 BLS non-emergency",
    ),
    "resp": (
        "3M 1860 N95, regular",
        "3M 8210",
        "Halyard FluidShield N95",
        "3M 6502QL half facepiece",
        "Moldex 2200",
    ),
    "brace": (
        "total contact cast",
        "CAM boot (L4361)",
        "DH offloading walker",
        "hinged knee brace L1833",
        "post-op shoe (L3260)",
    ),
    "cpap": (
        "ResMed AirSense 11",
        "DreamStation 2 Auto",
        "AirMini",
        "Luna G3",
        "AirCurve 10 VAuto",
    ),
    "iol": ("AcrySof IQ SN60WF", "Tecnis ZCB00", "enVista MX60", "Clareon CNA0T0"),
    "cpt": ("97110", "97140", "97530", "92557", "95810", "90471", "97597", "99497", "92014"),
    "loinc": ("2823-3", "2951-2", "718-7", "4548-4", "2345-7", "6690-2", "777-3", "1975-2"),
}
# The holdout family's invented names avoid these words too.
_HOLDOUT_NEGATIVE_WORDS = _NEGATIVE_WORDS | {
    w.lower()
    for phrase in HOLDOUT_DRUGS
    + tuple(d for d, _ in HOLDOUT_NAMELIKE_DRUGS)
    + HOLDOUT_VACCINES
    + HOLDOUT_EPONYMS
    + tuple(e for group in HOLDOUT_EXAMS.values() for e in group)
    + HOLDOUT_FACILITIES
    + HOLDOUT_PHARMACIES
    for w in re.findall(r"\w+", phrase)
}


def _holdout_reading(maker: _Maker, domain: str) -> str:
    rng = maker.rng
    if domain not in ("ear", "eye", "sleep", "pt", "wound", "bh", "crit"):
        domain = rng.choice(("ear", "eye", "sleep", "pt", "wound", "bh", "crit"))
    if domain == "ear":
        options = (
            f"PTA {rng.randint(10, 85)} dB HL right",
            f"SRT {rng.randint(5, 70)} dB",
            f"WRS {rng.randint(40, 100)}% left",
            f"tympanogram type {rng.choice(('A', 'As', 'B', 'C'))}",
            "OAEs absent bilaterally",
            f"thresholds {rng.randint(20, 50)}-{rng.randint(55, 110)} dB at 4 kHz",
        )
    elif domain == "eye":
        options = (
            f"VA 20/{rng.choice((20, 25, 30, 40, 60, 80, 200))} OD",
            f"IOP {rng.randint(9, 34)} mmHg OS",
            f"CDR 0.{rng.randint(2, 9)}",
            f"20/{rng.choice((20, 25, 30, 40))} OU",
            f"central thickness {rng.randint(240, 520)} microns",
            f"K {rng.uniform(40, 47):.2f}/{rng.uniform(41, 48):.2f}",
        )
    elif domain == "sleep":
        options = (
            f"AHI {rng.uniform(2, 80):.1f}/h",
            f"ODI {rng.randint(2, 60)}",
            f"nadir SpO2 {rng.randint(68, 92)}%",
            f"sleep efficiency {rng.randint(45, 96)}%",
            f"REM latency {rng.randint(60, 140)} min",
            f"PLM index {rng.randint(0, 40)}",
        )
    elif domain == "pt":
        options = (
            f"knee flexion 0-{rng.randint(60, 135)} deg",
            f"MMT {rng.choice(('3', '3+', '4-', '4', '4+'))}/5 hip abduction",
            f"TUG {rng.randint(7, 32)} s",
            f"6MWT {rng.randint(120, 560)} m",
            f"grip {rng.randint(8, 48)} kg",
            f"shoulder flexion {rng.randint(70, 180)} deg",
        )
    elif domain == "wound":
        options = (
            f"{rng.uniform(0.5, 9):.1f} x {rng.uniform(0.3, 6):.1f} x {rng.uniform(0.1, 2):.1f} cm",
            f"{rng.randint(10, 90)}% slough, {rng.randint(10, 90)}% granulation",
            "moderate serosanguinous drainage",
            f"undermining {rng.uniform(0.5, 4):.1f} cm at {rng.randint(1, 12)} o'clock",
            "periwound maceration",
            f"ABI {rng.uniform(0.4, 1.3):.2f}",
        )
    elif domain == "bh":
        options = (
            f"PCL-5 of {rng.randint(5, 70)}",
            f"EPDS {rng.randint(2, 26)}",
            f"AUDIT-C {rng.randint(0, 12)}",
            f"CIWA-Ar {rng.randint(0, 30)}",
            f"COWS {rng.randint(0, 30)}",
            f"ASRS {rng.randint(1, 6)}/6",
        )
    else:
        options = (
            f"potassium {rng.uniform(6.2, 7.8):.1f} mmol/L",
            f"sodium {rng.randint(108, 121)} mmol/L",
            f"hemoglobin {rng.uniform(4.8, 6.9):.1f} g/dL",
            f"platelets {rng.randint(3, 19)} K/uL",
            f"calcium {rng.uniform(12.5, 15):.1f} mg/dL",
            f"troponin I {rng.uniform(0.5, 30):.2f} ng/mL",
            f"lactic acid {rng.uniform(4, 11):.1f} mmol/L",
            "blood culture with gram-positive cocci in clusters",
            f"ammonia {rng.randint(90, 240)} umol/L",
            f"lithium level {rng.uniform(1.6, 3.2):.1f} mmol/L",
        )
    return rng.choice(options)


def _holdout_negative(maker: _Maker, name: str, variant: str) -> str:
    """The hard negatives only the holdout family's templates have slots for."""
    rng = maker.rng
    if name == "rx":  # rx: name, dose and directions; rx:name the name alone
        if variant != "name" and rng.random() < 0.25:
            brand, dose = rng.choice(HOLDOUT_NAMELIKE_DRUGS)
            return f"{brand} {dose}"
        drug = rng.choice(HOLDOUT_DRUGS)
        if variant == "name":
            return drug
        return f"{drug} {rng.choice(HOLDOUT_DOSES)} {rng.choice(HOLDOUT_SIGS)}"
    if name == "vax":
        return rng.choice(HOLDOUT_VACCINES)
    if name == "dx":
        return rng.choice(HOLDOUT_EPONYMS)
    if name == "exam":  # exam:ear, eye, msk, bh, sign, or any
        group = HOLDOUT_EXAMS.get(variant) or HOLDOUT_EXAMS[rng.choice(sorted(HOLDOUT_EXAMS))]
        return rng.choice(group)
    if name == "site":  # site:pharmacy, or a hospital, clinic or service
        return rng.choice(HOLDOUT_PHARMACIES if variant == "pharmacy" else HOLDOUT_FACILITIES)
    if name == "rel":  # rel:past, rel:future
        return rng.choice(HOLDOUT_RELDATES_PAST if variant == "past" else HOLDOUT_RELDATES_FUTURE)
    if name == "reading":  # reading:ear, eye, sleep, pt, wound, bh, crit, or any
        return _holdout_reading(maker, variant)
    if name == "product":  # product:vaccine, transport, resp, brace, cpap, iol, cpt, loinc
        if variant == "vaccine":
            return f"CVX {rng.choice(HOLDOUT_CVX)}"
        if variant == "iol":
            power = rng.randint(32, 52) / 2
            return f"{rng.choice(HOLDOUT_PRODUCTS['iol'])} +{power:.1f} D"
        if variant not in HOLDOUT_PRODUCTS:
            variant = rng.choice(("cpt", "loinc", "transport"))
        code = rng.choice(HOLDOUT_PRODUCTS[variant])
        return {"cpt": f"CPT {code}", "loinc": f"LOINC {code}"}.get(variant, code)
    if name == "edge_age":  # an age of 80 to 89 (not PHI), in forms near the labelled ones
        n = rng.choice((80, 82, 84, 85, 86, 87, 88, 89, 89, 89))
        words = rng.random() < 0.25
        num = _number_words(n) if words else str(n)
        form = variant if variant in ("adj", "np") else rng.choice(("adj", "np"))
        if form == "adj":
            return num + rng.choice(("-year-old", " y/o", " yo", "-yr-old"))
        return rng.choice((f"aged {num}", f"age {num}", f"{num} years old", f"{num} years of age"))
    raise KeyError(name)


_RAW["holdout"] = {
    "note": """
DOT exam: {young_age:adj} {sex} trucker, CDL {LICENSE:drivers}; {reading:pt}; card for {duration}.
Needlestick in the cath lab at {time}; source patient {PERSON:initial_last} (MRN {MRN}) consented.
Collector {PERSON:full} sealed the split specimen at {time}; donor's licence {LICENSE:drivers}.
Return to work: may lift 20 lb from {DATE} on; {exam:msk}, {reading:pt}, {rx} for flares.
Comp carrier opened claim {ACCOUNT:claim}; adjuster {PERSON:titled} wants notes at {PHONE:us_dash}.
Fit test passed ({product:resp}); employee {PERSON:middle_initial}, {young_age:np}, cleared.
PT visit 6 of 12 after ACL reconstruction: {reading:pt}, {exam:msk}; home program progressed, {rx}.
Driver rehab: spinner knob fitted to the {car}, VIN {VEHICLE:vin}; road test {rel:future}.
Plan of care certified by {PERSON:clinician} through {DATE:month_d_y}; {product:cpt}, twice a week.
Mark the tender point over the lateral epicondyle before dry needling; {exam:msk}, {reading:pt}.
BH intake: {young_age:adj} {sex}, low mood, {exam:bh}; lives with {relation} {PERSON:first_only}.
Collateral from the sister, {PERSON:full} ({PHONE}): stopped {rx:name} {rel:past}, not sleeping.
Safety plan copy e-mailed to {EMAIL:personal}; crisis line and {site} walk-in hours reviewed.
Guardian ad litem {PERSON:titled} requested the treatment summary for the hearing on {DATE:month_d}.
Substance use: {rx:name} on and off since {year}, last {rel:past}; {reading:bh}; to {site}.
Faith community remains her main support; {dx} ruled out, {rx} continued, {reading:bh}.
Vaccine administered {DATE} at {time}: {vax}, left deltoid, {product:vaccine}; no syncope.
Registry updated for {PERSON:last_first}, born {DATE:full}; {vax} dose 2 due {rel:future}.
Travel visit: off to rural West Africa {rel:future}; {vax} and {vax} given, Malarone started.
Staff flu clinic: {PERSON:upper} declined {vax} on religious grounds; declination on file.
Wound clinic: {reading:wound}; Pat dry, apply {rx:name} and a foam border, change every third day.
Wound vac {DEVICE:serial} leaking; rep {PERSON:full} to swap the canister at {ADDRESS} {rel:future}.
Hyperbaric dive 14 of 30 for {dx}; {reading:wound}; {PERSON:titled} equalized without difficulty.
Serial wound photos uploaded to {URL} from the bedside tablet at {IP}; {dx} healing at the edges.
PSG: {reading:sleep}, {reading:sleep}; {dx} not supported; CPAP titrated to 10 cm H2O.
Sleep tech {PERSON:initials} applied the montage at {time}; {PERSON:titled} slept 5.2 hours.
CPAP compliance pulled from unit {DEVICE:serial}: used 27 of 30 nights, {reading:sleep}.
Home sleep test kit {DEVICE:udi_gs1} went out by courier to {POSTAL} and came back {rel:past}.
Drowsy-driving talk with a long-haul trucker; tractor VIN {VEHICLE:vin} on the FMCSA form.
Ophtho: {reading:eye}, {reading:eye}; Iris flat, lens 2+ nuclear sclerosis; {dx} OD.
Misty vision OS {rel:past}; {exam:eye}; {PERSON:titled} will see her back on {DATE:md}.
Phaco with {product:iol} OD on {DATE:iso}; {PERSON:last_first}'s implant card: {DEVICE:udi_hibcc}.
Low-vision referral to {site}; she stopped driving in {year}, plate {VEHICLE:plate} turned in.
Audiogram: {reading:ear}, {reading:ear}; {exam:ear}; pattern fits {dx}.
CI processor {DEVICE:serial} remapped for {PERSON:first_only}; mom {PERSON:full} ({young_age:np}).
Hearing aids shipped to {ADDRESS:unit}, {ADDRESS:city}, {state} {ZIP:zip9}; fitting {rel:future}.
Audiology: {AGE:adj} who hears best on the left; family to face him when talking, {reading:ear}.
To {payer} utilization review: please cover {rx} for {PERSON:full}, ID {HEALTH_PLAN:member}.
She has tried and failed {rx:name} and {drug:name}; {dx} documented since {year}, {reading}.
Questions to my office at {PHONE:us_paren} (fax {PHONE}); my NPI for reference: {LICENSE:npi}.
Enclosed are the denial for claim {ACCOUNT:claim}, dated {DATE:month_d_y}, and the chart notes.
Sincerely, {PERSON:clinician}, writing for a {AGE:adj} whose {dx} limits every daily activity.
Critical {reading:crit} phoned by {PERSON:full} of the core lab; read back by {PERSON:initial_last}.
Critical result on MRN {MRN:hyphenated}: {reading:crit}; covering resident paged, {rx} ordered.
Office closed: critical left with the answering service, {PHONE:us_dot}, for {PERSON:titled}.
Outpatient draw: {reading:crit}; reached at home and sent to {site}; {exam:sign}.
Grievance: the {relation}, {PERSON}, says the call light went unanswered an hour on {DATE:ordinal}.
Complainant wants a reply at {EMAIL} or by post to {ADDRESS:po_box}, {ADDRESS:city}, {state} {ZIP}.
Patient relations: ticket on plate {VEHICLE:plate} while she was upstairs at {site}; fee refunded.
Billing grievance: card {ACCOUNT:card} charged twice; account {ACCOUNT:billing} credited in full.
Research consent for {PERSON:full} taken by coordinator {PERSON:initials} on {DATE}; copy given.
Participant portal activated for {EMAIL:work}; study wearable {DEVICE:serial} paired to the phone.
Eligibility: {young_age:adj} {sex} with {dx}; exclusion if {exam:sign} or {reading}.
Subject withdrew by phone from {PHONE:intl}; no more samples to be drawn, data kept per protocol.
Stipend for visit 3 loaded onto study card {ACCOUNT:card}.
Ambulance run: {product:transport}, picked up at {POSTAL} at {time}; 12.4 loaded miles.
Medic {PERSON:initial_last} (state EMS licence {LICENSE:medical}) handed over at {site} at {time}.
Transport billed to Medicare, MBI {HEALTH_PLAN:mbi}; Medicaid secondary {HEALTH_PLAN:medicaid}.
Scene: single-vehicle rollover, the patient's {car} (VIN {VEHICLE:vin}) on its roof; {exam:sign}.
Run report uploaded from the rig's tablet ({IP:v6}) at {time}.
Decedent: {PERSON:last_first+upper}, {AGE:np}; died {DATE:full} at {time}.
Cause of death: (a) {dx}, interval {duration}; (b) {eponym}; manner natural; {code}.
Informant: {relation} {PERSON:middle_initial}, reachable at {PHONE}; residence {ADDRESS}.
Decedent's SSN {SSN} matched the funeral director's worksheet; a machinist since {year}.
Pronounced by {PERSON:clinician} at {time}; the medical examiner declined the case.
Pre-anesthesia: {young_age:adj} {sex}, {exam:sign}, {lab}; hold {rx:name} 48 hours before the block.
Allergy clinic: mite and cat positive, {lab}; {relation} {PERSON:first_only} trained on the pen.
Poison center: {young_age:np} caller says the toddler chewed two {rx:name} tablets; well at {time}.
Genetic counselling: {dx} in the paternal line; a cousin, {PERSON:titled}, positive in {year}.
Cardiac rehab: {reading:pt}, {exam:sign}; Max dose of {rx:name} reached, so {rx:name} added.
Dietitian: Clay-coloured stools and weight loss reported, {lab}; back to {PERSON:titled}.
Chaplain visit asked for by the daughter, {PERSON:first_only}; the patient, now {AGE:num}, wants it.
Video interpreter ({lang}) used; patient {PERSON:initials} verified by birth date {DATE:compact}.
Teledermatology: images uploaded through {URL:scheme}; shin lesion, {exam:sign}.
Imaging tech signed in to the OCT from {IP:v4}; scans exported for {PERSON:titled}.
Jury-service excusal letter mailed to {POSTAL}; {dx} prevents sitting for long.
Farmworker clinic: consular ID seen, no SSN given; family abroad reachable at {PHONE:intl}.
Jail infirmary: {PERSON:last_first}, detention health record {MRN:prefixed}, {reading:bh}.
Podiatry: {exam:msk}, {reading:wound}; Chase the bone culture and offload with a {product:brace}.
Pulmonary rehab: walked 310 m, {lab}; concentrator serial {DEVICE:serial} checked by the vendor.
Lactation consult: mother {PERSON:full} ({young_age:np}); baby born {DATE:month_d} at 38 weeks.
Fertility clinic: transfer planned for {DATE}; partner's SSN {SSN:spaced} needed for consents.
SSN {SSN:invalid} on the referral fails the payer edit; call {PERSON:first_only}, {PHONE:us_plus1}.
Self-pay plan on guarantor account {ACCOUNT:account}; statements go abroad to {ADDRESS:intl_street}.
Traveller will stay at {POSTAL} for six months; {vax} given, {rx:name} packed.
Nurse reviewer at {payer} confirmed group {HEALTH_PLAN:group}; plan year restarted {DATE:md}.
State Medicaid ({HEALTH_PLAN:medicaid}) covers one pair of aids every 5 years; {product:cpt}.
Found by a neighbour at {ADDRESS}, {ADDRESS:city}; family gives the age as {AGE:num}.
Pharmacy ({site:pharmacy}, DEA {LICENSE:dea}) confirmed the {rx:name} fill; {PERSON:titled} told.
Wound nurse {PERSON:initials}, WOCN, measured {reading:wound}; next dressing change {rel:future}.
Fundus photos done; the daughter asked that results go to {EMAIL:personal}.
Husband is {edge_age:np}; the patient herself is {AGE:np}, both independent in ADLs.
Eye clinic: {edge_age:adj} {sex} with {dx}, {reading:eye}, {exam:eye}.
OT: {edge_age:adj} {sex}, {eponym}, on {drug}, {lab}; needs help on stairs since {reldate}.
Hospice aide reports {reading:wound} on the heel; {PERSON:titled} ({young_age:np}) keeps {rx}.
""",
    "message": """
[assistant] Hi! I can help with refills. First, your date of birth? [you] {DATE}
[you] refill {rx:name} pls [assistant] I found a chart for {PERSON:initial_last}. Is that you?
[assistant] Please type the ID printed on your insurance card. [you] {HEALTH_PLAN:member}
[you] the red white n blue one says {HEALTH_PLAN:mbi} [assistant] Thanks! Checking {rx:name}.
[assistant] Which number should the pharmacy call? [you] {PHONE}
[you] agent [assistant] Connecting you with {PERSON:first_only} from patient access, ~4 minutes.
[assistant] To verify, type the last 4 of your SSN. [you] oops the whole thing is {SSN}
[assistant] You're booked with {PERSON:titled} on {DATE:month_d} at {time}. Reply 1 to add it.
[you] do u still have me at {POSTAL}
[assistant] A reset link went to {EMAIL}. [you] ok got it ty
[you] sign in fails every time from {IP} [assistant] I've unlocked the account, try again.
[you] here's my social {SSN:dashed} [assistant] For your safety, please don't share it in chat.
[assistant] Which pharmacy? [you] the {site:pharmacy} on {ADDRESS:us_street}
[you] acct {ACCOUNT:account} [assistant] That account shows a balance of $0.00.
[assistant] Is this about {PERSON:full}, born {DATE:full}? [you] yes my son
[you] is the pacer clinic {PHONE:us_dot} [assistant] Yes, open 8 to 5 on weekdays.
[you] {URL:www} wont open [assistant] Try the app instead, or call the help desk.
[assistant] Sorry, I can't read photos of plates. [you] fine its {VEHICLE:plate}, for parking
vax clinic: ur appt at {site} is {DATE:md} {time}. bring ur card + a mask. reply Y to keep it
got my {vax} today, arm is killing me, is {rx:name} ok? - {PERSON:first_only}
hi again, {PERSON:lower+full} from PT here, can we move thurs to fri? knee is {reading:pt}
work comp claim # {ACCOUNT:claim}, adjuster says u never sent the notes
boss needs the return to work note by {DATE:md}, fax is {PHONE:us_dash}
cpap blows air in my eyes all night, machine sn {DEVICE:serial}, mask size M
do i drop the sleep study box at {ADDRESS} or mail it back? they think its {dx}
eye dr says {dx}, no driving after the drops, can my {relation} {PERSON:lower} pick me up
box label says {DEVICE:udi_hibcc}, is that the # u need for the hearing aid recall
im {AGE:num}, had aids since {year} and my ears are fine, pls tell my {relation} that
measured the wound like u showed me: {reading:wound}. pic {URL}
Pat dry first then the cream?? or cream then gauze, {rx:name} is almost gone
Max i can do is 10 min on the bike before my knee swells, {exam:msk} at PT
the valet scraped my {car} (had it since {year}), plate {VEHICLE:plate}, who do i complain to
ambulance bill {ACCOUNT:billing} says i owe $1,200?? medicaid card says {HEALTH_PLAN:medicaid}
why did {site} charge my card {ACCOUNT:card} when i have coverage
consent form lists {EMAIL:work} as the study contact, legit or spam?
{PERSON:lower+titled} from the study wants my bp readings here: {lab}
funeral home needs dads dob {DATE:full} and ssn {SSN} for the certificate
dad passed {rel:past}, he was {AGE:num}. does {PERSON:lower+titled} sign the death cert?
grandma {PERSON:first_only} is {edge_age:np}, the intake sheet has her age wrong
shes {AGE:adj} and cant do stairs, the ambulance has to come to {ADDRESS:unit}
new zip {ZIP} + new cell {PHONE}, update pls so the home nurse finds me
relocated to {ADDRESS:city} for my {relation}'s job, zip {ZIP:zip5}
send the injury forms to {ADDRESS:po_box}, my mailbox got smashed
dl {LICENSE:drivers} got suspended after the seizure, how long til i can drive
is {LICENSE:medical} my OT's license number? the school form wants it
the {rx:name} script bounced, something about prescriber {LICENSE:dea} not valid for schedule II
npi for the walker order is {LICENSE:npi}? supplier keeps asking
found the implant card!! {DEVICE:udi_gs1}
the chart number u have is {MRN:digits} but mine is {MRN:digits}, u merged me w someone else
wristband from {site} says {MRN:prefixed}, do u need that one
vision screening form: born {DATE:mdy_short}, grade 3, {PERSON:lower+last_first}
got towed at {site} while i was in for my {dx}, vin {VEHICLE:vin} is on the slip, help
i sent the complaint to {EMAIL} and nobody answered since {reldate}
new plan is {payer}, id {HEALTH_PLAN} grp {HEALTH_PLAN:group}, pls redo the prior auth
lol wrong number, meant to text {PERSON:first_only} at {PHONE:us_plain}
video visit failed, the vpn showed my ip as {IP:v6}, is that why
the memorial livestream is at {URL:bare} if the care team wants to watch
my pcp {PERSON:clinician} retired, who do i see now for the {dx}
been on {rx} since {year}, new eye dr wants {drug:name} instead, thoughts?
Summer camp form needs the {vax} record and the {rx:name} dose {rel:future}
im interpreting for {PERSON:initials}, she has {dx} and says the drops burn, {reading:eye}
he turned {AGE:num} {rel:past} and still mows the lawn, does he need {vax}
the mobile x-ray truck comes to {POSTAL}? its the blue house
research visit {DATE:ordinal}? i put it in my calendar as {DATE:iso}
my {relation} is {edge_age:np} and takes {drug}, can they get the {vax} too
""",
    "form": """
Employee: {PERSON:last_first}   Forklift operator since {year}   Shift: nights
Injured on: {DATE}   Body part: L wrist   Witnessed: Y   Reported: {rel:past}
WC carrier claim #: {ACCOUNT:claim}   Adjuster line: {PHONE}
CDL #: {LICENSE:drivers}   Class: A   Med card expires: {DATE:mdy_slash}
Tractor VIN: {VEHICLE:vin}   Trailer plate: {VEHICLE:plate}
Collection: 10-panel urine, {product:loinc}   Collector: {PERSON:initials}   Result: negative
Referring provider: {PERSON:clinician}   Dx: {dx}   {code}
Precautions: {exam:msk}; {reading:pt}   Visits authorized: 12   Frequency: 2x/wk
Home exercise portal: {URL:scheme}   Username: {EMAIL}
Preferred name: {PERSON:first_only}   Pronouns: they/them   Age: {young_age:num}
Safe contact: {PERSON:full} ({relation})   OK to text: {PHONE:us_dash}
Screeners: {reading:bh}; {exam:bh}   Prior treatment: {site}
Legal: court-ordered   Probation officer: {PERSON:titled}   Officer phone: {PHONE}
Vaccine: {vax}   Dose: 0.5 mL   Route: IM   {product:vaccine}
Recipient: {PERSON:upper}   DOB: {DATE:full}   Age at dose: {young_age:num}
Given by: {PERSON:initials}   Date given: {DATE}   Site: R deltoid   Next due: {rel:future}
Wound 2 location: sacrum   Wound bed: {reading:wound}   Photo link: {URL}
NPWT unit serial: {DEVICE:serial}   Canister changed: {DATE:md}
Study: split-night PSG   Findings: {reading:sleep}; {reading:sleep}   Impression: {dx}
PAP device: {product:cpap}   Serial: {DEVICE:serial}   Modem IP: {IP}
Epworth: 14/24   Drives for a living: Y   Licence no.: {LICENSE:drivers}
Acuity: {reading:eye}   Pressure: {reading:eye}   Return: {rel:future}
Lens implanted: {product:iol}   Implant UDI: {DEVICE:udi_hibcc}   Eye: OD
Left aid serial: {DEVICE:serial}   Right aid serial: {DEVICE:serial}   Warranty to: {DATE:month_y}
Newborn hearing screen: {reading:ear}   Refer to: {site}   Parent e-mail: {EMAIL:personal}
Insured's name: {PERSON:last_first}   Insured's ID number: {HEALTH_PLAN:member}   Carrier: {payer}
Drug requested: {rx}   Quantity: 90   Days supply: 90   Tried first: {drug:name}
Prescribing clinician's NPI: {LICENSE:npi}   Office fax: {PHONE:us_paren}
Diagnosis: {dx}   Onset: {year}   Supporting labs: {reading:crit}
Insured's birth date: {DATE:full}   Other coverage: Medicaid {HEALTH_PLAN:medicaid}
Critical value: {reading:crit}   Called to: {PERSON:initial_last}   Read back: Y   At: {time}
Patient MRN: {MRN}   Specimen collected: {DATE:iso} {time}
Complainant: {PERSON}   Relationship to patient: {relation}   Best number: {PHONE}
Incident date: {DATE}   Where: {site}, {room}   Staff member named: {PERSON:first_only}
Reply preference: e-mail   Reply to: {EMAIL}
Participant: {PERSON:full}   Consent version: 4.1   Signed on: {DATE}
Witness: {PERSON:middle_initial}   LAR: n/a   Copy given to participant: Y
Reimbursement card #: {ACCOUNT:card}   Visit: 3 of 8   Amount: $50.00
Wearable serial: {DEVICE:serial}   Paired from IP: {IP:v4}
Pickup location: {POSTAL}   Destination: {site}   Stretcher: Y
Crew lead: {PERSON:initial_last}, paramedic   EMS licence: {LICENSE:medical}   Unit: Medic 7
Primary payer: Medicare   MBI: {HEALTH_PLAN:mbi}   Secondary: {payer}   Group: {HEALTH_PLAN:group}
Service level: {product:transport}   Loaded miles: 14.2   Oxygen: 2 L
Patient account: {ACCOUNT:billing}   Balance after insurance: $312.40
Origin street: {ADDRESS:us_street}, {ADDRESS:city}, {state} {ZIP:zip9}
Decedent's legal name: {PERSON:upper}   Sex: {sex}   Age in years: {AGE:num}
Date of death: {DATE:full}   Time pronounced: {time}   Place of death: {site}
Decedent SSN: {SSN}   Usual residence: {ADDRESS}, {ADDRESS:city} {ZIP}
Informant: {PERSON:full}   Informant mailing address: {POSTAL}
Immediate cause: {dx}   Interval: {duration}   Other significant: {eponym}
Certifier: {PERSON:clinician}   License no.: {LICENSE:medical}   Date certified: {DATE:mdy_slash}
Address abroad (if any): {ADDRESS:intl_street}   Overseas phone: {PHONE:intl}
Portal e-mail: {EMAIL:work}   Last sign-in from: {IP:v6}
Respite fund page: {URL:www}
Placard vehicle: {car}   Tag: {VEHICLE:plate}   VIN: {VEHICLE:vin}
Recall notice - product: {device_type}   UDI: {DEVICE:udi_gs1}
Medications: {rx}; {drug}   Vaccines today: {vax}
Clinic chart no.: {MRN:hyphenated}   Visit type: new patient   {code}
Detention health record: {MRN:prefixed}   Housing: B-2
Guardian: {PERSON:titled}   Guardian e-mail: {EMAIL}
Patient age: {AGE:num}   Lives with: {relation}, {edge_age}
SS#: {SSN:plain}   Marital status: widowed   Veteran: N
SSN for charity care screening: {SSN:test}
Card on file (last charged {rel:past}): {ACCOUNT:card}
After-hours contact: {PHONE:us_plus1}   Best time: {time}
City of residence: {ADDRESS:city}   Area: rural   ZIP+4: {ZIP:zip9}
Home (PO box): {ADDRESS:po_box}   Zip: {ZIP}
Primary insured: {PERSON:last_first+upper}   Insured DOB: {DATE:compact}
State plan no.: {HEALTH_PLAN:medicaid}   Spend-down met: Y
Screening time: {time}   Chart: Snellen   Result: {reading:eye}   Color: {exam:eye}
Symptoms: Misty vision OS, halos at night   Iris: brown   {exam:eye}   Since: {year}
Meds reconciled: {drug}; {rx}   Allergies: {rx:name}   Hx: {eponym}, since {year}
Hospice aide: {PERSON:first_only}   Visit days: Mon/Thu   Family: {relation}, {edge_age}
""",
}


TEMPLATES: dict[str, dict[str, list[str]]] = {
    family: {
        genre: [t for t in block.strip().splitlines() if t.strip()] for genre, block in g.items()
    }
    for family, g in _RAW.items()
}

SLOT = re.compile(r"\{(\w+)(?::([\w+]+))?\}")
LABELLED = {*KINDS, "POSTAL"}


def template_kinds(template: str) -> set[str]:
    """The kinds a template's labelled slots produce."""
    kinds = set()
    for name, _ in SLOT.findall(template):
        if name == "POSTAL":
            kinds |= {"ADDRESS", "ZIP"}
        elif name in LABELLED:
            kinds.add(name)
    return kinds


def _fill(maker: _Maker, template: str, genre: str) -> Piece:
    gens: dict[str, Callable[[str, str], Piece]] = {
        "PERSON": maker.person,
        "DATE": maker.date,
        "AGE": maker.age,
        "PHONE": maker.phone,
        "EMAIL": maker.email,
        "SSN": maker.ssn,
        "MRN": maker.mrn,
        "HEALTH_PLAN": maker.health_plan,
        "ACCOUNT": maker.account,
        "LICENSE": maker.license,
        "VEHICLE": maker.vehicle,
        "DEVICE": maker.device,
        "URL": maker.url,
        "IP": maker.ip,
        "ADDRESS": maker.address,
        "ZIP": maker.zip,
        "POSTAL": maker.postal,
    }
    out: Piece = []
    pos = 0
    for m in SLOT.finditer(template):
        out.append((template[pos : m.start()], "", ""))
        name, variant = m.group(1), m.group(2) or ""
        if name in gens:
            out.extend(gens[name](genre, variant))
        else:
            out.append((maker.negative(name, variant), "", ""))
        pos = m.end()
    out.append((template[pos:], "", ""))
    return out


# Names and dates come in the most forms: they get more than their share of the sentences.
SHARE = dict.fromkeys(KINDS, 1.0) | {"PERSON": 2.5, "DATE": 1.8}
SENTENCES_PER_SAMPLE = {"note": (1, 4), "message": (1, 3), "form": (2, 4)}
GENRE_WEIGHTS = {"note": 0.45, "message": 0.25, "form": 0.30}
JOINER = {"note": (" ",), "message": (" ", ". ", "\n", "! "), "form": ("\n",)}


def generate(seed: int, n: int, split: str) -> list[Sample]:
    """Samples holding at least `n` sentences in all, from the `split` family (dev, eval, test,
    holdout)."""
    if split not in TEMPLATES:
        raise ValueError(f"split must be one of {sorted(TEMPLATES)}, not {split!r}")
    rng = random.Random(f"{seed}:{split}")
    # Faker's seed: dev and eval keep the one they had as the only two families; test's and
    # holdout's differ.
    if split == "test":
        maker = _Maker(rng, seed * 2 + (1 << 40), _TEST_NEGATIVE_WORDS)
    elif split == "holdout":
        maker = _Maker(rng, seed * 2 + (2 << 40), _HOLDOUT_NEGATIVE_WORDS)
    else:
        maker = _Maker(rng, seed * 2 + (split == "eval"))
    family = TEMPLATES[split]
    pools: dict[tuple[str, str], list[str]] = {}
    for genre, templates in family.items():
        for t in templates:
            for kind in template_kinds(t) or {"NONE"}:
                pools.setdefault((genre, kind), []).append(t)
    counts = dict.fromkeys(KINDS, 0)
    samples: list[Sample] = []
    sentences = 0
    while sentences < n:
        genre = maker.pick(GENRE_WEIGHTS)
        lo, hi = SENTENCES_PER_SAMPLE[genre]
        k = min(rng.randint(lo, hi), max(1, n - sentences))
        text, spans = "", []
        for i in range(k):
            if rng.random() < 0.1 and (genre, "NONE") in pools:
                target = "NONE"
            else:  # the least seen of a few kinds: every kind gets its share
                target = min(rng.sample(KINDS, 4), key=lambda kind: counts[kind] / SHARE[kind])
            template = rng.choice(pools.get((genre, target)) or family[genre])
            if i:
                text += rng.choice(JOINER[genre])
            for part, kind, style in _fill(maker, template, genre):
                if kind:
                    spans.append(Span(len(text), len(text) + len(part), kind, style))
                    counts[kind] += 1
                text += part
        samples.append(Sample(text, tuple(spans), genre))
        sentences += k
    return samples


if __name__ == "__main__":  # a look at the corpus: python bench/phi_corpus.py [split] [n]
    import sys
    from collections import Counter

    split = sys.argv[1] if len(sys.argv) > 1 else "dev"
    out = generate(1, int(sys.argv[2]) if len(sys.argv) > 2 else 40, split)
    for s in out:
        marked, pos = [], 0
        for sp in s.spans:
            marked += [s.text[pos : sp.start], f"[{s.text[sp.start : sp.end]}|{sp.kind}]"]
            pos = sp.end
        print(f"--- {s.genre}\n{''.join(marked)}{s.text[pos:]}")
    print(Counter(sp.kind for s in out for sp in s.spans))
