"""Invoice documents: an HTML page and a PDF per issued invoice, per order (DOMAIN §5) or per
month (DOMAIN §8.3), and the per-order detail CSV of a monthly invoice.

Documents are rendered from the ledger rows (never recomputed), so a document always shows what
was issued, and written once (files.py). The billing assets and `e2a documents build` both write
them through `write_invoice_documents`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.documents.files import document_path, missing_documents, write_document, write_once
from e2a_assets.documents.formatting import format_money
from e2a_assets.documents.model import LINE_COLUMNS, Document, Section, bill_to_party, issuer_party, line_rows, policy_of
from e2a_assets.domain.issuer import Issuer, shipped_issuer
from e2a_assets.domain.line_labels import TAX_LINE
from e2a_assets.domain.policies import TenantPolicy, TenantRegistry
from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.schema import MONTHLY_INVOICE, invoice_lines

__all__ = ["document_path", "missing_documents", "attachment_path", "invoice_document", "write_invoice_documents",
           "write_charge_attachments", "lines_for"]  # fmt: skip


def attachment_path(invoice_dir: str | Path, tenant: str, invoice_date, invoice_number: str) -> Path:  # noqa: ANN001
    """A monthly invoice's per-order detail: `<invoice_dir>/<tenant>/<YYYY-MM>/<invoice_number>-orders.csv`."""
    return document_path(invoice_dir, tenant, invoice_date, invoice_number).with_name(f"{invoice_number}-orders.csv")


DETAIL_COLUMNS = ["invoice_number", "tenant", "order_id", "invoice_date", "billable_basis", "rate_card_version",
                  "amount_cents", "currency"]


def detail_csv(charges: pd.DataFrame) -> bytes:
    """The per-order detail of a monthly invoice (its `order_charges` rows, by order date and id)."""
    rows = charges.sort_values(["invoice_date", "order_id"])[DETAIL_COLUMNS]
    return rows.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_charge_attachments(invoice_dir: str | Path, monthly: pd.DataFrame, charges: pd.DataFrame) -> list[Path]:
    """Write the per-order detail CSV of each monthly invoice; existing files are left as they are."""
    written = []
    for invoice in (monthly.to_dict("records") if monthly is not None else []):
        path = attachment_path(invoice_dir, invoice["tenant"], invoice["invoice_date"], invoice["invoice_number"])
        if write_once(path, detail_csv(charges[charges["invoice_number"] == invoice["invoice_number"]])):
            written.append(path)
    return written


def _subject(invoice: dict) -> tuple[tuple[str, str], ...]:
    """What the invoice bills: its order, or - a monthly invoice - its month and the detail file."""
    if invoice.get("invoice_kind") == MONTHLY_INVOICE:
        month = pd.Timestamp(invoice["invoice_date"]).strftime("%Y-%m")
        detail = attachment_path(".", invoice["tenant"], invoice["invoice_date"], invoice["invoice_number"]).name
        return ("Billing period", month), ("Per-order detail", detail)
    return (("Order", f"{invoice['order_id']} ({invoice['billable_basis']})"),)


def payment_closing(number: str, amount: str, due: str, issuer: Issuer) -> tuple[str, ...]:
    """How to pay a document: the amount, the date and the remittance reference (its number)."""
    return (f"Please pay {amount} by {due}, quoting {number} as the remittance reference.",
            *issuer.payment_instructions)  # fmt: skip


def invoice_document(invoice: dict, lines: pd.DataFrame, policy: TenantPolicy, issuer: Issuer) -> Document:
    """One issued invoice as a document (ledger values only)."""
    cur = invoice["currency"]
    money = lambda cents: format_money(cents, cur, policy.locale)  # noqa: E731
    number = str(invoice["invoice_number"])
    terms = int(invoice["payment_terms_days"])
    total = money(invoice["amount_cents"])
    tax = lines[lines["kind"] == TAX_LINE]["amount_cents"].astype("int64").sum() if len(lines) else 0
    totals = [("Total due", total)]
    if len(lines) and (lines["kind"] == TAX_LINE).any():
        totals = [("Subtotal", money(int(invoice["amount_cents"]) - int(tax))), ("Tax", money(tax)), *totals]
    facts = (
        ("Invoice number", number), ("Invoice date", str(invoice["invoice_date"])), ("Due date", str(invoice["due_date"])),
        ("Payment terms", f"{terms} days net"), *_subject(invoice), ("Currency", cur),
        ("Rate card", f"version {int(invoice['rate_card_version'])}"),
    )  # fmt: skip
    own_version = int(invoice["rate_card_version"]) if invoice.get("invoice_kind") == MONTHLY_INVOICE else None
    rows = line_rows(lines, policy, cur, own_version=own_version)
    return Document(
        template="invoice.html.j2", title="Invoice", number=number, issued_on=pd.Timestamp(invoice["invoice_date"]).date(),
        issuer=issuer_party(issuer), bill_to=bill_to_party(policy), facts=facts,
        sections=(Section("", LINE_COLUMNS, rows, empty="No charges."),), totals=tuple(totals),
        closing=(*payment_closing(number, total, str(invoice["due_date"]), issuer),
                 "This invoice is final. Corrections after issue are made by separate credit or debit notes."),
        language=policy.locale.split("_")[0],
    )  # fmt: skip


def write_invoice_documents(invoice_dir: str | Path, issued: pd.DataFrame, lines: pd.DataFrame,
                            registry: TenantRegistry | None, issuer: Issuer | None = None) -> list[Path]:  # fmt: skip
    """Write the HTML and PDF of each issued invoice that lacks them; existing files are left as they are."""
    written: list[Path] = []
    if issued is None or issued.empty:
        return written
    issuer = issuer or shipped_issuer()
    by_number = {number: group for number, group in lines.groupby("invoice_number")} if len(lines) else {}
    for invoice in issued[missing_documents(invoice_dir, issued).to_numpy()].to_dict("records"):
        path = document_path(invoice_dir, invoice["tenant"], invoice["invoice_date"], invoice["invoice_number"])
        mine = by_number.get(invoice["invoice_number"], lines.iloc[0:0])
        doc = invoice_document(invoice, mine, policy_of(registry, invoice["tenant"]), issuer)
        written += write_document(doc, path)
    return written


def lines_for(engine: Engine, numbers: list[str]) -> pd.DataFrame:
    """Stored lines of the given invoices."""
    return read_table(engine, invoice_lines, [invoice_lines.c.invoice_number.in_(numbers)])
