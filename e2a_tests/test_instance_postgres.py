"""The Dagster instance on Postgres (dagster.postgres.yaml): ticks, runs and materialisations stored.

A throwaway Postgres database (separate from any warehouse) holds the instance. The scheduler
and sensor daemons' own iteration functions evaluate e2a's code location once each, as
`dagster-daemon` would, so ticks and launched runs are recorded for real; then a sensor-requested
partition and a range backfill are executed on the same instance.
"""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from e2a_assets import compat
from e2a_assets.cli import instance as cli
from e2a_assets.cli.demo import materialize_range
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.settings import PROJECT_ROOT, Settings
from e2a_assets.warehouse.engine import make_engine
from e2a_tests.conftest import throwaway_database
from e2a_tests.factories import envelope_delivery, shopify_delivery, shopify_order

LOCATION = """
import os
from pathlib import Path
from e2a_assets.definitions import build_definitions
from e2a_assets.settings import PROJECT_ROOT, Settings

data = Path(os.environ["E2A_TEST_DATA_DIR"])
defs = build_definitions(Settings(data_dir=data, database_url=os.environ["E2A_TEST_WAREHOUSE_URL"],
                                  policies_dir=PROJECT_ROOT / "policies",
                                  tenants_file=PROJECT_ROOT / "policies" / "tenants.yaml"))
"""


@pytest.fixture
def instance_db_url():
    """A throwaway Postgres database for the Dagster instance only (bare postgresql:// URL)."""
    with throwaway_database("e2a_dagster") as url:
        yield url


@pytest.fixture(autouse=True)
def _restored_instance_variables(monkeypatch):
    """`dagster_home` exports the instance's variables into this process: undo that after each test."""
    from e2a_assets.settings import DAGSTER_PG_PARTS

    for name in [*DAGSTER_PG_PARTS.values(), "E2A_DAGSTER_POSTGRES_URL", "DATABASE_URL", "E2A_TENANTS_FILE",
                 "E2A_INVOICE_DIR", "E2A_RUN_LAUNCHER", "E2A_CELERY_BROKER", "E2A_CELERY_BACKEND", "E2A_CELERY_QUEUE"]:
        monkeypatch.setenv(name, "")


def _explicit(tmp_path) -> dict:
    """The settings a non-embedded deployment must name (no local fallback)."""
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/w.sqlite", "E2A_TENANTS_FILE": str(PROJECT_ROOT / "policies" / "tenants.yaml"),
            "E2A_INVOICE_DIR": str(tmp_path / "invoices"), "E2A_DATA_DIR": str(tmp_path)}


