"""Two runs refreshing the same days at the same time leave one refresh's rows, on SQLite and Postgres.

The new-events sensor, a schedule and a manual backfill can all refresh a day at once. Without the
per-partition lock (warehouse/partition_lock.py) both replaces deleted, then both inserted: 8,804
rows for 4,402 events on Postgres, both runs reporting success.
"""

import datetime as dt
import threading

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import func, select, text

from e2a_assets.assets import ingestion, orders
from e2a_assets.definitions import build_resources
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_days, replace_partition
from e2a_assets.warehouse.partition_lock import lock_partition_days, table_key
from e2a_tests.factories import envelope_delivery, settings_for, shopify_delivery, shopify_order

FIRST, LAST = dt.date(2025, 8, 1), dt.date(2025, 8, 3)
TENANTS = ("demo-3pl", "northwind-goods")
ORDERS_PER_DAY = 200  # per tenant: 2 tenants x 3 days x 200 orders x 4 events = 4,800 events
AS_OF = "2025-08-05T00:00:00+00:00"
SELECTION = [ingestion.webhook_events, orders.orders]


def seed(engine) -> None:
    deliveries = []
    for t, tenant in enumerate(TENANTS):
        for d in range((LAST - FIRST).days + 1):
            day = (FIRST + dt.timedelta(days=d)).isoformat()
            for n in range(ORDERS_PER_DAY):
                order = 100_000 * (t + 1) + 1000 * d + n
                minute = f"{n % 60:02d}"
                deliveries += [
                    shopify_delivery(tenant, "orders/create", shopify_order(order, f"{day}T08:{minute}:00Z"), f"s-{order}"),
                    envelope_delivery(tenant, "pick_completed", order, f"{day}T09:{minute}:00Z", f"p-{order}"),
                    envelope_delivery(tenant, "pack_completed", order, f"{day}T10:{minute}:00Z", f"k-{order}"),
                    envelope_delivery(tenant, "manifested", order, f"{day}T11:{minute}:00Z", f"m-{order}"),
                ]
    Ingestor(engine).ingest_many(deliveries)


def refresh(url, tmp_path) -> dg.ExecuteInProcessResult:
    """One single-run refresh of webhook_events and orders over FIRST..LAST, as the sensor requests it."""
    return dg.materialize(
        SELECTION,
        resources=build_resources(settings_for(url, tmp_path)),
        tags={AS_OF_TAG: AS_OF, RANGE_START_TAG: FIRST.isoformat(), RANGE_END_TAG: LAST.isoformat()},
        raise_on_error=False,
    )


def tables(engine) -> dict[str, pd.DataFrame]:
    """The two tables' rows in a stable order, for comparing one refresh with two at once."""
    out = {}
    for table, key in ((schema.webhook_events, ["tenant", "source", "event_id"]),
                       (schema.orders, ["tenant", "order_id"])):
        frame = read_days(engine, table, "cohort_day", FIRST, LAST)
        out[table.name] = frame.sort_values(key).reset_index(drop=True).drop(columns=["as_of"], errors="ignore")
    return out


def together(n: int, work) -> list:  # noqa: ANN001
    """Run `work()` in `n` threads released at the same moment; their results (or exceptions), in order."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def racer(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[i] = exc

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_two_overlapping_refreshes_leave_one_refreshs_rows(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed(engine)
    assert refresh(warehouse_url, tmp_path / "alone").success
    alone = tables(engine)
    assert {name: len(frame) for name, frame in alone.items()} == {"webhook_events": 4800, "orders": 1200}

    runs = together(2, lambda: refresh(warehouse_url, tmp_path / f"run-{threading.get_ident()}"))
    assert [isinstance(r, dg.ExecuteInProcessResult) and r.success for r in runs] == [True, True], runs
    both = tables(engine)
    assert {name: len(frame) for name, frame in both.items()} == {"webhook_events": 4800, "orders": 1200}
    for name, frame in alone.items():
        pd.testing.assert_frame_equal(both[name], frame, obj=name)


def test_the_write_path_raced_from_four_threads_never_duplicates(warehouse_url):
    """The replace itself, from four threads at once, twice over: always exactly one frame's rows."""
    from e2a_assets.intake.landing import cohort_events

    engine = make_engine(warehouse_url)
    seed(engine)
    events = cohort_events(engine, FIRST, LAST)
    assert len(events) == 4800
    for _ in range(2):
        written = together(4, lambda: replace_partition(engine, schema.webhook_events, events, "cohort_day", FIRST, LAST))
        assert written == [4800] * 4
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(schema.webhook_events)).scalar_one() == 4800


def test_overlapping_ranges_wait_for_each_other_without_deadlock(postgres_warehouse_url):
    """Aug 1-3 and Aug 2-5 share two days: the second waits for the first's commit, never deadlocks."""
    engine = make_engine(postgres_warehouse_url)
    holder = engine.connect()
    holder.begin()
    lock_partition_days(holder, "webhook_events", dt.date(2025, 8, 1), dt.date(2025, 8, 3))
    try:
        with engine.connect() as conn:
            held = conn.execute(text(
                "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid::int = :key ORDER BY objid"),
                {"key": table_key("webhook_events") & 0xFFFFFFFF}).scalars().all()
        assert [dt.date.fromordinal(day) for day in held] == [dt.date(2025, 8, d) for d in (1, 2, 3)]
        with engine.connect() as other:
            other.begin()
            other.execute(text("SET LOCAL lock_timeout = '300ms'"))
            with pytest.raises(Exception, match="lock timeout"):
                lock_partition_days(other, "webhook_events", dt.date(2025, 8, 2), dt.date(2025, 8, 5))
            other.rollback()
            # Another table's days, or other days of the same table, are free.
            other.begin()
            lock_partition_days(other, "orders", dt.date(2025, 8, 1), dt.date(2025, 8, 3))
            lock_partition_days(other, "webhook_events", dt.date(2025, 8, 4), dt.date(2025, 8, 5))
            other.rollback()
    finally:
        holder.rollback()
        holder.close()
    with engine.connect() as other:
        other.begin()
        lock_partition_days(other, "webhook_events", dt.date(2025, 8, 2), dt.date(2025, 8, 5))
        other.rollback()
    engine.dispose()


def test_on_sqlite_the_replace_takes_the_write_lock_before_deleting(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        conn.begin()
        lock_partition_days(conn, "webhook_events", FIRST, LAST)
        assert conn.connection.dbapi_connection.in_transaction
        # Another writer is refused at once (no busy wait) while the transaction holds the lock.
        import sqlite3

        other = sqlite3.connect(engine.url.database, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
        conn.rollback()
    engine.dispose()
