"""The warehouse schema: every table declared once, in one `MetaData`, for SQLite and Postgres.

One module per concern; this package re-exports every table so callers write
`schema.invoices`. Tables are created and changed only by the Alembic migrations in
`warehouse/migrations/`; every asset has its own table, keyed by its partition column, so a
partition can be replaced atomically.
"""

from e2a_assets.warehouse.schema.base import TS, BigId, metadata
from e2a_assets.warehouse.schema.billing import (
    ISSUED,
    MONTHLY_INVOICE,
    ORDER_INVOICE,
    billable_orders,
    billing_report,
    invoice_adjustments,
    invoice_lines,
    invoice_sequences,
    invoices,
    line_events,
    monthly_statements,
    note_lines,
    note_sequences,
    notes,
    order_charges,
    rate_card_versions,
)
from e2a_assets.warehouse.schema.exceptions import (
    exception_actions,
    exception_insights,
    exception_patterns,
    exception_priorities,
    exceptions,
)
from e2a_assets.warehouse.schema.landing import (
    dead_letters,
    event_log,
    event_readers,
    receiver_heartbeats,
    webhook_events,
)
from e2a_assets.warehouse.schema.operations import alerts, operations_summary
from e2a_assets.warehouse.schema.payments import payments
from e2a_assets.warehouse.schema.orders import CLOCKS, completed_orders, order_sla, orders, sla_metrics

__all__ = [
    "TS", "BigId", "metadata", "ISSUED", "ORDER_INVOICE", "MONTHLY_INVOICE",
    "event_log", "dead_letters", "receiver_heartbeats", "event_readers", "webhook_events",
    "orders", "order_sla", "sla_metrics", "completed_orders", "CLOCKS",
    "exceptions", "exception_priorities", "exception_actions", "exception_patterns", "exception_insights",
    "billable_orders", "invoices", "invoice_lines", "invoice_sequences", "invoice_adjustments",
    "notes", "note_lines", "note_sequences", "monthly_statements", "billing_report", "rate_card_versions", "line_events",
    "order_charges", "payments",
    "operations_summary", "alerts",
]  # fmt: skip
