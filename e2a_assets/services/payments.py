"""Recording payments (`e2a payments import` / `record`) and reading them back for statuses and
statements (domain/payments.py has the rules).

A file is read whole, every row is checked against the ledger (unknown number, credit note, bad
amount or date, empty reference, overpayment), and only when no row is refused are the new rows
inserted, in one transaction: nothing is ever half-imported. Rows already recorded (the same
file again) are skipped, not refused.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, text

from e2a_assets.domain.notes import CREDIT, signed_cents
from e2a_assets.domain.payments import INVOICE, PAYMENT_KEY, parse_amount, parse_payment_date, refused_rows
from e2a_assets.warehouse.frames import insert_frame, read_table
from e2a_assets.warehouse.schema import invoices, notes, payments

FILE_COLUMNS = ("number", "amount", "date", "reference")
RECORD_SOURCE = "e2a payments record"


class PaymentsRefused(ValueError):
    """Rows that cannot be recorded: `problems` is [(row, reason)], nothing was written."""

    def __init__(self, problems: list[tuple[int | None, str]]):
        self.problems = problems
        first = problems[0]
        where = f"row {first[0]}: " if first[0] is not None else ""
        more = f" (and {len(problems) - 1} more row(s))" if len(problems) > 1 else ""
        super().__init__(f"{where}{first[1]}{more}; nothing recorded")


@dataclass
class PaymentsRecorded:
    recorded: int
    already_recorded: int
    amount_cents: int
    numbers: list[str] = field(default_factory=list)


def read_payment_file(path: Path) -> pd.DataFrame:
    """The rows of a payments CSV (header `number,amount,date,reference`) as text, with their row
    number (the header is row 1). ValueError, one line, for a file that cannot be one."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in FILE_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{path}: no column {missing[0]!r} (the header must name {', '.join(FILE_COLUMNS)})")
            reader.fieldnames = header
            rows = [{"row": n, **{c: (r.get(c) or "").strip() for c in FILE_COLUMNS}} for n, r in enumerate(reader, start=2)]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a UTF-8 CSV file ({type(exc).__name__})") from None
    if not rows:
        raise ValueError(f"{path}: no payment rows under the header")
    return pd.DataFrame(rows, columns=["row", *FILE_COLUMNS])


