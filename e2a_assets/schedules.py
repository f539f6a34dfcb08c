"""Schedules: one per scheduled row of the cadence table (`domain/cadence.py::CADENCES`), each
evaluated with its tick time as `as_of`.

A "changing days" schedule targets only the cohort days that can still change — days with orders
not yet in a final state, plus yesterday and today — and launches ONE run over that range (the
assets have single-run backfill policies). A "previous month" schedule launches the month that
just ended. Nothing non-urgent starts inside the maintenance window.
"""

import datetime as dt
from typing import Sequence
from zoneinfo import ZoneInfo

import dagster as dg
from sqlalchemy import select

from e2a_assets.domain import cadence as rules
from e2a_assets.partitions import FIRST_DAY, RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.resources import AS_OF_TAG, WarehouseResource
from e2a_assets.warehouse.schema import orders as orders_table


def local_tick(context: dg.ScheduleEvaluationContext, timezone: str) -> dt.datetime:
    """The tick in the schedule's time zone. The daemon hands it over in that zone, but a test,
    a preview or another caller may not: never judge the window on some other zone's clock."""
    tick = context.scheduled_execution_time
    if tick.tzinfo is None:  # a naive tick is UTC, like every time in e2a
        tick = tick.replace(tzinfo=dt.timezone.utc)
    return tick.astimezone(ZoneInfo(timezone))


def open_days(engine, as_of: dt.datetime) -> list[dt.date]:  # noqa: ANN001
    """Cohort days (within the lookback) that still have orders not in a final status."""
    stmt = select(orders_table.c.cohort_day).distinct().where(
        orders_table.c.cohort_day >= rules.lookback_start(as_of, dt.date.fromisoformat(FIRST_DAY)),
        orders_table.c.status.not_in(rules.FINAL_STATUSES),
    )
    with engine.connect() as conn:
        days = [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]) for (d,) in conn.execute(stmt)]
    return sorted(set(days))


def range_run_request(first: dt.date, last: dt.date, as_of: dt.datetime, schedule: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{schedule}:{as_of.isoformat()}",
        tags={
            RANGE_START_TAG: first.isoformat(),
            RANGE_END_TAG: last.isoformat(),
            AS_OF_TAG: as_of.astimezone(dt.timezone.utc).isoformat(),
            "e2a/trigger": schedule,
        },
    )


def previous_month_run_request(tick: dt.datetime, schedule: str) -> dg.RunRequest:
    month = rules.previous_month(tick)  # "the month that just ended" is the tenant's month
    return dg.RunRequest(
        run_key=f"{schedule}:{month:%Y-%m}:{tick.isoformat()}",
        partition_key=month.isoformat(),
        tags={AS_OF_TAG: tick.astimezone(dt.timezone.utc).isoformat(), "e2a/trigger": schedule},
    )


def _in_window(cadence: rules.Cadence, tick: dt.datetime) -> dg.SkipReason | None:
    if not cadence.urgent and rules.in_maintenance_window(tick):
        return dg.SkipReason(f"{tick.isoformat()} is inside the maintenance window 03:00-04:00")
    return None


def build_schedule(cadence: rules.Cadence, default_timezone: str) -> dg.ScheduleDefinition:
    """The schedule of one cadence row, in its own time zone or the default tenant's."""
    timezone = cadence.timezone or default_timezone
    decorate = dg.schedule(
        name=cadence.schedule,
        cron_schedule=cadence.cron,
        job_name=cadence.job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=cadence.schedule_description,
    )
    if cadence.targets == rules.PREVIOUS_MONTH:
        # Needs no warehouse: the partition follows from the tick alone.
        def previous_month_schedule(context: dg.ScheduleEvaluationContext):
            tick = local_tick(context, timezone)
            return _in_window(cadence, tick) or previous_month_run_request(tick, cadence.schedule)

        return decorate(previous_month_schedule)

    def changing_days_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
        tick = local_tick(context, timezone)
        if skip := _in_window(cadence, tick):
            return skip
        first, last = rules.changing_range(open_days(warehouse.get_engine(), tick), tick)
        return range_run_request(first, last, tick, cadence.schedule)

    return decorate(changing_days_schedule)


def build_schedules(
    timezone: str = "UTC", job_names: set[str] | None = None, cadences: Sequence[rules.Cadence] = rules.CADENCES,
) -> list:
    """The cadence schedules, in the default tenant's time zone; only for jobs that exist."""
    return [build_schedule(c, timezone) for c in cadences
            if c.schedule is not None and (job_names is None or c.job in job_names)]
