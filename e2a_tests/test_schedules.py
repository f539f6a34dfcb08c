"""Cadence schedules: tick time as evaluation time, maintenance window, changing days only."""

import datetime as dt

import dagster as dg
import pytest

from e2a_assets.definitions import build_definitions
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.domain.cadence import in_maintenance_window
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_days
from e2a_tests.factories import envelope_delivery, settings_for, shopify_delivery, shopify_order

UTC = dt.timezone.utc


@pytest.fixture
def defs(sqlite_url, tmp_path):
    settings = settings_for(sqlite_url, tmp_path)
    return build_definitions(settings)


def evaluate(defs, name, when):
    schedule = next(s for s in defs.schedules if s.name == name)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when,
            resources={"warehouse": defs.resources["warehouse"]},
        )
        return list(schedule.evaluate_tick(context).run_requests or []), schedule.evaluate_tick(context).skip_message


@pytest.mark.parametrize(
    "when, inside",
    [("02:59", False), ("03:00", True), ("03:30", True), ("03:59", True), ("04:00", False), ("12:00", False)],
)
def test_maintenance_window_boundaries(when, inside):
    hour, minute = map(int, when.split(":"))
    assert in_maintenance_window(dt.datetime(2025, 8, 10, hour, minute, tzinfo=UTC)) is inside


def test_hourly_tick_inside_the_window_is_skipped(defs):
    requests, skip = evaluate(defs, "order_processing_schedule", dt.datetime(2025, 8, 10, 3, 0, tzinfo=UTC))
    assert requests == []
    assert "maintenance window" in skip


def test_tick_targets_open_days_through_today_with_tick_as_of(defs, sqlite_url):
    engine = make_engine(sqlite_url)
    Ingestor(engine).ingest_many([
        # Order created 08-05 still open (only created); order created 08-07 delivered.
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1, "2025-08-05T10:00:00Z"), "s1"),
        shopify_delivery("demo-3pl", "orders/create", shopify_order(2, "2025-08-07T10:00:00Z"), "s2"),
        envelope_delivery("demo-3pl", "delivered", 2, "2025-08-08T10:00:00Z", "c2"),
    ])
    with dg.instance_for_test() as instance:
        defs.resolve_job_def("order_processing_job").execute_in_process(
            instance=instance, tags={RANGE_START_TAG: "2025-08-05", RANGE_END_TAG: "2025-08-07",
                                     "e2a/as_of": "2025-08-09T00:00:00+00:00"})
    tick = dt.datetime(2025, 8, 10, 14, 0, tzinfo=UTC)
    requests, _ = evaluate(defs, "order_processing_schedule", tick)
    assert len(requests) == 1
    tags = requests[0].tags
    assert (tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == ("2025-08-05", "2025-08-10")
    assert tags["e2a/as_of"] == tick.isoformat()

    # The request runs as one run over the range, with the tick as evaluation time.
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("order_processing_job").execute_in_process(instance=instance, tags=tags)
        assert result.success
    got = read_days(engine, schema.orders, "cohort_day", dt.date(2025, 8, 5), dt.date(2025, 8, 5))
    assert got["as_of"].iloc[0] == tick


def test_exception_schedule_every_four_hours_never_in_window(defs):
    schedule = next(s for s in defs.schedules if s.name == "exception_management_schedule")
    assert schedule.cron_schedule == "0 */4 * * *"
    requests, _ = evaluate(defs, "exception_management_schedule", dt.datetime(2025, 8, 10, 4, 0, tzinfo=UTC))
    assert len(requests) == 1
    assert requests[0].tags[RANGE_END_TAG] == "2025-08-10"


def test_schedules_run_by_default(defs):
    for schedule in defs.schedules:
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING, schedule.name


def test_maintenance_window_is_in_the_schedule_time_zone_whatever_the_tick_zone(sqlite_url, tmp_path):
    """A tick handed over in UTC (tests, previews, other callers) is judged in the tenant's zone:
    07:30 UTC is 03:30 in New York (inside the window), 03:30 UTC is 23:30 the day before (outside)."""
    import dataclasses

    settings = dataclasses.replace(settings_for(sqlite_url, tmp_path), default_tenant="northwind-goods")
    ny_defs = build_definitions(settings)
    schedule = next(s for s in ny_defs.schedules if s.name == "order_processing_schedule")
    assert schedule.execution_timezone == "America/New_York"

    requests, skip = evaluate(ny_defs, "order_processing_schedule", dt.datetime(2025, 8, 10, 7, 30, tzinfo=UTC))
    assert requests == [] and "maintenance window" in skip

    tick = dt.datetime(2025, 8, 10, 3, 30, tzinfo=UTC)
    requests, _ = evaluate(ny_defs, "order_processing_schedule", tick)
    assert len(requests) == 1
    assert requests[0].tags["e2a/as_of"] == tick.isoformat()  # the same instant, stated in UTC
    assert requests[0].tags[RANGE_END_TAG] == "2025-08-10"  # partitions stay UTC days


def test_a_cadence_row_becomes_a_schedule_and_only_urgent_rows_run_in_the_window(sqlite_url):
    """The table drives the schedule: name, cron, job, zone; urgency decides the window."""
    from e2a_assets.domain.cadence import Cadence
    from e2a_assets.resources import WarehouseResource
    from e2a_assets.schedules import build_schedules

    rows = [Cadence(job="order_processing_job", job_description="x", groups=("orders",), schedule=f"{kind}_schedule",
                    cron="30 3 * * *", schedule_description=kind, urgent=kind == "urgent", timezone="Europe/Berlin")
            for kind in ("urgent", "routine")]
    schedules = {s.name: s for s in build_schedules("UTC", {"order_processing_job"}, rows)}
    assert {(n, s.cron_schedule, s.job_name, s.execution_timezone) for n, s in schedules.items()} == {
        ("urgent_schedule", "30 3 * * *", "order_processing_job", "Europe/Berlin"),
        ("routine_schedule", "30 3 * * *", "order_processing_job", "Europe/Berlin")}
    tick = dt.datetime(2025, 8, 10, 1, 30, tzinfo=UTC)  # 03:30 in Berlin
    results = {}
    for name, schedule in schedules.items():
        context = dg.build_schedule_context(scheduled_execution_time=tick,
                                            resources={"warehouse": WarehouseResource(database_url=sqlite_url)})
        results[name] = schedule.evaluate_tick(context)
    assert results["routine_schedule"].run_requests == []
    assert results["routine_schedule"].skip_message == \
        "2025-08-10T03:30:00+02:00 is inside the maintenance window 03:00-04:00"
    [request] = results["urgent_schedule"].run_requests
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2025-08-09", "2025-08-10")
    assert request.run_key == "urgent_schedule:2025-08-10T03:30:00+02:00"
    # A row whose job does not exist gets no schedule.
    assert build_schedules("UTC", {"billing_job"}, rows) == []