def parsed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Text rows -> row, document_number, amount_cents, payment_date, reference, problem."""
    out = pd.DataFrame({"row": rows["row"], "document_number": rows["number"].str.strip(),
                        "reference": rows["reference"].str.strip()})  # fmt: skip
    amounts, days, problems = [], [], []
    for amount, day, number, reference in zip(rows["amount"], rows["date"], out["document_number"], out["reference"]):
        problem = "" if number else "number is empty"
        try:
            cents = parse_amount(amount)
        except ValueError as exc:
            cents, problem = None, problem or str(exc)
        try:
            date = parse_payment_date(day)
        except ValueError as exc:
            date, problem = None, problem or str(exc)
        if not reference and not problem:
            problem = "reference is empty (give the bank or remittance reference)"
        amounts.append(cents)
        days.append(date)
        problems.append(problem)
    out["amount_cents"] = pd.array(amounts, dtype="Int64")
    out["payment_date"] = days
    out["problem"] = problems
    return out


def _by_number(conn: Any, table, column, numbers: list[str]) -> pd.DataFrame:  # noqa: ANN001
    parts = [read_table(conn, table, [column.in_(numbers[i : i + 1000])]) for i in range(0, len(numbers), 1000)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else read_table(conn, table, [column.is_(None)]))


def payable_documents(conn: Any, numbers: list[str]) -> pd.DataFrame:
    """The named documents (document_number, tenant, type, account, invoice_number, document_month,
    currency) and what each one's account still owes (`outstanding_cents`): invoice amount + its
    debit notes − its credit notes − its payments, or a month-close debit note − its payments."""
    numbers = sorted(set(numbers))
    inv = _by_number(conn, invoices, invoices.c.invoice_number, numbers)
    nts = _by_number(conn, notes, notes.c.note_number, numbers)
    docs = pd.concat([
        pd.DataFrame({"document_number": inv["invoice_number"], "tenant": inv["tenant"], "type": INVOICE,
                      "invoice_number": inv["invoice_number"], "document_month": inv["invoice_month"].astype(str),
                      "currency": inv["currency"]}),
        pd.DataFrame({"document_number": nts["note_number"], "tenant": nts["tenant"], "type": nts["kind"],
                      "invoice_number": nts["invoice_number"], "document_month": nts["note_month"].astype(str),
                      "currency": nts["currency"]}),
    ], ignore_index=True)  # fmt: skip
    docs["account"] = docs["invoice_number"].fillna(docs["document_number"])
    accounts = sorted(set(docs.loc[docs["type"] != CREDIT, "account"]))
    owed = _account_balances(conn, accounts)
    docs["outstanding_cents"] = docs["account"].map(owed).fillna(0).astype(np.int64)
    return docs


def _account_balances(conn: Any, accounts: list[str]) -> pd.Series:
    """What each account (an invoice number, or a month-close debit note's number) still owes."""
    if not accounts:
        return pd.Series(dtype=np.int64)
    inv = _by_number(conn, invoices, invoices.c.invoice_number, accounts)
    own = _by_number(conn, notes, notes.c.note_number, accounts)  # month-close debit notes
    theirs = _by_number(conn, notes, notes.c.invoice_number, accounts)
    paid = _by_number(conn, payments, payments.c.invoice_number, accounts)
    paid_notes = _by_number(conn, payments, payments.c.document_number, accounts)
    paid_notes = paid_notes[paid_notes["invoice_number"].isna()]
    owed = pd.concat([pd.Series(inv["amount_cents"].astype(np.int64).to_numpy(), index=inv["invoice_number"]),
                      pd.Series(signed_cents(own).to_numpy(), index=own["note_number"])])
    owed = owed.astype(np.int64).groupby(level=0).sum()
    owed = owed.add(pd.Series(signed_cents(theirs).to_numpy(), index=theirs["invoice_number"]).groupby(level=0).sum(), fill_value=0)
    owed = owed.sub(paid.groupby("invoice_number")["amount_cents"].sum(), fill_value=0)
    owed = owed.sub(paid_notes.groupby("document_number")["amount_cents"].sum(), fill_value=0)
    return owed.astype(np.int64)


def _recorded_keys(conn: Any, numbers: list[str]) -> set[tuple]:
    found = _by_number(conn, payments, payments.c.document_number, sorted(set(numbers)))
    return {(r.document_number, r.reference, int(r.amount_cents), pd.Timestamp(r.payment_date).date())
            for r in found.itertuples(index=False)}  # fmt: skip


def _one_recorder_at_a_time(conn: Any) -> None:
    """Two imports at once must not both see the same balance and overpay together: take the
    writer's lock before reading (Postgres: a transaction advisory lock; SQLite: a no-op write
    takes the database write lock), released at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('e2a_payments'))"))
    else:
        conn.execute(delete(payments).where(payments.c.amount_cents < 0))  # matches nothing: amounts are > 0


def record_payments(engine: Engine, rows: pd.DataFrame, source_file: str, recorded_by: str,
                    at: dt.datetime) -> PaymentsRecorded:  # fmt: skip
    """Check every row (`parsed_rows`) and record the new ones in one transaction; raise
    `PaymentsRefused` (nothing written) when any row is refused."""
    with engine.begin() as conn:
        _one_recorder_at_a_time(conn)
        docs = payable_documents(conn, list(rows["document_number"]))
        seen = _recorded_keys(conn, list(rows["document_number"]))
        keys = [(n, r, int(a) if pd.notna(a) else None, d)
                for n, r, a, d in zip(rows["document_number"], rows["reference"], rows["amount_cents"], rows["payment_date"])]  # fmt: skip
        duplicate = []
        for key, problem in zip(keys, rows["problem"]):
            duplicate.append(not problem and key in seen)
            seen.add(key)
        checked = rows.assign(duplicate=duplicate)
        refused = refused_rows(checked, docs)
        if len(refused):
            raise PaymentsRefused([(None if pd.isna(r) else int(r), reason) for r, reason in zip(refused["row"], refused["reason"])])
        new = checked[~checked["duplicate"]].merge(docs.drop(columns=["type"]).drop_duplicates("document_number"),
                                                   on="document_number", how="left")  # fmt: skip
        kinds = new["document_number"].map(docs.drop_duplicates("document_number").set_index("document_number")["type"])
        frame = pd.DataFrame({
            "tenant": new["tenant"], "document_number": new["document_number"], "document_kind": kinds,
            "invoice_number": new["invoice_number"], "document_month": new["document_month"],
            "amount_cents": new["amount_cents"].astype(np.int64), "currency": new["currency"],
            "payment_date": new["payment_date"], "reference": new["reference"], "source_file": source_file[:512],
            "source_row": new["row"] if source_file != RECORD_SOURCE else None,
            "recorded_at": pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at, tz="UTC"),
            "recorded_by": recorded_by[:128],
        })  # fmt: skip
        if len(frame):
            insert_frame(conn, payments, frame)
    return PaymentsRecorded(len(frame), int(checked["duplicate"].sum()), int(frame["amount_cents"].sum()) if len(frame) else 0,
                            sorted(set(frame["document_number"])))  # fmt: skip
