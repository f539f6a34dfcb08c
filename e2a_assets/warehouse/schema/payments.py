"""The `payments` ledger (docs/rules/payments.md, domain/payments.py): money a client paid against
an invoice or a debit note, as finance recorded it. Inserted once (`e2a payments import` /
`record`), never updated or deleted; a mistake is corrected by finance outside e2a, never by
rewriting a row. Unique on the payment's natural key (`domain/payments.py::PAYMENT_KEY`), which
makes importing the same file twice record nothing new.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table, UniqueConstraint

from e2a_assets.warehouse.schema.base import TS, metadata

payments = Table(
    "payments",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("document_number", String(96), nullable=False),  # the invoice or debit note the client paid
    Column("document_kind", String(8), nullable=False),  # invoice | debit
    # The invoice whose account the payment settles: the invoice itself, or the invoice a debit note
    # references; empty for a month-close debit note (its own account).
    Column("invoice_number", String(96)),
    Column("document_month", String(6), nullable=False),  # YYYYMM of the document's date: its statement
    Column("amount_cents", BigInteger, nullable=False),  # > 0
    Column("currency", String(8), nullable=False),
    Column("payment_date", Date, nullable=False),
    Column("reference", String(128), nullable=False),
    Column("source_file", String(512), nullable=False),  # the imported file's path, or `e2a payments record`
    Column("source_row", Integer),  # its row (the header is row 1); empty for `record`
    Column("recorded_at", TS, nullable=False),
    Column("recorded_by", String(128), nullable=False),
    UniqueConstraint("document_number", "reference", "amount_cents", "payment_date", name="uq_payments_payment"),
    # Statuses and balances read the payments of given invoices; statements those of a month's documents.
    Index("ix_payments_invoice", "tenant", "invoice_number"),
    Index("ix_payments_month", "document_month", "tenant"),
)
