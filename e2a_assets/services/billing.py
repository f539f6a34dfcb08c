"""Billing figures recomputed from the warehouse: reads the source rows of some cohort days and
applies the domain's billing rules. Used by the billing assets, the invoice checks and the CLI."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, Table

from e2a_assets.domain.billing import build_billable_orders, price_orders
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import read_days


def recompute_billable(
    engine: Engine,
    first: dt.date,
    last: dt.date,
    as_of: pd.Timestamp,
    registry: TenantRegistry,
    orders_table: Table | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Billable/held orders of cohort days [first, last] priced from the source events as of
    `as_of` (events known by then, the orders, their exceptions): (billable, totals, lines).

    `orders_table` is `orders` by default; the `billable_orders` asset passes `completed_orders`.
    """
    events = read_days(engine, schema.webhook_events, "cohort_day", first, last)
    events = events[events["occurred_at"] <= as_of]
    orders = read_days(engine, orders_table if orders_table is not None else schema.orders, "cohort_day", first, last)
    exceptions = read_days(engine, schema.exceptions, "cohort_day", first, last)
    billable = build_billable_orders(events, orders, exceptions, registry, as_of)
    totals, lines = price_orders(billable, registry)
    return billable, totals, lines
