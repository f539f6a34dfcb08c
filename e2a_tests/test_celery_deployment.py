"""A distributed deployment, for real (issue 14 item 5): two Celery worker processes (`e2a worker`)
on the machine's RabbitMQ (else Redis), a Postgres warehouse and a Postgres Dagster instance.

The order-processing job and a 3-day single-run backfill run twice through the documented
commands: with the Celery executor (`dagster job execute`, steps on the workers), then, on the
warehouse emptied of everything but its events, with the Celery run launcher (`dagster job
launch`: the whole run on a worker). Every derived table (`warehouse/digests.py`) and the invoice
documents in the shared directory must equal an in-process run on the same events.

Required when E2A_REQUIRE_BROKER=1 (.ci/run sets it); skipped, with the reason, when no broker is
reachable. Each run of this test uses a queue of its own, so parallel runs never take each other's
tasks.
"""

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from sqlalchemy import text

from e2a_assets.cli import instance as cli
from e2a_assets.cli.demo import materialize_range
from e2a_assets.cli.processes import ProcessGroup
from e2a_assets.definitions import build_definitions
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.settings import PROJECT_ROOT, Settings
from e2a_assets.simulator.runner import ingest_deliveries
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import digests, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.migrate import upgrade
from e2a_tests.conftest import throwaway_database
from e2a_tests.factories import settings_for

pytest.importorskip("dagster_celery", reason="dagster-celery is not installed: pip install 'e2a[celery]'")

FIRST = dt.date(2025, 8, 28)
LAST = FIRST + dt.timedelta(days=2)
AS_OF = pd.Timestamp(LAST + dt.timedelta(days=2), tz="UTC") + pd.Timedelta(hours=6)
# The two runs of each variant: a 3-day single-run backfill, then the order-processing job's last day.
RUNS = [("full_operations_job", FIRST, LAST), ("order_processing_job", LAST, LAST)]
# The input side, kept when the warehouse is emptied between the two variants.
INPUTS = {"event_log", "dead_letters", "webhook_events", "e2a_schema_version"}


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker() -> tuple[str, str]:
    """(broker URL, result backend URL): RabbitMQ at 127.0.0.1:5672, else Redis at 127.0.0.1:6379."""
    if _reachable(5672):
        return "pyamqp://guest:guest@127.0.0.1:5672//", "rpc://"
    if _reachable(6379):
        return "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"
    reason = "no Celery broker reachable (RabbitMQ 127.0.0.1:5672, Redis 127.0.0.1:6379)"
    if os.environ.get("E2A_REQUIRE_BROKER") == "1":
        pytest.fail(f"{reason} (E2A_REQUIRE_BROKER=1)")
    pytest.skip(f"{reason}; set E2A_REQUIRE_BROKER=1 to make this a failure")


def _tags(first: dt.date, last: dt.date, **extra: str) -> dict[str, str]:
    return {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat(), AS_OF_TAG: AS_OF.isoformat(), **extra}


def _events(url: str, data_dir: Path) -> None:
    settings = settings_for(url, data_dir)
    engine = make_engine(url)
    try:
        ingest_deliveries(Ingestor(engine), generate(list(settings.registry().policies[:2]), 3, 8, 11, FIRST))
    finally:
        engine.dispose()


def _documents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, migrated_sqlite_template) -> tuple[dict, list[str]]:
    """The in-process result on the same events: table digests and invoice documents."""
    import shutil

    data = tmp_path_factory.mktemp("in_process")
    shutil.copyfile(migrated_sqlite_template, data / "warehouse.sqlite")
    url = f"sqlite:///{data}/warehouse.sqlite"
    _events(url, data)
    defs = build_definitions(settings_for(url, data))
    with dg.instance_for_test() as instance:
        for job, first, last in RUNS:
            materialize_range(instance, defs, job, first.isoformat(), last.isoformat(), AS_OF)
    engine = make_engine(url)
    try:
        return digests.table_digests(engine), _documents(data / "invoices")
    finally:
        engine.dispose()


def _empty_derived_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            names = [t.name for t in schema.metadata.sorted_tables if t.name not in INPUTS]
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY"))
    finally:
        engine.dispose()


def _dagster(env: dict, *args: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("dagster")), "job", *args, "-m", "e2a_assets.definitions"]
    return subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def _step_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    return {e.dagster_event.pid for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}


