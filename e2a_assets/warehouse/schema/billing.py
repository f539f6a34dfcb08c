"""The billing tables. `invoices`, `invoice_lines`, `invoice_adjustments`, `notes`, `note_lines`,
`rate_card_versions` and `line_events` are the ledger (inserted once, never rewritten: see warehouse/ledger.py); the others are derived
per partition.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from e2a_assets.domain.billing import MONEY_COLUMNS, MONTHLY_INVOICE, ORDER_INVOICE
from e2a_assets.warehouse.schema.base import TS, flag_columns, metadata

ISSUED = "issued"

# Billable or held orders priced as of the run (held ones too: the report shows the amount on hold).
billable_orders = Table(
    "billable_orders",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("cohort_day", Date, nullable=False),
    Column("created_at", TS),
    Column("billable_at", TS, nullable=False),
    Column("billable_basis", String(16), nullable=False),
    Column("invoice_date", Date, nullable=False),
    Column("billable", Boolean, nullable=False),
    Column("held", Boolean, nullable=False),
    Column("hold_reasons", String(256), nullable=False, default=""),
    *[Column(c, Integer, nullable=False) for c in ("picks", "packs", "labels", "kitting", "returns", "storage_days")],
    Column("flags", String(256), nullable=False, default=""),
    *flag_columns(),
    Column("currency", String(8), nullable=False),
    *[Column(c, BigInteger, nullable=False) for c in MONEY_COLUMNS],
    Column("as_of", TS, nullable=False),
    # The rate card version that priced the row (DOMAIN §8.1): an invoiced order's recorded one.
    Column("rate_card_version", Integer, nullable=False),
    UniqueConstraint("tenant", "order_id", name="uq_billable_orders_order"),
    Index("ix_billable_orders_day", "cohort_day", "tenant"),
    # The daily report's held backlog (held orders up to a day) without scanning every order.
    Index("ix_billable_orders_held", "held", "invoice_date"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_number", String(96), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("cohort_day", Date, nullable=False),
    Column("invoice_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("payment_terms_days", Integer, nullable=False),
    Column("invoice_month", String(6), nullable=False),  # YYYYMM of invoice_date
    Column("invoice_seq", Integer, nullable=False),
    Column("billable_at", TS, nullable=False),
    Column("billable_basis", String(16), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("issued_at", TS, nullable=False),  # evaluation time (as_of) of the issuing run
    Column("issued_run_id", String(64), nullable=False),
    Column("status", String(16), nullable=False, default=ISSUED),
    Column("paid_at", TS),  # written by the finance system, never by e2a
    Column("rate_card_version", Integer, nullable=False),  # the version that priced it (DOMAIN §8.1)
    # order | monthly (DOMAIN §8.3). A monthly invoice's order_id is `MONTHLY-{YYYYMM}` (one per
    # tenant and month), its cohort_day and invoice_date the month's last day; its orders are in
    # `order_charges`, its rate_card_version the highest version among them.
    Column("invoice_kind", String(16), nullable=False, default=ORDER_INVOICE),
    UniqueConstraint("invoice_number", name="uq_invoices_number"),
    UniqueConstraint("tenant", "order_id", name="uq_invoices_order"),
    UniqueConstraint("tenant", "invoice_month", "invoice_seq", name="uq_invoices_seq"),
    Index("ix_invoices_day", "cohort_day", "tenant"),
    Index("ix_invoices_date", "invoice_date", "tenant"),
)

def _priced_line() -> list[Column]:
    """What every document line says (invoice and note lines alike): its kind, the words printed
    for it, quantity x unit price = amount."""
    return [
        Column("kind", String(32), nullable=False),
        Column("description", Text, nullable=False),
        Column("quantity", BigInteger, nullable=False),
        Column("unit_cents", BigInteger, nullable=False),
        Column("amount_cents", BigInteger, nullable=False),
    ]


invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_number", String(96), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("line_no", Integer, nullable=False),
    *_priced_line(),
    Column("rate_card_version", Integer, nullable=False),
    UniqueConstraint("invoice_number", "line_no", name="uq_invoice_lines_line"),
)

# The per-order charges of monthly invoices (DOMAIN §8.3): a ledger inserted with its monthly
# invoice, never rewritten. One row per billable order of a `monthly` tenant, naming the invoice it
# is on; the amount is the order's price (`price_orders`, the same as a per-order invoice's). The
# monthly invoice's per-order detail attachment is these rows.
order_charges = Table(
    "order_charges",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("invoice_number", String(96), nullable=False),
    Column("billing_month", String(6), nullable=False),  # YYYYMM of the monthly invoice
    Column("cohort_day", Date, nullable=False),
    Column("invoice_date", Date, nullable=False),  # the order's own (the day it became billable)
    Column("billable_at", TS, nullable=False),
    Column("billable_basis", String(16), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("rate_card_version", Integer, nullable=False),
    Column("issued_at", TS, nullable=False),
    UniqueConstraint("tenant", "order_id", name="uq_order_charges_order"),
    Index("ix_order_charges_day", "cohort_day", "tenant"),
    Index("ix_order_charges_invoice", "tenant", "invoice_number"),
)

invoice_sequences = Table(
    "invoice_sequences",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("invoice_month", String(6), nullable=False),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("updated_at", TS),
    PrimaryKeyConstraint("tenant", "invoice_month", name="pk_invoice_sequences"),
)

invoice_adjustments = Table(
    "invoice_adjustments",
    metadata,
    Column("adjustment_id", String(128), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("invoice_number", String(96), nullable=False),
    Column("cohort_day", Date, nullable=False),
    Column("adjustment_seq", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("adjustment_date", Date, nullable=False),
    Column("issued_cents", BigInteger, nullable=False),
    Column("previously_applied_cents", BigInteger, nullable=False),
    Column("recomputed_cents", BigInteger, nullable=False),
    Column("delta_cents", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),  # debit | credit
    Column("reason", String(32), nullable=False),
    # AUTO_APPLIED | APPLIED_FLAGGED | PENDING_REVIEW | APPROVED | REJECTED | SUPERSEDED
    Column("status", String(16), nullable=False),
    Column("applied", Boolean, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("supersedes", String(512), nullable=False, default=""),
    Column("superseded_by", String(128)),
    Column("reviewed_at", TS),
    Column("reviewed_by", String(128)),
    Column("created_run_id", String(64), nullable=False),
    # The invoice's rate card version, which priced the recalculation (never a later one).
    Column("rate_card_version", Integer, nullable=False),
    UniqueConstraint("adjustment_id", name="uq_invoice_adjustments_id"),
    Index("ix_invoice_adjustments_invoice", "tenant", "invoice_number"),
    Index("ix_invoice_adjustments_day", "cohort_day", "tenant"),
    # The daily report's and the monthly statement's adjustments of their days / month.
    Index("ix_invoice_adjustments_date", "adjustment_date", "tenant"),
)

# Every rate card version that priced an issued invoice, as it was then (DOMAIN §8.1: such a
# version is immutable). Inserted when the version prices its first invoice, never changed; the
# registry is compared with it before billing. `definition` is the canonical JSON of the version
# (`RateCardVersion.definition`), `fingerprint` its SHA-256. Both are empty only for the versions
# revision 0005 found on a ledger made before rate cards; the first registry load fills them.
rate_card_versions = Table(
    "rate_card_versions",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", Date),  # empty: from the first day (version 1)
    Column("definition", Text),
    Column("fingerprint", String(64)),
    Column("first_used_at", TS, nullable=False),  # evaluation time of the run that first issued with it
    Column("first_used_run_id", String(64)),
    PrimaryKeyConstraint("tenant", "version", name="pk_rate_card_versions"),
)

# Credit and debit notes (DOMAIN §8.2, domain/notes.py): a ledger like invoices, inserted once and
# never rewritten. An adjustment note references its invoice; a month-close note (volume discount,
# minimum top-up) its tenant-month (`statement_month`). `source_id` makes issuing idempotent.
notes = Table(
    "notes",
    metadata,
    Column("note_number", String(96), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # credit | debit
    Column("note_month", String(6), nullable=False),  # YYYYMM of note_date
    Column("note_seq", Integer, nullable=False),
    Column("note_date", Date, nullable=False),
    Column("reason", String(32), nullable=False),  # RECALCULATION | VOLUME_DISCOUNT | MINIMUM_TOP_UP
    Column("source_id", String(128), nullable=False),  # adjustment_id, or {TENANT}-{YYYYMM}-{REASON}-{nn}
    Column("invoice_number", String(96)),
    Column("order_id", String(128)),
    Column("statement_month", String(6)),
    Column("amount_cents", BigInteger, nullable=False),  # > 0; the kind gives the sign
    Column("currency", String(8), nullable=False),
    Column("issued_at", TS, nullable=False),
    Column("issued_run_id", String(64), nullable=False),
    UniqueConstraint("note_number", name="uq_notes_number"),
    UniqueConstraint("source_id", name="uq_notes_source"),
    UniqueConstraint("tenant", "kind", "note_month", "note_seq", name="uq_notes_seq"),
    Index("ix_notes_date", "note_date", "tenant"),
    Index("ix_notes_invoice", "tenant", "invoice_number"),
)

note_lines = Table(
    "note_lines",
    metadata,
    Column("note_number", String(96), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("line_no", Integer, nullable=False),
    *_priced_line(),
    UniqueConstraint("note_number", "line_no", name="uq_note_lines_line"),
)

note_sequences = Table(
    "note_sequences",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("note_month", String(6), nullable=False),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("updated_at", TS),
    PrimaryKeyConstraint("tenant", "kind", "note_month", name="pk_note_sequences"),
)

# Row-level lineage (issue 11 item 2, docs/rules/lineage.md): one row per (document line,
# contributing event, role). A ledger like the documents it explains: written in the transaction
# that issues the document, never changed. `document_kind` is `invoice` (document_number = the
# invoice number, line_no = its line), `adjustment` (the adjustment id; line_no = the line of the
# recomputed pricing the events add to) or `note` (a credit/debit note's number and line).
line_events = Table(
    "line_events",
    metadata,
    Column("document_kind", String(16), nullable=False),
    Column("document_number", String(128), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),  # the line kind (pick, storage, multiplier_rush, ...)
    Column("source", String(16), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # counted | storage_start | storage_end | tag | completion
    Column("rate_card_version", Integer, nullable=False),
    Column("linked_at", TS, nullable=False),  # evaluation time of the run that wrote the document
    Column("linked_run_id", String(64), nullable=False),
    UniqueConstraint("document_kind", "document_number", "line_no", "tenant", "source", "event_id", "role",
                     name="uq_line_events_link"),
    Index("ix_line_events_event", "tenant", "source", "event_id"),
    Index("ix_line_events_order", "tenant", "order_id"),
)

monthly_statements = Table(
    "monthly_statements",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("month", String(6), nullable=False),
    Column("month_start", Date, nullable=False),
    Column("month_end", Date, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("invoiced_orders", Integer, nullable=False),
    Column("gross_cents", BigInteger, nullable=False),
    Column("discount_rate", Float, nullable=False),
    Column("discount_cents", BigInteger, nullable=False),
    Column("minimum_fee_cents", BigInteger, nullable=False),
    Column("minimum_top_up_cents", BigInteger, nullable=False),
    Column("adjustments_count", Integer, nullable=False),
    Column("adjustments_cents", BigInteger, nullable=False),
    Column("pending_review_cents", BigInteger, nullable=False),
    # Notes (DOMAIN §8.2): closed = month-close notes issued; net due = invoices + debit − credit notes.
    Column("closed", Boolean, nullable=False, default=False),
    Column("credit_notes_count", Integer, nullable=False, default=0),
    Column("credit_notes_cents", BigInteger, nullable=False, default=0),
    Column("debit_notes_count", Integer, nullable=False, default=0),
    Column("debit_notes_cents", BigInteger, nullable=False, default=0),
    Column("net_due_cents", BigInteger, nullable=False),
    # Payments (domain/payments.py) against the month's documents, dated by as_of; balance due = net due − payments.
    Column("payments_cents", BigInteger, nullable=False, default=0),
    Column("balance_due_cents", BigInteger, nullable=False, default=0),
    Column("overdue_invoices", Integer, nullable=False),
    Column("overdue_cents", BigInteger, nullable=False),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "month", name="uq_monthly_statements_month"),
)

billing_report = Table(
    "billing_report",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("day", Date, nullable=False),
    *[Column(c, Integer, nullable=False) for c in ("invoices_issued",)],
    Column("invoiced_cents", BigInteger, nullable=False),
    Column("held_orders", Integer, nullable=False),
    Column("held_cents", BigInteger, nullable=False),
    Column("hold_reasons", String(512), nullable=False, default=""),
    *[Column(c, Integer, nullable=False) for c in
      ("adjustments_auto_applied", "adjustments_applied_flagged", "adjustments_pending_review")],
    Column("revenue_impact_cents", BigInteger, nullable=False),
    Column("pending_review_cents", BigInteger, nullable=False),
    *[Column(c, Integer, nullable=False) for c in ("invoices_open", "invoices_overdue", "invoices_paid")],
    Column("invoices_partially_paid", Integer, nullable=False, default=0),  # domain/payments.py statuses
    Column("status_breakdown", String(128), nullable=False),
    Column("overdue_cents", BigInteger, nullable=False),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "day", name="uq_billing_report_day"),
)  # fmt: skip
