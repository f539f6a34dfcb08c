"""The landing zone: the append-only event log, dead letters, and the canonical events per cohort day.

The landing table `event_log` is append-only (unique on tenant+source+event_id); dead letters
keep every signed delivery that could not be understood. `webhook_events` is the first asset's
table: the log's accepted events of each cohort day.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from e2a_assets.warehouse.schema.base import TS, BigId, event_columns, metadata

event_log = Table(
    "event_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    *event_columns(),
    Column("topic", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # accepted | ignored
    Column("payload", Text, nullable=False),
    # Postgres: id of the inserting transaction, by the column default `txid_current()` that the
    # baseline migration sets (see warehouse/event_cursor.py). SQLite: unused.
    Column("commit_seq", BigInteger),
    UniqueConstraint("tenant", "source", "event_id", name="uq_event_log_key"),
    Index("ix_event_log_order", "tenant", "order_id"),
    Index("ix_event_log_occurred", "occurred_at"),
    Index("ix_event_log_created", "order_created_at"),
    Index("ix_event_log_commit_seq", "commit_seq", "id"),
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

# One row per receiver process, rewritten by every /readyz probe: proof that the warehouse takes a
# write right now (a lock, a full disk or a read-only standby fail it), not only that it answers.
receiver_heartbeats = Table(
    "receiver_heartbeats",
    metadata,
    Column("receiver", String(128), primary_key=True),  # host:pid
    Column("beat_at", TS, nullable=False),
)

# Where each reader of the event log (the new-events sensor) stands: its cursor, as it saved it
# after its last read. `e2a status` and the receiver's /metrics measure the reader's lag from it.
event_readers = Table(
    "event_readers",
    metadata,
    Column("reader", String(64), primary_key=True),
    Column("position", Text, nullable=False),  # the reader's EventCursor as JSON (warehouse/event_cursor.py)
    Column("read_at", TS, nullable=False),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    *event_columns(),
    Column("cohort_day", Date, nullable=False),
    # An event sits in one cohort day: a second copy can only come from overlapping writes.
    UniqueConstraint("tenant", "source", "event_id", name="uq_webhook_events_event"),
    Index("ix_webhook_events_day", "cohort_day", "tenant"),
)
