"""The Dagster instance on Postgres (dagster.postgres.yaml): ticks, runs and materialisations stored.

A throwaway Postgres database (separate from any warehouse) holds the instance. The scheduler
and sensor daemons' own iteration functions evaluate e2a's code location once each, as
`dagster-daemon` would, so ticks and launched runs are recorded for real; then a sensor-requested
partition and a range backfill are executed on the same instance.
"""

import datetime as dt
import os
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


def test_cli_installs_the_postgres_instance_config(tmp_path, monkeypatch, instance_db_url):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("E2A_DAGSTER_POSTGRES_URL", instance_db_url)
    monkeypatch.delenv("E2A_DAGSTER_YAML", raising=False)
    home = cli.dagster_home(Settings.from_env({**os.environ, "E2A_DATA_DIR": str(tmp_path)}))
    assert (home / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.postgres.yaml").read_bytes()
    assert os.environ["E2A_DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    finally:
        instance.dispose()
    # Without the setting, the embedded (SQLite) config comes back.
    monkeypatch.delenv("E2A_DAGSTER_POSTGRES_URL")
    cli.dagster_home(Settings.from_env({**os.environ, "E2A_DATA_DIR": str(tmp_path)}))
    assert (home / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()


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
    home = cli.dagster_home(Settings.from_env({**os.environ, "E2A_DATA_DIR": str(tmp_path)}))

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
