"""The schemathesis loop both API fuzz tests share: every operation, positive and negative cases,
through the real WSGI application with a bearer credential; failures are collected, not stopped at,
so one run shows all of them."""

from __future__ import annotations

import os

import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode


def operations(path: str, credential: str) -> list:
    schema = schemathesis.openapi.from_wsgi(
        path, get_wsgi_application(), headers={"Authorization": f"Bearer {credential}"}
    )
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operations: list, credential: str, *, examples: int, checks=None) -> list[str]:
    """Failures as text (empty: none). `checks` None: every check schemathesis has."""
    headers = {"Authorization": f"Bearer {credential}"}
    examples = int(os.environ.get("FUZZ_EXAMPLES", examples))
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                response = case.call(headers=headers)
                case.validate_response(response, checks=checks, headers=headers)

            try:
                run()
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
            except (Exception, BaseExceptionGroup) as exc:  # all operations run; all shown
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    return failures
