"""The schemathesis loop both API fuzz tests share: every operation, positive and negative cases,
through the real WSGI application with a bearer credential; failures are collected, not stopped at,
so one run shows all of them.

Three phases, as schemathesis names them: positive cases (schema-valid data, which must be
accepted), negative cases (schema-violating data, which must be refused: 0 accepted), and a stateful
phase that chains operations through the links schemathesis infers from the schema (a token
created, then revoked; a layer written, then read).

Positive cases may have their path parameters (`{slug}`, `{node_id}`, ...) replaced by ids that
exist, from the persona's own fleet and from the other one (`known`), so that the fuzz reaches real
objects and not only 404s; `oracle(case, response)` then checks what the permission matrix forbids.
Hypothesis runs derandomized (a fixed seed) in the suite: the same requests every run. `FUZZ_SEED`
gives another seed (`make fuzz` draws a new one and prints it, so a failure can be replayed with
`make fuzz FUZZ_SEED=<seed>`).

`FUZZ_SCALE` multiplies each test's examples per operation and mode (`make fuzz`: 5); `FUZZ_REPORT`
names a JSON-lines file each run appends its counts to (scripts/resilience_report.py renders it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

SEED = os.environ.get("FUZZ_SEED", "")


def _settings(examples: int, **extra) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not SEED,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def _seeded(test):
    return seed(int(SEED))(test) if SEED else test


@dataclass
class Run:
    requests: int = 0
    stateful_requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def report(self, api: str, persona: str) -> None:
        path = os.environ.get("FUZZ_REPORT")
        if path:
            with open(path, "a") as f:
                line = {
                    "api": api,
                    "persona": persona,
                    "seed": SEED or "fixed",
                    "requests": self.requests,
                    "stateful_requests": self.stateful_requests,
                    "server_errors": sum(n for s, n in self.statuses.items() if s >= 500),
                    "failures": len(self.failures),
                    "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                }
                f.write(json.dumps(line) + "\n")


def load(path: str, credential: str):
    return schemathesis.openapi.from_wsgi(
        path, get_wsgi_application(), headers={"Authorization": f"Bearer {credential}"}
    )


def operations(path: str, credential: str, *, schema=None) -> list:
    schema = schema or load(path, credential)
    return [result.ok() for result in schema.get_all_operations()]


def stateful(
    schema, credential: str, run: Run, *, examples: int, checks=None, harmless=None
) -> None:
    """The stateful phase: sequences of calls along the links schemathesis infers, the same checks
    on every response; a failure is collected into `run` as the stateless phases' are.
    `harmless(case)` may rewrite a call that must not happen (the fuzzer revoking its own token)."""
    headers = {"Authorization": f"Bearer {credential}"}
    examples *= int(os.environ.get("FUZZ_SCALE", "1"))

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case):
            if harmless is not None:
                harmless(case)

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def after_call(self, response, case):
            run.requests += 1
            run.stateful_requests += 1
            run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=checks, headers=headers)

    try:
        Workflow.run(settings=_settings(examples, stateful_step_count=6))
    except (Exception, BaseExceptionGroup) as exc:
        run.failures.append(f"stateful: {str(exc)[:3000]}")


def fuzz(
    operations: list,
    credential: str,
    *,
    examples: int,
    checks=None,
    known: dict[str, list] | None = None,
    oracle: Callable | None = None,
) -> Run:
    """Run every operation; `checks` None: every check schemathesis has."""
    headers = {"Authorization": f"Bearer {credential}"}
    examples *= int(os.environ.get("FUZZ_SCALE", "1"))
    run = Run()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            one = _cases(operation, mode, examples, run, headers, checks, known or {}, oracle)
            try:
                one()
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
            except (Exception, BaseExceptionGroup) as exc:  # all operations run; all shown
                run.failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    return run


def _cases(operation, mode, examples: int, run: Run, headers, checks, known, oracle):
    """The hypothesis test for one operation and mode."""
    positive = mode == GenerationMode.POSITIVE

    @_seeded
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @_settings(examples)
    def one(case, data):
        if positive:  # a negative case must stay invalid
            for name in list(case.path_parameters or {}):
                if known.get(name):
                    pick = data.draw(st.sampled_from([None, *known[name]]))
                    if pick is not None:
                        case.path_parameters[name] = pick
        response = case.call(headers=headers)
        run.requests += 1
        run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=checks, headers=headers)
        if oracle is not None:
            oracle(case, response)

    return one
