"""The router's learned score: features, metrics, training, evaluation and its signed artifact."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from controlplane import signing
from controlplane.routing import metrics
from controlplane.routing import train as router_train
from controlplane.routing.data import DataError, Row, load, read_table
from wire.scoring import RouterError, Scorer, answer_features, features

ROUTER_DATA = Path(settings.EDGEFLEET["ROUTER_DATA_DIR"])
needs_shared_data = pytest.mark.skipif(
    not ROUTER_DATA.exists(), reason="../shared/router_data is not on this machine"
)


def synthetic(n: int = 400, seed: int = 0) -> list[Row]:
    """Queries with "integral" are hard for the local model; the cloud gets nearly all right."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hard = rng.random() < 0.3
        topic = "integral of the function" if hard else "capital city of the country"
        rows.append(
            Row(
                prompt=f"Question {i}: what is the {topic} number {rng.randint(1, 99)}?",
                weak=float(rng.random() < (0.2 if hard else 0.9)),
                strong=float(rng.random() < 0.95),
                weak_response="#### 4" if not hard else "I think... however #### 3.5",
            )
        )
    return rows


def write_jsonl(path: Path, rows: list[Row]) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": r.prompt,
                    "weak": r.weak,
                    "strong": r.strong,
                    "weak_response": r.weak_response,
                }
            )
            + "\n"
            for r in rows
        )
    )
    return path


# --- metrics -------------------------------------------------------------------------------------


def test_the_oracle_routes_the_queries_the_cloud_fixes_first():
    weak = [1, 0, 1, 0]
    strong = [1, 1, 1, 1]
    c = metrics.curve([0, 1, 0, 1], weak, strong)
    assert c.share.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert c.pgr.tolist() == [0, 0.5, 1.0, 1.0, 1.0]
    assert metrics.cpt(c, 0.5) == 0.25
    assert metrics.cpt(c, 1.0) == 0.5


def test_a_constant_score_is_the_random_router_with_an_apgr_of_one_half():
    rng = np.random.default_rng(1)
    weak, strong = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    assert metrics.apgr(metrics.curve(np.zeros(500), weak, strong)) == pytest.approx(0.5)


def test_bootstrap_intervals_contain_the_point_estimate():
    rows = synthetic()
    weak = [r.weak for r in rows]
    strong = [r.strong for r in rows]
    scores = [r.strong - r.weak + 0.1 * ("integral" in r.prompt) for r in rows]
    point = metrics.summary(scores, weak, strong)
    ci = metrics.bootstrap(scores, weak, strong, rounds=200)
    for key in ("apgr", "cpt50"):
        assert ci[key][0] <= point[key] <= ci[key][1]


# --- features and the scorer ---------------------------------------------------------------------


def test_features_are_the_same_in_every_process_whatever_the_hash_seed():
    code = "from wire.scoring import features; print(features('What is 12 + 30?', 18))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(features("What is 12 + 30?", 18))


def test_a_trained_router_sends_the_hard_queries_to_the_cloud():
    scorer = router_train.fit(synthetic(), kind="query", bits=12, c=1.0)
    hard = scorer.score("Question 7: what is the integral of the function number 3?")
    easy = scorer.score("Question 7: what is the capital city of the country number 3?")
    assert hard > easy


def test_a_cascade_router_reads_the_local_answer():
    scorer = router_train.fit(synthetic(), kind="cascade", bits=12, c=1.0)
    query = "Question 7: what is the capital city of the country number 3?"
    assert scorer.score(query, "I think... however #### 3.5") > scorer.score(query, "#### 4")


@pytest.mark.parametrize("kind", ["query", "cascade"])
def test_the_node_scores_a_query_exactly_as_training_saw_it(kind):
    """wire.scoring (pure Python, on the node) and router_train.matrix (scipy) agree."""
    rows = synthetic(60, seed=3)
    scorer = router_train.fit(rows, kind=kind, bits=12, c=1.0)
    x = router_train.matrix(rows, 12, answer=kind == "cascade")
    for head in (scorer.weak,) if kind == "cascade" else (scorer.strong, scorer.weak):
        w = np.zeros(1 << 12)
        for i, v in head.weights.items():
            w[i] = v
        expected = 1 / (1 + np.exp(-(x @ w + head.bias)))
        got = [
            head.probability(
                features(r.prompt, 12),
                features(r.weak_response, 12, prefix="a:"),
                answer_features(r.weak_response, 12, r.prompt),
                scorer.norm,
            )
            for r in rows
        ]
        assert got == pytest.approx(expected.tolist(), abs=1e-9)


