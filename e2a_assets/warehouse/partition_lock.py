"""One writer at a time per asset partition: the lock a partition replace takes before deleting.

Two runs refreshing the same days at once (the new-events sensor, a schedule, a manual backfill)
would otherwise both delete the old rows (neither sees the other's uncommitted insert under READ
COMMITTED) and both insert, doubling the partition. With the lock, the second replace waits until
the first commits, then deletes what the first wrote: the outcome is one refresh's rows.

Postgres: a transaction-level advisory lock per (table, day) of the window, released by commit or
rollback (also when the process dies). The locks are taken in ascending day order in one statement,
so two overlapping ranges wait for each other and never deadlock. The two-integer form
`pg_advisory_xact_lock(int, int)` has its own key space: it never meets the single-bigint lock of
the schema upgrade (warehouse/migrate.py).

SQLite has one writer per database: `BEGIN IMMEDIATE` takes that write lock when the transaction
starts, before the delete, instead of at its first write.
"""

from __future__ import annotations

import datetime as dt
import zlib

from sqlalchemy import text
from sqlalchemy.engine import Connection

_DAY_LOCKS = text(
    "SELECT count(pg_advisory_xact_lock(:table_key, day)) FROM generate_series(:first, :last) AS day"
)


def table_key(table: str) -> int:
    """A stable signed 32-bit key for a table name (Python's `hash` changes between processes)."""
    crc = zlib.crc32(table.encode())
    return (crc ^ 0x80000000) - 0x80000000


def lock_partition_days(conn: Connection, table: str, first: dt.date, last: dt.date) -> None:
    """Make `conn`'s transaction the only writer of `table`'s days `first..last` until it ends.

    Call it first thing in the transaction, before the delete.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # generate_series yields the days in ascending order and the scan locks them in that order.
        conn.execute(_DAY_LOCKS, {"table_key": table_key(table), "first": first.toordinal(), "last": last.toordinal()})
    elif dialect == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if dbapi.in_transaction:
            raise RuntimeError(f"{table}: the partition lock must start the transaction, before any write")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        raise NotImplementedError(f"no partition lock for the {dialect} dialect")
