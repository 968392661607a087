"""Person names: context cues, name lists, shape, and the recogniser's guesses, each with
its filter."""

from __future__ import annotations

import re

from wire.phi.base import Finding
from wire.phi.model import load
from wire.phi.words import (
    _NOT_NAMES,
    _NOT_PEOPLE,
    _PARTICLE_WORDS,
    _census_names,
    _english,
    _ordinary,
    _unknown,
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


_WORDISH = re.compile(r"[^\W\d_][\w'’-]*")


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
