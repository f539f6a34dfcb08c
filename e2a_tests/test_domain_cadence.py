"""Cadence rules (DOMAIN §6) on plain dates: lookback, changing days, previous month, the table."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from e2a_assets.domain import cadence
from e2a_assets.domain.cadence import CADENCES, Cadence, changing_range, lookback_start, previous_month

UTC = dt.timezone.utc


def test_changing_range_runs_from_the_oldest_open_day_through_today():
    as_of = dt.datetime(2025, 8, 10, 14, 0, tzinfo=UTC)
    assert changing_range([dt.date(2025, 8, 7), dt.date(2025, 8, 5)], as_of) == (dt.date(2025, 8, 5), dt.date(2025, 8, 10))


def test_changing_range_without_open_days_is_yesterday_and_today():
    assert changing_range([], dt.datetime(2025, 8, 10, 2, 0, tzinfo=UTC)) == (dt.date(2025, 8, 9), dt.date(2025, 8, 10))


def test_changing_range_ignores_days_after_as_of_and_uses_the_utc_day():
    # 23:30 in New York on 08-09 is 03:30 UTC on 08-10: cohort days are UTC days.
    as_of = dt.datetime(2025, 8, 9, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    assert changing_range([dt.date(2025, 8, 11)], as_of) == (dt.date(2025, 8, 9), dt.date(2025, 8, 10))


def test_lookback_is_thirty_days_but_never_before_history():
    first = dt.date(2025, 1, 1)
    assert lookback_start(dt.datetime(2025, 8, 10, tzinfo=UTC), first) == dt.date(2025, 7, 11)
    assert lookback_start(dt.datetime(2025, 1, 20, tzinfo=UTC), first) == first


@pytest.mark.parametrize("tick, month", [
    (dt.datetime(2025, 9, 1, 4, 30, tzinfo=UTC), dt.date(2025, 8, 1)),
    (dt.datetime(2025, 1, 1, 4, 30, tzinfo=UTC), dt.date(2024, 12, 1)),
    (dt.datetime(2025, 3, 1, 4, 30, tzinfo=ZoneInfo("America/New_York")), dt.date(2025, 2, 1)),
])
def test_previous_month_is_on_the_ticks_calendar(tick, month):
    assert previous_month(tick) == month


def test_the_table_names_every_job_and_schedule_once():
    jobs = [c.job for c in CADENCES]
    schedules = [c.schedule for c in CADENCES if c.schedule]
    assert jobs == ["order_processing_job", "exception_management_job", "billing_job", "full_operations_job",
                    "operations_summary_job", "monthly_statements_job", "ledger_audit_job"]
    assert schedules == ["order_processing_schedule", "exception_management_schedule", "billing_schedule",
                         "operations_summary_schedule", "monthly_statements_schedule"]
    assert [c.job for c in CADENCES if c.partitions == cadence.MONTHLY] == ["monthly_statements_job"]
    assert [c.schedule for c in CADENCES if c.targets == cadence.PREVIOUS_MONTH] == ["monthly_statements_schedule"]
    assert not any(c.urgent for c in CADENCES)  # nothing in e2a may start in the maintenance window


def test_a_row_with_a_schedule_but_no_cron_is_refused():
    with pytest.raises(ValueError, match="cadence x_job: a schedule needs a cron"):
        Cadence(job="x_job", job_description="x", schedule="x_schedule")
