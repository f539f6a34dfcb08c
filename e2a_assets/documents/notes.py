"""Credit and debit note documents (DOMAIN §8.2): a printable HTML file per issued note, next to
the invoices of its month (`<invoice_dir>/<tenant>/<YYYY-MM of the note date>/<note_number>.html`).

Rendered from the ledger rows only and written once, like invoice documents. A run writes the
documents its notes lack, so a note issued by a CLI approval gets its document from the command or,
failing that, from the next billing run.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from e2a_assets.documents.formatting import format_money
from e2a_assets.documents.invoices import _CSS, document_path, missing_documents
from e2a_assets.domain.notes import CREDIT
from e2a_assets.domain.policies import TenantRegistry


def render_note_html(note: dict, display_name: str) -> str:
    """One note as a self-contained, printable HTML page (ledger values only)."""
    e = html.escape
    cur = note["currency"]
    credit = note["kind"] == CREDIT
    title = "Credit note" if credit else "Debit note"
    amount = format_money(note["amount_cents"], cur)
    ref = note.get("invoice_number")
    if isinstance(ref, str) and ref:
        reference = f"Invoice {e(ref)} (order {e(str(note.get('order_id') or ''))})"
    else:
        month = str(note.get("statement_month") or "")
        reference = f"Statement {e(month[:4])}-{e(month[4:])}"
    effect = "to be deducted from the amount you owe" if credit else "payable in addition to the referenced document"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} {e(note["note_number"])}</title>
<style>{_CSS}</style></head>
<body>
<header>
  <div><h1>{title}</h1><div class=muted>Fulfilment services</div></div>
  <div style="text-align:right"><strong>{e(display_name)}</strong><br><span class=muted>tenant {e(note["tenant"])}</span></div>
</header>
<table class=meta style="margin-top:1.5em">
  <tr><td class=muted>{title} number</td><td><strong>{e(note["note_number"])}</strong></td></tr>
  <tr><td class=muted>Date</td><td>{e(str(note["note_date"]))}</td></tr>
  <tr><td class=muted>Refers to</td><td>{reference}</td></tr>
  <tr><td class=muted>Currency</td><td>{e(cur)}</td></tr>
</table>
<table class=lines>
  <thead><tr><th>#</th><th>Description</th><th class=num>Amount</th></tr></thead>
  <tbody>
<tr><td>1</td><td>{e(str(note.get("description") or note["reason"]))}</td><td class=num>{e(amount)}</td></tr>
  </tbody>
  <tfoot><tr><td></td><td>Total</td><td class=num>{e(amount)}</td></tr></tfoot>
</table>
<footer>
  <p>{e(amount)} {effect}. This note is final; a later change is made by a further note.</p>
</footer>
</body></html>
"""


def write_note_documents(invoice_dir: str | Path, notes: pd.DataFrame, registry: TenantRegistry | None) -> list[Path]:
    """Write the document of every note of `notes` that has none; existing ones are left alone."""
    written: list[Path] = []
    if notes is None or notes.empty:
        return written
    # The same file layout as invoices: a note is found by its date and number.
    where = notes[["tenant", "note_date", "note_number"]].set_axis(["tenant", "invoice_date", "invoice_number"], axis=1)
    for note in notes[missing_documents(invoice_dir, where).to_numpy()].to_dict("records"):
        path = document_path(invoice_dir, note["tenant"], note["note_date"], note["note_number"])
        policy = registry.get(note["tenant"]) if registry is not None else None
        display_name = policy.display_name if policy and policy.display_name else note["tenant"]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(render_note_html(note, display_name), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
