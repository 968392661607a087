"""The synthetic clinical PHI corpus of bench/phi.py (bench/phi_corpus.py): deterministic, its gold
spans exactly the entities they claim, every kind and style in both template families, the two
families disjoint, hard negatives present and unlabelled."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_corpus():
    spec = importlib.util.spec_from_file_location("phi_corpus", ROOT / "bench" / "phi_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("phi_corpus", module)
    spec.loader.exec_module(module)
    return sys.modules["phi_corpus"]


pc = load_corpus()
SPLITS = ("dev", "eval")


@pytest.fixture(scope="module")
def corpus():
    return {split: pc.generate(11, 2000, split) for split in SPLITS}


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    first = pc.generate(5, 120, "eval")
    assert pc.generate(5, 120, "eval") == first
    assert pc.generate(6, 120, "eval") != first
    assert [s.text for s in pc.generate(5, 120, "dev")] != [s.text for s in first]


def test_the_corpus_is_the_same_in_every_process_whatever_its_hash_seed():
    code = (
        "import hashlib, sys; sys.path.insert(0, 'bench'); import phi_corpus as pc; "
        "print(hashlib.sha256(repr(pc.generate(7, 400, 'eval')).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_a_run_of_n_sentences_is_a_few_samples_of_one_to_four_sentences_in_every_genre():
    samples = pc.generate(3, 300, "dev")
    assert 300 / 4 <= len(samples) <= 300
    assert {s.genre for s in samples} == set(pc.GENRES)
    assert max(s.text.count("\n") for s in samples if s.genre == "form") <= 3
    with pytest.raises(ValueError):
        pc.generate(3, 10, "test")


@pytest.mark.parametrize("split", SPLITS)
def test_every_span_is_exactly_the_entity_it_claims(corpus, split):
    for sample in corpus[split]:
        end = 0
        for span in sample.spans:
            value = sample.text[span.start : span.end]
            assert value and value == value.strip(), (sample, span)
            assert span.start >= end, f"overlapping spans in {sample.text!r}"
            end = span.end
            assert span.kind in pc.KINDS
            components = span.style.split("+")
            assert set(components) <= set(pc.STYLES[span.kind]), span
            if span.kind == "PERSON":
                assert len([c for c in components if c in pc.PERSON_FORMS]) == 1
                assert not re.match(r"(?i)(dr|mr|mrs|ms|miss|prof)\.?\s", value), "a title"
            if span.kind == "AGE":
                assert int(value) > 89 if value.isdigit() else value.startswith(("ninety", "one"))
            if span.kind == "DATE":
                assert not re.fullmatch(r"\d{4}", value), "a year alone is not PHI"


@pytest.mark.parametrize("split", SPLITS)
def test_every_kind_appears_a_hundred_times_and_every_style_at_least_once(corpus, split):
    kinds = Counter(span.kind for s in corpus[split] for span in s.spans)
    assert min(kinds[k] for k in pc.KINDS) >= 100, kinds
    styles = {
        (span.kind, c) for s in corpus[split] for span in s.spans for c in span.style.split("+")
    }
    missing = [(k, st) for k, all_ in pc.STYLES.items() for st in all_ if (k, st) not in styles]
    assert not missing


@pytest.mark.parametrize("split", SPLITS)
def test_a_quarter_of_the_names_are_invented_and_about_two_samples_in_five_name_someone(
    corpus, split
):
    samples = corpus[split]
    names = [span for s in samples for span in s.spans if span.kind == "PERSON"]
    assert sum("invented" in n.style for n in names) / len(names) >= 0.25
    with_person = sum(any(span.kind == "PERSON" for span in s.spans) for s in samples)
    assert 0.33 <= with_person / len(samples) <= 0.6


def test_dev_and_eval_templates_are_disjoint_and_each_covers_every_kind_in_every_genre():
    dev = {t for ts in pc.TEMPLATES["dev"].values() for t in ts}
    eval_ = {t for ts in pc.TEMPLATES["eval"].values() for t in ts}
    assert dev and eval_ and not dev & eval_
    for family in SPLITS:
        for genre in pc.GENRES:
            covered = set().union(*map(pc.template_kinds, pc.TEMPLATES[family][genre]))
            assert covered == set(pc.KINDS), (family, genre, set(pc.KINDS) - covered)


def literal_fragments(template: str) -> list[str]:
    return [f.strip() for f in pc.SLOT.split(template)[::3] if len(f.strip()) >= 14]


def test_a_split_never_draws_on_the_other_familys_templates(corpus):
    for split, other in (("dev", "eval"), ("eval", "dev")):
        own = " ".join(t for ts in pc.TEMPLATES[split].values() for t in ts)
        foreign = {
            f
            for ts in pc.TEMPLATES[other].values()
            for t in ts
            for f in literal_fragments(t)
            if f not in own
        }
        assert foreign
        text = "\n".join(s.text for s in corpus[split])
        assert not [f for f in foreign if f in text]


@pytest.mark.parametrize("split", SPLITS)
def test_hard_negatives_appear_everywhere_without_a_label(corpus, split):
    found = Counter()
    for sample in corpus[split]:
        text = sample.text
        patterns = {
            "drug": r"\b(?:" + "|".join(map(re.escape, pc.DRUGS)) + r")\b",
            "eponym": "|".join(map(re.escape, pc.EPONYMS + pc.SIGNS)),
            "year alone": r"\b(?:in|since|dx) (?:19|20)\d\d\b",
            "age under 90": r"\b(?:[1-8]?\d)(?:-year-old| yo| y/o| years old)|\bage [1-8]?\d\b",
            "relative date": r"\b(?:" + "|".join(map(re.escape, pc.RELDATES)) + r")\b",
            "lab or dose": r"\b(?:BP \d+/\d+|HbA1c \d|INR \d|\d/\d of the dose|\d+ mg)",
            "code": r"\b(?:E11\.9|I10|J44\.1|CPT 9921\d|G20)\b",
        }
        for name, pattern in patterns.items():
            for m in re.finditer(pattern, text):
                assert not any(m.start() < s.end and s.start < m.end() for s in sample.spans), (
                    f"{name} {m.group()!r} labelled in {text!r}"
                )
                found[name, sample.genre] += 1
    for name in ("drug", "eponym", "year alone", "age under 90", "relative date", "lab or dose"):
        assert sum(n for (what, _), n in found.items() if what == name) >= 30, (name, found)
    assert {genre for (what, genre) in found if what == "drug"} == set(pc.GENRES)
