"""Moving DataFrames in and out of asset tables: typed reads and atomic partition writes."""

from __future__ import annotations

import datetime as dt
import io
import warnings
from typing import Any, Iterable

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Date, DateTime, Engine, Float, Integer, LargeBinary, Table, and_, delete, insert, select
from sqlalchemy.engine import Connection

from e2a_assets.warehouse.partition_lock import lock_partition_days

CHUNK = 50_000
# Days an asset run reads, computes and writes at a time (E2A_CHUNK_DAYS; assets/ranges.py).
DEFAULT_CHUNK_DAYS = 7


def _write_columns(frame: pd.DataFrame, table: Table) -> tuple[list[str], dict[str, Any]]:
    """The table's columns present in `frame`, plus constants for absent columns with a scalar default."""
    columns = [c.name for c in table.columns if c.name in frame.columns]
    missing = [
        c.name
        for c in table.columns
        if c.name not in frame.columns and not c.nullable and c.default is None and not c.autoincrement is True
    ]
    if missing:
        raise ValueError(f"frame for {table.name} lacks required columns: {', '.join(missing)}")
    # insert() applies Python-side defaults itself; the bulk paths below bypass it, so fill them here.
    defaults = {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in frame.columns and c.default is not None and c.default.is_scalar
    }
    return columns, defaults


def _objects(values: np.ndarray, null: np.ndarray) -> list[Any]:
    out = np.asarray(values, dtype=object).copy()
    out[null] = None
    return out.tolist()


def _utc_text(series: pd.Series, date_only: bool = False) -> np.ndarray:
    """ISO text of a timestamp (or date) column built by numpy in C: "YYYY-MM-DD HH:MM:SS.ffffff"
    in UTC, or "YYYY-MM-DD". (pandas' strftime formats `%f` value by value, ~17 µs each.)"""
    stamps = pd.to_datetime(series, utc=not date_only, cache=False)
    if not date_only:
        stamps = stamps.dt.tz_localize(None)
    elif stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)  # the wall date in its own zone, as `.date()` gives
    raw = stamps.to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(raw, unit="D" if date_only else "us")
    if not date_only and len(text):
        # numpy writes "T" between date and time; SQLAlchemy (and so every stored row) has a space.
        text.view(np.uint32).reshape(len(text), -1)[:, 10] = ord(" ")
    return text


def _python_column(series: pd.Series, ctype: Any, sqlite: bool) -> list[Any]:
    """One column as driver-ready Python values (None for NaN/NaT/NA), converted as a whole.

    For SQLite the values take the stored form SQLAlchemy's types would give them (timestamp and
    date text, 0/1 booleans) so the raw `executemany` writes what `insert()` used to write.
    """
    null = pd.isna(series).to_numpy()
    if isinstance(ctype, DateTime):
        if sqlite:
            return _objects(_utc_text(series), null)
        return _objects(pd.DatetimeIndex(pd.to_datetime(series, utc=True, cache=False)).to_pydatetime(), null)
    if isinstance(ctype, Date):
        if sqlite:
            return _objects(_utc_text(series.where(~null, None), date_only=True), null)
        return _objects(pd.to_datetime(series.where(~null, None), cache=False).dt.date.to_numpy(), null)
    if isinstance(ctype, Boolean):
        flags = series.where(~null, False).astype(bool).to_numpy()
        return _objects(flags.astype(np.int64) if sqlite else flags, null)
    if isinstance(ctype, Integer):
        return _objects(series.where(~null, 0).astype(np.int64).to_numpy(), null)
    if isinstance(ctype, Float):
        return _objects(series.where(~null, 0.0).astype(float).to_numpy(), null)
    return _objects(series.to_numpy(dtype=object), null)


def _quoted(strings: pd.Series) -> pd.Series:
    return '"' + strings.str.replace('"', '""', regex=False) + '"'


def _csv_column(series: pd.Series, ctype: Any) -> pd.Series:
    """One column as Postgres COPY CSV fields: NULL is the unquoted empty field, text is always quoted."""
    null = pd.isna(series).to_numpy()
    if isinstance(ctype, DateTime):
        text = pd.Series(np.char.add(_utc_text(series), "+00"), index=series.index)
    elif isinstance(ctype, Date):
        text = pd.Series(_utc_text(series.where(~null, None), date_only=True), index=series.index)
    elif isinstance(ctype, Boolean):
        text = pd.Series(np.where(series.where(~null, False).astype(bool), "true", "false"), index=series.index)
    elif isinstance(ctype, Integer):
        text = series.where(~null, 0).astype(np.int64).astype(str)
    elif isinstance(ctype, Float):
        # repr-precision text: Postgres parses it back to the identical double.
        text = series.where(~null, 0.0).astype(float).astype(str)
    elif isinstance(ctype, LargeBinary):
        text = _quoted(pd.Series([b"" if n else bytes(v) for v, n in zip(series, null)], index=series.index)
                       .map(bytes.hex).radd("\\x"))
    else:
        text = _quoted(series.where(~null, "").astype(str))
    return text.where(~null, "")


