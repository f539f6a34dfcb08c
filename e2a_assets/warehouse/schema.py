"""The warehouse schema: the one definition of every table, for SQLite and Postgres alike.

The landing table `event_log` is append-only (unique on tenant+source+event_id); dead letters
keep every signed delivery that could not be understood. Every asset has its own table, keyed by
its partition column, so a partition can be replaced atomically.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)

from e2a_assets.domain.policies import FLAGS

metadata = MetaData()

TS = DateTime(timezone=True)
# SQLite only auto-increments INTEGER PRIMARY KEY; Postgres gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer, "sqlite")


def _event_columns() -> list[Column]:
    """Columns of a canonical event (docs/internals.md, "The event frame")."""
    return [
        Column("tenant", String(64), nullable=False),
        Column("source", String(16), nullable=False),
        Column("event_id", String(128), nullable=False),
        Column("event_type", String(64)),
        Column("order_id", String(128)),
        Column("occurred_at", TS, nullable=False),
        Column("received_at", TS, nullable=False),
        Column("order_created_at", TS),
        Column("order_name", String(128)),
        Column("financial_status", String(32)),
        Column("total_price_cents", BigInteger),
        Column("currency", String(8)),
        Column("tags", Text),
        Column("shipping_code", String(32)),
        Column("ship_zip", String(32)),
        Column("ship_country", String(64)),
        Column("address_valid", Boolean),
        Column("line_count", Integer),
        Column("item_quantity", Integer),
        Column("inventory_shortage", Boolean, nullable=False, default=False),
        Column("zero_available", Boolean, nullable=False, default=False),
        Column("reason_code", String(64)),
        Column("carrier", String(64)),
    ]


event_log = Table(
    "event_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    *_event_columns(),
    Column("topic", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # accepted | ignored
    Column("payload", Text, nullable=False),
    # Postgres: id of the inserting transaction (see warehouse/event_cursor.py). SQLite: unused.
    Column("commit_seq", BigInteger),
    UniqueConstraint("tenant", "source", "event_id", name="uq_event_log_key"),
    Index("ix_event_log_order", "tenant", "order_id"),
    Index("ix_event_log_occurred", "occurred_at"),
    Index("ix_event_log_created", "order_created_at"),
    Index("ix_event_log_commit_seq", "commit_seq", "id"),
)
# Every row records the transaction that wrote it, so readers can tell which rows can no longer
# be joined by an earlier-numbered row still in flight (concurrent receivers).
event.listen(
    event_log,
    "after_create",
    DDL("ALTER TABLE event_log ALTER COLUMN commit_seq SET DEFAULT txid_current()").execute_if(dialect="postgresql"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("headers", Text, nullable=False),  # JSON, signature headers removed
    Column("body", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),  # pending | replayed
    Column("replay_attempts", Integer, nullable=False, default=0),
    Column("last_replayed_at", TS),
    Column("last_error", Text),
    Index("ix_dead_letters_status", "status", "tenant"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    *_event_columns(),
    Column("cohort_day", Date, nullable=False),
    Index("ix_webhook_events_day", "cohort_day", "tenant"),
)

def flag_columns() -> list[Column]:
    """One boolean column per order flag (DOMAIN §1.1); new Column objects for each table."""
    return [Column(f"flag_{name}", Boolean, nullable=False, default=False) for name in FLAGS]

orders = Table(
    "orders",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("order_name", String(128)),
    Column("cohort_day", Date, nullable=False),
    *[
        Column(name, TS)
        for name in (
            "created_at",
            "paid_at",
            "picked_at",
            "packed_at",
            "labelled_at",
            "shipped_at",
            "delivered_at",
            "cancelled_at",
            "delivery_failed_at",
            "returned_at",
        )
    ],
    Column("delivery_failed_count", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("last_event_at", TS, nullable=False),
    Column("stalled", Boolean, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("financial_status", String(32)),
    Column("total_price_cents", BigInteger),
    Column("currency", String(8)),
    Column("shipping_code", String(32)),
    Column("ship_zip", String(32)),
    Column("address_valid", Boolean),
    Column("flags", String(256), nullable=False, default=""),
    *flag_columns(),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "order_id", name="uq_orders_order"),
    Index("ix_orders_day", "cohort_day", "tenant"),
)

order_sla = Table(
    "order_sla",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("cohort_day", Date, nullable=False),
    Column("clock", String(16), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("ended_at", TS),
    Column("running", Boolean, nullable=False),
    Column("limit_minutes", Float, nullable=False),
    Column("deadline_at", TS, nullable=False),
    Column("actual_minutes", Float, nullable=False),
    Column("breached", Boolean, nullable=False),
    Column("delay_minutes", Float, nullable=False),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "order_id", "clock", name="uq_order_sla_clock"),
    Index("ix_order_sla_day", "cohort_day", "tenant"),
)

CLOCKS = ("pick", "pack", "ship", "delivery")

sla_metrics = Table(
    "sla_metrics",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("orders", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("stalled", Integer, nullable=False),
    *[
        col
        for clock in CLOCKS
        for col in (
            Column(f"{clock}_compliance", Float, nullable=False),
            Column(f"{clock}_p50_minutes", Float),
            Column(f"{clock}_p95_minutes", Float),
            Column(f"{clock}_breached", Integer, nullable=False),
        )
    ],
    Column("exception_response_compliance", Float, nullable=False),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "day", name="uq_sla_metrics_day"),
)

exceptions = Table(
    "exceptions",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("cohort_day", Date, nullable=False),
    Column("reason_code", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("status", String(16), nullable=False),
    Column("resolved_at", TS),
    Column("resolution", String(64)),
    Column("holds_billing", Boolean, nullable=False),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "order_id", "reason_code", name="uq_exceptions_code"),
    Index("ix_exceptions_day", "cohort_day", "tenant"),
)

exception_priorities = Table(
    "exception_priorities",
    metadata,
    *[c.copy() for c in exceptions.columns],
    Column("age_hours", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("category", String(32), nullable=False),
    Column("rank", Integer, nullable=False),
    Index("ix_exception_priorities_day", "cohort_day", "tenant"),
)

# The automated-resolution outbox: rows are added once per exception and only their outcome
# changes afterwards, so downstream systems can consume it like a queue.
exception_actions = Table(
    "exception_actions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("action_key", String(400), nullable=False),
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("cohort_day", Date, nullable=False),
    Column("reason_code", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("automatable", Boolean, nullable=False),
    Column("requested_at", TS, nullable=False),  # when the exception opened
    Column("recorded_at", TS, nullable=False),  # evaluation time of the run that requested it
    Column("outcome", String(16), nullable=False),  # pending | succeeded
    Column("completed_at", TS),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("action_key", name="uq_exception_actions_key"),
    Index("ix_exception_actions_day", "cohort_day", "tenant"),
)

exception_patterns = Table(
    "exception_patterns",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("dimension", String(16), nullable=False),
    Column("key", String(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("distinct_orders", Integer, nullable=False),
    Column("resolved", Integer, nullable=False),
    Column("mean_resolution_hours", Float),
    Column("previous_count", Integer, nullable=False),
    Column("wow_change", Float),
    Column("emerging", Boolean, nullable=False),
    Column("top_rank", Integer),
    Index("ix_exception_patterns_day", "day", "tenant"),
)

exception_insights = Table(
    "exception_insights",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", String(64)),
    Column("value", Float),
    Column("message", Text, nullable=False),
    Index("ix_exception_insights_day", "day", "tenant"),
)

# The daily executive summary (assets/operations.py): one row per tenant and day plus "ALL".
operations_summary = Table(
    "operations_summary",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("day", Date, nullable=False),
    *[
        Column(name, Integer, nullable=False)
        for name in ("orders_processed", "orders_completed", "stalled", "exceptions_opened", "exceptions_resolved",
                     "automation_attempts", "automation_succeeded", "invoices")
    ],
    Column("revenue_cents", BigInteger, nullable=False),
    Column("runs_failed", Integer, nullable=False),
    *[
        Column(name, Float)  # NULL: no data that day (e.g. no orders)
        for name in ("completion_rate", "fulfilment_compliance", "delivery_compliance",
                     "exception_response_compliance", "stalled_share", "automation_success_rate")
    ],
    Column("healthy_indicators", Integer, nullable=False),
    Column("indicators", Integer, nullable=False),
    Column("health_score", Float, nullable=False),
    Column("status", String(16), nullable=False),  # EXCELLENT | GOOD | FAIR | POOR
    Column("recommendations", Text, nullable=False, default=""),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "day", name="uq_operations_summary_day"),
)

# Alerts raised by sensors/alerts.py (failed runs, failed asset checks), with their delivery.
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alert_key", String(400), nullable=False),  # run id or check evaluation: raised once
    Column("kind", String(32), nullable=False),  # run_failure | check_failure
    Column("severity", String(16), nullable=False),  # ERROR | WARN
    Column("subject", String(256), nullable=False),  # job name or asset check key
    Column("run_id", String(64)),
    Column("message", Text, nullable=False),
    Column("raised_at", TS, nullable=False),
    Column("delivery", String(16), nullable=False),  # pending | not_configured | sent | failed
    Column("delivery_error", Text),
    UniqueConstraint("alert_key", name="uq_alerts_key"),
    Index("ix_alerts_raised", "raised_at"),
)

from e2a_assets.warehouse import ledger  # noqa: E402,F401  (registers the billing tables)
