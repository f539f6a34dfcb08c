"""`new_events_sensor`: cursor over the event log, touched cohort days, exactness under concurrency."""

import dataclasses
import datetime as dt
import json
import time

import dagster as dg
import pytest
from sqlalchemy import insert

from e2a_assets.assets import ingestion, orders
from e2a_assets.definitions import build_definitions
from e2a_assets.domain.events import canonicalize
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.sensors.new_events import new_events_sensor
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_tests.conftest import TEST_DB_PREFIX, throwaway_database
from e2a_tests.factories import envelope_delivery, requested_days, settings_for, shopify_delivery, shopify_order


def evaluate(defs, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"warehouse": defs.resources["warehouse"]}
    )
    result = new_events_sensor(context)
    return result, result.cursor



@pytest.fixture
def sqlite_setup(sqlite_url, tmp_path):
    return make_engine(sqlite_url), build_definitions(settings_for(sqlite_url, tmp_path))


def test_events_map_to_their_cohort_days_and_cursor_advances(sqlite_setup):
    engine, defs = sqlite_setup
    ingestor = Ingestor(engine)
    ingestor.ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1, "2025-08-01T08:00:00Z"), "s1"),
        shopify_delivery("demo-3pl", "orders/create", shopify_order(2, "2025-08-03T08:00:00Z"), "s2"),
    ])
    with dg.instance_for_test() as instance:
        result, cursor = evaluate(defs, instance)
        assert requested_days(result.run_requests) == ["2025-08-01", "2025-08-03"]
        assert all(r.tags["e2a/as_of"] for r in result.run_requests)

        # Nothing new: nothing requested, cursor unchanged.
        again, cursor2 = evaluate(defs, instance, cursor)
        assert again.run_requests == [] and cursor2 == cursor

        # A scan three days later for order 1 refreshes its cohort day (2025-08-01), with a new run key.
        ingestor.ingest(envelope_delivery("demo-3pl", "pick_completed", 1, "2025-08-04T09:00:00Z", "w1"))
        later, _ = evaluate(defs, instance, cursor)
        assert requested_days(later.run_requests) == ["2025-08-01"]
        assert later.run_requests[0].run_key != result.run_requests[0].run_key


def test_late_order_created_refreshes_the_day_the_order_left(sqlite_setup):
    engine, defs = sqlite_setup
    ingestor = Ingestor(engine)
    # The pick scan arrives first (cohort = its day, 08-02); then orders/create says created 08-01.
    ingestor.ingest(envelope_delivery("demo-3pl", "pick_completed", 7, "2025-08-02T01:00:00Z", "w7"))
    with dg.instance_for_test() as instance:
        first, cursor = evaluate(defs, instance)
        assert requested_days(first.run_requests) == ["2025-08-02"]
        # The refresh ran: the order sits in the 2025-08-02 partition of `orders`.
        dg.materialize([ingestion.webhook_events, orders.orders], partition_key="2025-08-02",
                       resources=defs.resources, tags={"e2a/as_of": "2025-08-03T00:00:00Z"}, instance=instance)
        ingestor.ingest(shopify_delivery("demo-3pl", "orders/create", shopify_order(7, "2025-08-01T23:00:00Z"), "s7"))
        second, _ = evaluate(defs, instance, cursor)
        assert requested_days(second.run_requests) == ["2025-08-01", "2025-08-02"]


def test_large_backlog_is_paged_and_nothing_is_missed(sqlite_setup, monkeypatch):
    import e2a_assets.sensors.new_events as sensor_module

    monkeypatch.setattr(sensor_module, "PAGE_SIZE", 7)
    engine, defs = sqlite_setup
    Ingestor(engine).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(100 + n, f"2025-08-{1 + n % 5:02d}T08:00:00Z"), f"s{n}")
        for n in range(40)
    ])
    with dg.instance_for_test() as instance:
        result, cursor = evaluate(defs, instance)
        assert requested_days(result.run_requests) == [f"2025-08-0{d}" for d in range(1, 6)]
        # Five consecutive days: one single-run range, not five runs.
        [request] = result.run_requests
        assert request.run_key == "2025-08-01..2025-08-05@40"
        assert json.loads(cursor)["id"] == 40


def _raw_event(event_id, order_id, day):
    ev = canonicalize("demo-3pl", "wms", {}, json.dumps(
        {"event_id": event_id, "event_type": "pick_completed", "order_id": order_id,
         "occurred_at": f"{day}T10:00:00Z"}).encode())
    row = ev.row()
    row["received_at"] = dt.datetime.now(dt.timezone.utc)
    return row


