"""Which part of the invoice ledger a routine check or report reads (ARCHITECTURE principle 6).

A gap or a duplicate number is a property of a whole (tenant, invoice month), so the invoice
checks of a run verify the tenant-months its invoices belong to - read through the unique index
on (tenant, invoice_month, invoice_seq) - instead of the whole ledger. The whole-ledger audit
passes `keys=None` (the explicitly launched `ledger_audit_job`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import tuple_

from e2a_assets.warehouse.frames import read_table
from e2a_assets.warehouse.schema import invoice_lines, invoices

CHUNK = 500


def touched_months(book: pd.DataFrame) -> list[tuple[str, str]]:
    """The (tenant, invoice_month) pairs of the given invoices, sorted."""
    if book is None or book.empty:
        return []
    return sorted(set(zip(book["tenant"], book["invoice_month"].astype(str))))


def invoices_of_months(engine: Any, keys: list[tuple[str, str]] | None, columns: list[str]) -> pd.DataFrame:
    """Invoices of the given (tenant, invoice_month) pairs; the whole ledger when `keys` is None."""
    if keys is None:
        return read_table(engine, invoices, columns=columns)
    key = tuple_(invoices.c.tenant, invoices.c.invoice_month)
    parts = [read_table(engine, invoices, [key.in_(keys[i : i + CHUNK])], columns=columns)
             for i in range(0, len(keys), CHUNK)] or [read_table(engine, invoices, [invoices.c.invoice_number.is_(None)], columns=columns)]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def lines_of(engine: Any, numbers: list[str] | None, columns: list[str]) -> pd.DataFrame:
    """Lines of the given invoice numbers (unique index on invoice_number, line_no); all when None."""
    if numbers is None:
        return read_table(engine, invoice_lines, columns=columns)
    numbers = sorted(set(numbers))
    parts = [read_table(engine, invoice_lines, [invoice_lines.c.invoice_number.in_(numbers[i : i + 1000])], columns=columns)
             for i in range(0, len(numbers), 1000)] or [read_table(engine, invoice_lines, [invoice_lines.c.invoice_number.is_(None)], columns=columns)]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