def test_a_router_of_the_first_format_still_scores_with_summed_counts():
    scorer = router_train.fit(synthetic(), kind="query", bits=12, c=1.0)
    old = Scorer.from_dict({**scorer.to_dict(), "format": 1, "norm": "l2"})
    query = "what is the integral of the function? the function"
    assert old.norm == "" and old.score(query) != scorer.score(query)
    assert scorer.to_dict()["format"] == 2


def test_a_cascade_needs_the_local_answers():
    rows = [Row(prompt=f"q{i}", weak=1.0, strong=1.0) for i in range(30)]
    with pytest.raises(ValueError, match="weak_response"):
        router_train.fit(rows, kind="cascade", bits=10)


def test_the_threshold_for_a_cloud_share_sends_about_that_share():
    rows = synthetic(600)
    scorer = router_train.fit(rows, kind="query", bits=12, c=1.0)
    held_out = router_train.crossfit(rows, kind="query", bits=12, c=1.0)
    router_train.calibrate(scorer, held_out, [r.weak for r in rows], [r.strong for r in rows])
    assert len(scorer.quantiles) == 101 and scorer.quantiles == sorted(scorer.quantiles)[::-1]
    share = float(np.mean(held_out > scorer.threshold_for_share(0.3)))
    assert 0.2 <= share <= 0.4  # ties among equal scores make it approximate
    assert scorer.threshold_for_share(1.0) == float("-inf")
    assert scorer.share_for_quality(0.0) == 0.0


def test_a_router_artifact_loads_only_with_a_signature_of_the_pinned_key():
    scorer = router_train.fit(synthetic(), kind="query", bits=12, c=1.0)
    raw = scorer.to_bytes()
    loaded = Scorer.from_artifact(raw, signing.sign(raw), signing.public_pem())
    query = "what is the integral of the function?"
    assert loaded.score(query) == pytest.approx(scorer.score(query), abs=1e-4)
    tampered = raw.replace(b'"bits":12', b'"bits":13')
    with pytest.raises(RouterError, match="does not verify"):
        Scorer.from_artifact(tampered, signing.sign(raw), signing.public_pem())
    with pytest.raises(RouterError, match="does not verify"):
        Scorer.from_artifact(raw, "not base64!", signing.public_pem())


@pytest.mark.parametrize(
    "data, message",
    [
        ({"format": 3}, "unsupported router format"),
        ({"format": 2, "norm": "l1", "kind": "query", "bits": 12}, "unknown router feature norm"),
        ({"format": 1, "kind": "magic"}, "unknown router kind"),
        ({"format": 1, "kind": "query", "bits": 40}, "out of range"),
        ({"format": 1, "kind": "query", "bits": 12}, "malformed"),
    ],
)
def test_a_malformed_router_artifact_is_refused_with_the_reason(data, message):
    with pytest.raises(RouterError, match=message):
        Scorer.from_dict(data)


