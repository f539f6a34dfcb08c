"""Credit and debit note documents (DOMAIN §8.2): an HTML page and a PDF per issued note, next to
the invoices of its month (`<invoice_dir>/<tenant>/<YYYY-MM of the note date>/<note_number>.html`).

Rendered from the ledger rows only and written once, like invoice documents. A run writes the
documents its notes lack, so a note issued by a CLI approval gets its documents from the command
or, failing that, from the next billing run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine

from e2a_assets.documents.files import document_path, missing_documents, write_document
from e2a_assets.documents.formatting import format_money
from e2a_assets.documents.invoices import payment_closing
from e2a_assets.documents.model import LINE_COLUMNS, Document, Section, bill_to_party, issuer_party, line_rows, policy_of
from e2a_assets.domain.issuer import Issuer, shipped_issuer
from e2a_assets.domain.line_labels import TAX_LINE
from e2a_assets.domain.notes import CREDIT
from e2a_assets.domain.policies import TenantPolicy, TenantRegistry
from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.schema import note_lines


def _reference(note: dict) -> tuple[tuple[str, str], ...]:
    """What the note corrects: an invoice (and its order), or a statement month (month-close notes)."""
    ref = note.get("invoice_number")
    if isinstance(ref, str) and ref:
        return ("Refers to", f"Invoice {ref}"), ("Order", str(note.get("order_id") or ""))
    month = str(note.get("statement_month") or "")
    return (("Refers to", f"Statement {month[:4]}-{month[4:]}"),)


def note_document(note: dict, lines: pd.DataFrame, policy: TenantPolicy, issuer: Issuer) -> Document:
    """One issued note as a document (ledger values only)."""
    cur = note["currency"]
    money = lambda cents: format_money(cents, cur, policy.locale)  # noqa: E731
    credit = note["kind"] == CREDIT
    title = "Credit note" if credit else "Debit note"
    number = str(note["note_number"])
    amount = money(note["amount_cents"])
    if lines is None or lines.empty:  # a note always has its line; rendered by hand without: one line of its amount
        lines = pd.DataFrame([{"line_no": 1, "kind": note["reason"], "quantity": 1, "unit_cents": note["amount_cents"],
                               "amount_cents": note["amount_cents"]}])  # fmt: skip
    tax = int(lines.loc[lines["kind"] == TAX_LINE, "amount_cents"].astype("int64").sum())
    totals = [("Total credited" if credit else "Total", amount)]
    if (lines["kind"] == TAX_LINE).any():
        totals = [("Subtotal", money(int(note["amount_cents"]) - tax)), ("Tax", money(tax)), *totals]
    facts = ((f"{title} number", number), ("Date", str(note["note_date"])), *_reference(note), ("Currency", cur))
    rows = line_rows(lines, policy, cur, invoice=str(note.get("invoice_number") or ""))
    if credit:
        closing = (f"{amount} to be deducted from the amount you owe; quote {number} as the reference.",)
    else:
        due = pd.Timestamp(note["note_date"]) + pd.Timedelta(days=policy.tariff.payment_terms_days)
        closing = payment_closing(number, amount, due.date().isoformat(), issuer)
    return Document(
        template="note.html.j2", title=title, number=number, issued_on=pd.Timestamp(note["note_date"]).date(),
        issuer=issuer_party(issuer), bill_to=bill_to_party(policy), facts=facts,
        sections=(Section("", LINE_COLUMNS, rows),), totals=tuple(totals),
        closing=(*closing, "This note is final; a later change is made by a further note."),
        language=policy.locale.split("_")[0],
    )  # fmt: skip


def read_note_lines(conn_or_engine: Engine | Connection, numbers: list[str]) -> pd.DataFrame:
    numbers = sorted(set(numbers))
    parts = [read_table(conn_or_engine, note_lines, [note_lines.c.note_number.in_(numbers[i : i + 1000])])
             for i in range(0, len(numbers), 1000)]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["note_number", "line_no", "kind"])


def write_note_documents(invoice_dir: str | Path, notes: pd.DataFrame, registry: TenantRegistry | None,
                         issuer: Issuer | None = None, lines: pd.DataFrame | None = None) -> list[Path]:  # fmt: skip
    """Write the documents of every note of `notes` that lacks them; existing ones are left alone.
    `lines`: the notes' `note_lines` rows (without them, each note prints as one line of its amount)."""
    written: list[Path] = []
    if notes is None or notes.empty:
        return written
    issuer = issuer or shipped_issuer()
    # The same file layout as invoices: a note is found by its date and number.
    where = notes[["tenant", "note_date", "note_number"]].set_axis(["tenant", "invoice_date", "invoice_number"], axis=1)
    by_number = dict(tuple(lines.groupby("note_number"))) if lines is not None and len(lines) else {}
    for note in notes[missing_documents(invoice_dir, where).to_numpy()].to_dict("records"):
        path = document_path(invoice_dir, note["tenant"], note["note_date"], note["note_number"])
        doc = note_document(note, by_number.get(note["note_number"]), policy_of(registry, note["tenant"]), issuer)
        written += write_document(doc, path)
    return written
