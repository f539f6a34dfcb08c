"""`operations_summary` and the `system_readiness` checks, run through `full_operations_job`."""

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from e2a_assets import compat
from e2a_assets.checks.readiness import CHECKS, evaluate_readiness
from e2a_assets.definitions import build_definitions
from e2a_assets.cli.demo import materialize_range
from e2a_assets.domain.readiness import ReadinessThresholds
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_days
from e2a_assets.intake.landing import add_dead_letter
from e2a_tests.factories import envelope_delivery, shopify_delivery, shopify_order
from e2a_tests.factories import settings_for

DAY = dt.date(2025, 8, 1)
AS_OF = pd.Timestamp("2025-08-02T12:00:00Z")


@pytest.fixture
def setup(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    Ingestor(engine).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1001, "2025-08-01T08:00:00Z"), "s-1"),
        envelope_delivery("demo-3pl", "pick_completed", 1001, "2025-08-01T09:30:00Z", "w-1"),
        envelope_delivery("demo-3pl", "pack_completed", 1001, "2025-08-01T12:50:00Z", "w-2"),
        shopify_delivery("demo-3pl", "orders/create",
                         shopify_order(1002, "2025-08-01T10:00:00Z", financial_status="pending"), "s-2"),
    ])
    return engine, build_definitions(settings_for(sqlite_url, tmp_path))


def check_results(result):
    """The readiness checks' evaluations in a run, by check name."""
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.asset_check_evaluation_data.check_name in CHECKS}


def _failed_run(instance, defs, created_at: dt.datetime) -> None:
    """A failed run of full_operations_job recorded as created at `created_at` (not the wall clock)."""
    run = instance.create_run_for_job(defs.resolve_job_def("full_operations_job"), run_id=None)
    instance.delete_run(run.run_id)
    instance.run_storage.add_historical_run(run.with_status(dg.DagsterRunStatus.FAILURE), created_at)


def test_daily_run_is_ready_and_summarises_the_day(setup):
    engine, defs = setup
    with dg.instance_for_test() as instance:
        # A failed run that day counts against the platform's health; one the next day does not.
        _failed_run(instance, defs, dt.datetime(2025, 8, 1, 15, 0, tzinfo=dt.timezone.utc))
        _failed_run(instance, defs, dt.datetime(2025, 8, 2, 0, 30, tzinfo=dt.timezone.utc))
        result = materialize_range(instance, defs, "full_operations_job", DAY.isoformat(), DAY.isoformat(), AS_OF)
        checks = check_results(result)
        # Fresh set-up: events just received, sensor never ran -> ready.
        assert {name: c.passed for name, c in checks.items()} == {
            "warehouse_reachable": True, "events_fresh": True, "dead_letter_backlog": True, "sensor_lag": True}
        assert "never run" in checks["sensor_lag"].description

        summary = read_days(engine, schema.operations_summary, "day", DAY, DAY).set_index("tenant")
        assert set(summary.index) >= {"ALL", "demo-3pl"}
        row = summary.loc["demo-3pl"]
        assert (row.orders_processed, row.orders_completed) == (2, 0)
        assert row.exceptions_opened >= 1  # PACK_DELAY, PAYMENT_FAILED
        assert row.runs_failed == 1
        assert summary.loc["ALL"].runs_failed == 1
        assert "1 Dagster run(s) failed" in summary.loc["ALL"].recommendations
        meta = {m.asset_key.to_user_string(): m.materialization.metadata
                for m in result.get_asset_materialization_events()}["operations_summary"]
        assert meta["orders_processed"].value == 2
        assert meta["runs_failed"].value == 1
        assert meta["status"].value in ("EXCELLENT", "GOOD", "FAIR", "POOR")
        assert "Operations summary 2025-08-01" in meta["report"].value


