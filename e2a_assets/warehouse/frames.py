"""Moving DataFrames in and out of asset tables: typed reads and atomic partition writes."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Date, DateTime, Engine, Float, Integer, Table, and_, delete, select
from sqlalchemy.engine import Connection

from e2a_assets.warehouse.partition_lock import lock_partition_days

CHUNK = 5000


def _records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """Rows ready for `insert`: only the table's columns, NaN/NaT as None, numpy scalars as Python."""
    columns = [c.name for c in table.columns if c.name in frame.columns]
    missing = [
        c.name
        for c in table.columns
        if c.name not in frame.columns and not c.nullable and c.default is None and not c.autoincrement is True
    ]
    if missing:
        raise ValueError(f"frame for {table.name} lacks required columns: {', '.join(missing)}")
    out = frame[columns].astype(object)
    out = out.where(pd.notna(out), None)
    records = out.to_dict("records")
    if records:
        converters = {}
        for col in columns:
            ctype = table.c[col].type
            if isinstance(ctype, DateTime):
                converters[col] = lambda v: v.to_pydatetime() if isinstance(v, pd.Timestamp) else v
            elif isinstance(ctype, Date):
                converters[col] = lambda v: v.date() if isinstance(v, (pd.Timestamp, dt.datetime)) else v
            elif isinstance(ctype, Boolean):
                converters[col] = lambda v: None if v is None else bool(v)
            elif isinstance(ctype, Integer):
                converters[col] = lambda v: None if v is None else int(v)
            elif isinstance(ctype, Float):
                converters[col] = lambda v: None if v is None else float(v)
        if converters:
            for rec in records:
                for col, fn in converters.items():
                    rec[col] = fn(rec[col])
    return records


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    records = _records(frame, table)
    for start in range(0, len(records), CHUNK):
        conn.execute(table.insert(), records[start : start + CHUNK])
    return len(records)


def replace_partition(
    engine: Engine,
    table: Table,
    frame: pd.DataFrame,
    day_column: str,
    start: dt.date,
    end: dt.date,
) -> int:
    """Replace every row with `start <= day_column <= end` by `frame`, in one transaction.

    A partition (or a range of them, for single-run backfills) is either fully replaced or left
    as it was: readers never see a half-written partition and re-runs never duplicate rows.
    """
    if len(frame):
        days = pd.to_datetime(pd.Series(frame[day_column])).dt.date
        outside = days[(days < start) | (days > end)]
        if len(outside):
            raise ValueError(f"{table.name}: rows for {outside.iloc[0]} fall outside partition {start}..{end}")
    with engine.begin() as conn:
        # Concurrent runs over the same days would each delete, then each insert: one at a time.
        lock_partition_days(conn, table.name, start, end)
        col = table.c[day_column]
        conn.execute(delete(table).where(and_(col >= start, col <= end)))
        return insert_frame(conn, table, frame)


def normalise(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Give a frame read from `table` the dtypes of docs/internals.md (SQLite drops zones)."""
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        ctype = column.type
        series = frame[column.name]
        if isinstance(ctype, DateTime):
            frame[column.name] = pd.to_datetime(series, utc=True, format="mixed")
        elif isinstance(ctype, Date):
            frame[column.name] = pd.to_datetime(series).dt.date if len(series) else series.astype(object)
        elif isinstance(ctype, Boolean):
            if column.nullable and series.isna().any():
                frame[column.name] = series.astype(object).where(series.notna(), None).map(
                    lambda v: v if v is None else bool(v)
                )
            else:
                frame[column.name] = series.fillna(False).astype(bool)
        elif isinstance(ctype, Integer):
            frame[column.name] = series.astype("Int64") if column.nullable else series.astype(np.int64)
        elif isinstance(ctype, Float):
            frame[column.name] = series.astype(float)
    return frame


def read_table(
    conn_or_engine: Engine | Connection,
    table: Table,
    where: Iterable[Any] = (),
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Read `table` (optionally filtered) into a typed frame; empty frames keep their columns."""
    cols = [table.c[name] for name in columns] if columns else list(table.columns)
    stmt = select(*cols)
    for clause in where:
        stmt = stmt.where(clause)
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            frame = pd.read_sql(stmt, conn)
    else:
        frame = pd.read_sql(stmt, conn_or_engine)
    return normalise(frame, table)


def read_days(engine: Engine, table: Table, day_column: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    col = table.c[day_column]
    return read_table(engine, table, [col >= start, col <= end])


def insert_new(conn: Connection, table: Table, frame: pd.DataFrame, key_columns: list[str]) -> int:
    """Insert rows whose key is not in `table` yet (ON CONFLICT DO NOTHING); returns rows written.

    Safe under concurrent runs: the database's unique constraint decides, not a prior read.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    records = _records(frame, table)
    if not records:
        return 0
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    written = 0
    for start in range(0, len(records), CHUNK):
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=key_columns)
        written += conn.execute(stmt, records[start : start + CHUNK]).rowcount or 0
    return written
