"""Exceptions: one per problem, the work queue, the action outbox, 7-day patterns and insights.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
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


def _exception_columns() -> list[Column]:
    """Columns of a tracked exception; new Column objects for each table that holds them."""
    return [
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
    ]


exceptions = Table(
    "exceptions",
    metadata,
    *_exception_columns(),
    UniqueConstraint("tenant", "order_id", "reason_code", name="uq_exceptions_code"),
    Index("ix_exceptions_day", "cohort_day", "tenant"),
    # Time-window reads of daily runs: the 7-day patterns and the summary (opened or resolved that day).
    Index("ix_exceptions_opened", "opened_at"),
    Index("ix_exceptions_resolved", "resolved_at"),
)

exception_priorities = Table(
    "exception_priorities",
    metadata,
    *_exception_columns(),
    Column("age_hours", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("category", String(32), nullable=False),
    Column("rank", Integer, nullable=False),
    UniqueConstraint("tenant", "order_id", "reason_code", name="uq_exception_priorities_code"),
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
    Index("ix_exception_actions_requested", "requested_at"),
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
    UniqueConstraint("tenant", "day", "dimension", "key", name="uq_exception_patterns_key"),
    Index("ix_exception_patterns_day", "day", "tenant"),
)

exception_insights = Table(
    "exception_insights",
    metadata,
    Column("tenant", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("kind", String(32), nullable=False),
    # Every kind names its subject (a code, hour, weekday or "resolution_rate"); NOT NULL, or
    # Postgres would let duplicates through the key (NULLs are distinct there).
    Column("subject", String(64), nullable=False),
    Column("value", Float),
    Column("message", Text, nullable=False),
    # One finding of a kind per subject, tenant and day (build_insights: one peak, one top code).
    UniqueConstraint("tenant", "day", "kind", "subject", name="uq_exception_insights_subject"),
    Index("ix_exception_insights_day", "day", "tenant"),
)
