"""The documents of one tenant-month as the accounting exports book them: every invoice (per-order
and monthly, `invoices.invoice_kind`) dated in the month and every credit and debit note dated in
it, each with its stored lines and the income account of each line (domain/gl_accounts.py).

Reads are indexed: invoices by (tenant, invoice_month), notes by (note_date, tenant), lines by
document number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from e2a_assets.documents.formatting import parse_month
from e2a_assets.domain.gl_accounts import GlAccounts, account_of, charge_of
from e2a_assets.domain.notes import CREDIT, DEBIT, month_end
from e2a_assets.domain.payments import INVOICE, note_due_dates
from e2a_assets.domain.policies import TenantPolicy
from e2a_assets.services.ledger_scope import lines_of
from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.ledger import read_invoices, read_notes
from e2a_assets.warehouse.schema import note_lines

DOCUMENT_COLUMNS = ["number", "type", "date", "due_date", "currency", "amount_cents", "signed_cents", "reference"]
LINE_COLUMNS = ["number", "line_no", "kind", "charge", "account", "description", "quantity", "unit_cents", "amount_cents"]
# Importers compute a line's amount as quantity x unit price. A stored line whose amount is not
# exactly that (a floored long-term storage rate, a monthly line summing several prices) is
# exported as 1 x its amount, its quantity kept in the description, so every total is the ledger's.


@dataclass(frozen=True)
class MonthDocuments:
    """`documents` (`DOCUMENT_COLUMNS`: type invoice | credit | debit, amount_cents > 0 for notes,
    signed_cents negative for a credit note) and their `lines` (`LINE_COLUMNS`), by number."""

    tenant: str
    customer: str
    month: str  # YYYYMM
    documents: pd.DataFrame
    lines: pd.DataFrame
    policy_gl: GlAccounts
    terms_days: int

    def total_cents(self) -> int:
        """Σ invoices + Σ debit notes − Σ credit notes: what the month's documents add up to."""
        return int(self.documents["signed_cents"].sum()) if len(self.documents) else 0


def _note_lines(engine: Any, numbers: list[str]) -> pd.DataFrame:
    parts = [read_table(engine, note_lines, [note_lines.c.note_number.in_(numbers[i : i + 1000])])
             for i in range(0, len(numbers), 1000)]  # fmt: skip
    if not parts:
        return read_table(engine, note_lines, [note_lines.c.note_number.is_(None)])
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def month_documents(engine: Any, policy: TenantPolicy, month: str) -> MonthDocuments:
    """The tenant's invoices and notes of `month` (YYYY-MM) with their lines and accounts."""
    yyyymm = parse_month(month)
    first = dt.date(int(yyyymm[:4]), int(yyyymm[4:]), 1)
    invoices = read_invoices(engine, tenant=policy.tenant, month=yyyymm)
    notes = read_notes(engine, first, month_end(first), tenant=policy.tenant)
    inv = pd.DataFrame({
        "number": invoices["invoice_number"], "type": INVOICE, "date": invoices["invoice_date"],
        "due_date": invoices["due_date"], "currency": invoices["currency"],
        "amount_cents": invoices["amount_cents"].astype(np.int64), "reference": invoices["order_id"],
    })  # fmt: skip
    inv["signed_cents"] = inv["amount_cents"]
    amount = notes["amount_cents"].astype(np.int64)
    nts = pd.DataFrame({
        "number": notes["note_number"], "type": notes["kind"], "date": notes["note_date"],
        "due_date": note_due_dates(notes, policy.tariff.payment_terms_days), "currency": notes["currency"],
        "amount_cents": amount, "signed_cents": amount.where(notes["kind"] == DEBIT, -amount),
        "reference": notes["invoice_number"].fillna(notes["statement_month"]).fillna(""),
    })  # fmt: skip
    documents = pd.concat([d for d in (inv, nts) if len(d)], ignore_index=True) if len(inv) or len(nts) else inv
    documents = documents[DOCUMENT_COLUMNS].sort_values("number", kind="stable").reset_index(drop=True)

    cols = ["line_no", "kind", "description", "quantity", "unit_cents", "amount_cents"]
    ilines = lines_of(engine, list(invoices["invoice_number"]), ["invoice_number", *cols]).rename(columns={"invoice_number": "number"})
    nlines = _note_lines(engine, sorted(notes["note_number"])).rename(columns={"note_number": "number"})[["number", *cols]]
    lines = pd.concat([ilines, nlines], ignore_index=True)
    lines["charge"] = charge_of(lines["kind"])
    lines["account"] = account_of(lines["kind"], policy.gl())
    for col in ("line_no", "quantity", "unit_cents", "amount_cents"):
        lines[col] = lines[col].astype(np.int64)
    inexact = lines["quantity"] * lines["unit_cents"] != lines["amount_cents"]
    lines["description"] = lines["description"].where(~inexact, lines["description"] + " (quantity " + lines["quantity"].astype(str) + ")")
    lines["quantity"] = lines["quantity"].where(~inexact, 1)
    lines["unit_cents"] = lines["unit_cents"].where(~inexact, lines["amount_cents"])
    lines = lines[LINE_COLUMNS].sort_values(["number", "line_no"]).reset_index(drop=True)
    return MonthDocuments(policy.tenant, policy.display_name or policy.tenant, yyyymm, documents, lines, policy.gl(),
                          policy.tariff.payment_terms_days)


def credit_like(documents: pd.DataFrame) -> pd.Series:
    """True for the documents that lower what the client owes (credit notes)."""
    return documents["type"] == CREDIT