def _copy_postgres(conn: Connection, table: Table, frame: pd.DataFrame, columns: list[str], defaults: dict) -> None:
    """COPY the frame in through the caller's own DBAPI connection, so it joins the open transaction."""
    prep = conn.dialect.identifier_preparer
    names = columns + list(defaults)
    sql = f"COPY {prep.format_table(table)} ({', '.join(prep.quote(n) for n in names)}) FROM STDIN WITH (FORMAT csv)"
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(frame), CHUNK):
            part = frame.iloc[start : start + CHUNK]
            fields = [_csv_column(part[c], table.c[c].type) for c in columns]
            fields += [_csv_column(pd.Series([v] * len(part), index=part.index), table.c[c].type)
                       for c, v in defaults.items()]
            lines = fields[0].str.cat(fields[1:], sep=",") if len(fields) > 1 else fields[0]
            cursor.copy_expert(sql, io.StringIO("\n".join(lines.tolist()) + "\n"))
    finally:
        cursor.close()


def _rows(frame: pd.DataFrame, table: Table, columns: list[str], defaults: dict, sqlite: bool) -> list[tuple]:
    """Row tuples zipped from whole converted columns (no per-value Python conversion)."""
    values = [_python_column(frame[c], table.c[c].type, sqlite) for c in columns]
    values += [[v] * len(frame) for v in defaults.values()]
    return list(zip(*values))


def insert_frame(conn: Connection, table: Table, frame: pd.DataFrame) -> int:
    """Append `frame` to `table` inside the caller's transaction, moving whole columns.

    Postgres gets one COPY per chunk; SQLite one `executemany` over tuples built column-wise.
    """
    columns, defaults = _write_columns(frame, table)
    if not len(frame):
        return 0
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, table, frame, columns, defaults)
        return len(frame)
    names = columns + list(defaults)
    prep = conn.dialect.identifier_preparer
    sql = (f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(n) for n in names)}) "
           f"VALUES ({', '.join('?' * len(names))})")
    rows = _rows(frame, table, columns, defaults, sqlite=True)
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(rows), CHUNK):
            cursor.executemany(sql, rows[start : start + CHUNK])
    finally:
        cursor.close()
    return len(rows)


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
        days = pd.to_datetime(pd.Series(frame[day_column]), cache=False).dt.date
        outside = days[(days < start) | (days > end)]
        if len(outside):
            raise ValueError(f"{table.name}: rows for {outside.iloc[0]} fall outside partition {start}..{end}")
    with engine.begin() as conn:
        # Concurrent runs over the same days would each delete, then each insert: one at a time.
        lock_partition_days(conn, table.name, start, end)
        col = table.c[day_column]
        conn.execute(delete(table).where(and_(col >= start, col <= end)))
        return insert_frame(conn, table, frame)


def replace_partition_from_query(
    engine: Engine,
    table: Table,
    day_column: str,
    start: dt.date,
    end: dt.date,
    query: Any,
    staged: tuple[Table, pd.DataFrame] | None = None,
) -> int:
    """Replace every row with `start <= day_column <= end` by the rows of `query`, a SELECT of
    the table's columns in their order that the database runs itself (INSERT ... SELECT): the
    rows never pass through Python. `staged` is a temporary table and a small frame the query
    joins, written first in the same transaction and dropped after it. Same transaction, lock
    and all-or-nothing guarantee as `replace_partition`.
    """
    with engine.begin() as conn:
        lock_partition_days(conn, table.name, start, end)
        if staged is not None:
            staged[0].create(conn)
            insert_frame(conn, staged[0], staged[1])
        col = table.c[day_column]
        conn.execute(delete(table).where(and_(col >= start, col <= end)))
        written = conn.execute(insert(table).from_select([c.name for c in table.columns], query)).rowcount
        if staged is not None:
            staged[0].drop(conn)
        return written


# The datetime64[ns] range: a stored text outside it goes to pandas, which raises as before.
_NS_BOUNDS = (np.datetime64(pd.Timestamp.min.ceil("us").to_datetime64(), "us"),
              np.datetime64(pd.Timestamp.max.floor("us").to_datetime64(), "us"))


