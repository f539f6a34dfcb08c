"""The monthly statement document of a tenant: the month's invoices, credit and debit notes and
payments, and the balance due (DOMAIN §8.2: net due = Σ invoices + Σ debit notes − Σ credit notes;
then less what was paid against the month's documents, from the `payments` ledger).

Unlike invoices and notes, a statement is a view of the ledger at the time it is built: it is
written again when what it says changed (a payment arrived), and gives the same bytes when nothing did.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.documents.files import document_path, replace_if_changed
from e2a_assets.documents.formatting import format_money
from e2a_assets.documents.html import render_html
from e2a_assets.documents.invoices import payment_closing
from e2a_assets.documents.pdf import render_pdf
from e2a_assets.documents.model import RIGHT, Column, Document, Section, bill_to_party, issuer_party
from e2a_assets.domain.issuer import Issuer
from e2a_assets.domain.notes import CREDIT, month_end
from e2a_assets.domain.policies import TenantPolicy
from e2a_assets.domain.statements import statement_number
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import read_table

INVOICE_COLUMNS = (Column("Invoice", width=3.2), Column("Date", width=2), Column("Due", width=2),
                   Column("Order", width=2.4), Column("Amount", RIGHT, 2.4))  # fmt: skip
NOTE_COLUMNS = (Column("Note", width=3.4), Column("Date", width=2), Column("Refers to", width=4.2),
                Column("Amount", RIGHT, 2.4))  # fmt: skip
PAYMENT_COLUMNS = (Column("Date", width=2), Column("Reference", width=3.6), Column("Applied to", width=4),
                   Column("Amount", RIGHT, 2.4))  # fmt: skip


def read_payments(engine: Engine, tenant: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The tenant's payments against the documents of the month [first, last] (the `payments`
    ledger's `document_month`, as the statement's balance counts them: domain/payments.py
    `month_payments`): date, reference, number, amount_cents."""
    month = first.strftime("%Y%m")
    frame = read_table(engine, schema.payments, [schema.payments.c.tenant == tenant,
                                                 schema.payments.c.document_month == month])  # fmt: skip
    out = pd.DataFrame({"date": frame["payment_date"], "reference": frame["reference"],
                        "number": frame["document_number"], "amount_cents": frame["amount_cents"]})  # fmt: skip
    return out.sort_values(["date", "number", "reference"], kind="stable").reset_index(drop=True)


def statement_document(tenant: str, month: str, invoices: pd.DataFrame, notes: pd.DataFrame, payments: pd.DataFrame,
                       policy: TenantPolicy, issuer: Issuer) -> Document:  # fmt: skip
    """The statement of `month` (YYYYMM) from the month's invoices, notes and payments."""
    cur = policy.currency if invoices.empty else str(invoices["currency"].iloc[0])
    money = lambda cents: format_money(cents, cur, policy.locale)  # noqa: E731
    start = dt.date(int(month[:4]), int(month[4:]), 1)
    end = month_end(start)
    number = statement_number(tenant, month)
    inv = invoices.sort_values(["invoice_month", "invoice_seq"]) if len(invoices) else invoices
    inv_rows = tuple((r["invoice_number"], str(r["invoice_date"]), str(r["due_date"]), str(r["order_id"]),
                      money(r["amount_cents"])) for r in inv.to_dict("records"))  # fmt: skip
    signed = [(-1 if n["kind"] == CREDIT else 1) * int(n["amount_cents"]) for n in notes.to_dict("records")]
    refers = lambda n: n["invoice_number"] if isinstance(n.get("invoice_number"), str) and n["invoice_number"] else \
        f"Statement {str(n.get('statement_month'))[:4]}-{str(n.get('statement_month'))[4:]}"  # noqa: E731
    note_rows = tuple((n["note_number"], str(n["note_date"]), refers(n), money(s))
                      for n, s in zip(notes.to_dict("records"), signed))  # fmt: skip
    pay_rows = tuple((str(p["date"]), str(p["reference"] or ""), str(p["number"] or ""), money(-int(p["amount_cents"])))
                     for p in payments.to_dict("records"))  # fmt: skip
    invoiced = int(inv["amount_cents"].sum()) if len(inv) else 0
    debits = sum(s for s in signed if s > 0)
    credits = sum(s for s in signed if s < 0)
    paid = int(payments["amount_cents"].sum()) if len(payments) else 0
    balance = invoiced + debits + credits - paid
    due = end + dt.timedelta(days=policy.tariff.payment_terms_days)
    return Document(
        template="statement.html.j2", title="Statement", number=number, issued_on=end,
        issuer=issuer_party(issuer), bill_to=bill_to_party(policy),
        facts=(("Statement", number), ("Period", f"{start} – {end}"), ("Statement date", str(end)), ("Currency", cur),
               ("Payment terms", f"{policy.tariff.payment_terms_days} days net")),
        sections=(Section("Invoices", INVOICE_COLUMNS, inv_rows, empty="No invoices this month."),
                  Section("Credit and debit notes", NOTE_COLUMNS, note_rows, empty="No notes this month."),
                  Section("Payments", PAYMENT_COLUMNS, pay_rows, empty="No payments recorded.")),
        totals=(("Invoices", money(invoiced)), ("Debit notes", money(debits)), ("Credit notes", money(credits)),
                ("Payments", money(-paid)), ("Balance due", money(balance))),
        closing=payment_closing(number, money(balance), due.isoformat(), issuer) if balance > 0 else
                ("Nothing is due for this month.",),
        language=policy.locale.split("_")[0],
    )  # fmt: skip


def statement_path(invoice_dir: str | Path, tenant: str, month: str) -> Path:
    """`<invoice_dir>/<tenant>/<YYYY-MM>/<TENANT>-ST-<YYYYMM>.html`."""
    return document_path(invoice_dir, tenant, f"{month[:4]}-{month[4:]}-01", statement_number(tenant, month))


def write_statement(path: Path, doc: Document) -> list[Path]:
    """Write the statement's HTML and PDF when they differ from what is on disk."""
    written = []
    for target, data in ((path, render_html(doc).encode("utf-8")), (path.with_suffix(".pdf"), render_pdf(doc))):
        if replace_if_changed(target, data):
            written.append(target)
    return written
