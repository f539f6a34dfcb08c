"""Xero exports of a tenant-month (docs/billing.md "Exporting to QuickBooks and Xero").

Xero imports sales invoices and credit notes from two CSV files of the same shape (Business >
Invoices > Import, and Credit notes > Import): one row per line, the document's columns repeated,
dates DD/MM/YYYY, amounts positive. Invoices and debit notes go in the invoice file (a debit
note is an invoice to Xero); credit notes go in the credit note file, amounts positive: Xero
books them as credits. A line's Xero total is Quantity x UnitAmount, which the export keeps
equal to the ledger's amount (exports/month_documents.py).
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from e2a_assets.documents.formatting import decimal_amount
from e2a_assets.domain.notes import CREDIT
from e2a_assets.exports.month_documents import MonthDocuments

INVOICES, CREDIT_NOTES = "invoices", "credit-notes"
_ADDRESS = ["EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3", "POAddressLine4", "POCity",
            "PORegion", "POPostalCode", "POCountry"]
INVOICE_COLUMNS = [
    "*ContactName", *_ADDRESS, "*InvoiceNumber", "Reference", "*InvoiceDate", "*DueDate", "InventoryItemCode",
    "*Description", "*Quantity", "*UnitAmount", "Discount", "*AccountCode", "*TaxType", "TrackingName1",
    "TrackingOption1", "TrackingName2", "TrackingOption2", "Currency", "BrandingTheme",
]  # fmt: skip
CREDIT_NOTE_COLUMNS = [
    "*ContactName", *_ADDRESS, "*CreditNoteNumber", "Reference", "*CreditNoteDate", "InventoryItemCode",
    "*Description", "*Quantity", "*UnitAmount", "Discount", "*AccountCode", "*TaxType", "TrackingName1",
    "TrackingOption1", "TrackingName2", "TrackingOption2", "Currency", "BrandingTheme",
]  # fmt: skip


def _date(value: object) -> str:
    if value is None or pd.isna(value):
        return ""
    day = pd.Timestamp(value)
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def to_xero_csv(month: MonthDocuments, documents: str = INVOICES) -> str:
    """The month's invoices and debit notes (`invoices`) or its credit notes (`credit-notes`) as
    Xero's import CSV, one row per line."""
    credit = documents == CREDIT_NOTES
    columns = CREDIT_NOTE_COLUMNS if credit else INVOICE_COLUMNS
    docs = month.documents[(month.documents["type"] == CREDIT) == credit].set_index("number")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for line in month.lines[month.lines["number"].isin(docs.index)].itertuples(index=False):
        doc = docs.loc[line.number]
        row = {c: "" for c in columns}
        row.update({
            "*ContactName": month.customer, "Reference": doc["reference"], "*Description": line.description,
            "*Quantity": str(line.quantity), "*UnitAmount": decimal_amount(line.unit_cents),
            "*AccountCode": line.account, "*TaxType": month.policy_gl.xero_tax_type, "Currency": doc["currency"],
        })  # fmt: skip
        if credit:
            row.update({"*CreditNoteNumber": line.number, "*CreditNoteDate": _date(doc["date"])})
        else:
            row.update({"*InvoiceNumber": line.number, "*InvoiceDate": _date(doc["date"]), "*DueDate": _date(doc["due_date"])})
        writer.writerow(row)
    return out.getvalue()