# --- tables --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ("prompt,weak\nhi,1\n", ".csv", "missing column"),
        ("prompt,weak,strong\nhi,1,2\n", ".csv", "not a quality"),
        ("prompt,weak,strong\nhi,maybe,1\n", ".csv", "not a quality"),
        ('{"prompt": "hi"\n', ".jsonl", "not a readable"),
        ("prompt,weak,strong\n", ".csv", "no rows"),
        ("[1, 2]\n", ".jsonl", "not an object"),
    ],
)
def test_a_bad_table_is_refused_with_the_row_and_the_reason(tmp_path, content, suffix, message):
    path = tmp_path / f"table{suffix}"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_a_table_reads_booleans_and_numbers_as_quality(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("prompt,weak,strong,group\na,True,0.5,x\nb,false,1,y\n")
    rows = read_table(path)
    assert [(r.weak, r.strong, r.group) for r in rows] == [(1.0, 0.5, "x"), (0.0, 1.0, "y")]


@needs_shared_data
@pytest.mark.parametrize("bench, count", [("gsm8k", 1307), ("mmlu", 14037), ("mt_bench", 72)])
def test_the_shared_tables_are_read_without_their_contaminated_prompts(bench, count):
    rows = load(bench, ROUTER_DATA)
    assert len(rows) == count
    assert all(0 <= r.weak <= 1 and 0 <= r.strong <= 1 for r in rows)


# --- the command ---------------------------------------------------------------------------------


def test_router_eval_writes_the_curve_and_the_figures_beside_the_baselines(tmp_path, capsys):
    table = write_jsonl(tmp_path / "t.jsonl", synthetic())
    call_command(
        "router",
        "eval",
        "--bench",
        str(table),
        "--bits",
        "12",
        "--rounds",
        "50",
        "--out",
        str(tmp_path / "out"),
    )
    out = capsys.readouterr().out
    assert "learned (query)" in out and "random" in out and "oracle" in out
    report = json.loads((tmp_path / "out" / "t-query.json").read_text())
    assert set(report["routers"]) == {"learned (query)", "random", "oracle", "question length"}
    assert report["routers"]["learned (query)"]["apgr"] > 0.7
    assert (tmp_path / "out" / "t-query.png").read_bytes()[:4] == b"\x89PNG"
    assert "apgr_ci_low" in (tmp_path / "out" / "t-query.csv").read_text()


def test_router_eval_trains_on_one_table_and_tests_on_another(tmp_path, capsys):
    a = write_jsonl(tmp_path / "a.jsonl", synthetic(seed=1))
    b = write_jsonl(tmp_path / "b.jsonl", synthetic(seed=2))
    call_command(
        "router",
        "eval",
        "--bench",
        str(b),
        "--train-on",
        str(a),
        "--bits",
        "12",
        "--rounds",
        "20",
        "--norm",
        "none",
        "--out",
        str(tmp_path),
    )
    report = json.loads((tmp_path / "b-query-trained-on-a-counts.json").read_text())
    assert report["held_out"] == "trained on 400"
    assert "learned (query, counts)" in report["routers"]


def test_router_train_writes_an_artifact_the_pinned_key_verifies(tmp_path):
    table = write_jsonl(tmp_path / "t.jsonl", synthetic())
    out = tmp_path / "router.json"
    call_command(
        "router",
        "train",
        "--bench",
        str(table),
        "--kind",
        "cascade",
        "--bits",
        "12",
        "--out",
        str(out),
    )
    scorer = Scorer.from_artifact(
        out.read_bytes(), (tmp_path / "router.json.sig").read_text().strip(), signing.public_pem()
    )
    assert scorer.kind == "cascade" and scorer.version.startswith("cascade-")
    assert len(scorer.pgr) == 101 and scorer.norm == "l2" and scorer.meta["c"] == 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--bench", "/nonexistent.csv"], "no such file"),
        (["eval", "--bench", "gsm8k", "--data", "/nonexistent"], "does not exist"),
        (["eval", "--bench", "x.csv", "--bits", "40"], "--bits"),
        (["eval", "--bench", "x.csv", "--c", "0"], "--c must be positive"),
    ],
)
def test_router_commands_refuse_bad_input_with_a_message(argv, message):
    with pytest.raises(CommandError, match=message):
        call_command("router", *argv)


def test_a_cascade_on_a_table_without_local_answers_is_refused(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("prompt,weak,strong\n" + "".join(f"q{i},1,0\n" for i in range(30)))
    with pytest.raises(CommandError, match="no local answers"):
        call_command("router", "eval", "--bench", str(table), "--kind", "cascade")


def test_training_on_too_few_rows_is_refused(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("prompt,weak,strong\n" + "".join(f"q{i},1,0\n" for i in range(5)))
    with pytest.raises(CommandError, match="too few"):
        call_command("router", "train", "--bench", str(table), "--out", str(tmp_path / "r.json"))