def _start_workers(tmp_path: Path, env: dict, label: str) -> ProcessGroup:
    """Two `e2a worker` processes (one task at a time each) on the test's queue."""
    workers = ProcessGroup(tmp_path / "tmp", env)
    for n in (1, 2):
        workers.start(f"{label} worker {n}", [str(Path(sys.executable).with_name("e2a")), "worker", "--name",
                                               f"{env['E2A_CELERY_QUEUE']}-{label}-{n}"], log=tmp_path / f"{label}{n}.log")
    return workers


def _assert_same_tables(url: str, reference: dict) -> None:
    engine = make_engine(url)
    try:
        assert digests.differences(reference, digests.table_digests(engine)) == []
    finally:
        engine.dispose()


def test_celery_executor_and_run_launcher_give_the_in_process_tables(tmp_path, monkeypatch, broker, reference):
    broker_url, backend_url = broker
    queue = f"e2a-test-{uuid.uuid4().hex[:12]}"
    with throwaway_database("e2a_test_celery_wh") as warehouse_url, \
            throwaway_database("e2a_test_celery_dagster") as instance_url:
        upgrade(warehouse_url)  # the one schema step; workers and runs only check it
        _events(warehouse_url, tmp_path)
        shared = tmp_path / "shared-invoices"
        env = {**os.environ, "E2A_ENV": "production", "DATABASE_URL": warehouse_url,
               "E2A_TENANTS_FILE": str(PROJECT_ROOT / "policies" / "tenants.yaml"), "E2A_INVOICE_DIR": str(shared),
               "DAGSTER_HOME": str(tmp_path / "dagster_home"), "E2A_DAGSTER_POSTGRES_URL": instance_url,
               "E2A_EXECUTOR": "celery", "E2A_RUN_LAUNCHER": "celery", "E2A_CELERY_BROKER": broker_url,
               "E2A_CELERY_BACKEND": backend_url, "E2A_CELERY_QUEUE": queue, "E2A_DATA_DIR": str(tmp_path / "data")}
        settings = Settings.from_env(env)
        env.update(settings.dagster_environment())
        target = cli.install_instance_config(settings)
        # The operator's own edit: launches go straight to the run launcher (no daemon in this test).
        config = yaml.safe_load(target.read_text())
        del config["run_queue"]
        config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
        target.write_text(yaml.safe_dump(config))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            instance.get_runs(limit=1)  # the instance's tables, created once before any process starts
            # 1. The Celery executor: each step a task on the queue, taken by either worker.
            workers = _start_workers(tmp_path, env, "executor")
            try:
                for job, first, last in RUNS:
                    tags = json.dumps(_tags(first, last, **{"e2a/variant": "executor"}))
                    done = _dagster(env, "execute", "-j", job, "--tags", tags)
                    assert done.returncode == 0, (done.stderr[-3000:], workers.failed())
            finally:
                workers.stop()
            _assert_same_tables(warehouse_url, reference[0])
            assert _documents(shared) == reference[1]
            runs = instance.get_runs(dg.RunsFilter(tags={"e2a/variant": "executor"}))
            assert len(runs) == 2 and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
            # The steps ran in the workers' processes, not in the process that orchestrated the run.
            for run in runs:
                [start] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
                assert _step_pids(instance, run.run_id) and start.dagster_event.pid not in _step_pids(instance, run.run_id)

            # 2. The Celery run launcher, on the warehouse emptied of all but its events: each run is
            # a task a worker executes whole (with the in-process executor of the workers' settings).
            _empty_derived_tables(warehouse_url)
            env["E2A_EXECUTOR"] = "in_process"
            workers = _start_workers(tmp_path, env, "launcher")
            try:
                for job, first, last in RUNS:
                    run_id = str(uuid.uuid4())
                    tags = json.dumps(_tags(first, last, **{"e2a/variant": "launcher"}))
                    launched = _dagster(env, "launch", "-j", job, "--run-id", run_id, "--tags", tags)
                    assert launched.returncode == 0, launched.stderr[-3000:]
                    deadline = time.monotonic() + 300
                    while instance.get_run_by_id(run_id).status not in (dg.DagsterRunStatus.SUCCESS,
                                                                        dg.DagsterRunStatus.FAILURE):
                        assert time.monotonic() < deadline and not workers.failed(), workers.failed()
                        time.sleep(0.5)
                    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
            finally:
                workers.stop()
                _delete_queue(broker_url, queue)
            _assert_same_tables(warehouse_url, reference[0])


def _delete_queue(broker_url: str, queue: str) -> None:
    """Leave no queue of this test behind on the broker."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=5) as conn:
        try:
            conn.default_channel.queue_delete(queue)
        except Exception:  # noqa: BLE001 - a queue never declared is nothing to delete
            pass
