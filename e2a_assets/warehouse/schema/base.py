"""Shared column types and column groups of the warehouse tables, and the one `MetaData`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Text

from e2a_assets.domain.policies import FLAGS

metadata = MetaData()

TS = DateTime(timezone=True)
# SQLite only auto-increments INTEGER PRIMARY KEY; Postgres gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer, "sqlite")


def event_columns() -> list[Column]:
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


def flag_columns() -> list[Column]:
    """One boolean column per order flag (DOMAIN §1.1); new Column objects for each table."""
    return [Column(f"flag_{name}", Boolean, nullable=False, default=False) for name in FLAGS]
