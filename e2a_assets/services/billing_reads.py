"""What the daily billing report and the monthly statements read (ARCHITECTURE principle 6).

Rows come from indexed ranges only: the invoices issued on the report's days or in the statement's
month, the adjustments dated on those days (or of those invoices), the held backlog. Everything
that depends on the whole ledger - the open/partially paid/overdue/paid counts and the overdue
amount at `as_of` - is a per-tenant aggregate computed by SQL (`ledger_states`), over the same
rule as `domain/payments.py::invoice_states` and `domain/statements.py::reviewed_as_of`, which
stay the reference that e2a_tests/test_billing_reads.py compares this SQL with.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, or_, select

from e2a_assets.domain.billing import APPLIED_FLAGGED, APPROVED, AUTO_APPLIED
from e2a_assets.domain.payments import INVOICE_STATES, OPEN, OVERDUE, PAID, PARTIALLY_PAID
from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.schema import billable_orders, invoice_adjustments, invoices, order_charges, payments

STATE_COLUMNS = ["tenant", *(f"invoices_{state}" for state in INVOICE_STATES), "overdue_cents"]


def _utc(as_of: pd.Timestamp) -> tuple[dt.datetime, dt.date]:
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    return stamp.to_pydatetime(), stamp.date()


def _read(engine: Any, stmt) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def ledger_states(engine: Any, as_of: pd.Timestamp, before: dt.date | None = None) -> pd.DataFrame:
    """Per tenant (`STATE_COLUMNS`), over the invoices with invoice_date < `before` (all when None):
    how many are open, partially paid, overdue or paid at as_of, and what is left to pay on the
    overdue ones - `domain/payments.py::invoice_states` in SQL. An invoice owes its amount plus the
    adjustments applied by as_of (an approval reviewed after as_of does not count yet), less the
    payments on its account dated by the as_of day; both are read per invoice through the indexes
    on (tenant, invoice_number). Also lists, with zeros, every tenant that has adjustments, so
    callers see the same tenants as a whole-ledger read."""
    stamp, day = _utc(as_of)
    i, a, p = invoices.c, invoice_adjustments.c, payments.c
    scope = [i.invoice_date < before] if before is not None else []
    applied = or_(a.status.in_([AUTO_APPLIED, APPLIED_FLAGGED]),
                  and_(a.status == APPROVED, or_(a.reviewed_at.is_(None), a.reviewed_at <= stamp)))  # fmt: skip
    adjusted_by = (select(func.coalesce(func.sum(a.delta_cents), 0))
                   .where(a.tenant == i.tenant, a.invoice_number == i.invoice_number, a.created_at <= stamp, applied)
                   .scalar_subquery())  # fmt: skip
    paid_by = (select(func.coalesce(func.sum(p.amount_cents), 0))
               .where(p.tenant == i.tenant, p.invoice_number == i.invoice_number, p.payment_date <= day).scalar_subquery())  # fmt: skip
    book = select(i.tenant, i.invoice_date, i.due_date, i.paid_at, (i.amount_cents + adjusted_by).label("due"),
                  paid_by.label("paid")).where(*scope).subquery()  # fmt: skip
    x = book.c
    settled = or_(and_(x.paid_at.is_not(None), x.paid_at <= stamp), x.paid >= x.due)
    state = case((settled, PAID), (and_(x.invoice_date <= day, x.due_date < day), OVERDUE), (x.paid > 0, PARTIALLY_PAID),
                 else_=OPEN).label("state")  # fmt: skip
    counts = _read(engine, select(x.tenant, state, func.count().label("n"), func.sum(x.due - x.paid).label("cents"))
                   .group_by(x.tenant, state))  # fmt: skip
    adjusted = _read(engine, select(a.tenant).group_by(a.tenant))
    tenants = sorted(set(counts["tenant"]) | set(adjusted["tenant"]))
    out = pd.DataFrame({"tenant": tenants})
    for name in INVOICE_STATES:
        n = counts[counts["state"] == name].set_index("tenant")["n"]
        out[f"invoices_{name}"] = out["tenant"].map(n).fillna(0).astype("int64")
    late = counts[counts["state"] == OVERDUE].set_index("tenant")["cents"]
    out["overdue_cents"] = out["tenant"].map(late).fillna(0).astype("int64")
    return out[STATE_COLUMNS]


def invoices_dated(engine: Any, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Invoices with invoice_date in [first, last] (index ix_invoices_date)."""
    return read_table(engine, invoices, [invoices.c.invoice_date >= first, invoices.c.invoice_date <= last])


