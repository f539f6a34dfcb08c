"""Accounting exports of the invoice ledger: one CSV row per invoice of a tenant-month."""

from __future__ import annotations

import csv
import io
from typing import Iterable

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.documents.formatting import decimal_amount, parse_month
from e2a_assets.domain.billing import APPLIED_STATUSES
from e2a_assets.domain.statements import PENDING_REVIEW
from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.ledger import notes_of_invoices, read_invoices
from e2a_assets.warehouse.schema import invoice_adjustments

CSV_COLUMNS = [
    "invoice_number", "tenant", "order_id", "invoice_date", "due_date", "payment_terms_days", "currency",
    "amount_cents", "applied_adjustments_cents", "pending_review_cents", "total_due_cents", "amount",
    "total_due", "billable_basis", "issued_at", "paid_at", "rate_card_version", "note_numbers",
]  # fmt: skip


def month_invoices(engine: Engine, tenant: str, month: str) -> pd.DataFrame:
    """The tenant's invoices of `month` (YYYY-MM) with their applied and pending adjustments and
    the numbers of their notes."""
    inv = read_invoices(engine, tenant=tenant, month=parse_month(month))
    adj = read_table(engine, invoice_adjustments, [invoice_adjustments.c.tenant == tenant])
    adj = adj[adj["invoice_number"].isin(inv["invoice_number"])]
    applied = adj[adj["status"].isin(APPLIED_STATUSES)].groupby("invoice_number")["delta_cents"].sum()
    pending = adj[adj["status"] == PENDING_REVIEW].groupby("invoice_number")["delta_cents"].sum()
    inv["applied_adjustments_cents"] = inv["invoice_number"].map(applied).fillna(0).astype("int64")
    inv["pending_review_cents"] = inv["invoice_number"].map(pending).fillna(0).astype("int64")
    inv["total_due_cents"] = inv["amount_cents"].astype("int64") + inv["applied_adjustments_cents"]
    # The credit/debit notes the client holds for each invoice (DOMAIN §8.2), by number.
    notes = notes_of_invoices(engine, list(inv["invoice_number"])).sort_values("note_number")
    inv["note_numbers"] = inv["invoice_number"].map(notes.groupby("invoice_number")["note_number"].agg(";".join)).fillna("")
    return inv


def _decimal(cents: Iterable[int]) -> list[str]:
    return [decimal_amount(c) for c in cents]


def export_month_csv(engine: Engine, tenant: str, month: str) -> str:
    """CSV text of the tenant's invoices of `month` (YYYY-MM), one row per invoice, by number."""
    inv = month_invoices(engine, tenant, month)
    inv["amount"] = _decimal(inv["amount_cents"])
    inv["total_due"] = _decimal(inv["total_due_cents"])
    for col in ("issued_at", "paid_at"):
        inv[col] = [v.isoformat() if isinstance(v, pd.Timestamp) and pd.notna(v) else "" for v in inv[col]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(inv[CSV_COLUMNS].astype(str).itertuples(index=False, name=None))
    return out.getvalue()
