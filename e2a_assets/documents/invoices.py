"""Invoice documents: a printable HTML file per issued invoice.

Documents are rendered from the ledger rows (never recomputed), so a document always shows what
was issued. They are self-contained HTML (inline CSS, no scripts, no external resources) that
print cleanly to A4/Letter from any browser.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.documents.formatting import format_money
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.schema import MONTHLY_INVOICE, invoice_lines


def document_path(invoice_dir: str | Path, tenant: str, invoice_date, invoice_number: str) -> Path:  # noqa: ANN001
    """`<invoice_dir>/<tenant>/<YYYY-MM>/<invoice_number>.html`."""
    month = pd.Timestamp(invoice_date).strftime("%Y-%m")
    return Path(invoice_dir) / tenant / month / f"{invoice_number}.html"


def missing_documents(invoice_dir: str | Path, book: pd.DataFrame) -> pd.Series:
    """True for each invoice of `book` whose document is not on disk (one listing per tenant-month
    folder, not a stat per invoice)."""
    if book.empty:
        return pd.Series(False, index=book.index, dtype=bool)
    months = pd.to_datetime(pd.Series(book["invoice_date"], dtype=object)).dt.strftime("%Y-%m")
    folders = book["tenant"].astype(str) + "/" + months
    expected = folders + "/" + book["invoice_number"].astype(str) + ".html"
    root = Path(invoice_dir)
    present = {f"{folder}/{entry.name}" for folder in folders.unique() if (root / folder).is_dir()
               for entry in os.scandir(root / folder)}
    return ~expected.isin(present)


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;color:#222;margin:2.5em auto;max-width:46em;font-size:14px}
h1{font-size:26px;margin:0 0 .2em}header{display:flex;justify-content:space-between;align-items:flex-start}
.meta td{padding:2px 10px 2px 0}.muted{color:#666}
table.lines{width:100%;border-collapse:collapse;margin-top:2em}
table.lines th{text-align:left;border-bottom:2px solid #222;padding:6px 4px}
table.lines td{border-bottom:1px solid #ddd;padding:6px 4px}
.num{text-align:right;white-space:nowrap}tfoot td{font-weight:bold;border-top:2px solid #222;border-bottom:none}
footer{margin-top:3em;font-size:12px;color:#555}
@media print{body{margin:0}}
"""


def _subject_row(invoice: dict) -> str:
    """What the invoice bills: its order, or - a monthly invoice (DOMAIN §8.3) - its month and
    the per-order detail attachment."""
    e = html.escape
    if invoice.get("invoice_kind") == MONTHLY_INVOICE:
        month = pd.Timestamp(invoice["invoice_date"]).strftime("%Y-%m")
        return (f'<tr><td class=muted>Billing period</td><td>{e(month)} (per-order detail: '
                f'{e(attachment_path(".", invoice["tenant"], invoice["invoice_date"], invoice["invoice_number"]).name)})</td></tr>')
    return f'<tr><td class=muted>Order</td><td>{e(str(invoice["order_id"]))} ({e(str(invoice["billable_basis"]))})</td></tr>'


def attachment_path(invoice_dir: str | Path, tenant: str, invoice_date, invoice_number: str) -> Path:  # noqa: ANN001
    """A monthly invoice's per-order detail: `<invoice_dir>/<tenant>/<YYYY-MM>/<invoice_number>-orders.csv`."""
    return document_path(invoice_dir, tenant, invoice_date, invoice_number).with_name(f"{invoice_number}-orders.csv")


DETAIL_COLUMNS = ["invoice_number", "tenant", "order_id", "invoice_date", "billable_basis", "rate_card_version",
                  "amount_cents", "currency"]