def test_out_of_order_commit_visibility_on_postgres(postgres_warehouse_url, tmp_path):
    """Receiver A takes id n and commits late; B takes n+1 and commits first. The sensor must not
    step past A's row before it is visible, and must register both exactly once."""
    engine = make_engine(postgres_warehouse_url)
    defs = build_definitions(settings_for(postgres_warehouse_url, tmp_path))
    with dg.instance_for_test() as instance:
        slow = engine.connect()
        slow_tx = slow.begin()
        slow.execute(insert(schema.event_log), [_raw_event("a", "A1", "2025-08-01")])  # lower id, uncommitted
        with engine.begin() as fast:
            fast.execute(insert(schema.event_log), [_raw_event("b", "B1", "2025-08-02")])  # higher id, committed

        result, cursor = evaluate(defs, instance)
        # B's row is visible but an older transaction is still open: nothing is consumed yet.
        assert result.run_requests == []

        slow_tx.commit()
        slow.close()
        result, cursor = evaluate(defs, instance, cursor)
        assert requested_days(result.run_requests) == ["2025-08-01", "2025-08-02"]
        again, _ = evaluate(defs, instance, cursor)
        assert again.run_requests == []
    engine.dispose()


def test_a_recreated_event_log_is_read_again_from_the_start(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    defs = build_definitions(settings_for(sqlite_url, tmp_path))
    Ingestor(engine).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(n, "2025-08-01T08:00:00Z"), f"s{n}")
        for n in range(5)
    ])
    with dg.instance_for_test() as instance:
        first, cursor = evaluate(defs, instance)
        assert json.loads(cursor)["id"] == 5
        # The warehouse is restored from an older backup: two events only, ids restart at 1
        # (SQLite reuses ids from the largest one left, here none).
        with engine.begin() as conn:
            for table in reversed(schema.metadata.sorted_tables):
                conn.execute(table.delete())
        Ingestor(engine).ingest_many([
            shopify_delivery("demo-3pl", "orders/create", shopify_order(9, "2025-08-01T08:00:00Z"), "s9"),
            shopify_delivery("demo-3pl", "orders/create", shopify_order(8, "2025-08-02T08:00:00Z"), "s8"),
        ])
        again, cursor = evaluate(defs, instance, cursor)
        assert requested_days(again.run_requests) == ["2025-08-01", "2025-08-02"]
        # New run keys: not swallowed by Dagster's run-key dedupe of the old log's keys.
        assert not {r.run_key for r in again.run_requests} & {r.run_key for r in first.run_requests}
        assert json.loads(cursor) == {"commit_seq": 0, "id": 2, "epoch": 1}


# ---------------------------------------------------------------------------------------------
# staleness bounded (warehouse/event_cursor.py): open transactions hold the cursor back for at
# most cursor_max_wait_seconds, and a row committed late is still read exactly once.


def _bounded_defs(url, tmp_path, max_wait_s):  # noqa: ANN001
    settings = dataclasses.replace(settings_for(url, tmp_path), sensor_max_wait_s=max_wait_s)
    return build_definitions(settings)


def _open_xid(conn) -> int:  # noqa: ANN001
    return int(conn.exec_driver_sql("SELECT txid_current()").scalar_one())


def test_an_idle_transaction_in_another_database_does_not_stall_the_sensor(postgres_warehouse_url, tmp_path):
    engine = make_engine(postgres_warehouse_url)
    defs = _bounded_defs(postgres_warehouse_url, tmp_path, 3600)  # waiting would take an hour
    with throwaway_database(f"{TEST_DB_PREFIX}_other") as other_url, dg.instance_for_test() as instance:
        other = make_engine(other_url).connect()
        other_tx = other.begin()
        idle_xid = _open_xid(other)  # idle in transaction, with an xid, in another database
        with engine.begin() as conn:
            conn.execute(insert(schema.event_log), [_raw_event("e1", "O1", "2025-08-01")])
            # the server-wide horizon the sensor used to wait for is held by that session
            assert int(conn.exec_driver_sql("SELECT txid_snapshot_xmin(txid_current_snapshot())").scalar_one()) \
                == idle_xid
        result, cursor = evaluate(defs, instance)
        assert requested_days(result.run_requests) == ["2025-08-01"]
        assert json.loads(cursor)["id"] == 1 and "waiting" not in json.loads(cursor)
        other_tx.rollback()
        other.close()
    engine.dispose()


def test_an_open_transaction_here_holds_the_sensor_back_at_most_the_bound(postgres_warehouse_url, tmp_path):
    engine = make_engine(postgres_warehouse_url)
    defs = _bounded_defs(postgres_warehouse_url, tmp_path, 1.0)
    with dg.instance_for_test() as instance:
        idle = engine.connect()
        idle_tx = idle.begin()
        idle_xid = _open_xid(idle)  # has not written to the event log (yet)
        with engine.begin() as conn:
            conn.execute(insert(schema.event_log), [_raw_event("e1", "O1", "2025-08-01")])
        held, cursor = evaluate(defs, instance)
        assert held.run_requests == []
        assert [x for x, _ in json.loads(cursor)["waiting"]] == [idle_xid]
        time.sleep(1.1)
        result, cursor = evaluate(defs, instance, cursor)
        assert requested_days(result.run_requests) == ["2025-08-01"]
        assert json.loads(cursor)["excused"] == [idle_xid]
        # The passed-over transaction now writes to the event log, with its old xid as commit_seq
        # (behind the cursor), and commits: the row is read once all the same.
        idle.execute(insert(schema.event_log), [_raw_event("late", "O2", "2025-08-03")])
        idle_tx.commit()
        idle.close()
        result, cursor = evaluate(defs, instance, cursor)
        assert requested_days(result.run_requests) == ["2025-08-03"]
        assert "excused" not in json.loads(cursor) and "waiting" not in json.loads(cursor)
        again, _ = evaluate(defs, instance, cursor)
        assert again.run_requests == []
    engine.dispose()


