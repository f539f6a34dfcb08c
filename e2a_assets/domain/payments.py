"""Payments and invoice status (docs/rules/payments.md): what a client's payment settles, which
payment rows are refused, and whether an invoice is open, partially paid, paid or overdue at
`as_of`.

A payment names a document the client holds: an invoice, or a debit note. Money paid on an
invoice or on a note that references it settles that invoice's **account**: the invoice amount,
plus its debit notes, minus its credit notes (a credit note's amount reduces what is due on its
invoice), minus the payments. A month-close debit note (minimum fee top-up) references no invoice
and is its own account. A credit note is never paid.

Status of an invoice at `as_of` (first match; payments count from their payment date, notes
from when their adjustment was applied, both by `as_of`):
paid (nothing left to pay, or marked paid by the finance system's `paid_at` by as_of) ->
overdue (issued by the as_of day and due strictly before it) -> partially paid (some money
received) -> open. The overdue amount is what is left to pay. `services/billing_reads.py::
ledger_states` computes the same rule in SQL for the whole ledger (tested equal).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

OPEN, PARTIALLY_PAID, OVERDUE, PAID = "open", "partially_paid", "overdue", "paid"
INVOICE_STATES = (OPEN, PARTIALLY_PAID, OVERDUE, PAID)
INVOICE = "invoice"  # a document that is an invoice (notes are `credit` / `debit`, domain/notes.py)
# How a payment is known twice (the same file imported again, or a payment in two overlapping bank
# exports): the same document, reference, amount and date. Why not a file digest + row: a bank
# statement exported again with one more day, or sorted differently, would record every payment twice.
PAYMENT_KEY = ["document_number", "reference", "amount_cents", "payment_date"]
STATE_COLUMNS = ["due_cents", "paid_cents", "balance_cents", "state"]


def parse_amount(text: object) -> int:
    """`"125.5"` -> 12550 cents. A positive decimal with at most two decimal places; ValueError
    (one line, the reason) for anything else."""
    raw = str(text if text is not None else "").strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"amount {raw!r} is not a number like 125.50") from None
    if not value.is_finite():
        raise ValueError(f"amount {raw!r} is not a number like 125.50")
    if value <= 0:
        raise ValueError(f"amount {raw} must be more than 0")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"amount {raw} has more than two decimal places")
    return int(value * 100)


def parse_payment_date(text: object) -> dt.date:
    """`"2025-09-14"` -> a date; ValueError for anything else."""
    raw = str(text if text is not None else "").strip()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"date {raw!r} is not a date YYYY-MM-DD") from None


def note_due_dates(notes: pd.DataFrame, terms_days: int) -> pd.Series:
    """A debit note is due `terms_days` after its date, like an invoice; a credit note is not due
    (NaT)."""
    days = pd.to_datetime(pd.Series(notes["note_date"], dtype=object))
    due = (days + pd.Timedelta(days=int(terms_days))).dt.date
    return due.where(notes["kind"] == "debit", None)


def _as_of_day(as_of: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of)
    return pd.Timestamp((stamp.tz_convert("UTC") if stamp.tzinfo else stamp).date())


def received_by(payments: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.DataFrame:
    """The payments that count at `as_of`: those dated on or before its UTC day (a payment is
    money received on its payment date, whenever finance recorded it)."""
    if payments is None or payments.empty:
        return pd.DataFrame(columns=["tenant", "invoice_number", "document_month", "amount_cents", "payment_date"])
    day = pd.to_datetime(pd.Series(payments["payment_date"], dtype=object))
    return payments[(day <= _as_of_day(as_of)).to_numpy()]


def paid_cents(invoices: pd.DataFrame, payments: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.Series:
    """Per invoice (same index): what its account received by `as_of` (payments on it and on its notes)."""
    got = received_by(payments, as_of)
    total = got.groupby(["tenant", "invoice_number"])["amount_cents"].sum().rename("_paid").reset_index()
    paid = invoices[["tenant", "invoice_number"]].merge(total, how="left", on=["tenant", "invoice_number"])["_paid"]
    return pd.Series(pd.to_numeric(paid, errors="coerce").fillna(0).astype(np.int64).to_numpy(), index=invoices.index)


def month_payments(payments: pd.DataFrame | None, month: str, as_of: pd.Timestamp) -> pd.Series:
    """Per tenant: payments received by `as_of` against the documents of `month` (YYYYMM): what
    a statement takes off its net due."""
    got = received_by(payments, as_of)
    got = got[got["document_month"].astype(str) == month]
    return got.groupby("tenant")["amount_cents"].sum().astype(np.int64)


def invoice_states(invoices: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """`STATE_COLUMNS` for each invoice (same index), at `as_of`.

    `invoices`: invoice_date, due_date, amount_cents, `adjustments_cents` (signed notes applied by
    as_of; 0 when absent), `paid_cents` (payments dated by the as_of day; 0 when absent) and
    optionally `paid_at`. due = amount + adjustments; balance = due − paid.
    """
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    day = _as_of_day(stamp)
    zero = pd.Series(0, index=invoices.index, dtype=np.int64)
    due = invoices["amount_cents"].astype(np.int64) + invoices.get("adjustments_cents", zero).fillna(0).astype(np.int64)
    paid = invoices.get("paid_cents", zero).fillna(0).astype(np.int64)
    balance = due - paid
    marked = pd.Series(False, index=invoices.index)
    if "paid_at" in invoices.columns:
        paid_at = pd.to_datetime(invoices["paid_at"], utc=True)
        marked = (paid_at.notna() & (paid_at <= stamp)).fillna(False)
    settled = marked.to_numpy() | (balance <= 0).to_numpy()
    issued = pd.to_datetime(pd.Series(invoices["invoice_date"], dtype=object)) <= day
    late = pd.to_datetime(pd.Series(invoices["due_date"], dtype=object)) < day
    overdue = (issued & late).to_numpy()
    state = np.select([settled, overdue, paid.to_numpy() > 0], [PAID, OVERDUE, PARTIALLY_PAID], default=OPEN)
    return pd.DataFrame({"due_cents": due, "paid_cents": paid, "balance_cents": balance, "state": state},
                        index=invoices.index)  # fmt: skip


def refused_rows(rows: pd.DataFrame, documents: pd.DataFrame) -> pd.DataFrame:
    """Why each payment row is refused (row, reason), in row order; empty when every row can be recorded.

    `rows`: row, document_number, amount_cents (None when unparsable), payment_date, reference,
    `problem` (a parse error, or ""), `duplicate` (already recorded or repeated earlier in the file:
    skipped, never refused). `documents`: document_number, type (invoice | credit | debit),
    account (the invoice it settles, or the note itself), outstanding_cents (of that account
    before this file). Rows are checked in order: an overpayment is the row that takes an
    account's payments past what it owes.
    """
    out = rows[["row"]].copy()
    known = documents.drop_duplicates("document_number").set_index("document_number")
    kind = rows["document_number"].map(known["type"])
    reason = rows["problem"].fillna("").astype(str)
    reason = reason.where(reason != "", np.where(kind.isna(), "unknown document number " + rows["document_number"].astype(str), ""))
    reason = reason.where(reason != "", np.where(kind == "credit", rows["document_number"].astype(str) +
                                                 " is a credit note: it lowers its invoice; record the payment against the invoice", ""))  # fmt: skip
    counted = rows[(reason == "") & ~rows["duplicate"].astype(bool)]
    account = counted["document_number"].map(known["account"])
    running = counted["amount_cents"].astype(np.int64).groupby(account).cumsum()
    owed = account.map(known.drop_duplicates("account").set_index("account")["outstanding_cents"]).astype(np.int64)
    over = running > owed
    text = ("overpayment: " + counted["document_number"].astype(str) + " has " + owed.map(_money) + " left to pay, "
            + "payments up to this row make " + running.map(_money))  # fmt: skip
    reason.loc[over[over].index] = text[over]
    out["reason"] = reason
    return out[out["reason"] != ""].reset_index(drop=True)


def _money(cents: int) -> str:
    cents = int(cents)
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
