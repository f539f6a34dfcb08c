"""Orders and their fulfilment: milestones per order, SLA clocks, daily SLA figures, completed orders.
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
    String,
    Table,
    UniqueConstraint,
)

from e2a_assets.domain.orders import MILESTONE_COLUMNS
from e2a_assets.warehouse.schema.base import TS, flag_columns, metadata

orders = Table(
    "orders",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("order_name", String(128)),
    Column("cohort_day", Date, nullable=False),
    *[Column(name, TS) for name in (*MILESTONE_COLUMNS, "delivery_failed_at", "returned_at")],
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

# Orders that reached a billable state (shipped, delivered, cancelled after a pick), per cohort day.
completed_orders = Table(
    "completed_orders",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("order_name", String(128)),
    Column("cohort_day", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("completion", String(16), nullable=False),  # shipped | delivered | cancelled
    Column("completed_at", TS, nullable=False),
    *[Column(name, TS) for name in ("created_at", "picked_at", "shipped_at", "delivered_at", "cancelled_at", "returned_at")],
    Column("flags", String(256), nullable=False, default=""),
    *flag_columns(),
    Column("as_of", TS, nullable=False),
    UniqueConstraint("tenant", "order_id", name="uq_completed_orders_order"),
    Index("ix_completed_orders_day", "cohort_day", "tenant"),
)