def utc_stamps(series: pd.Series) -> pd.Series:
    """A stored timestamp column as datetime64[ns, UTC].

    SQLite keeps timestamps as zone-less UTC text ("YYYY-MM-DD HH:MM:SS.ffffff", see
    `_utc_text`): numpy parses that in C, about 4x faster than pandas' per-value "mixed" format,
    which stays the path for anything else (driver datetimes, text with an offset, out of range).
    """
    values = series.to_numpy(dtype=object)
    present = values[pd.notna(values)]
    if len(present) and all(isinstance(v, str) for v in (present[0], present[-1])):
        try:
            with warnings.catch_warnings():
                # numpy only warns on a zone offset in the text; pandas must apply it instead.
                warnings.simplefilter("error")
                parsed = np.array(values, dtype="datetime64[us]")
        except (ValueError, TypeError, UserWarning, DeprecationWarning):
            parsed = None
        if parsed is not None:
            real = parsed[~np.isnat(parsed)]
            if not len(real) or (real.min() >= _NS_BOUNDS[0] and real.max() <= _NS_BOUNDS[1]):
                stamps = pd.DatetimeIndex(parsed.astype("datetime64[ns]")).tz_localize("UTC")
                return pd.Series(stamps, index=series.index, name=series.name)
    return pd.to_datetime(series, utc=True, format="mixed")


def normalise(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Give a frame read from `table` the dtypes of docs/internals.md (SQLite drops zones)."""
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        ctype = column.type
        series = frame[column.name]
        if isinstance(ctype, DateTime):
            frame[column.name] = utc_stamps(series)
        elif isinstance(ctype, Date):
            frame[column.name] = pd.to_datetime(series, cache=False).dt.date if len(series) else series.astype(object)
        elif isinstance(ctype, Boolean):
            if column.nullable and series.isna().any():
                null = series.isna().to_numpy()
                flags = np.zeros(len(series), dtype=bool)
                flags[~null] = series.to_numpy(dtype=object)[~null].astype(bool)
                frame[column.name] = pd.Series(_objects(flags, null), index=series.index, dtype=object)
            else:
                frame[column.name] = series.fillna(False).astype(bool)
        elif isinstance(ctype, Integer):
            frame[column.name] = series.astype("Int64") if column.nullable else series.astype(np.int64)
        elif isinstance(ctype, Float):
            frame[column.name] = series.astype(float)
        elif isinstance(ctype, LargeBinary):
            # psycopg2 hands bytea out as memoryview; callers expect bytes.
            frame[column.name] = pd.Series(
                [bytes(v) if isinstance(v, memoryview) else v for v in series], index=series.index, dtype=object
            )
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
            frame = _fetch(conn, stmt)
    else:
        frame = _fetch(conn_or_engine, stmt)
    return normalise(frame, table)


def read_query(engine: Engine, stmt: Any) -> pd.DataFrame:
    """The rows of a SELECT as a frame, through the raw-row path of `read_table` (columns keep
    the driver's values: SQLite gives timestamp text; `normalise` types them against a table)."""
    with engine.connect() as conn:
        return _fetch(conn, stmt)


def _fetch(conn: Connection, stmt: Any) -> pd.DataFrame:
    """The driver's raw rows as a frame. SQLAlchemy still binds the parameters (SQLite compares
    stored text, so dates must bind in its format), but its per-value result processors (SQLite's
    text-to-datetime parse, row objects) are skipped: `normalise` converts whole columns instead."""
    result = conn.execute(stmt)
    try:
        names = list(result.keys())
        # In batches: the driver's rows are Python objects (several times the size of the frame's
        # columns), so only one batch of them exists at a time.
        parts = []
        while rows := result.cursor.fetchmany(CHUNK):
            parts.append(pd.DataFrame.from_records(rows, columns=names))
            del rows
    finally:
        result.close()
    if not parts:
        return pd.DataFrame.from_records([], columns=names)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def read_days(engine: Engine, table: Table, day_column: str, start: dt.date, end: dt.date,
              columns: Iterable[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """The rows of days start..end (all columns, or `columns`), typed."""
    col = table.c[day_column]
    return read_table(engine, table, [col >= start, col <= end], columns)


def insert_new(conn: Connection, table: Table, frame: pd.DataFrame, key_columns: list[str]) -> int:
    """Insert rows whose key is not in `table` yet (ON CONFLICT DO NOTHING); returns rows written.

    Safe under concurrent runs: the database's unique constraint decides, not a prior read.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    columns, defaults = _write_columns(frame, table)
    if not len(frame):
        return 0
    names = columns + list(defaults)
    rows = _rows(frame, table, columns, defaults, sqlite=False)
    records = [dict(zip(names, row)) for row in rows]
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    written = 0
    for start in range(0, len(records), CHUNK):
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=key_columns)
        written += conn.execute(stmt, records[start : start + CHUNK]).rowcount or 0
    return written
