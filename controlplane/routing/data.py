"""Tables a router learns from: one row per query with the quality of a weak (local) and a strong
(cloud) model's answer, each in [0, 1].

- a CSV or JSONL table with the columns `prompt`, `weak`, `strong` and optionally `weak_response`
  and `group` (a topic: per-group baselines and group-aware splits use it);
- RouteLLM's cached outcome tables (`../shared/router_data/routellm/`, see its README): GSM8K,
  MMLU (the subject is the group) and MT-Bench (judge scores 1-10 scaled to [0, 1]), with the
  prompts RouteLLM marks as contaminated dropped.

Outcomes collected from the fleet (decisions and graded answers) would be written in the first
format; nodes report their decisions (`router.decision` events) but no grades yet.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


class DataError(Exception):
    """The table is missing, unreadable or lacks a column; the message says which."""


@dataclass
class Row:
    prompt: str
    weak: float
    strong: float
    weak_response: str = ""
    group: str = ""
    extra: dict = field(default_factory=dict)


def _quality(value, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return float(text == "true")
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{where}: {value!r} is not a quality in [0, 1]") from None
    if not 0.0 <= number <= 1.0:
        raise DataError(f"{where}: {value!r} is not a quality in [0, 1]")
    return number


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as f:
        return {json.loads(line)["eval_prompt"] for line in f if line.strip()}


def read_table(path: Path) -> list[Row]:
    """A CSV or JSONL file with prompt, weak, strong (and optionally weak_response, group)."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
        else:
            with open(path, encoding="utf-8", newline="") as f:
                records = list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable {path.suffix[1:] or 'csv'} table: {exc}") from None
    rows = []
    for i, r in enumerate(records, start=1):
        if not isinstance(r, dict):
            raise DataError(f"{path} row {i}: not an object")
        missing = [c for c in ("prompt", "weak", "strong") if r.get(c) in (None, "")]
        if missing:
            raise DataError(f"{path} row {i}: missing column(s) {', '.join(missing)}")
        rows.append(
            Row(
                prompt=str(r["prompt"]),
                weak=_quality(r["weak"], f"{path} row {i} weak"),
                strong=_quality(r["strong"], f"{path} row {i} strong"),
                weak_response=str(r.get("weak_response") or ""),
                group=str(r.get("group") or ""),
            )
        )
    if not rows:
        raise DataError(f"{path}: the table has no rows")
    return rows


def read_gsm8k(root: Path) -> list[Row]:
    base = root / "gsm8k"
    drop = _contaminated(base / "contaminated_prompts.jsonl")
    gold = {}
    test = base / "test.jsonl"
    if test.exists():
        with open(test, encoding="utf-8") as f:
            for line in f:
                item = json.loads(line)
                gold[item["question"]] = item["answer"].rsplit("####", 1)[-1].strip()
    with open(base / "gsm8k_responses.csv", encoding="utf-8", newline="") as f:
        return [
            Row(
                prompt=r["prompt"],
                weak=_quality(r[WEAK], "gsm8k weak"),
                strong=_quality(r[STRONG], "gsm8k strong"),
                weak_response=r.get(f"{WEAK}_response", ""),
                group="gsm8k",
                extra={"gold": gold.get(r["prompt"], "")},
            )
            for r in csv.DictReader(f)
            if r["prompt"] not in drop
        ]


def read_mmlu(root: Path) -> list[Row]:
    base = root / "mmlu"
    drop = _contaminated(base / "contaminated_prompts.jsonl")
    rows = []
    for path in sorted((base / "responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        with open(path, encoding="utf-8", newline="") as f:
            rows += [
                Row(
                    prompt=r["prompt"],
                    weak=_quality(r[WEAK], "mmlu weak"),
                    strong=_quality(r[STRONG], "mmlu strong"),
                    group=subject,
                )
                for r in csv.DictReader(f)
                if r["prompt"] not in drop
            ]
    return rows


def read_mt_bench(root: Path) -> list[Row]:
    base = root / "mt_bench"
    drop = _contaminated(base / "contaminated_prompts.jsonl")
    questions = {}
    with open(base / "question.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            questions[q["question_id"]] = q
    scores: dict[tuple[int, str], list[float]] = {}
    with open(base / "judgements.jsonl", encoding="utf-8") as f:
        for line in f:
            j = json.loads(line)
            if j.get("score", -1) < 0:
                continue
            scores.setdefault((j["question_id"], j["model"]), []).append(j["score"])
    rows = []
    for qid, q in questions.items():
        prompt = q["turns"][0]
        weak = scores.get((qid, WEAK.split("/")[-1])) or scores.get((qid, WEAK))
        strong = scores.get((qid, STRONG))
        if prompt in drop or not weak or not strong:
            continue
        rows.append(
            Row(
                prompt=prompt,
                weak=(sum(weak) / len(weak) - 1) / 9,
                strong=(sum(strong) / len(strong) - 1) / 9,
                group=q.get("category", ""),
            )
        )
    return rows


READERS = {"gsm8k": read_gsm8k, "mmlu": read_mmlu, "mt_bench": read_mt_bench}


def load(source: str, root: Path) -> list[Row]:
    """`source` is a benchmark name (read from `root`) or the path of a table."""
    if source in READERS:
        if not root.exists():
            raise DataError(f"{root}: the router data folder does not exist (--data)")
        try:
            rows = READERS[source](root)
        except (OSError, KeyError) as exc:
            raise DataError(f"{root}: the {source} tables are incomplete: {exc}") from None
        if not rows:
            raise DataError(f"{root}: no {source} rows")
        return rows
    return read_table(Path(source))
