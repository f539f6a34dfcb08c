"""SLA clocks and daily SLA metrics (DOMAIN §3, docs/rules/orders-and-sla.md)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2a_assets.domain.orders import build_orders
from e2a_assets.domain.sla import METRIC_COLUMNS, ORDER_SLA_COLUMNS, build_order_sla, build_sla_metrics
from e2a_tests.factories import make_events, ts

ROOT = Path(__file__).resolve().parents[1]
AS_OF = ts("2025-08-10 00:00")


@pytest.fixture(scope="module")
def policies() -> pd.DataFrame:
    from e2a_assets.domain.policies import load_registry

    return load_registry(ROOT / "policies").policy_frame()


def sla_for(rows, policies, as_of=AS_OF) -> pd.DataFrame:
    orders = build_orders(make_events(rows), as_of, policies)
    return build_order_sla(orders, as_of, policies)


def clock(sla: pd.DataFrame, name: str, order_id: str = "1001") -> pd.Series:
    hit = sla[(sla["clock"] == name) & (sla["order_id"] == order_id)]
    assert len(hit) == 1, f"expected one {name} clock for {order_id}"
    return hit.iloc[0]


# ------------------------------------------------------------------------------------ order_sla


def test_pick_exactly_at_limit_is_on_time(policies):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},  # paid via payload
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 12:00"},
        ],
        policies,
    )
    pick = clock(sla, "pick")
    assert pick["started_at"] == ts("2025-08-01 10:00")
    assert pick["ended_at"] == ts("2025-08-01 12:00")
    assert bool(pick["running"]) is False
    assert pick["limit_minutes"] == 120.0
    assert pick["deadline_at"] == ts("2025-08-01 12:00")
    assert pick["actual_minutes"] == 120.0
    assert bool(pick["breached"]) is False
    assert pick["delay_minutes"] == 0.0


def test_pick_one_second_over_is_breached(policies):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 12:00:01"},
        ],
        policies,
    )
    pick = clock(sla, "pick")
    assert pick["actual_minutes"] == pytest.approx(120 + 1 / 60, abs=1e-12)
    assert bool(pick["breached"]) is True
    assert pick["delay_minutes"] == pytest.approx(1 / 60, abs=1e-12)


def test_every_clock_of_a_full_order(policies):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "financial_status": "pending"},
            {"event_type": "order_paid", "occurred_at": "2025-08-01 10:30"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:45"},
            {"event_type": "pack_completed", "occurred_at": "2025-08-01 15:00"},
            {"event_type": "manifested", "occurred_at": "2025-08-02 16:00"},
            {"event_type": "delivered", "occurred_at": "2025-08-04 11:00"},
        ],
        policies,
    )
    assert list(sla.columns) == ORDER_SLA_COLUMNS
    assert list(sla["clock"]) == ["pick", "pack", "ship", "delivery"]
    assert list(sla["actual_minutes"]) == [75.0, 195.0, 1500.0, 4380.0]
    assert list(sla["limit_minutes"]) == [120.0, 180.0, 1440.0, 4320.0]
    assert list(sla["breached"]) == [False, True, True, True]
    assert list(sla["delay_minutes"]) == [0.0, 15.0, 60.0, 60.0]
    assert list(sla["running"]) == [False] * 4
    assert list(sla["deadline_at"]) == [
        ts("2025-08-01 12:30"),
        ts("2025-08-01 14:45"),
        ts("2025-08-02 15:00"),
        ts("2025-08-04 10:00"),
    ]
    assert set(sla["cohort_day"]) == {dt.date(2025, 8, 1)}
    assert (sla["as_of"] == AS_OF).all()
    assert str(sla["started_at"].dtype) == "datetime64[ns, UTC]"
    assert str(sla["ended_at"].dtype) == "datetime64[ns, UTC]"
    assert sla["actual_minutes"].dtype == "float64" and sla["breached"].dtype == bool


@pytest.mark.parametrize(
    ("as_of", "actual", "breached", "delay"),
    [
        ("2025-08-01 11:00", 60.0, False, 0.0),
        ("2025-08-01 12:00", 120.0, False, 0.0),
        ("2025-08-01 13:30", 210.0, True, 90.0),
    ],
)
def test_running_clock_uses_as_of(policies, as_of, actual, breached, delay):
    sla = sla_for([{"event_type": "order_created", "occurred_at": "2025-08-01 10:00"}], policies, ts(as_of))
    pick = clock(sla, "pick")
    assert bool(pick["running"]) is True
    assert pd.isna(pick["ended_at"])
    assert pick["actual_minutes"] == actual
    assert bool(pick["breached"]) is breached
    assert pick["delay_minutes"] == delay
    # only clocks whose start milestone exists: pick (paid) and delivery (created)
    assert sorted(sla["clock"]) == ["delivery", "pick"]


def test_rescans_do_not_move_clocks(policies):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 13:00"},  # re-scan
            {"event_type": "pack_completed", "occurred_at": "2025-08-01 12:00"},
        ],
        policies,
    )
    assert clock(sla, "pick")["actual_minutes"] == 60.0
    pack = clock(sla, "pack")
    assert pack["started_at"] == ts("2025-08-01 11:00")
    assert pack["actual_minutes"] == 60.0


def test_out_of_order_events_same_clocks(policies):
    rows = [
        {"event_type": "pack_completed", "occurred_at": "2025-08-01 14:00"},
        {"event_type": "pick_completed", "occurred_at": "2025-08-01 12:30"},
        {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
    ]
    a = sla_for(rows, policies)
    b = sla_for(rows[::-1], policies)
    pd.testing.assert_frame_equal(a, b)
    assert clock(a, "pick")["actual_minutes"] == 150.0 and bool(clock(a, "pick")["breached"]) is True
    assert clock(a, "pack")["actual_minutes"] == 90.0 and bool(clock(a, "pack")["breached"]) is False


def test_end_before_start_is_zero_minutes(policies):
    # payment captured after the pick scan (pending at creation): the clock cannot be negative
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "financial_status": "pending"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
            {"event_type": "order_paid", "occurred_at": "2025-08-01 11:30"},
        ],
        policies,
    )
    pick = clock(sla, "pick")
    assert pick["actual_minutes"] == 0.0 and bool(pick["breached"]) is False


def test_tenant_override_northwind_pick_90(policies):
    rows = [
        {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tenant": t, "order_id": t}
        for t in ("demo-3pl", "northwind-goods")
    ] + [
        {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:40", "tenant": t, "order_id": t}
        for t in ("demo-3pl", "northwind-goods")
    ]
    sla = sla_for(rows, policies)
    demo, north = clock(sla, "pick", "demo-3pl"), clock(sla, "pick", "northwind-goods")
    assert demo["actual_minutes"] == north["actual_minutes"] == 100.0
    assert demo["limit_minutes"] == 120.0 and bool(demo["breached"]) is False
    assert north["limit_minutes"] == 90.0 and bool(north["breached"]) is True
    assert north["delay_minutes"] == 10.0
    assert north["deadline_at"] == ts("2025-08-01 11:30")
    assert clock(sla, "delivery", "northwind-goods")["limit_minutes"] == 48 * 60.0
    assert clock(sla, "delivery", "demo-3pl")["limit_minutes"] == 72 * 60.0
    assert clock(sla, "pack", "northwind-goods")["limit_minutes"] == 120.0


@pytest.mark.parametrize(
    ("cancelled", "actual", "breached"),
    [("2025-08-01 11:00", 60.0, False), ("2025-08-01 13:00", 180.0, True)],
)
def test_cancellation_stops_running_clocks(policies, cancelled, actual, breached):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "order_cancelled", "occurred_at": cancelled},
        ],
        policies,
    )
    pick = clock(sla, "pick")
    assert bool(pick["running"]) is False
    assert pd.isna(pick["ended_at"])  # the end milestone never happened
    assert pick["actual_minutes"] == actual
    assert bool(pick["breached"]) is breached
    delivery = clock(sla, "delivery")
    assert bool(delivery["running"]) is False and delivery["actual_minutes"] == actual


def test_cancelled_order_keeps_real_end_milestones(policies):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 13:00"},
            {"event_type": "order_cancelled", "occurred_at": "2025-08-01 14:00"},
        ],
        policies,
    )
    pick = clock(sla, "pick")
    assert pick["ended_at"] == ts("2025-08-01 13:00") and pick["actual_minutes"] == 180.0
    pack = clock(sla, "pack")
    assert pack["actual_minutes"] == 60.0 and bool(pack["running"]) is False


def test_return_stops_the_delivery_clock(policies):
    sla = sla_for(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
            {"event_type": "pack_completed", "occurred_at": "2025-08-01 12:00"},
            {"event_type": "picked_up", "occurred_at": "2025-08-01 16:00"},
            {"event_type": "returned_to_sender", "occurred_at": "2025-08-05 10:00"},
        ],
        policies,
    )
    delivery = clock(sla, "delivery")
    assert bool(delivery["running"]) is False
    assert delivery["actual_minutes"] == 4 * 24 * 60.0
    assert bool(delivery["breached"]) is True and delivery["delay_minutes"] == 24 * 60.0


def test_order_sla_empty_and_unknown_tenant(policies):
    empty = build_order_sla(build_orders(make_events([]), AS_OF, policies), AS_OF, policies)
    assert empty.empty and list(empty.columns) == ORDER_SLA_COLUMNS
    assert str(empty["started_at"].dtype) == "datetime64[ns, UTC]"
    orders = build_orders(make_events([{"event_type": "order_created", "occurred_at": "2025-08-01 10:00"}]), AS_OF, policies)
    with pytest.raises(ValueError, match="demo-3pl"):
        build_order_sla(orders, AS_OF, policies[policies["tenant"] != "demo-3pl"])


# ------------------------------------------------------------------------------------ metrics

METRICS_AS_OF = ts("2025-08-01 20:00")
METRIC_EVENTS = [
    # day 2025-08-01, demo-3pl; every order_created payload says paid -> paid = created
    {"order_id": "A", "event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
    {"order_id": "A", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},  # pick 60
    {"order_id": "A", "event_type": "pack_completed", "occurred_at": "2025-08-01 12:00"},  # pack 60
    {"order_id": "A", "event_type": "manifested", "occurred_at": "2025-08-01 14:00"},  # ship 120
    {"order_id": "B", "event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
    {"order_id": "B", "event_type": "pick_completed", "occurred_at": "2025-08-01 12:00"},  # pick 120 (=limit)
    {"order_id": "B", "event_type": "pack_completed", "occurred_at": "2025-08-01 15:00"},  # pack 180 (=limit)
    {"order_id": "C", "event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
    {"order_id": "C", "event_type": "pick_completed", "occurred_at": "2025-08-01 13:00"},  # pick 180 breached
    {"order_id": "D", "event_type": "order_created", "occurred_at": "2025-08-01 19:00"},  # pick running 60
    {"order_id": "E", "event_type": "order_created", "occurred_at": "2025-08-01 16:00"},  # pick running 240
    # day 2025-08-02 (created before as_of in payload terms is irrelevant): cancelled at 30 min
    {
        "order_id": "F",
        "event_type": "order_created",
        "occurred_at": "2025-08-01 19:00",
        "order_created_at": pd.Timestamp("2025-08-02 00:30", tz="UTC"),
    },
    {"order_id": "F", "event_type": "order_cancelled", "occurred_at": "2025-08-01 19:30"},
]


def test_sla_metrics_hand_computed(policies):
    orders = build_orders(make_events(METRIC_EVENTS), METRICS_AS_OF, policies)
    sla = build_order_sla(orders, METRICS_AS_OF, policies)
    m = build_sla_metrics(orders, sla, None, as_of=METRICS_AS_OF)
    assert list(m.columns) == METRIC_COLUMNS
    assert list(m["day"]) == [dt.date(2025, 8, 1), dt.date(2025, 8, 2)]
    d1, d2 = m.iloc[0], m.iloc[1]

    assert (d1["orders"], d1["completed"], d1["stalled"]) == (5, 1, 2)  # A shipped; B (15:00) and C (13:00) stalled
    # pick: ended 60, 120 (on time), 180 (late); running D 60 (not counted), E 240 (breached, counted)
    assert d1["pick_compliance"] == pytest.approx(2 / 4)
    assert d1["pick_p50_minutes"] == 120.0
    assert d1["pick_p95_minutes"] == pytest.approx(174.0)  # 120 + 0.9 * (180 - 120)
    assert d1["pick_breached"] == 2
    # pack: ended 60, 180 (on time); C running 420 (breached)
    assert d1["pack_compliance"] == pytest.approx(2 / 3)
    assert d1["pack_p50_minutes"] == 120.0
    assert d1["pack_p95_minutes"] == pytest.approx(174.0)  # 60 + 0.95 * 120
    assert d1["pack_breached"] == 1
    # ship: A ended 120 on time; B running 300 < 1440 (not counted)
    assert d1["ship_compliance"] == 1.0
    assert d1["ship_p50_minutes"] == 120.0 and d1["ship_p95_minutes"] == 120.0
    assert d1["ship_breached"] == 0
    # delivery: nothing delivered, nothing breached -> denominator 0 -> 1.0, no percentiles
    assert d1["delivery_compliance"] == 1.0
    assert math.isnan(d1["delivery_p50_minutes"]) and math.isnan(d1["delivery_p95_minutes"])
    assert d1["delivery_breached"] == 0
    assert d1["exception_response_compliance"] == 1.0  # exceptions=None

    # day 2: F cancelled after 30 min: pick/delivery clocks stopped on time -> not counted
    assert (d2["orders"], d2["completed"], d2["stalled"]) == (1, 0, 0)
    assert d2["pick_compliance"] == 1.0 and math.isnan(d2["pick_p50_minutes"]) and d2["pick_breached"] == 0
    assert (m["as_of"] == METRICS_AS_OF).all()
    assert m["orders"].dtype == "int64" and m["pick_breached"].dtype == "int64"
    assert m["pick_compliance"].dtype == "float64"


def _exceptions() -> pd.DataFrame:
    day1, day2 = dt.date(2025, 8, 1), dt.date(2025, 8, 2)
    rows = [
        ("A", day1, "PICK_DELAY", "2025-08-01 10:00", "2025-08-01 14:00", "RESOLVED"),  # exactly 4 h: within
        ("B", day1, "PACK_DELAY", "2025-08-01 10:00", "2025-08-01 14:00:01", "RESOLVED"),  # 1 s over
        ("C", day1, "ADDRESS_INVALID", "2025-08-01 12:00", "2025-08-01 13:00", "RESOLVED"),
        ("D", day1, "PAYMENT_FAILED", "2025-08-01 12:00", None, "OPEN"),  # not resolved: ignored
        ("F", day2, "SYSTEM_ERROR", "2025-08-01 19:00", None, "OPEN"),
    ]
    frame = pd.DataFrame(rows, columns=["order_id", "cohort_day", "reason_code", "opened_at", "resolved_at", "status"])
    frame.insert(0, "tenant", "demo-3pl")
    frame["opened_at"] = pd.to_datetime(frame["opened_at"], utc=True, format="ISO8601")
    frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True, format="ISO8601")
    return frame


def test_exception_response_compliance(policies):
    orders = build_orders(make_events(METRIC_EVENTS), METRICS_AS_OF, policies)
    sla = build_order_sla(orders, METRICS_AS_OF, policies)
    m = build_sla_metrics(orders, sla, _exceptions(), as_of=METRICS_AS_OF, policies=policies)
    assert list(m["exception_response_compliance"]) == pytest.approx([2 / 3, 1.0])  # day 2: none resolved
    # without policies the DOMAIN default (4 h) applies
    m_default = build_sla_metrics(orders, sla, _exceptions(), as_of=METRICS_AS_OF)
    assert list(m_default["exception_response_compliance"]) == pytest.approx([2 / 3, 1.0])
    # a tenant with a 5 h response SLA: all three resolved ones are within
    custom = policies.copy()
    custom["response_hours"] = np.where(custom["tenant"] == "demo-3pl", 5.0, custom["response_hours"])
    m_custom = build_sla_metrics(orders, sla, _exceptions(), as_of=METRICS_AS_OF, policies=custom)
    assert list(m_custom["exception_response_compliance"]) == [1.0, 1.0]


def test_metrics_per_tenant_rows(policies):
    rows = [
        {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tenant": t, "order_id": t}
        for t in ("demo-3pl", "northwind-goods")
    ] + [
        {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:40", "tenant": t, "order_id": t}
        for t in ("demo-3pl", "northwind-goods")
    ]
    as_of = ts("2025-08-01 12:00")
    orders = build_orders(make_events(rows), as_of, policies)
    m = build_sla_metrics(orders, build_order_sla(orders, as_of, policies), as_of=as_of).set_index("tenant")
    assert m.loc["demo-3pl", "pick_compliance"] == 1.0
    assert m.loc["northwind-goods", "pick_compliance"] == 0.0
    assert m.loc["northwind-goods", "pick_breached"] == 1
    assert m.loc["northwind-goods", "pick_p50_minutes"] == 100.0


def test_metrics_empty_input(policies):
    orders = build_orders(make_events([]), AS_OF, policies)
    sla = build_order_sla(orders, AS_OF, policies)
    m = build_sla_metrics(orders, sla, None, as_of=AS_OF)
    assert m.empty and list(m.columns) == METRIC_COLUMNS
    assert m["orders"].dtype == "int64" and str(m["as_of"].dtype) == "datetime64[ns, UTC]"
    with pytest.raises(ValueError, match="as_of"):
        build_sla_metrics(orders, sla)