def test_cli_installs_the_postgres_instance_config(tmp_path, monkeypatch, instance_db_url):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("E2A_DAGSTER_POSTGRES_URL", instance_db_url)
    monkeypatch.delenv("E2A_DAGSTER_YAML", raising=False)
    home = cli.dagster_home(Settings.from_env({**os.environ, **_explicit(tmp_path)}))
    written = (home / "dagster.yaml").read_text()
    assert written.startswith(cli.MARKER)
    assert written.split("\n", 1)[1] == (PROJECT_ROOT / "dagster.postgres.yaml").read_text()
    assert os.environ["E2A_DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    finally:
        instance.dispose()
    # Plain Dagster commands, as a systemd unit runs them: the instance config builds the psycopg2
    # URL from its parts (no E2A_DAGSTER_POSTGRES_URL, no psycopg 3).
    plain = {k: v for k, v in os.environ.items() if k != "E2A_DAGSTER_POSTGRES_URL"}
    plain.update({k: v for k, v in Settings.from_env({**os.environ, **_explicit(tmp_path)}).dagster_environment().items()
                  if k.startswith("E2A_DAGSTER_PG_")})
    migrate = subprocess.run([str(Path(sys.executable).with_name("dagster")), "instance", "migrate"], env=plain,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    assert "psycopg" not in migrate.stderr
    # Without the setting, e2a's own (unedited) file is rewritten: the embedded config comes back.
    embedded = {**os.environ, "E2A_DAGSTER_POSTGRES_URL": "", "E2A_DAGSTER_PG_HOST": "", "E2A_DATA_DIR": str(tmp_path)}
    cli.dagster_home(Settings.from_env(embedded))
    assert (home / "dagster.yaml").read_text().split("\n", 1)[1] == (PROJECT_ROOT / "dagster.yaml").read_text()


def test_a_user_edited_instance_config_is_never_overwritten(tmp_path, capsys):
    settings = Settings.from_env({"E2A_DATA_DIR": str(tmp_path)})
    target = cli.install_instance_config(settings)
    edited = target.read_text() + "retention:\n  schedule:\n    purge_after_days: 90\n"
    target.write_text(edited)
    launcher = Settings.from_env({**_explicit(tmp_path), "E2A_RUN_LAUNCHER": "celery"})
    cli.install_instance_config(launcher)
    assert target.read_text() == edited
    assert "it is yours, left as it is" in capsys.readouterr().err
    # A file the user wrote from scratch stays too.
    target.write_text("telemetry:\n  enabled: false\n")
    cli.install_instance_config(settings)
    assert target.read_text() == "telemetry:\n  enabled: false\n"


def test_the_celery_run_launcher_is_a_setting(tmp_path, monkeypatch):
    pytest.importorskip("dagster_celery")
    settings = Settings.from_env({**_explicit(tmp_path), "E2A_RUN_LAUNCHER": "celery", "E2A_CELERY_QUEUE": "e2a-q1",
                                  "DAGSTER_HOME": str(tmp_path / "home")})
    target = cli.install_instance_config(settings)
    assert cli.CELERY_RUN_LAUNCHER in target.read_text()
    for name, value in settings.dagster_environment().items():
        monkeypatch.setenv(name, value)
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home"))
    try:
        assert type(instance.run_launcher).__name__ == "CeleryRunLauncher"
        assert instance.run_launcher.default_queue == "e2a-q1"
    finally:
        instance.dispose()


def _daemon_iterations(instance: dg.DagsterInstance, location_file: Path, day: dt.date) -> None:
    """One scheduler pass an hour ahead and one sensor pass over the e2a location, daemon-style.

    The scheduler runs on `day` at 10:05 UTC, whatever the wall clock says: an hour ahead of 02:xx
    would be the 03:00 tick, which the maintenance window skips.
    """
    now = dt.datetime.combine(day, dt.time(10, 5), tzinfo=dt.timezone.utc)
    # The first pass records the schedules' start; the second sees the next hourly tick (11:00).
    compat.run_daemon_iterations(instance, location_file, "defs", "e2a", [now, now + dt.timedelta(minutes=61)])


def _ticks(instance, name):
    [state] = [s for s in instance.all_instigator_state() if s.instigator_name == name]
    return instance.get_ticks(state.instigator_origin_id, state.selector_id)


def test_ticks_runs_and_backfills_are_stored_in_postgres(tmp_path, monkeypatch, instance_db_url, sqlite_url):
    warehouse_url = sqlite_url
    today = dt.date(2025, 8, 10)  # a fixed day: the daemon passes and the runs are told what "now" is
    yesterday = today - dt.timedelta(days=1)
    Ingestor(make_engine(warehouse_url)).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1, f"{yesterday}T08:00:00Z"), "s1"),
        envelope_delivery("demo-3pl", "pick_completed", 1, f"{yesterday}T09:00:00Z", "w1"),
        shopify_delivery("demo-3pl", "orders/create", shopify_order(2, f"{today}T00:30:00Z"), "s2"),
    ])
    location = tmp_path / "location.py"
    location.write_text(LOCATION)
    monkeypatch.setenv("E2A_TEST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("E2A_TEST_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("E2A_DAGSTER_POSTGRES_URL", instance_db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = cli.dagster_home(Settings.from_env({**os.environ, **_explicit(tmp_path), "DATABASE_URL": warehouse_url}))

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        _daemon_iterations(instance, location, today)

        # A scheduled tick and the run it launched (queued for the run queue).
        [tick] = _ticks(instance, "order_processing_schedule")
        assert tick.status.value == "SUCCESS" and len(tick.run_ids) == 1
        scheduled = instance.get_run_by_id(tick.run_ids[0])
        assert scheduled.tags["dagster/schedule_name"] == "order_processing_schedule"
        assert scheduled.job_name == "order_processing_job"

        # The sensor's tick and the run it requested: yesterday and today are consecutive days,
        # so one single-run range covers both.
        [sensor_tick] = _ticks(instance, "new_events_sensor")
        [sensor_run] = [instance.get_run_by_id(r) for r in sensor_tick.run_ids]
        assert (sensor_run.tags[RANGE_START_TAG], sensor_run.tags[RANGE_END_TAG]) == \
            (yesterday.isoformat(), today.isoformat())
        assert sensor_run.tags["dagster/sensor_name"] == "new_events_sensor"

        # Execute the sensor-requested run on the Postgres instance.
        from e2a_tests.factories import settings_for

        from e2a_assets.definitions import build_definitions

        defs = build_definitions(settings_for(warehouse_url, tmp_path))
        result = defs.resolve_job_def("order_processing_job").execute_in_process(
            instance=instance, tags={**sensor_run.tags, "e2a/as_of": pd.Timestamp(today + dt.timedelta(days=1),
                                                                                    tz="UTC").isoformat()})
        assert result.success

        # A range backfill as one run.
        # Evaluated at the end of today, so order 2 (created today 00:30) counts even just after midnight.
        backfill = materialize_range(instance, defs, "full_operations_job", yesterday.isoformat(), today.isoformat(),
                                     pd.Timestamp(today + dt.timedelta(days=1), tz="UTC"))
        assert backfill.success
    finally:
        instance.dispose()

    # A fresh instance object reads everything back from Postgres.
    reopened = dg.DagsterInstance.from_config(str(home))
    try:
        records = reopened.get_run_records(dg.RunsFilter(job_name="full_operations_job"))
        [ranged] = [r for r in records if r.dagster_run.tags.get(RANGE_START_TAG)]
        assert (ranged.dagster_run.tags[RANGE_START_TAG], ranged.dagster_run.tags[RANGE_END_TAG]) == \
            (yesterday.isoformat(), today.isoformat())
        assert ranged.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        sensor_done = reopened.get_run_records(dg.RunsFilter(tags={"dagster/sensor_name": "new_events_sensor"},
                                                             statuses=[dg.DagsterRunStatus.SUCCESS]))
        assert [r.dagster_run.tags[RANGE_END_TAG] for r in sensor_done] == [today.isoformat()]
        assert len(reopened.get_run_records(dg.RunsFilter(tags={"dagster/schedule_name": "order_processing_schedule"}))) == 1
        latest = reopened.get_latest_materialization_event(dg.AssetKey("operations_summary"))
        assert latest is not None and latest.run_id == ranged.dagster_run.run_id
        # Each day of the range run carries its own figures: one order yesterday, one today.
        per_day = {}
        for day in (yesterday, today):
            [record] = reopened.fetch_materializations(dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("orders"), asset_partitions=[day.isoformat()]), limit=1).records
            per_day[day] = record.event_log_entry.asset_materialization.metadata["orders"].value
        assert per_day == {yesterday: 1, today: 1}
        assert len(_ticks(reopened, "order_processing_schedule")) == 1
    finally:
        reopened.dispose()