def held_backlog(engine: Any, last: dt.date) -> pd.DataFrame:
    """Orders held at their last pricing with invoice_date <= last: the backlog (index ix_billable_orders_held)."""
    return read_table(engine, billable_orders, [billable_orders.c.held.is_(True), billable_orders.c.invoice_date <= last])


def adjustments_for_report(engine: Any, first: dt.date, last: dt.date, book: pd.DataFrame) -> pd.DataFrame:
    """Adjustments dated in [first, last] (index ix_invoice_adjustments_date) and those of `book`'s
    invoices (index on tenant, invoice_number), each once."""
    a = invoice_adjustments.c
    parts = [read_table(engine, invoice_adjustments, [a.adjustment_date >= first, a.adjustment_date <= last])]
    for tenant, numbers in (book.groupby("tenant")["invoice_number"] if len(book) else []):
        ids = sorted(set(numbers))
        parts += [read_table(engine, invoice_adjustments, [a.tenant == tenant, a.invoice_number.in_(ids[n : n + 1000])])
                  for n in range(0, len(ids), 1000)]  # fmt: skip
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame.drop_duplicates("adjustment_id").reset_index(drop=True)


def adjustments_dated(engine: Any, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Adjustments with adjustment_date in [first, last] (index ix_invoice_adjustments_date)."""
    a = invoice_adjustments.c
    return read_table(engine, invoice_adjustments, [a.adjustment_date >= first, a.adjustment_date <= last])


def invoiced_tenants(engine: Any) -> list[str]:
    """Every tenant with an invoice (a grouped read of the tenant index, no invoice rows)."""
    return sorted(_read(engine, select(invoices.c.tenant).group_by(invoices.c.tenant))["tenant"])




def uncharged_orders(engine: Any, tenants: list[str], last: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """Billable, not held orders of `tenants` with invoice_date <= `last`, billable by `as_of`,
    that neither a charge (`order_charges`) nor an invoice holds: what a monthly invoice issued now
    takes (DOMAIN §8.3). Two anti-joins in SQL, so only the uncharged rows come back."""
    if not tenants:
        return read_table(engine, billable_orders, [billable_orders.c.order_id.is_(None)])
    stamp, _ = _utc(as_of)
    b, c, i = billable_orders.c, order_charges.c, invoices.c
    charged = select(c.order_id).where(and_(c.tenant == b.tenant, c.order_id == b.order_id)).exists()
    invoiced = select(i.order_id).where(and_(i.tenant == b.tenant, i.order_id == b.order_id)).exists()
    return read_table(engine, billable_orders, [b.tenant.in_(sorted(tenants)), b.billable.is_(True), b.held.is_(False),
                                                b.invoice_date <= last, b.billable_at <= stamp, ~charged, ~invoiced])  # fmt: skip


PAYMENT_COLUMNS = ["tenant", "invoice_number", "document_month", "amount_cents", "payment_date"]


def payments_for(engine: Any, book: pd.DataFrame) -> pd.DataFrame:
    """The payments on the accounts of `book`'s invoices (index ix_payments_invoice)."""
    if book is None or book.empty:
        return read_table(engine, payments, [payments.c.tenant.is_(None)], columns=PAYMENT_COLUMNS)
    p = payments.c
    parts = [read_table(engine, payments, [p.tenant == tenant, p.invoice_number.in_(sorted(set(numbers)))], columns=PAYMENT_COLUMNS)
             for tenant, numbers in book.groupby("tenant")["invoice_number"]]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def payments_of_months(engine: Any, months: list[str]) -> pd.DataFrame:
    """The payments against documents dated in the given months, YYYYMM (index ix_payments_month)."""
    return read_table(engine, payments, [payments.c.document_month.in_(sorted(set(months)) or [""])], columns=PAYMENT_COLUMNS)
