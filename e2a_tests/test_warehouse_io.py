"""Columnar warehouse I/O keeps every value and type of every schema column, on SQLite and Postgres."""

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Float, Integer, LargeBinary, MetaData, String, Table, select, text

from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import insert_frame, insert_new, read_table, replace_partition, replace_partition_from_query, utc_stamps

TEXT = 'a,"b"\nc\'d é✓\\N'
STAMPS = [
    pd.Timestamp("2026-03-01 12:34:56.789012", tz="UTC"),
    pd.Timestamp("2026-03-02 00:00:00", tz="UTC"),
    pd.Timestamp("1999-12-31 23:59:59.000001", tz="UTC"),
]


def _generated(column) -> bool:
    return bool(column.primary_key and column.autoincrement in (True, "auto") and isinstance(column.type, Integer)
                and len(column.table.primary_key.columns) == 1)


def _values(column) -> list:
    """Three rows per column: two distinct values and, where allowed, a NULL (else a third value)."""
    ctype = column.type
    if isinstance(ctype, DateTime):
        values = STAMPS
    elif isinstance(ctype, Date):
        values = [dt.date(2026, 3, 1), dt.date(2026, 2, 28), dt.date(2024, 2, 29)]
    elif isinstance(ctype, Boolean):
        values = [True, False, True]
    elif isinstance(ctype, BigInteger):
        values = [2**40 + 7, -3, 0]
    elif isinstance(ctype, Integer):
        values = [2**31 - 1, -3, 0]
    elif isinstance(ctype, Float):
        values = [0.1, 1 / 3, -2.5e-300]
    elif isinstance(ctype, LargeBinary):
        values = [b'\x00\x01,"\n\\x', b"", b"\xff"]
    elif isinstance(ctype, String):
        length = ctype.length or 1000
        values = [TEXT[:length], "", "z" * min(length, 3)]
    else:
        raise AssertionError(f"{column.table.name}.{column.name}: untested type {ctype!r}")
    if column.nullable and not column.primary_key:
        values = values[:2] + [None]
    return values


def _plain(value):
    """Compare values, not containers: NaN/NaT/NA as None, numpy scalars as Python."""
    if value is None or (not isinstance(value, (bytes, str)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


@pytest.mark.parametrize("table", schema.metadata.sorted_tables, ids=lambda t: t.name)
def test_every_column_type_round_trips_exactly(warehouse_url, table):
    columns = [c for c in table.columns if not _generated(c)]
    frame = pd.DataFrame({c.name: pd.Series(_values(c), dtype=object) for c in columns})
    for column in columns:
        if isinstance(column.type, DateTime):
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
    engine = make_engine(warehouse_url)
    try:
        with engine.begin() as conn:
            # A foreign key to an empty parent would refuse the rows; the checks only make noise here.
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            assert insert_frame(conn, table, frame) == 3
            back = read_table(conn, table, columns=[c.name for c in columns])
    finally:
        engine.dispose()
    # Rows come back in any order; every column's three values differ, so the first one says which row.
    key = columns[0]
    key_values = [_plain(v) for v in _values(key)]
    rows = [key_values.index(_plain(v)) for v in back[key.name]]
    assert sorted(rows) == [0, 1, 2]
    for column in columns:
        expected = [_plain(v) for v in _values(column)]
        assert [_plain(v) for v in back[column.name]] == [expected[i] for i in rows], f"{table.name}.{column.name}"
        if isinstance(column.type, DateTime):
            assert str(back[column.name].dtype) == "datetime64[ns, UTC]"


def _order_row(order_id: str, day: dt.date, **overrides) -> dict:
    stamp = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9, microseconds=123456)
    row = {"tenant": "t1", "order_id": order_id, "cohort_day": day, "status": "open", "last_event_at": stamp,
           "stalled": False, "event_count": 2, "as_of": stamp}
    row.update(overrides)
    return row


def test_sqlite_stores_the_text_forms_sqlalchemy_wrote_and_fills_python_defaults(sqlite_url):
    """Range filters compare SQLite's stored text, so the bulk path must store exactly the old forms."""
    engine = make_engine(sqlite_url)
    try:
        frame = pd.DataFrame([_order_row("o1", dt.date(2026, 3, 1), address_valid=None),
                              _order_row("o2", dt.date(2026, 3, 2), address_valid=True, stalled=True)])
        with engine.begin() as conn:
            insert_frame(conn, schema.orders, frame)
        with engine.begin() as conn:
            raw = conn.execute(text(
                "SELECT order_id, cohort_day, last_event_at, stalled, address_valid, flags, delivery_failed_count, "
                "flag_rush FROM orders ORDER BY order_id")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in raw] == [
        ("o1", "2026-03-01", "2026-03-01 09:00:00.123456", 0, None, "", 0, 0),
        ("o2", "2026-03-02", "2026-03-02 09:00:00.123456", 1, 1, "", 0, 0),
    ]


def test_replace_partition_keeps_the_old_rows_when_the_insert_fails(warehouse_url):
    engine = make_engine(warehouse_url)
    day = dt.date(2026, 3, 1)
    try:
        replace_partition(engine, schema.orders, pd.DataFrame([_order_row("o1", day)]), "cohort_day", day, day)
        duplicate = pd.DataFrame([_order_row("o2", day), _order_row("o2", day)])
        with pytest.raises(Exception):
            replace_partition(engine, schema.orders, duplicate, "cohort_day", day, day)
        kept = read_table(engine, schema.orders, columns=["order_id", "last_event_at"])
    finally:
        engine.dispose()
    assert kept["order_id"].tolist() == ["o1"]
    assert kept["last_event_at"].tolist() == [pd.Timestamp("2026-03-01 09:00:00.123456", tz="UTC")]


def test_insert_new_writes_only_unseen_keys(warehouse_url):
    table = schema.metadata.tables["invoice_sequences"]
    engine = make_engine(warehouse_url)
    try:
        columns = [c for c in table.columns if not _generated(c)]
        frame = pd.DataFrame({c.name: pd.Series(_values(c), dtype=object) for c in columns})
        with engine.begin() as conn:
            first = insert_new(conn, table, frame.iloc[:2], ["tenant", "invoice_month"])
            second = insert_new(conn, table, frame, ["tenant", "invoice_month"])
        count = len(read_table(engine, table))
    finally:
        engine.dispose()
    assert (first, second, count) == (2, 1, 3)


@pytest.mark.parametrize(
    "values",
    [
        ["2025-08-01 12:00:00.123456", None, "2025-08-02 00:00:00.000000"],  # what the bulk writer stores
        ["2025-08-01 12:00:00", "2025-08-01 12:00:00.5"],  # other precisions
        ["2025-08-01 12:00:00+02:00", "2025-08-01 12:00:00.000000"],  # an offset: pandas applies it
        [dt.datetime(2025, 1, 1, 6, tzinfo=dt.timezone(dt.timedelta(hours=-5))), None],  # a driver's datetimes
        [None, None],
    ],
)
def test_utc_stamps_give_what_pandas_gives(values):
    got = utc_stamps(pd.Series(values, dtype=object))
    expected = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="mixed")
    assert got.dtype == expected.dtype == "datetime64[ns, UTC]"
    assert got.equals(expected)


