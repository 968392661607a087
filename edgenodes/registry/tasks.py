"""Background tasks of the registry, on django-tasks (run by `manage.py db_worker`)."""

from __future__ import annotations

from django_tasks import task


@task()
def quantize_artifact(job_id: int) -> int | None:
    from .services import run_quantization

    return run_quantization(job_id)
