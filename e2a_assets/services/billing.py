"""Billing figures recomputed from the warehouse: reads the source rows of some cohort days and
applies the domain's billing rules. Used by the billing assets, the invoice checks and the CLI;
and the monthly statements with their month-close notes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, Table

from e2a_assets.domain.billing import PRICE_COLUMNS, build_billable_orders, price_orders
from e2a_assets.domain.lineage import line_events
from e2a_assets.domain.notes import month_closed
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.statements import build_monthly_statements
from e2a_assets.services import billing_reads as reads
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.frames import read_days, read_table


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

    An order invoiced by then is priced with the rate card version recorded on its invoice, the
    others with the version in force on their invoice date (DOMAIN §8.1).
    `orders_table` is `orders` by default; the `billable_orders` asset passes `completed_orders`.
    """
    events = known_events(engine, first, last, as_of)
    orders = read_days(engine, orders_table if orders_table is not None else schema.orders, "cohort_day", first, last)
    exceptions = read_days(engine, schema.exceptions, "cohort_day", first, last)
    billable = build_billable_orders(events, orders, exceptions, registry, as_of)
    totals, lines = price_orders(with_recorded_versions(engine, billable, first, last, as_of), registry)
    return billable, totals, lines


def known_events(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """The events of cohort days [first, last] that had occurred by `as_of`: what pricing counts."""
    events = read_days(engine, schema.webhook_events, "cohort_day", first, last)
    return events[events["occurred_at"] <= as_of]


def lines_lineage(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, billable: pd.DataFrame,
                  lines: pd.DataFrame) -> pd.DataFrame:
    """Which events each of `lines` (priced from `billable` of cohort days [first, last] as of
    `as_of`) comes from: `lineage.py::line_events` over the events pricing counted."""
    return line_events(known_events(engine, first, last, as_of), billable, lines)


def with_recorded_versions(engine: Engine, billable: pd.DataFrame, first: dt.date, last: dt.date,
                           as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """`billable` with `rate_card_version` set for the orders invoiced by `as_of` (the version on
    the invoice) and empty for the others (priced by the version in force)."""
    day = schema.invoices.c.cohort_day
    invoiced = read_table(engine, schema.invoices, [day >= first, day <= last],
                          columns=["tenant", "order_id", "rate_card_version", "issued_at"])  # fmt: skip
    if as_of is not None:
        invoiced = invoiced[invoiced["issued_at"] <= as_of]
    out = billable.drop(columns=["rate_card_version"], errors="ignore")
    if out.empty:
        return out.assign(rate_card_version=pd.Series(dtype="Int64"))
    return out.merge(invoiced[["tenant", "order_id", "rate_card_version"]], how="left", on=["tenant", "order_id"])


def reprice_invoiced(stored: pd.DataFrame, issued: pd.DataFrame, registry: TenantRegistry) -> pd.DataFrame:
    """Totals of the stored billable orders that have an invoice, priced again with the rate card
    version recorded on it (never a later one): what recalculation adjustments compare with."""
    invoiced = stored.drop(columns=[*PRICE_COLUMNS, "as_of"], errors="ignore").merge(
        issued[["tenant", "order_id", "rate_card_version"]], how="inner", on=["tenant", "order_id"])
    totals, _ = price_orders(invoiced, registry)
    return totals
def month_starts(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first day of every month overlapping [first, last]."""
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return months


def close_and_build_statements(
    engine: Engine, registry: TenantRegistry, first: dt.date, last: dt.date, as_of: pd.Timestamp, run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The monthly statements of the months in [first, last] and the month-close notes issued now.

    Per month: the figures from the month's invoices and adjustments (domain/statements.py); for
    a month closed at `as_of`, the ledger issues the volume-discount credit note and the minimum
    top-up debit note (or a correcting note, or nothing on a rerun: warehouse/ledger.py); the
    statement is then built from the notes the ledger holds for the month, so its net due is
    Σ invoices + Σ debit notes − Σ credit notes.
    """
    book = reads.invoices_dated(engine, first, last)
    adjustments = reads.adjustments_dated(engine, first, last)
    overdue = reads.ledger_states(engine, as_of)[["tenant", "invoices_overdue", "overdue_cents"]]
    tenants = reads.invoiced_tenants(engine)
    parts, issued = [], []
    for month in month_starts(first, last):
        figures = build_monthly_statements(book, adjustments, registry, month, as_of, tenants, overdue)
        if month_closed(month, as_of):
            issued.append(ledger.issue_month_close_notes(engine, figures, run_id, as_of))
        end = (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()
        notes = ledger.read_notes(engine, month, end)
        parts.append(build_monthly_statements(book, adjustments, registry, month, as_of, tenants, overdue, notes=notes))
    issued = [n for n in issued if len(n)]
    return (pd.concat(parts, ignore_index=True),
            pd.concat(issued, ignore_index=True) if issued else pd.DataFrame(columns=ledger.NOTE_COLUMNS))  # fmt: skip
