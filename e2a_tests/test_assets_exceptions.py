"""Materialising the exception assets: lifecycle, priorities, the idempotent outbox, patterns."""

import datetime as dt

import dagster as dg
import pytest

from e2a_assets.assets import exceptions as exception_assets
from e2a_assets.assets import ingestion, orders
from e2a_assets.definitions import build_resources
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_days, read_table
from e2a_tests.factories import envelope_delivery, settings_for, shopify_delivery, shopify_order

DAY = dt.date(2025, 9, 1)
ALL = [ingestion.webhook_events, orders.orders, orders.order_sla, exception_assets.exceptions, orders.sla_metrics,
       exception_assets.exception_priorities, exception_assets.exception_actions,
       exception_assets.exception_patterns, exception_assets.exception_insights]


def run(url, tmp_path, as_of, day=DAY):
    result = dg.materialize(ALL, partition_key=day.isoformat(), resources=build_resources(settings_for(url, tmp_path)),
                            tags={AS_OF_TAG: as_of})
    assert result.success
    return {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}


def seed(engine):
    Ingestor(engine).ingest_many([
        # 1: invalid address at 08:00 (MEDIUM, automatable), fixed by an update at 10:00.
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1, "2025-09-01T08:00:00Z",
                         shipping_address={"zip": "00000", "country": "US"}), "s1"),
        # 2: damaged package reported at 09:00 (HIGH, holds billing, manual review).
        shopify_delivery("demo-3pl", "orders/create", shopify_order(2, "2025-09-01T08:30:00Z"), "s2"),
        envelope_delivery("demo-3pl", "pick_completed", 2, "2025-09-01T09:00:00Z", "w2a"),
        envelope_delivery("demo-3pl", "exception_reported", 2, "2025-09-01T09:00:00Z", "w2b",
                          data={"reason_code": "DAMAGED_PACKAGE"}),
        # 3: system error reported at 11:30 (CRITICAL).
        shopify_delivery("demo-3pl", "orders/create", shopify_order(3, "2025-09-01T11:00:00Z"), "s3"),
        envelope_delivery("demo-3pl", "exception_reported", 3, "2025-09-01T11:30:00Z", "w3",
                          data={"reason_code": "SYSTEM_ERROR"}),
    ])


