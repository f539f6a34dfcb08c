"""The executor of every job is a setting (`E2A_EXECUTOR`), and every run carries the digest of
the tenant registry it was launched with, which its steps check (issue 14, items 1 and 3)."""

import dataclasses

import dagster as dg
import pytest

from e2a_assets.definitions import build_definitions
from e2a_assets.resources import REGISTRY_DIGEST_TAG
from e2a_tests.factories import settings_for


@pytest.mark.parametrize("executor, name", [("in_process", "in_process"), ("multiprocess", "multiprocess"),
                                            ("celery", "celery")])
def test_every_job_runs_with_the_executor_of_the_settings(tmp_path, executor, name):
    if executor == "celery":
        pytest.importorskip("dagster_celery")
    settings = dataclasses.replace(settings_for(f"sqlite:///{tmp_path}/w.sqlite", tmp_path), executor=executor,
                                   celery_broker="redis://127.0.0.1:6379/3", celery_queue="e2a-test")
    defs = build_definitions(settings)
    jobs = [defs.resolve_job_def(job.name) for job in defs.jobs]
    assert jobs and {job.executor_def.name for job in jobs} == {name}

def test_the_celery_executor_uses_the_broker_and_queue_of_the_settings(tmp_path):
    from e2a_assets.executors import celery_app_config

    settings = dataclasses.replace(settings_for(f"sqlite:///{tmp_path}/w.sqlite", tmp_path),
                                   celery_broker="redis://127.0.0.1:6379/3", celery_queue="e2a-test")
    assert celery_app_config(settings) == {"broker": "redis://127.0.0.1:6379/3", "backend": "rpc://",
                                           "config_source": {"task_default_queue": "e2a-test"}}


def test_every_run_records_the_registry_digest_and_a_different_registry_fails_its_steps(tmp_path, sqlite_url):
    settings = settings_for(sqlite_url, tmp_path)
    defs = build_definitions(settings)
    digest = settings.registry().digest
    assert len(digest) == 16
    job = defs.resolve_job_def("order_processing_job")
    assert job.tags[REGISTRY_DIGEST_TAG] == digest
    partition = {"dagster/partition": "2025-08-01"}
    assert job.execute_in_process(tags=partition).success
    # A run launched by a process whose tenants.yaml differs: the steps refuse, naming both digests.
    result = job.execute_in_process(tags={**partition, REGISTRY_DIGEST_TAG: "0123456789abcdef"}, raise_on_error=False)
    assert not result.success
    # The resources are set up before any step: the run fails there, nothing is written.
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    message = failure.event_specific_data.error.message
    assert f"here has digest {digest}, the run was launched with 0123456789abcdef" in message


def test_the_digest_follows_what_the_registry_bills_by(tmp_path):
    settings = settings_for(f"sqlite:///{tmp_path}/w.sqlite", tmp_path)
    same = settings.registry().digest
    assert settings.registry().digest == same
    changed = dataclasses.replace(settings, sla_delivery_hours=48.0)
    assert changed.registry().digest != same
