"""QuickBooks exports of a tenant-month (docs/billing.md "Exporting to QuickBooks and Xero").

**IIF** (QuickBooks Desktop, File > Utilities > Import > IIF Files): tab-separated, one
TRNS/SPL.../ENDTRNS block per document. An invoice or debit note is an INVOICE: the TRNS line
debits accounts receivable with the total (positive), each SPL line credits the income account
of its charge (negative amount and quantity). A credit note is a CREDIT MEMO, the same lines
with the signs turned. Every block balances to 0; the TRNS amounts add up to the month's net.

**CSV** (QuickBooks Online, Sales > Import invoices): one row per line, the invoice columns
repeated. QuickBooks Online's importer has no credit memos: a credit note is a row with a
negative quantity and amount, so the file still adds up to the ledger (enter it in QuickBooks
Online as a credit memo if the importer refuses a negative total).
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from e2a_assets.documents.formatting import decimal_amount
from e2a_assets.domain.notes import CREDIT
from e2a_assets.exports.month_documents import MonthDocuments

IIF_TRNS = ["!TRNS", "TRNSID", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "MEMO", "DUEDATE"]
IIF_SPL = ["!SPL", "SPLID", "TRNSTYPE", "DATE", "ACCNT", "NAME", "AMOUNT", "DOCNUM", "MEMO", "QNTY", "PRICE", "INVITEM"]
QBO_COLUMNS = [
    "InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Terms", "Location", "Memo", "Item(Product/Service)",
    "ItemDescription", "ItemQuantity", "ItemRate", "ItemAmount", "Taxable", "TaxRate", "Currency",
]  # fmt: skip


def _us_date(value: object) -> str:
    if value is None or pd.isna(value):
        return ""
    day = pd.Timestamp(value)
    return f"{day.month:02d}/{day.day:02d}/{day.year}"


def _clean(text: object) -> str:
    """IIF fields cannot hold tabs, newlines or double quotes."""
    return " ".join(str(text if text is not None else "").replace('"', "'").split())


def _item(charge: str) -> str:
    return charge.replace("_", " ").capitalize()


def to_iif(month: MonthDocuments) -> str:
    """The month's documents as an IIF file (INVOICE and CREDIT MEMO transactions)."""
    gl = month.policy_gl
    rows = [IIF_TRNS, IIF_SPL, ["!ENDTRNS"]]
    lines = month.lines.groupby("number")
    for doc in month.documents.itertuples(index=False):
        credit = doc.type == CREDIT
        sign = -1 if credit else 1  # TRNS: + debit receivable (invoice), − credit it (credit memo)
        kind = "CREDIT MEMO" if credit else "INVOICE"
        memo = _clean(f"{doc.type} {doc.number}" + (f" ({doc.reference})" if doc.reference else ""))
        rows.append(["TRNS", "", kind, _us_date(doc.date), gl.receivable, _clean(month.customer),
                     decimal_amount(sign * doc.amount_cents), doc.number, memo, _us_date(doc.due_date)])  # fmt: skip
        own = lines.get_group(doc.number) if doc.number in lines.groups else month.lines.iloc[0:0]
        for line in own.itertuples(index=False):
            rows.append(["SPL", "", kind, _us_date(doc.date), line.account, _clean(month.customer),
                         decimal_amount(-sign * line.amount_cents), doc.number, _clean(line.description),
                         str(-sign * line.quantity), decimal_amount(line.unit_cents), _item(line.charge)])  # fmt: skip
        rows.append(["ENDTRNS"])
    return "".join("\t".join(row) + "\r\n" for row in rows)


def to_qbo_csv(month: MonthDocuments) -> str:
    """The month's documents in QuickBooks Online's invoice import CSV, one row per line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(QBO_COLUMNS)
    docs = month.documents.set_index("number")
    for line in month.lines.itertuples(index=False):
        doc = docs.loc[line.number]
        sign = -1 if doc["type"] == CREDIT else 1
        memo = f"{doc['type']} {line.number}" + (f" ({doc['reference']})" if doc["reference"] else "")
        terms = f"Net {month.terms_days}" if doc["type"] != CREDIT else ""
        writer.writerow([line.number, month.customer, _us_date(doc["date"]), _us_date(doc["due_date"] if doc["type"] != CREDIT else doc["date"]),
                         terms, "", memo, _item(line.charge), line.description, sign * line.quantity,
                         decimal_amount(line.unit_cents), decimal_amount(sign * line.amount_cents), "N", "", doc["currency"]])  # fmt: skip
    return out.getvalue()