@pytest.mark.parametrize("job_name", ["full_operations_job", "billing_job", "exception_management_job"])
def test_dead_letter_backlog_blocks_downstream_work(setup, job_name):
    engine, defs = setup
    with engine.begin() as conn:
        for n in range(26):
            add_dead_letter(conn, tenant="demo-3pl", source="wms", headers={}, body=b"{",
                            reason="bad json", received_at=dt.datetime.now(dt.timezone.utc))
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def(job_name)
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
            "dagster/asset_partition_range_start": DAY.isoformat(),
            "dagster/asset_partition_range_end": DAY.isoformat(), "e2a/as_of": AS_OF.isoformat()})
        assert not result.success
        check = check_results(result)["dead_letter_backlog"]
        assert not check.passed and "26 dead letters pending" in check.description
        materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
        # Nothing computed from the incomplete log is written: only the checked asset itself (and in
        # billing_job `completed_orders`, which reads the stored orders, not the log).
        assert "webhook_events" in materialized
        assert materialized - {"webhook_events", "completed_orders"} == set()
        assert read_days(engine, schema.orders, "cohort_day", DAY, DAY).empty


def _store_sensor_state(instance, defs, status, cursor, last_tick):
    compat.store_sensor_state(instance, module_name="e2a_assets.definitions", location_name="e2a",
                              sensor_name="new_events_sensor", status=status, cursor=cursor,
                              last_tick_timestamp=last_tick)


def test_sensor_lag_counts_only_for_a_running_sensor(setup):
    engine, defs = setup
    warehouse = defs.resources["warehouse"]
    thresholds = ReadinessThresholds(max_sensor_lag_minutes=15)
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)  # the 4 events have waited an hour
    with dg.instance_for_test() as instance:
        _store_sensor_state(instance, defs, "STOPPED", None, None)
        lag = evaluate_readiness(warehouse, instance, thresholds, now=later)[3]
        assert lag.passed and "is stopped" in lag.description
    with dg.instance_for_test() as instance:
        # Running, has seen 2 of the 4 events: the oldest unseen one is an hour old.
        _store_sensor_state(instance, defs, "DECLARED_IN_CODE", json.dumps({"commit_seq": 0, "id": 2}),
                            later.timestamp() - 30)
        lag = evaluate_readiness(warehouse, instance, thresholds, now=later)[3]
        assert not lag.passed and lag.severity == "WARN"
        assert lag.metadata["unseen_events"] == 2 and lag.metadata["sensor_lag_minutes"] >= 59
        blocking = evaluate_readiness(warehouse, instance, ReadinessThresholds(block_on_sensor_lag=True), now=later)[3]
        assert blocking.severity == "ERROR"
        # Caught up: no lag however old the events are.
        _store_sensor_state(instance, defs, "RUNNING", json.dumps({"commit_seq": 0, "id": 4}), later.timestamp())
        assert evaluate_readiness(warehouse, instance, thresholds, now=later)[3].passed


def test_unreachable_warehouse_fails_every_check(tmp_path):
    from e2a_assets.resources import WarehouseResource

    broken = WarehouseResource(database_url="postgresql://nobody@127.0.0.1:1/none")
    with dg.instance_for_test() as instance:
        verdicts = evaluate_readiness(broken, instance, ReadinessThresholds())
    assert [v.passed for v in verdicts] == [False] * 4
    assert all(v.severity == "ERROR" for v in verdicts)
    assert verdicts[0].description.startswith("warehouse unreachable")


def test_thresholds_are_run_config_and_an_ephemeral_instance_has_no_sensor_state(sqlite_url, tmp_path):
    """An empty warehouse on an ephemeral instance: stale events block only when asked to."""
    defs = build_definitions(settings_for(sqlite_url, tmp_path))
    job = defs.resolve_job_def("order_processing_job")
    config = {"ops": {"system_readiness": {"config": {"block_on_stale_events": True}}}}
    result = job.execute_in_process(partition_key=DAY.isoformat(), run_config=config, raise_on_error=False,
                                    tags={"e2a/as_of": AS_OF.isoformat()})
    checks = check_results(result)
    assert not checks["events_fresh"].passed and checks["events_fresh"].severity.value == "ERROR"
    assert checks["sensor_lag"].passed
    assert {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()} == {"webhook_events"}
