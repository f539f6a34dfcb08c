"""Billing figures recomputed from the warehouse: reads the source rows of some cohort days and
applies the domain's billing rules. Used by the billing assets, the invoice checks and the CLI;
and the monthly statements with their month-close notes and the monthly invoices of `monthly`
tenants (DOMAIN §8.3)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, Table

from e2a_assets.domain.billing import PRICE_COLUMNS, build_billable_orders, price_orders
from e2a_assets.domain.lineage import charge_lineage, line_events
from e2a_assets.domain.monthly import (
    apply_monthly_figures,
    as_charge_invoices,
    due_tenants,
    monthly_order_id,
    monthly_statement_figures,
    plan_monthly_invoices,
    restore_invoice_numbers,
    validate_monthly_invoices,
)
from e2a_assets.domain.notes import month_closed, month_end
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.statements import ADJUSTMENT_COLUMNS, build_monthly_statements, compute_adjustments
from e2a_assets.services import billing_reads as reads
from e2a_assets.services.ledger_scope import invoices_of_months, lines_of
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.frames import read_days, read_table
from e2a_assets.warehouse.schema import MONTHLY_INVOICE


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
    # An order charged on a monthly invoice (DOMAIN §8.3) keeps the version recorded on its charge.
    charged = ledger.read_charges(engine, first, last)[["tenant", "order_id", "rate_card_version", "issued_at"]]
    # (An order both invoiced and charged - a damaged ledger the coverage check reports - is priced once.)
    invoiced = pd.concat([invoiced, charged], ignore_index=True).drop_duplicates(["tenant", "order_id"]) if len(charged) else invoiced
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
def charge_adjustments(engine: Engine, stored: pd.DataFrame, first: dt.date, last: dt.date, registry: TenantRegistry,
                       as_of: pd.Timestamp) -> pd.DataFrame:  # fmt: skip
    """New RECALCULATION adjustments of the charges on monthly invoices of cohort days [first,
    last] (DOMAIN §8.2, §8.3): each charge is judged like a per-order invoice - its amount +
    applied adjustments against `stored` (billable_orders rows) priced again with the charge's
    rate card version - and the adjustment names the monthly invoice, so its note references it.
    A charge issued, or adjusted, after `as_of` is left alone, and so are the charges of a damaged
    monthly invoice. Columns `ADJUSTMENT_COLUMNS` + cohort_day (the order's)."""
    charges = ledger.read_charges(engine, first, last)
    charges = charges[charges["issued_at"] <= as_of]
    if charges.empty:
        return pd.DataFrame(columns=[*ADJUSTMENT_COLUMNS, "cohort_day"])
    existing = ledger.read_adjustments_for(engine, charges)
    existing = existing.merge(charges[["tenant", "order_id"]], on=["tenant", "order_id"])
    later = set(existing.loc[existing["created_at"] > as_of, "order_id"])
    # A damaged monthly invoice (its per-order lines != Σ its charges) is never "corrected": the
    # checks report it.
    numbers = sorted(set(charges["invoice_number"]))
    damaged = validate_monthly_invoices(ledger.invoices_by_number(engine, numbers), lines_for_numbers(engine, numbers),
                                        ledger.read_charges(engine, numbers=numbers), None)  # fmt: skip
    charges = charges[~charges["order_id"].isin(later) & ~charges["invoice_number"].isin(set(damaged["invoice_number"]))]
    recomputed = reprice_invoiced(stored, charges, registry)
    issued, keyed = as_charge_invoices(charges, existing)
    new = restore_invoice_numbers(compute_adjustments(issued, recomputed, keyed, registry, as_of), charges)
    if new.empty:
        return pd.DataFrame(columns=[*ADJUSTMENT_COLUMNS, "cohort_day"])
    return new.merge(charges[["tenant", "order_id", "cohort_day"]], on=["tenant", "order_id"], how="left")


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

    Per month: the monthly invoices due at `as_of` are issued first (`issue_monthly`, DOMAIN
    §8.3); then the figures from the month's invoices and adjustments (domain/statements.py); for
    a month closed at `as_of`, the ledger issues the volume-discount credit note and the minimum
    top-up debit note of the `per_order` tenants (or a correcting note, or nothing on a rerun:
    warehouse/ledger.py) - a `monthly` tenant's discount and top-up are lines of its monthly
    invoice instead; the statement is then built from the notes the ledger holds for the month,
    so its net due is Σ invoices + Σ debit notes − Σ credit notes.
    """
    monthly = set(registry.monthly_tenants())
    for month in month_starts(first, last):
        issue_monthly(engine, registry, month, as_of, run_id)
    book = reads.invoices_dated(engine, first, last)
    adjustments = reads.adjustments_dated(engine, first, last)
    overdue = reads.ledger_states(engine, as_of)[["tenant", "invoices_overdue", "overdue_cents"]]
    tenants = reads.invoiced_tenants(engine)
    paid = reads.payments_of_months(engine, [m.strftime("%Y%m") for m in month_starts(first, last)])
    parts, issued = [], []
    for month in month_starts(first, last):
        figures = build_monthly_statements(book, adjustments, registry, month, as_of, tenants, overdue)
        if month_closed(month, as_of):
            issued.append(ledger.issue_month_close_notes(engine, figures[~figures["tenant"].isin(monthly)], run_id, as_of))
        end = (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).date()
        notes = ledger.read_notes(engine, month, end)
        statement = build_monthly_statements(book, adjustments, registry, month, as_of, tenants, overdue, notes=notes,
                                             payments=paid)
        parts.append(with_monthly_figures(engine, registry, statement, book, month, as_of))
    issued = [n for n in issued if len(n)]
    return (pd.concat(parts, ignore_index=True),
            pd.concat(issued, ignore_index=True) if issued else pd.DataFrame(columns=ledger.NOTE_COLUMNS))  # fmt: skip


def monthly_charges(engine: Engine, registry: TenantRegistry, tenants: list[str], month: dt.date,
                    as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """What the monthly invoices of `tenants` for `month` would hold if issued at `as_of`: the
    billable, not held orders dated up to the month's end that no charge or invoice holds yet,
    priced as per-order invoices are (`price_orders`): (totals with billable_basis, lines)."""
    stored = reads.uncharged_orders(engine, tenants, month_end(month), as_of)
    totals, lines = price_orders(stored.drop(columns=[*PRICE_COLUMNS, "as_of"]), registry)
    totals = totals.merge(stored[["tenant", "order_id", "billable_basis"]], on=["tenant", "order_id"])
    return stored, totals, lines


def issue_monthly(engine: Engine, registry: TenantRegistry, month: dt.date, as_of: pd.Timestamp,
                  run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Issue the invoices for `month` of the `monthly` tenants whose grace period has passed at
    `as_of` and that have charges (DOMAIN §8.3): (invoices, lines, charges) written now; nothing
    on a rerun."""
    code = pd.Timestamp(month).strftime("%Y%m")
    due = due_tenants(registry, month, as_of)
    existing = invoices_of_months(engine, [(t, code) for t in due], ["tenant", "order_id"]) if due else None
    due = [t for t in due if not ((existing["tenant"] == t) & (existing["order_id"] == monthly_order_id(month))).any()]
    stored, totals, lines = monthly_charges(engine, registry, due, month, as_of)
    plans, plan_lines = plan_monthly_invoices(totals, lines, registry, month, due)
    lineage = charge_lineage(priced_lineage(engine, stored, lines), lines, plan_lines)
    return ledger.issue_monthly_invoices(engine, plans, plan_lines, totals, registry, run_id, as_of, lineage)


def priced_lineage(engine: Engine, stored: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Which events each of `lines` comes from, `lines` priced from the `stored` billable_orders
    rows: per order, the events it had counted (occurred by the row's own `as_of`)."""
    if stored.empty:
        return line_events(None, stored, lines)
    events = read_days(engine, schema.webhook_events, "cohort_day", stored["cohort_day"].min(), stored["cohort_day"].max())
    events = events[events["tenant"].isin(set(stored["tenant"]))]
    at = events.merge(stored[["tenant", "order_id", "as_of"]].rename(columns={"as_of": "_priced_at"}), on=["tenant", "order_id"])
    return line_events(at[at["occurred_at"] <= at["_priced_at"]].drop(columns="_priced_at"), stored, lines)


def with_monthly_figures(engine: Engine, registry: TenantRegistry, statement: pd.DataFrame, book: pd.DataFrame,
                         month: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:  # fmt: skip
    """The statement with the `monthly` tenants' figures (`domain/monthly.py::apply_monthly_figures`):
    those of their monthly invoice issued by `as_of` (its lines and charges), else provisional ones
    from the orders it would hold now."""
    monthly = [t for t in registry.monthly_tenants() if t in set(statement["tenant"])]
    if not monthly:
        return statement
    code = pd.Timestamp(month).strftime("%Y%m")
    invoices = book[(book["invoice_kind"] == MONTHLY_INVOICE) & (book["invoice_month"] == code)
                    & book["tenant"].isin(monthly) & (book["issued_at"] <= as_of)]  # fmt: skip
    numbers = list(invoices["invoice_number"])
    figures = monthly_statement_figures(invoices, lines_for_numbers(engine, numbers), ledger.read_charges(engine, numbers=numbers))
    pending = [t for t in monthly if t not in set(invoices["tenant"])]
    _, totals, lines = monthly_charges(engine, registry, pending, month, as_of)
    provisional, _ = plan_monthly_invoices(totals, lines, registry, month, pending)
    return apply_monthly_figures(statement, figures, provisional, monthly, registry)


def lines_for_numbers(engine: Engine, numbers: list[str]) -> pd.DataFrame:
    """The stored lines of the given invoices (no read when there are none)."""
    if not numbers:
        return pd.DataFrame({"invoice_number": pd.Series(dtype=object), "kind": pd.Series(dtype=object),
                             "amount_cents": pd.Series(dtype="int64")})
    return lines_of(engine, numbers, ["invoice_number", "kind", "amount_cents"])
