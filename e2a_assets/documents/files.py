"""Where client documents live and how they are written: `<dir>/<tenant>/<YYYY-MM>/<number>.html`
and `.pdf` beside it. A document is written once (atomically: a temporary file renamed) and never
touched again, like the ledger row it shows; a lost file is written again from the ledger."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from e2a_assets.documents.html import render_html
from e2a_assets.documents.model import Document
from e2a_assets.documents.pdf import render_pdf

FORMATS = (".html", ".pdf")


def document_path(invoice_dir: str | Path, tenant: str, invoice_date, invoice_number: str) -> Path:  # noqa: ANN001
    """`<invoice_dir>/<tenant>/<YYYY-MM>/<invoice_number>.html` (the PDF: same name, `.pdf`)."""
    month = pd.Timestamp(invoice_date).strftime("%Y-%m")
    return Path(invoice_dir) / tenant / month / f"{invoice_number}.html"


def missing_documents(invoice_dir: str | Path, book: pd.DataFrame) -> pd.Series:
    """True for each invoice of `book` (tenant, invoice_date, invoice_number) whose HTML or PDF is
    not on disk (one listing per tenant-month folder, not a stat per invoice)."""
    if book.empty:
        return pd.Series(False, index=book.index, dtype=bool)
    months = pd.to_datetime(pd.Series(book["invoice_date"], dtype=object)).dt.strftime("%Y-%m")
    folders = book["tenant"].astype(str) + "/" + months
    root = Path(invoice_dir)
    present = {f"{folder}/{entry.name}" for folder in folders.unique() if (root / folder).is_dir()
               for entry in os.scandir(root / folder)}
    stem = folders + "/" + book["invoice_number"].astype(str)
    missing = pd.Series(False, index=book.index, dtype=bool)
    for suffix in FORMATS:
        missing |= ~(stem + suffix).isin(present)
    return missing


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so a reader never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def replace_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` to `path` unless it already holds exactly that; False when it did (a view of the
    ledger, such as a statement or a month's zip, is rewritten only when what it says changed)."""
    if path.exists() and path.read_bytes() == data:
        return False
    write_atomically(path, data)
    return True


def write_once(path: Path, data: bytes) -> bool:
    """Write `data` to `path` unless it exists; False when it was already there."""
    if path.exists():
        return False
    write_atomically(path, data)
    return True


def write_document(doc: Document, html_path: Path) -> list[Path]:
    """Write the document's HTML and PDF (whichever is missing); returns the files written."""
    written = []
    html_path = Path(html_path)
    if write_once(html_path, render_html(doc).encode("utf-8")):
        written.append(html_path)
    pdf_path = html_path.with_suffix(".pdf")
    if not pdf_path.exists() and write_once(pdf_path, render_pdf(doc)):
        written.append(pdf_path)
    return written
