"""The executor every e2a job runs with, chosen by `E2A_EXECUTOR` (settings.py): the same assets
and tables on one process, a process per step, or steps spread over Celery workers on any number
of hosts. Nothing here is home-made: each is Dagster's own executor."""

import dagster as dg

from e2a_assets.domain.policies import PolicyError
from e2a_assets.settings import Settings

# A process per step costs ≈1.5 s a step here (DAGSTER-NOTES §7): a few at a time is plenty.
MULTIPROCESS_MAX_CONCURRENT = 4


def celery_app_config(settings: Settings) -> dict:
    """The Celery executor's configuration (broker, result backend, queue) from the settings; the
    same values make the workers' configuration (`e2a worker`), so both always meet on one queue."""
    return {
        "broker": settings.celery_broker,
        "backend": settings.celery_backend,
        "config_source": {"task_default_queue": settings.celery_queue},
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """`dg.in_process_executor` (default: ≈0.1 s a step), `dg.multiprocess_executor`, or
    dagster-celery's `celery_executor` with the broker and queue of the settings."""
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": MULTIPROCESS_MAX_CONCURRENT})
    if settings.executor == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError:
            raise PolicyError("E2A_EXECUTOR=celery needs dagster-celery: pip install 'e2a[celery]'") from None
        return celery_executor.configured(celery_app_config(settings))
    return dg.in_process_executor
