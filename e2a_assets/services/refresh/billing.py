"""Refreshing the daily billing tables of some days: billable orders, invoice adjustments, the
invoice ledger with its documents, and the billing report (see `e2a_assets.services.refresh`).
The ledger is only ever added to: adjustments and invoices are issued once, never rewritten."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.documents.invoices import lines_for, missing_documents, write_invoice_documents
from e2a_assets.documents.notes import read_note_lines, write_note_documents
from e2a_assets.domain.billing import PRICE_COLUMNS, price_orders
from e2a_assets.domain.issuer import Issuer
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.statements import build_billing_report, compute_adjustments
from e2a_assets.services import billing_reads as reads
from e2a_assets.services.billing import charge_adjustments, lines_lineage, recompute_billable, reprice_invoiced
from e2a_assets.services.lineage import adjustment_lineage, charge_adjustment_lineage
from e2a_assets.services.refresh import each_day
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.frames import read_days, replace_partition


def refresh_billable_orders(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp,
                            registry: TenantRegistry) -> pd.DataFrame:  # fmt: skip
    """Every completed order of the cohort days with its billable operations and price as of
    `as_of`; orders with an open blocking exception are kept as held."""
    billable, totals, _ = recompute_billable(engine, first, last, as_of, registry, orders_table=schema.completed_orders)
    frame = billable.merge(totals[["tenant", "order_id", *PRICE_COLUMNS]], how="left", on=["tenant", "order_id"])
    frame["as_of"] = as_of
    replace_partition(engine, schema.billable_orders, frame, "cohort_day", first, last)
    return frame


def record_invoice_adjustments(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp,
                               registry: TenantRegistry, run_id: str) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Records the RECALCULATION adjustments of the invoices of the cohort days whose recomputed
    amount moved since issue: {"new": recorded now, "later": invoices left alone because they or
    their adjustments postdate `as_of`, "damaged": invoices whose amount is not their lines'}."""
    issued = ledger.read_invoices(engine, first=first, last=last)
    # Priced again with the rate card version recorded on each invoice, never a later one.
    stored = read_days(engine, schema.billable_orders, "cohort_day", first, last)
    recomputed = reprice_invoiced(stored, issued, registry)
    existing = ledger.read_adjustments_for(engine, issued)
    # A run evaluated "in the past" (a backfill with an older as_of) must not correct later entries.
    later = issued.loc[issued["issued_at"] > as_of, ["invoice_number", "cohort_day"]]
    later = pd.concat([later, existing.loc[existing["created_at"] > as_of, ["invoice_number"]].merge(
        issued[["invoice_number", "cohort_day"]], on="invoice_number")]).drop_duplicates("invoice_number")
    # A damaged invoice (amount != its lines) is never "corrected": the amount check reports it.
    damaged = ledger.inconsistent_invoices(engine, issued)[["invoice_number"]].merge(
        issued[["invoice_number", "cohort_day"]], on="invoice_number")
    skipped = set(later["invoice_number"]) | set(damaged["invoice_number"])
    candidates = issued[~issued["invoice_number"].isin(skipped)]
    new = compute_adjustments(candidates, recomputed, existing, registry, as_of)
    # The late events each adjustment is for, written with it (row-level lineage).
    links = adjustment_lineage(engine, first, last, as_of, stored, issued, existing, new, registry)
    ledger.record_adjustments(engine, new, issued[["tenant", "invoice_number", "cohort_day"]], run_id, links)
    if len(new) and "cohort_day" not in new.columns:
        new = new.merge(issued[["invoice_number", "cohort_day"]], on="invoice_number", how="left")
    # Charges on monthly invoices (DOMAIN §8.3) are corrected per order by the same rules; their
    # notes reference the monthly invoice.
    charged = charge_adjustments(engine, stored, first, last, registry, as_of)
    ledger.record_adjustments(engine, charged, None, run_id,
                              charge_adjustment_lineage(engine, first, last, as_of, stored, charged, registry))
    new = pd.concat([p for p in (new, charged) if len(p)], ignore_index=True) if len(charged) else new
    return {"new": new, "later": later, "damaged": damaged}


def issue_invoices(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, registry: TenantRegistry,
                   run_id: str, folder: str, issuer: Issuer) -> dict[str, pd.DataFrame]:  # fmt: skip
    """Issues one numbered invoice per billable, not-held order of the cohort days that has none
    yet, with its lines, lineage and printable document (and any document found missing):
    {"issued": issued now, "book": the days' ledger, "stored": their billable orders,
    "documents": the invoices whose document was written now}."""
    stored = read_days(engine, schema.billable_orders, "cohort_day", first, last)
    # A `monthly` tenant's orders are charged on its monthly invoice (monthly_statements), not here.
    ready = stored[stored["billable"] & (stored["billable_at"] <= as_of) & ~stored["tenant"].isin(registry.monthly_tenants())]
    totals, lines = price_orders(ready.drop(columns=[*PRICE_COLUMNS, "as_of"]), registry)
    candidates = totals.merge(ready[["tenant", "order_id", "billable_basis"]], on=["tenant", "order_id"])
    # Which events each line comes from, written with the invoice in its transaction.
    lineage = lines_lineage(engine, first, last, as_of, ready, lines)
    issued, issued_lines = ledger.issue_invoices(engine, candidates, lines, registry, run_id, as_of, lineage)
    write_invoice_documents(folder, issued, issued_lines, registry, issuer)
    book = ledger.read_invoices(engine, first=first, last=last)
    # Documents lost or never written (e.g. a crash after the ledger commit) are rendered again
    # from the ledger rows; existing files are never touched.
    missing = book[missing_documents(folder, book).to_numpy()]
    if len(missing):
        write_invoice_documents(folder, missing, lines_for(engine, list(missing["invoice_number"])), registry, issuer)
    documents = book[book["invoice_number"].isin(set(issued["invoice_number"]) | set(missing["invoice_number"]))]
    # The credit/debit notes of these invoices (adjustments, approvals) that have no document yet.
    held_notes = ledger.notes_of_invoices(engine, list(book["invoice_number"]))
    write_note_documents(folder, held_notes, registry, issuer, read_note_lines(engine, list(held_notes["note_number"])))
    return {"issued": issued, "book": book, "stored": stored, "documents": documents}


def refresh_billing_report(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per tenant and day: invoices, held backlog, adjustments, open/overdue/paid at `as_of`."""
    # Rows of the days only; the ledger before them enters as per-tenant SQL aggregates.
    book = reads.invoices_dated(engine, first, last)
    held = reads.held_backlog(engine, last)
    adjustments = reads.adjustments_for_report(engine, first, last, book)
    earlier = reads.ledger_states(engine, as_of, before=first)
    paid = reads.payments_for(engine, book)
    parts = [build_billing_report(book, held, adjustments, as_of, day, earlier, paid) for day in each_day(first, last)]
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    replace_partition(engine, schema.billing_report, frame, "day", first, last)
    return frame
