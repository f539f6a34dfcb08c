"""The executive summary and the alerts raised by the sensors.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from e2a_assets.warehouse.schema.base import TS, BigId, metadata

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
