"""Cadences (DOMAIN §6): which work runs when, over which days, and when nothing may start.

Pure: plain dates and times in, plain answers out. `CADENCES` is the declarative table of e2a's
jobs and schedules; `e2a_assets/jobs.py` and `e2a_assets/schedules.py` turn each row into Dagster
definitions, so a cadence is changed here and only here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

# Orders in these statuses never change again; only days with other orders are refreshed.
FINAL_STATUSES = ("delivered", "cancelled", "returned")
# Orders older than this are not re-evaluated on a cadence; late events still refresh them
# through new_events_sensor.
LOOKBACK_DAYS = 30
MAINTENANCE_START = dt.time(3, 0)
MAINTENANCE_END = dt.time(4, 0)

DAILY = "daily"
MONTHLY = "monthly"
# How a scheduled run picks its partitions.
CHANGING_DAYS = "changing_days"  # one run over the days that can still change, through today
PREVIOUS_MONTH = "previous_month"  # the month that ended before the tick, in the tick's zone
# `groups` entry meaning: every group.
EVERY_GROUP = "*"


def in_maintenance_window(moment: dt.datetime) -> bool:
    """03:00 <= local time < 04:00, on the wall clock of `moment` (pass it in the schedule's zone)."""
    return MAINTENANCE_START <= moment.time().replace(tzinfo=None) < MAINTENANCE_END


def utc_day(as_of: dt.datetime) -> dt.date:
    """The cohort day of `as_of`: cohort days are UTC days whatever the tenant's zone."""
    return as_of.astimezone(dt.timezone.utc).date()


def lookback_start(as_of: dt.datetime, first_day: dt.date) -> dt.date:
    """The oldest cohort day a cadence still looks at: LOOKBACK_DAYS back, never before history starts."""
    return max(utc_day(as_of) - dt.timedelta(days=LOOKBACK_DAYS), first_day)


def changing_range(open_days: Iterable[dt.date], as_of: dt.datetime) -> tuple[dt.date, dt.date]:
    """The contiguous range of days to refresh: the oldest open day (or yesterday) through today.

    `open_days` are the cohort days (within the lookback) that still have orders not in a final
    status; days after `as_of`'s day are ignored.
    """
    today = utc_day(as_of)
    candidates = [d for d in open_days if d <= today] + [today - dt.timedelta(days=1)]
    return min(candidates), today


def previous_month(tick: dt.datetime) -> dt.date:
    """The first day of the month that ended before `tick`, on `tick`'s own calendar."""
    return (tick.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)


@dataclass(frozen=True)
class Cadence:
    """One row of the table: a job, and the schedule that launches it (if any).

    The job selects the assets with `partitions` that are in one of `groups` or named in `assets`;
    daily and monthly assets never share a job. A job that selects nothing is not defined.
    """

    job: str
    job_description: str
    partitions: str = DAILY
    groups: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    schedule: str | None = None
    cron: str | None = None
    schedule_description: str | None = None
    # Urgent work may start inside the maintenance window; everything else is skipped there.
    urgent: bool = False
    # The schedule's time zone; None is the default tenant's.
    timezone: str | None = None
    targets: str = CHANGING_DAYS
    # Asset checks ("asset:check") the job runs on their own, without materialising anything and
    # without a partition: the checks then judge the whole ledger instead of the run's days.
    checks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.schedule is None) != (self.cron is None):
            raise ValueError(f"cadence {self.job}: a schedule needs a cron and a cron needs a schedule")
        if self.partitions not in (DAILY, MONTHLY) or self.targets not in (CHANGING_DAYS, PREVIOUS_MONTH):
            raise ValueError(f"cadence {self.job}: unknown partitions {self.partitions!r} or targets {self.targets!r}")


# `webhook_events` carries the blocking readiness checks (checks/readiness.py): a job that includes
# it skips its downstream work, with the reason, when the platform is not ready.
CADENCES: tuple[Cadence, ...] = (
    Cadence(
        job="order_processing_job",
        job_description="Events -> orders -> SLA clocks, exceptions and SLA metrics for cohort days.",
        groups=("ingestion", "orders"), assets=("exceptions",),
        schedule="order_processing_schedule", cron="0 * * * *",
        schedule_description="Hourly: events -> orders -> SLA clocks, exceptions and metrics for the days still open.",
    ),
    Cadence(
        job="exception_management_job",
        job_description="Exceptions, priorities, the action outbox, 7-day patterns and insights.",
        groups=("exceptions",), assets=("webhook_events",),
        schedule="exception_management_schedule", cron="0 */4 * * *",
        schedule_description="Every 4 hours: exceptions, priorities, actions, patterns and insights.",
    ),
    Cadence(
        job="billing_job",
        job_description="Completed orders -> billable orders -> adjustments -> invoices [blocking checks] -> "
                        "billing report, behind the readiness checks.",
        groups=("billing",), assets=("webhook_events", "completed_orders"),
        schedule="billing_schedule", cron="0 2 * * *",
        schedule_description="Daily 02:00: issue invoices, adjustments and the billing report for the days still open.",
    ),
    Cadence(
        job="full_operations_job",
        job_description="Refreshes everything daily (events, orders, exceptions, billing, summary) for the chosen "
                        "cohort days, in one run per range; monthly statements run in monthly_statements_job.",
        groups=(EVERY_GROUP,),
    ),
    Cadence(
        job="operations_summary_job",
        job_description="The executive operations summary for the chosen days.",
        groups=("operations",),
        schedule="operations_summary_schedule", cron="30 6 * * *",
        schedule_description="Daily 06:30: the executive operations summary.",
    ),
    Cadence(
        job="monthly_statements_job",
        job_description="Monthly statements per tenant from the month's invoices.",
        partitions=MONTHLY, groups=(EVERY_GROUP,),
        # 04:30 on the 1st: the month is over in every time zone e2a bills in, and 03:00-04:00 is
        # the maintenance window. The runs of the 2nd to the 8th issue the monthly invoices of
        # `monthly` tenants once their grace period is over (DOMAIN §8.3: 3 days by default); a
        # rerun issues nothing twice.
        schedule="monthly_statements_schedule", cron="30 4 1-8 * *",
        schedule_description="1st-8th of the month 04:30: statements of the month that just ended (the 1st "
                             "closes it; monthly invoices are issued once their grace period is over).",
        targets=PREVIOUS_MONTH,
    ),
    Cadence(
        job="ledger_audit_job",
        job_description="Whole-ledger audit, launched by hand: invoice numbers unique and gapless, due dates "
                        "and non-negative amounts over every tenant-month, and the row-level lineage of every "
                        "cohort day (routine runs check only the tenant-months and days they touched).",
        checks=("invoices:invoice_numbers_unique_and_gapless", "invoices:invoice_due_dates",
                "invoices:invoice_amounts_non_negative", "invoices:invoice_lines_match_their_events"),
    ),
)