def test_utc_stamps_refuse_what_pandas_refuses():
    with pytest.raises(Exception, match="Out of bounds"):
        utc_stamps(pd.Series(["9999-12-31 00:00:00.000000"]))


def test_replace_partition_from_query_copies_in_the_database_and_keeps_old_rows_on_failure(warehouse_url):
    engine = make_engine(warehouse_url)
    day, nxt = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
    orders = schema.orders
    # The staged frame says which order is copied under which id into which day.
    staged = Table("tmp_order_copies", MetaData(), Column("order_id", String(128)), Column("new_id", String(128)),
                   Column("day", Date), prefixes=["TEMPORARY"])
    renamed = {"order_id": staged.c.new_id, "cohort_day": staged.c.day}
    copy = select(*[renamed.get(c.name, c) for c in orders.columns]).join(staged, orders.c.order_id == staged.c.order_id)
    try:
        replace_partition(engine, orders, pd.DataFrame([_order_row("o1", day), _order_row("o2", day)]), "cohort_day", day, day)
        written = replace_partition_from_query(engine, orders, "cohort_day", nxt, nxt, copy,
                                               staged=(staged, pd.DataFrame({"order_id": ["o2"], "new_id": ["c2"], "day": [nxt]})))
        # A copy that breaks the unique key fails as a whole: the day keeps its row, the staged table is gone.
        twice = pd.DataFrame({"order_id": ["o1", "o2"], "new_id": ["c3", "c3"], "day": [nxt, nxt]})
        with pytest.raises(Exception):
            replace_partition_from_query(engine, orders, "cohort_day", nxt, nxt, copy, staged=(staged, twice))
        kept = read_table(engine, orders, columns=["order_id", "cohort_day", "last_event_at"])
        again = replace_partition_from_query(engine, orders, "cohort_day", nxt, nxt, copy,
                                             staged=(staged, pd.DataFrame({"order_id": ["o1"], "new_id": ["c1"], "day": [nxt]})))
        after = read_table(engine, orders, columns=["order_id", "cohort_day"])
    finally:
        engine.dispose()
    assert (written, again) == (1, 1)
    assert sorted(map(tuple, kept[["order_id", "cohort_day"]].to_numpy().tolist())) == [("c2", nxt), ("o1", day), ("o2", day)]
    assert set(kept["last_event_at"]) == {pd.Timestamp("2026-03-01 09:00:00.123456", tz="UTC")}
    assert sorted(map(tuple, after.to_numpy().tolist())) == [("c1", nxt), ("o1", day), ("o2", day)]
