"""Refreshing the order-processing tables of some cohort days: the canonical events, orders,
SLA clocks, daily SLA metrics and completed orders (see `e2a_assets.services.refresh`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.domain.billing import build_completed_orders
from e2a_assets.domain.orders import build_orders
from e2a_assets.domain.sla import build_order_sla, build_sla_metrics
from e2a_assets.intake.landing import cohort_events_query, cohort_orders, cohort_orders_table
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import read_days, replace_partition, replace_partition_from_query


# What the webhook_events asset's figures read back of the rows it wrote.
EVENT_FIGURE_COLUMNS = ("tenant", "order_id", "event_type", "occurred_at", "source", "cohort_day")


def refresh_webhook_events(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The canonical, deduplicated events of the cohort days, taken from the event log.

    Only the cohort day of each order is decided in Python (the domain's rule, one row per
    order); the events themselves are copied from the event log inside the database, and the
    columns the figures need are read back: the event rows never cross into Python whole.
    """
    orders = cohort_orders(engine, first, last)
    staged = cohort_orders_table()
    replace_partition_from_query(engine, schema.webhook_events, "cohort_day", first, last,
                                 cohort_events_query(staged), staged=(staged, orders))  # fmt: skip
    return read_days(engine, schema.webhook_events, "cohort_day", first, last, columns=EVENT_FIGURE_COLUMNS)


def refresh_orders(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, policies: pd.DataFrame) -> pd.DataFrame:
    """One row per order of the cohort days, as of `as_of`."""
    events = read_days(engine, schema.webhook_events, "cohort_day", first, last)
    # The evaluation time is "now" for the run: events stamped later are not yet known.
    events = events[events["occurred_at"] <= as_of]
    frame = build_orders(events, as_of, policies)
    replace_partition(engine, schema.orders, frame, "cohort_day", first, last)
    return frame


def refresh_order_sla(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, policies: pd.DataFrame) -> pd.DataFrame:
    """Every SLA clock of every order of the cohort days, measured up to `as_of` when running."""
    frame = build_order_sla(read_days(engine, schema.orders, "cohort_day", first, last), as_of, policies)
    replace_partition(engine, schema.order_sla, frame, "cohort_day", first, last)
    return frame


def refresh_sla_metrics(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, policies: pd.DataFrame) -> pd.DataFrame:
    """The daily SLA figures per tenant of the days."""
    frame = build_sla_metrics(
        read_days(engine, schema.orders, "cohort_day", first, last),
        read_days(engine, schema.order_sla, "cohort_day", first, last),
        read_days(engine, schema.exceptions, "cohort_day", first, last),
        as_of=as_of,
        policies=policies,
    )
    replace_partition(engine, schema.sla_metrics, frame, "day", first, last)
    return frame


def refresh_completed_orders(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """The orders of the cohort days that are done from the warehouse's point of view."""
    frame = build_completed_orders(read_days(engine, schema.orders, "cohort_day", first, last), as_of)
    replace_partition(engine, schema.completed_orders, frame, "cohort_day", first, last)
    return frame
