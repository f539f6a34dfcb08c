"""Schedules: the cadences of DOMAIN §6, each evaluated with its tick time as `as_of`.

Every schedule targets only the cohort days that can still change — days with orders not yet in
a final state, plus yesterday and today — and launches ONE run over that range (the assets have
single-run backfill policies). Nothing non-urgent starts inside the maintenance window.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
from sqlalchemy import select

from e2a_assets.partitions import FIRST_DAY, RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.resources import AS_OF_TAG, WarehouseResource
from e2a_assets.warehouse.schema import orders as orders_table

FINAL_STATUSES = ("delivered", "cancelled", "returned")
# Orders older than this are not re-evaluated on a cadence; late events still refresh them
# through new_events_sensor.
LOOKBACK_DAYS = 30
MAINTENANCE_START = dt.time(3, 0)
MAINTENANCE_END = dt.time(4, 0)


def in_maintenance_window(moment: dt.datetime) -> bool:
    """03:00 <= local time < 04:00, on the wall clock of `moment` (see `local_tick`)."""
    return MAINTENANCE_START <= moment.time().replace(tzinfo=None) < MAINTENANCE_END


def local_tick(context: dg.ScheduleEvaluationContext, timezone: str) -> dt.datetime:
    """The tick in the schedule's time zone. The daemon hands it over in that zone, but a test,
    a preview or another caller may not: never judge the window on some other zone's clock."""
    tick = context.scheduled_execution_time
    if tick.tzinfo is None:  # a naive tick is UTC, like every time in e2a
        tick = tick.replace(tzinfo=dt.timezone.utc)
    return tick.astimezone(ZoneInfo(timezone))


def open_days(engine, as_of: dt.datetime, lookback_days: int = LOOKBACK_DAYS) -> list[dt.date]:  # noqa: ANN001
    """Cohort days (within the lookback) that still have orders not delivered, cancelled or returned."""
    today = as_of.astimezone(dt.timezone.utc).date()
    first = max(today - dt.timedelta(days=lookback_days), dt.date.fromisoformat(FIRST_DAY))
    stmt = select(orders_table.c.cohort_day).distinct().where(
        orders_table.c.cohort_day >= first,
        orders_table.c.status.not_in(FINAL_STATUSES),
    )
    with engine.connect() as conn:
        days = [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)[:10]) for (d,) in conn.execute(stmt)]
    return sorted(set(days))


def changing_range(engine, as_of: dt.datetime) -> tuple[dt.date, dt.date]:  # noqa: ANN001
    """The contiguous range of days to refresh: the oldest open day (or yesterday) to today."""
    today = as_of.astimezone(dt.timezone.utc).date()
    candidates = [d for d in open_days(engine, as_of) if d <= today] + [today - dt.timedelta(days=1)]
    return min(candidates), today


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


def _cadence(name: str, cron: str, job_name: str, description: str, timezone: str, *, urgent: bool = False):
    """A schedule over the changing days; skipped inside the maintenance window unless urgent."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job_name=job_name,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
        tick = local_tick(context, timezone)
        if not urgent and in_maintenance_window(tick):
            return dg.SkipReason(f"{tick.isoformat()} is inside the maintenance window 03:00-04:00")
        first, last = changing_range(warehouse.get_engine(), tick)
        return range_run_request(first, last, tick, name)

    return _schedule


def build_schedules(timezone: str = "UTC", job_names: set[str] | None = None) -> list:
    """The cadence schedules, in the default tenant's time zone; only for jobs that exist."""
    cadences = [
        _cadence("order_processing_schedule", "0 * * * *", "order_processing_job",
                 "Hourly: events -> orders -> SLA clocks, exceptions and metrics for the days still open.", timezone),
        _cadence("exception_management_schedule", "0 */4 * * *", "exception_management_job",
                 "Every 4 hours: exceptions, priorities, actions, patterns and insights.", timezone),
        _cadence("operations_summary_schedule", "30 6 * * *", "operations_summary_job",
                 "Daily 06:30: the executive operations summary.", timezone),
    ]
    return [s for s in cadences if job_names is None or s.job_name in job_names]


# ---------------------------------------------------------------------------------------------
# Billing (issue 5): daily invoices at 02:00, monthly statements after month end.

# 04:30 on the 1st: the month is over in every time zone e2a bills in, and 03:00-04:00 is the
# maintenance window.
MONTHLY_STATEMENTS_CRON = "30 4 1 * *"


def build_billing_schedules(timezone: str = "UTC", job_names: set[str] | None = None) -> list:
    """`billing_schedule` (daily 02:00, one run over the days that can still change) and
    `monthly_statements_schedule` (the previous month, on the 1st at 04:30)."""

    @dg.schedule(
        name="billing_schedule",
        cron_schedule="0 2 * * *",
        job_name="billing_job",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily 02:00: issue invoices, adjustments and the billing report for the days still open.",
    )
    def billing_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
        tick = local_tick(context, timezone)
        if in_maintenance_window(tick):
            return dg.SkipReason(f"{tick.isoformat()} is inside the maintenance window 03:00-04:00")
        first, last = changing_range(warehouse.get_engine(), tick)
        return range_run_request(first, last, tick, "billing_schedule")

    @dg.schedule(
        name="monthly_statements_schedule",
        cron_schedule=MONTHLY_STATEMENTS_CRON,
        job_name="monthly_statements_job",
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="1st of the month 04:30: statements of the month that just ended.",
    )
    def monthly_statements_schedule(context: dg.ScheduleEvaluationContext):
        tick = local_tick(context, timezone)  # "the month that just ended" is the tenant's month
        month = (tick.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        return dg.RunRequest(
            run_key=f"monthly_statements_schedule:{month:%Y-%m}:{tick.isoformat()}",
            partition_key=month.isoformat(),
            tags={AS_OF_TAG: tick.astimezone(dt.timezone.utc).isoformat(), "e2a/trigger": "monthly_statements_schedule"},
        )

    schedules = [billing_schedule, monthly_statements_schedule]
    return [s for s in schedules if job_names is None or s.job_name in job_names]
