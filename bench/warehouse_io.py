"""Warehouse I/O benchmark: write and read one realistic partition with each candidate path.

    .venv/bin/python bench/warehouse_io.py --rows 200000
    .venv/bin/python bench/warehouse_io.py --rows 200000 --postgres-admin-url postgresql://postgres@127.0.0.1/postgres

Builds a frame for a warehouse table (default `orders`: 35 columns of every kind - timestamps,
dates, ints, nullable ints and bools, text with commas/quotes/newlines/unicode, NULLs) and times,
in the same run on SQLite (temp file) and Postgres (a throwaway database):

- write/legacy : the former path, dict records + per-value converters + SQLAlchemy insert()
- write/bulk   : frames.insert_frame (Postgres COPY CSV, SQLite executemany over column-built tuples)
- write/adbc   : ADBC `adbc_ingest` of an Arrow table (only when adbc-driver-* and pyarrow are
                 installed; it needs its own connection, so it cannot join the caller's transaction)
- read/legacy  : pd.read_sql through SQLAlchemy + normalise
- read/current : frames.read_table
- read/adbc    : ADBC fetch_arrow_table().to_pandas() (when installed)

Prints seconds and ratios to legacy; asserts that the bulk write reads back equal to the legacy one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, Integer, String, Table, delete, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2a_assets.warehouse import schema  # noqa: E402
from e2a_assets.warehouse.engine import make_engine, sqlite_url  # noqa: E402
from e2a_assets.warehouse.frames import insert_frame, normalise, read_table  # noqa: E402
from e2a_assets.warehouse.migrate import upgrade  # noqa: E402

TEXT = np.array(['plain', 'comma, "quoted"', "new\nline", "unicodé ✓", ""], dtype=object)


def make_frame(table: Table, rows: int, seed: int = 7) -> pd.DataFrame:
    """Random but reproducible values for every column; every `null_share` of nullable ones is NULL."""
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2026-03-01", tz="UTC")
    data: dict[str, Any] = {}
    for column in table.columns:
        if column.primary_key and column.autoincrement in (True, "auto") and isinstance(column.type, Integer):
            continue
        t = column.type
        if isinstance(t, DateTime):
            values = pd.Series(base + pd.to_timedelta(rng.integers(0, 86_400_000_000, rows), unit="us"))
        elif isinstance(t, Date):
            values = pd.Series([dt.date(2026, 3, 1)] * rows, dtype=object)
        elif isinstance(t, Boolean):
            values = pd.Series(rng.integers(0, 2, rows).astype(bool))
        elif isinstance(t, (Integer, BigInteger)):
            values = pd.Series(rng.integers(-1000, 1_000_000, rows))
        elif isinstance(t, Float):
            values = pd.Series(rng.normal(100, 50, rows))
        elif isinstance(t, String):
            values = pd.Series(np.char.add("v", np.arange(rows).astype(str)).astype(object))
            values = values.where(rng.random(rows) > 0.2, pd.Series(TEXT[rng.integers(0, len(TEXT), rows)]))
            if column.name in ("tenant", "order_id"):
                values = pd.Series(np.char.add("k", np.arange(rows).astype(str)).astype(object))
            values = values.str.slice(0, t.length) if t.length else values
        else:
            raise SystemExit(f"no generator for {column.name}: {t!r}")
        if column.nullable:
            null = rng.random(rows) < 0.1
            if isinstance(t, Integer):
                values = values.astype("Int64").mask(null)
            elif isinstance(t, Boolean):
                values = values.astype(object).mask(null, None)
            else:
                values = values.mask(null)
        data[column.name] = values
    return pd.DataFrame(data)


def legacy_records(frame: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    """The former `_records`: object frame, dict records, one converter call per value."""
    columns = [c.name for c in table.columns if c.name in frame.columns]
    out = frame[columns].astype(object)
    out = out.where(pd.notna(out), None)
    records = out.to_dict("records")
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
    for rec in records:
        for col, fn in converters.items():
            rec[col] = fn(rec[col])
    return records


def legacy_write(engine, table: Table, frame: pd.DataFrame) -> None:
    records = legacy_records(frame, table)
    with engine.begin() as conn:
        for start in range(0, len(records), 5000):
            conn.execute(table.insert(), records[start : start + 5000])


def bulk_write(engine, table: Table, frame: pd.DataFrame) -> None:
    with engine.begin() as conn:
        insert_frame(conn, table, frame)


def legacy_read(engine, table: Table) -> pd.DataFrame:
    with engine.connect() as conn:
        return normalise(pd.read_sql(select(*table.columns), conn), table)


def empty(engine, table: Table) -> None:
    with engine.begin() as conn:
        conn.execute(delete(table))


def timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def adbc_paths(url: str, backend: str):
    """(write, read) through ADBC, or None when the drivers are not installed."""
    try:
        import pyarrow as pa
        if backend == "sqlite":
            from adbc_driver_sqlite import dbapi
            target = url.removeprefix("sqlite:///")
        else:
            from adbc_driver_postgresql import dbapi
            target = url
    except ImportError:
        return None

    def write(table: Table, frame: pd.DataFrame) -> None:
        with dbapi.connect(target) as conn, conn.cursor() as cur:
            cur.adbc_ingest(table.name, pa.Table.from_pandas(frame, preserve_index=False), mode="append")
            conn.commit()

    def read(table: Table) -> pd.DataFrame:
        with dbapi.connect(target) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table.name}")
            return normalise(cur.fetch_arrow_table().to_pandas(), table)

    return write, read


def comparable(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    keys = [c.name for c in table.columns if c.name in ("tenant", "order_id")] or list(frame.columns[:2])
    cols = [c.name for c in table.columns if not c.primary_key or not isinstance(c.type, Integer)]
    return frame[cols].sort_values(keys).reset_index(drop=True).astype(object).where(lambda f: f.notna(), None)


def run(url: str, backend: str, table: Table, frame: pd.DataFrame) -> None:
    engine = make_engine(url)
    figures: dict[str, float] = {}
    empty(engine, table)
    figures["write/legacy"], _ = timed(lambda: legacy_write(engine, table, frame))
    figures["read/legacy"], legacy = timed(lambda: legacy_read(engine, table))
    empty(engine, table)
    figures["write/bulk"], _ = timed(lambda: bulk_write(engine, table, frame))
    figures["read/current"], current = timed(lambda: read_table(engine, table))
    same = comparable(legacy, table).equals(comparable(current, table))
    adbc = adbc_paths(url, backend)
    if adbc is not None:
        write, read = adbc
        empty(engine, table)
        try:
            figures["write/adbc"], _ = timed(lambda: write(table, frame))
            figures["read/adbc"], _ = timed(lambda: read(table))
        except Exception as exc:  # noqa: BLE001 - a failing candidate is a figure too
            print(f"{backend}: adbc failed: {type(exc).__name__}: {str(exc)[:200]}")
    engine.dispose()
    for name, seconds in figures.items():
        base = figures["write/legacy" if name.startswith("write") else "read/legacy"]
        print(f"{backend:8} {name:14} {seconds:8.2f} s   {base / seconds:5.1f}x faster than legacy")
    print(f"{backend:8} bulk write reads back identical to legacy write: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--table", default="orders")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    table = schema.metadata.tables[args.table]
    frame = make_frame(table, args.rows)
    print(f"{args.table}: {args.rows} rows x {frame.shape[1]} columns")
    with tempfile.TemporaryDirectory() as tmp:
        url = sqlite_url(Path(tmp) / "bench.sqlite")
        upgrade(url)
        run(url, "sqlite", table, frame)
    if args.skip_postgres:
        return
    import psycopg2

    name = f"e2a_bench_io_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(args.postgres_admin_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        url = args.postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        run(url, "postgres", table, frame)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
