"""Partitions: UTC cohort days for order-level assets, calendar months for statements."""

import datetime as dt
from typing import Iterator

import dagster as dg

from e2a_assets.domain.cadence import DAILY, MONTHLY
# e2a keeps history from FIRST_DAY on (the receiver refuses older events); end_offset=1 makes
# today's (still filling) cohort a partition.
from e2a_assets.domain.intake_limits import FIRST_DAY

# Tags of a run that covers a range of partitions (single-run backfills, schedules, the sensor).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1)
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1)


def partition_days(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day covered by this run: one partition, or a range in a single-run backfill."""
    window = context.partition_time_window
    first = window.start.date()
    last = (window.end - dt.timedelta(microseconds=1)).date()
    return first, last


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """First days of the calendar months that [first, last] touches."""
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def day_chunks(first: dt.date, last: dt.date, size: int) -> Iterator[tuple[dt.date, dt.date]]:
    """[first, last] cut into consecutive windows of at most `size` days."""
    if size < 1:
        raise ValueError("chunk size must be at least one day")
    start = first
    while start <= last:
        end = min(start + dt.timedelta(days=size - 1), last)
        yield start, end
        start = end + dt.timedelta(days=1)


def month_chunks(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, dt.date]]:
    """One window per calendar month of [first, last] (monthly partitions)."""
    for month in months_between(first, last):
        yield max(first, month), min(last, _next_month(month) - dt.timedelta(days=1))


# The cadence table (domain/cadence.py) names partitionings; these are the definitions behind them.
PARTITIONS = {DAILY: daily_partitions, MONTHLY: monthly_partitions}