def test_an_uncommitted_landing_write_open_past_the_bound_is_read_once_committed(postgres_warehouse_url, tmp_path):
    engine = make_engine(postgres_warehouse_url)
    defs = _bounded_defs(postgres_warehouse_url, tmp_path, 1.0)
    with dg.instance_for_test() as instance:
        slow = engine.connect()
        slow_tx = slow.begin()
        slow.execute(insert(schema.event_log), [_raw_event("a", "A1", "2025-08-01")])  # lower id, uncommitted
        with engine.begin() as fast:
            fast.execute(insert(schema.event_log), [_raw_event("b", "B1", "2025-08-05")])
        first, cursor = evaluate(defs, instance)
        assert first.run_requests == []  # within the bound: wait for the writer
        time.sleep(1.1)
        second, cursor = evaluate(defs, instance, cursor)
        assert requested_days(second.run_requests) == ["2025-08-05"]  # past the bound: go on without it
        slow_tx.commit()
        slow.close()
        third, cursor = evaluate(defs, instance, cursor)
        assert requested_days(third.run_requests) == ["2025-08-01"]
        fourth, cursor = evaluate(defs, instance, cursor)
        assert fourth.run_requests == []
        assert json.loads(cursor) == {"commit_seq": json.loads(cursor)["commit_seq"], "id": 2, "epoch": 0}
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# cursor lag (warehouse/event_readers.py): the sensor saves where it stands; `e2a status` and the
# receiver's /metrics measure how far that is behind the newest committed event.


def test_the_sensor_saves_its_position_and_its_lag_is_measured(warehouse_url, tmp_path):
    from e2a_assets.cli.status import collect_status
    from e2a_assets.resources import WarehouseResource
    from e2a_assets.warehouse.event_readers import reader_lags

    engine = make_engine(warehouse_url)
    defs = build_definitions(settings_for(warehouse_url, tmp_path))
    ingestor = Ingestor(engine)
    ingestor.ingest_many([envelope_delivery("demo-3pl", "pick_completed", n, "2025-08-01T09:00:00Z", f"a{n}")
                          for n in range(2)])
    (never,) = reader_lags(engine)  # never ran: it stands at the start, everything is behind it
    assert (never.reader, never.rows, never.read_at) == ("new_events_sensor", 2, None)
    with dg.instance_for_test() as instance:
        evaluate(defs, instance)
        (caught_up,) = reader_lags(engine)
        assert (caught_up.rows, caught_up.seconds) == (0, 0.0) and caught_up.read_at is not None

        ingestor.ingest_many([envelope_delivery("demo-3pl", "pick_completed", n, "2025-08-01T10:00:00Z", f"b{n}")
                              for n in range(3)])
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=2)
        (behind,) = reader_lags(engine, later)
        assert behind.rows == 3 and 119 < behind.seconds < 180

        report = collect_status(WarehouseResource(database_url=warehouse_url), instance, ["demo-3pl"], "shown", later)
        lag = report.as_dict()["sensor_cursor_lag"]
        assert (lag["reader"], lag["lag_rows"]) == ("new_events_sensor", 3) and 119 < lag["lag_seconds"] < 180
        assert report.sensor_lag_line.startswith("new_events_sensor cursor: 3 committed event(s) not read yet, "
                                                 "the oldest waiting 1")
    engine.dispose()


def test_the_receiver_metrics_show_the_sensor_lag(sqlite_url, tmp_path):
    from starlette.testclient import TestClient

    from e2a_assets.webhooks.app import create_app
    from e2a_tests.test_receiver import REGISTRY, prometheus_samples

    engine = make_engine(sqlite_url)
    Ingestor(engine).ingest_many([envelope_delivery("demo-3pl", "pick_completed", n, "2025-08-01T09:00:00Z", f"m{n}")
                                  for n in range(4)])
    with TestClient(create_app(engine, REGISTRY)) as client:
        (lag,) = client.get("/metrics").json()["event_readers"]
        assert (lag["reader"], lag["lag_rows"], lag["read_at"]) == ("new_events_sensor", 4, None)
        series = prometheus_samples(client.get("/metrics?format=prometheus").text)
        assert series[("e2a_event_reader_lag_rows", (("reader", "new_events_sensor"),))] == 4
        assert series[("e2a_event_reader_lag_seconds", (("reader", "new_events_sensor"),))] >= 0
        with dg.instance_for_test() as instance:
            evaluate(build_definitions(settings_for(sqlite_url, tmp_path)), instance)
        (lag,) = client.get("/metrics").json()["event_readers"]
        assert (lag["lag_rows"], lag["lag_seconds"]) == (0, 0.0) and lag["read_at"] is not None
    engine.dispose()