def write_charge_attachments(invoice_dir: str | Path, monthly: pd.DataFrame, charges: pd.DataFrame) -> list[Path]:
    """Write the per-order detail CSV of each monthly invoice (its `order_charges` rows, by order
    date and order id); existing files are left as they are, like the documents."""
    written = []
    for invoice in (monthly.to_dict("records") if monthly is not None else []):
        path = attachment_path(invoice_dir, invoice["tenant"], invoice["invoice_date"], invoice["invoice_number"])
        if path.exists():
            continue
        mine = charges[charges["invoice_number"] == invoice["invoice_number"]].sort_values(["invoice_date", "order_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        mine[DETAIL_COLUMNS].to_csv(tmp, index=False)
        tmp.replace(path)
        written.append(path)
    return written


def render_invoice_html(invoice: dict, lines: pd.DataFrame, display_name: str) -> str:
    """One invoice as a self-contained, printable HTML page (ledger values only)."""
    e = html.escape
    cur = invoice["currency"]
    rows = "\n".join(
        f"<tr><td>{int(r.line_no)}</td><td>{e(str(r.description))}</td><td class=num>{int(r.quantity)}</td>"
        f"<td class=num>{e(format_money(r.unit_cents, cur))}</td><td class=num>{e(format_money(r.amount_cents, cur))}</td></tr>"
        for r in lines.sort_values("line_no").itertuples(index=False)
    )
    total = format_money(invoice["amount_cents"], cur)
    terms = int(invoice["payment_terms_days"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Invoice {e(invoice["invoice_number"])}</title>
<style>{_CSS}</style></head>
<body>
<header>
  <div><h1>Invoice</h1><div class=muted>Fulfilment services</div></div>
  <div style="text-align:right"><strong>{e(display_name)}</strong><br><span class=muted>tenant {e(invoice["tenant"])}</span></div>
</header>
<table class=meta style="margin-top:1.5em">
  <tr><td class=muted>Invoice number</td><td><strong>{e(invoice["invoice_number"])}</strong></td></tr>
  <tr><td class=muted>Invoice date</td><td>{e(str(invoice["invoice_date"]))}</td></tr>
  <tr><td class=muted>Due date</td><td>{e(str(invoice["due_date"]))}</td></tr>
  {_subject_row(invoice)}
  <tr><td class=muted>Currency</td><td>{e(cur)}</td></tr>
  <tr><td class=muted>Rate card</td><td>version {int(invoice["rate_card_version"])}</td></tr>
</table>
<table class=lines>
  <thead><tr><th>#</th><th>Description</th><th class=num>Qty</th><th class=num>Unit</th><th class=num>Amount</th></tr></thead>
  <tbody>
{rows}
  </tbody>
  <tfoot><tr><td></td><td>Total due</td><td></td><td></td><td class=num>{e(total)}</td></tr></tfoot>
</table>
<footer>
  <p>Payment terms: {terms} days net. Please pay {e(total)} by {e(str(invoice["due_date"]))},
  quoting invoice number {e(invoice["invoice_number"])}.</p>
  <p>This invoice is final. Corrections after issue are made by separate adjustment notes.</p>
</footer>
</body></html>
"""


def write_invoice_documents(
    invoice_dir: str | Path, issued: pd.DataFrame, lines: pd.DataFrame, registry: TenantRegistry | None
) -> list[Path]:
    """Write one HTML document per issued invoice; existing documents are left as they are."""
    written = []
    if issued is None or issued.empty:
        return written
    by_number = {number: group for number, group in lines.groupby("invoice_number")} if len(lines) else {}
    for invoice in issued.to_dict("records"):
        path = document_path(invoice_dir, invoice["tenant"], invoice["invoice_date"], invoice["invoice_number"])
        if path.exists():  # issued documents are immutable like the ledger
            continue
        policy = registry.get(invoice["tenant"]) if registry is not None else None
        display_name = (policy.display_name if policy and policy.display_name else invoice["tenant"])
        text = render_invoice_html(invoice, by_number.get(invoice["invoice_number"], lines.iloc[0:0]), display_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def lines_for(engine: Engine, numbers: list[str]) -> pd.DataFrame:
    """Stored lines of the given invoices."""
    return read_table(engine, invoice_lines, [invoice_lines.c.invoice_number.in_(numbers)])
