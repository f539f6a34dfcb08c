"""Refreshing the exception tables of some days: exceptions, the priority queue, the action
outbox, the 7-day patterns and their insights (see `e2a_assets.services.refresh`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.domain.exception_patterns import build_insights, build_patterns, in_pattern_window, lookback_start
from e2a_assets.domain.exceptions import build_exceptions, plan_actions, prioritize
from e2a_assets.services.refresh import each_day
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import read_days, read_table, replace_partition
from e2a_assets.warehouse.outbox import sync_actions


def refresh_exceptions(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, policies: pd.DataFrame) -> pd.DataFrame:
    """One exception per (tenant, order, reason code) of the cohort days, as of `as_of`."""
    events = read_days(engine, schema.webhook_events, "cohort_day", first, last)
    orders = read_days(engine, schema.orders, "cohort_day", first, last)
    sla = read_days(engine, schema.order_sla, "cohort_day", first, last)
    frame = build_exceptions(events, orders, sla, as_of, policies)
    replace_partition(engine, schema.exceptions, frame, "cohort_day", first, last)
    return frame


def refresh_exception_priorities(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp,
                                 policies: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """The scored work queue of the exceptions of the cohort days open at `as_of`."""
    frame = prioritize(read_days(engine, schema.exceptions, "cohort_day", first, last), as_of, policies)
    replace_partition(engine, schema.exception_priorities, frame, "cohort_day", first, last)
    return frame


def refresh_exception_actions(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The outbox actions of the cohort days' exceptions: what was requested and succeeded now
    (`requested`, `succeeded`) and the whole outbox of those days after the sync (`outbox`)."""
    planned = plan_actions(read_days(engine, schema.exceptions, "cohort_day", first, last))
    changes = sync_actions(engine, planned, first, last, as_of)
    return {**changes, "outbox": read_days(engine, schema.exception_actions, "cohort_day", first, last)}


def pattern_window(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Exceptions opened in the lookback of every day of first..last (by opened_at, any cohort)."""
    lo = dt.datetime.combine(lookback_start(first), dt.time(), tzinfo=dt.timezone.utc)
    hi = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    opened = schema.exceptions.c.opened_at
    return read_table(engine, schema.exceptions, [opened >= lo, opened < hi])


def refresh_exception_patterns(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The rolling 7-day patterns ending at each day."""
    window = pattern_window(engine, first, last)
    parts = [build_patterns(window, day) for day in each_day(first, last)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    replace_partition(engine, schema.exception_patterns, frame, "day", first, last)
    return frame


def refresh_exception_insights(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Findings and recommendations per tenant and day from that day's patterns."""
    patterns = read_days(engine, schema.exception_patterns, "day", first, last)
    window = pattern_window(engine, first, last)
    parts = []
    for day in each_day(first, last):
        in_window = window[in_pattern_window(window["opened_at"], day).to_numpy()]
        parts.append(build_insights(patterns[patterns["day"] == day], in_window))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    replace_partition(engine, schema.exception_insights, frame, "day", first, last)
    return frame
