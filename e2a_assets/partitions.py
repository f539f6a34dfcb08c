"""Partitions: UTC cohort days for order-level assets, calendar months for statements."""

import datetime as dt

import dagster as dg

from e2a_assets.domain.cadence import DAILY, MONTHLY

# e2a keeps history from 2025 on; end_offset=1 makes today's (still filling) cohort a partition.
FIRST_DAY = "2025-01-01"

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


# The cadence table (domain/cadence.py) names partitionings; these are the definitions behind them.
PARTITIONS = {DAILY: daily_partitions, MONTHLY: monthly_partitions}