def test_exception_assets_end_to_end(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed(engine)
    meta = run(warehouse_url, tmp_path, as_of="2025-09-01T12:00:00+00:00")

    exc = read_days(engine, schema.exceptions, "cohort_day", DAY, DAY).set_index(["order_id", "reason_code"])
    assert exc.loc[("1", "ADDRESS_INVALID"), "status"] == "OPEN"
    assert exc.loc[("2", "DAMAGED_PACKAGE"), "severity"] == "HIGH"
    assert bool(exc.loc[("2", "DAMAGED_PACKAGE"), "holds_billing"]) is True

    prio = read_days(engine, schema.exception_priorities, "cohort_day", DAY, DAY).set_index(["order_id", "reason_code"])
    # Order 3: CRITICAL, 0.5 h old: 100 + 1 = 101 -> critical_urgent.
    assert prio.loc[("3", "SYSTEM_ERROR"), "score"] == pytest.approx(101.0)
    assert prio.loc[("3", "SYSTEM_ERROR"), "category"] == "critical_urgent"
    # Order 2: HIGH, 3 h old (not > 3): 75 + 6 = 81 -> standard.
    assert prio.loc[("2", "DAMAGED_PACKAGE"), "score"] == pytest.approx(81.0)
    assert prio.loc[("2", "DAMAGED_PACKAGE"), "category"] == "standard"
    # Order 1: MEDIUM, 4 h old: 50 + 8 + 30 = 88 -> sla_risk.
    assert prio.loc[("1", "ADDRESS_INVALID"), "score"] == pytest.approx(88.0)
    assert prio.loc[("1", "ADDRESS_INVALID"), "category"] == "sla_risk"
    assert meta["exception_priorities"]["critical_urgent"].value == 1
    assert meta["exception_priorities"]["sla_risk"].value == 1

    outbox = read_table(engine, schema.exception_actions).set_index("reason_code")
    assert outbox.loc["ADDRESS_INVALID", "action"] == "request_address_fix"
    assert bool(outbox.loc["ADDRESS_INVALID", "automatable"]) is True
    assert outbox.loc["DAMAGED_PACKAGE", "action"] == "manual_review"
    assert set(outbox["outcome"]) == {"pending"}
    ids = dict(zip(outbox.index, outbox["id"]))

    # Re-running requests nothing twice.
    again = run(warehouse_url, tmp_path, as_of="2025-09-01T12:00:00+00:00")
    assert again["exception_actions"]["requested_now"].value == 0
    # Order 1 also waits for its pick since 10:00 (paid 08:00 + 120 min): PICK_DELAY, 4 actions in all.
    assert sorted(read_table(engine, schema.exception_actions)["reason_code"]) == [
        "ADDRESS_INVALID", "DAMAGED_PACKAGE", "PICK_DELAY", "SYSTEM_ERROR"]

    # The address is fixed: the exception resolves and its action succeeds, same outbox row.
    Ingestor(engine).ingest(shopify_delivery("demo-3pl", "orders/updated", shopify_order(
        1, "2025-09-01T08:00:00Z", updated_at="2025-09-01T13:00:00Z"), "s1-fix"))
    later = run(warehouse_url, tmp_path, as_of="2025-09-01T14:00:00+00:00")
    outbox = read_table(engine, schema.exception_actions).set_index("reason_code")
    assert outbox.loc["ADDRESS_INVALID", "outcome"] == "succeeded"
    assert outbox.loc["ADDRESS_INVALID", "id"] == ids["ADDRESS_INVALID"]
    assert later["exception_actions"]["succeeded_now"].value == 1
    # By 14:00 order 2 has waited 5 h for its pack scan (> 1.5 x 180 min): MISSING_SCAN, automatable
    # and still pending, so automation success is 1 of 2.
    assert outbox.loc["MISSING_SCAN", "outcome"] == "pending"
    assert later["exception_actions"]["automation_success_rate"].value == 0.5
    exc = read_days(engine, schema.exceptions, "cohort_day", DAY, DAY).set_index(["order_id", "reason_code"])
    assert exc.loc[("1", "ADDRESS_INVALID"), "status"] == "RESOLVED"
    assert exc.loc[("1", "ADDRESS_INVALID"), "resolution"] == "address_updated"

    patterns = read_days(engine, schema.exception_patterns, "day", DAY, DAY)
    codes = patterns[patterns["dimension"] == "reason_code"].set_index("key")
    assert codes.loc["ADDRESS_INVALID", "count"] == 1 and codes.loc["ADDRESS_INVALID", "resolved"] == 1
    assert codes.loc["ADDRESS_INVALID", "mean_resolution_hours"] == pytest.approx(5.0)
    report = later["exception_insights"]["report"].value
    assert "PICK_DELAY is the most common exception" in report
    assert "2 order(s) are held from billing" in report  # the damaged package and the system error


def test_patterns_window_reaches_across_the_month_boundary(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    # An exception opened on Aug 28 counts in the window ending Sep 3 (Aug 28 .. Sep 3).
    Ingestor(engine).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(9, "2025-08-28T08:00:00Z"), "s9"),
        envelope_delivery("demo-3pl", "exception_reported", 9, "2025-08-28T09:00:00Z", "w9",
                          data={"reason_code": "STOCK_MISMATCH"}),
    ])
    run(sqlite_url, tmp_path, "2025-08-29T00:00:00+00:00", day=dt.date(2025, 8, 28))
    settings = settings_for(sqlite_url, tmp_path)
    for day, expected in (("2025-09-03", 1), ("2025-09-04", 0)):
        dg.materialize([exception_assets.exception_patterns], partition_key=day,
                       resources=build_resources(settings), tags={AS_OF_TAG: "2025-09-05T00:00:00+00:00"})
        got = read_days(engine, schema.exception_patterns, "day", dt.date.fromisoformat(day), dt.date.fromisoformat(day))
        stock = got[(got["dimension"] == "reason_code") & (got["key"] == "STOCK_MISMATCH")]
        assert int(stock["count"].sum()) == expected, day
