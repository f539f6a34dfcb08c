"""One folder per client and month (`e2a documents build`): every invoice and note document of the
month (HTML and PDF), the statement, the per-order detail CSV, and a zip of the folder to send.

The folder is the one the billing assets write into (`<dir>/<tenant>/<YYYY-MM>/`): building fills
in whatever is missing from the ledger and leaves issued documents as they are. The zip sits
beside the folder (`<dir>/<tenant>/<TENANT>-<YYYY-MM>.zip`) with its entries sorted and dated by
the month's last day, so building twice gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.documents.files import replace_if_changed
from e2a_assets.documents.formatting import parse_month
from e2a_assets.documents.invoices import DETAIL_COLUMNS, detail_csv, lines_for, write_charge_attachments, write_invoice_documents
from e2a_assets.documents.model import policy_of
from e2a_assets.documents.notes import read_note_lines, write_note_documents
from e2a_assets.documents.statements import read_payments, statement_document, statement_path, write_statement
from e2a_assets.domain.issuer import Issuer
from e2a_assets.domain.notes import month_end
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.warehouse import ledger
from e2a_assets.warehouse.schema import MONTHLY_INVOICE


@dataclass(frozen=True)
class MonthFolder:
    folder: Path
    archive: Path
    written: tuple[Path, ...]  # files written by this build (nothing when all were there)
    files: tuple[Path, ...]  # every file of the folder, as zipped


def order_detail(engine: Engine, invoices: pd.DataFrame) -> bytes:
    """The month's per-order detail: one row per invoiced order, a per-order invoice's own row or a
    monthly invoice's `order_charges` rows (by order date and order id)."""
    per_order = invoices[invoices["invoice_kind"] != MONTHLY_INVOICE]
    monthly = invoices[invoices["invoice_kind"] == MONTHLY_INVOICE]
    charges = ledger.read_charges(engine, numbers=list(monthly["invoice_number"]))
    rows = pd.concat([frame[DETAIL_COLUMNS] for frame in (per_order, charges) if len(frame)], ignore_index=True) \
        if len(per_order) or len(charges) else pd.DataFrame(columns=DETAIL_COLUMNS)  # fmt: skip
    return detail_csv(rows)


def _zip(folder: Path, files: list[Path], stamp: dt.date) -> bytes:
    """A zip of `files` (relative to the folder's parent) whose bytes depend on their content only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(f"{folder.name}/{path.name}", date_time=(stamp.year, stamp.month, stamp.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def build_month_folder(engine: Engine, registry: TenantRegistry, issuer: Issuer, tenant: str, month: str,
                       output: str | Path) -> MonthFolder:  # fmt: skip
    """Write the tenant's documents of `month` (YYYY-MM) under `output`; idempotent."""
    yyyymm = parse_month(month)
    start = dt.date(int(yyyymm[:4]), int(yyyymm[4:]), 1)
    end = month_end(start)
    policy = policy_of(registry, tenant)
    invoices = ledger.read_invoices(engine, tenant=tenant, month=yyyymm)
    numbers = list(invoices["invoice_number"])
    written = write_invoice_documents(output, invoices, lines_for(engine, numbers), registry, issuer)
    monthly = invoices[invoices["invoice_kind"] == MONTHLY_INVOICE]
    written += write_charge_attachments(output, monthly, ledger.read_charges(engine, numbers=list(monthly["invoice_number"])))
    notes = ledger.read_notes(engine, start, end, tenant=tenant)
    written += write_note_documents(output, notes, registry, issuer, read_note_lines(engine, list(notes["note_number"])))
    path = statement_path(output, tenant, yyyymm)
    payments = read_payments(engine, tenant, start, end)
    written += write_statement(path, statement_document(tenant, yyyymm, invoices, notes, payments, policy, issuer))
    folder = path.parent
    detail = folder / f"{tenant.upper()}-{yyyymm}-orders.csv"
    if replace_if_changed(detail, order_detail(engine, invoices)):
        written.append(detail)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    archive = folder.parent / f"{tenant.upper()}-{month}.zip"
    if replace_if_changed(archive, _zip(folder, files, end)):
        written.append(archive)
    return MonthFolder(folder, archive, tuple(written), tuple(files))
