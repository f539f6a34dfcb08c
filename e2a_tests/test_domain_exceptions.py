"""Exception rules (DOMAIN §4, docs/rules/exceptions.md): detection, resolution, priority, actions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from e2a_assets.domain.exceptions import (
    ACTION_COLUMNS,
    EXCEPTION_COLUMNS,
    PRIORITY_COLUMNS,
    automation_success,
    build_exceptions,
    plan_actions,
    prioritize,
)
from e2a_assets.domain.policies import TenantRegistry, default_policy
from e2a_tests.factories import make_events, ts

T = "demo-3pl"
DAY = dt.date(2025, 8, 1)
MILESTONES = ["created_at", "paid_at", "picked_at", "packed_at", "labelled_at", "shipped_at", "delivered_at",
              "cancelled_at", "returned_at"]  # fmt: skip


def orders_frame(rows: list[dict]) -> pd.DataFrame:
    """Hand-built orders frame (docs/internals.md columns that the exception rules read)."""
    recs = [{"tenant": T, "order_id": "1001", "cohort_day": DAY, **{m: None for m in MILESTONES}, **r} for r in rows]
    frame = pd.DataFrame(recs, columns=["tenant", "order_id", "cohort_day", *MILESTONES])
    for m in MILESTONES:
        frame[m] = pd.to_datetime(frame[m], utc=True)
    return frame


def sla_frame(rows: list[dict]) -> pd.DataFrame:
    """Hand-built order_sla rows: clock, started_at, limit_minutes, ended_at (deadline derived)."""
    recs = [{"tenant": T, "order_id": "1001", "cohort_day": DAY, "ended_at": None, **r} for r in rows]
    frame = pd.DataFrame(recs)
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    frame["ended_at"] = pd.to_datetime(frame["ended_at"], utc=True)
    frame["deadline_at"] = frame["started_at"] + pd.to_timedelta(frame["limit_minutes"], unit="m")
    return frame


def created(**kw) -> dict:
    return {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", **kw}


def run(events=(), orders=None, sla=None, as_of="2025-08-01 20:00", policies=None) -> pd.DataFrame:
    ev = make_events(list(events)) if events else None
    return build_exceptions(ev, orders, sla, ts(as_of), policies)


def row(frame: pd.DataFrame, code: str, order_id: str = "1001") -> dict:
    hit = frame[(frame["reason_code"] == code) & (frame["order_id"] == order_id)]
    assert len(hit) == 1, f"expected one {code} row for {order_id}, got {len(hit)}"
    return hit.iloc[0].to_dict()


def assert_exception(r: dict, severity, source, opened, status, resolved=None, resolution=None) -> None:
    assert (r["severity"], r["source"], r["opened_at"], r["status"]) == (severity, source, ts(opened), status)
    if resolved is None:
        assert pd.isna(r["resolved_at"]) and r["resolution"] is None
    else:
        assert (r["resolved_at"], r["resolution"]) == (ts(resolved), resolution)


# ------------------------------------------------------------------------------------ SLA breaches


def test_sla_delays_open_at_the_deadline_and_resolve_at_the_late_milestone():
    sla = sla_frame(
        [
            {"clock": "pick", "started_at": "2025-08-01 10:00", "limit_minutes": 120.0, "ended_at": "2025-08-01 13:00"},
            {"clock": "pack", "started_at": "2025-08-01 13:00", "limit_minutes": 180.0},  # running, deadline 16:00
            {"order_id": "2", "clock": "pick", "started_at": "2025-08-01 10:00", "limit_minutes": 120.0,
             "ended_at": "2025-08-01 12:00"},  # exactly on the limit: on time
            {"order_id": "3", "clock": "pack", "started_at": "2025-08-01 17:00", "limit_minutes": 180.0},  # deadline == as_of
            {"order_id": "4", "clock": "ship", "started_at": "2025-08-01 12:00", "limit_minutes": 120.0,
             "ended_at": "2025-08-01 15:00"},
        ]
    )  # fmt: skip
    ex = run(sla=sla)
    assert sorted(zip(ex["order_id"], ex["reason_code"])) == [("1001", "PACK_DELAY"), ("1001", "PICK_DELAY"), ("4", "SHIP_DELAY")]
    assert_exception(row(ex, "PICK_DELAY"), "MEDIUM", "sla", "2025-08-01 12:00", "RESOLVED", "2025-08-01 13:00", "milestone:picked")
    assert_exception(row(ex, "PACK_DELAY"), "MEDIUM", "sla", "2025-08-01 16:00", "OPEN")
    assert_exception(row(ex, "SHIP_DELAY", "4"), "HIGH", "sla", "2025-08-01 14:00", "RESOLVED", "2025-08-01 15:00", "milestone:shipped")


def test_delivery_delay_is_critical_when_over_by_more_than_48_hours():
    limit = 72 * 60.0
    sla = sla_frame(
        [
            # deadline 2025-08-04 10:00 for all; as_of 2025-08-06 10:00 (48 h over exactly)
            {"order_id": "exact", "clock": "delivery", "started_at": "2025-08-01 10:00", "limit_minutes": limit},
            {"order_id": "late", "clock": "delivery", "started_at": "2025-08-01 09:59", "limit_minutes": limit},
            {"order_id": "delivered", "clock": "delivery", "started_at": "2025-08-01 10:00", "limit_minutes": limit,
             "ended_at": "2025-08-06 11:00"},  # delivered after 49 h over... but after as_of
            {"order_id": "done", "clock": "delivery", "started_at": "2025-08-01 08:00", "limit_minutes": limit,
             "ended_at": "2025-08-06 09:00"},  # delivered 49 h after its deadline 2025-08-04 08:00
        ]
    )  # fmt: skip
    ex = run(sla=sla, as_of="2025-08-06 10:00")
    assert_exception(row(ex, "DELIVERY_DELAY", "exact"), "HIGH", "sla", "2025-08-04 10:00", "OPEN")
    assert_exception(row(ex, "DELIVERY_DELAY", "late"), "CRITICAL", "sla", "2025-08-04 09:59", "OPEN")
    # Its delivery is after as_of, so it has not happened yet: still running, 48 h over -> HIGH.
    assert_exception(row(ex, "DELIVERY_DELAY", "delivered"), "HIGH", "sla", "2025-08-04 10:00", "OPEN")
    assert_exception(row(ex, "DELIVERY_DELAY", "done"), "CRITICAL", "sla", "2025-08-04 08:00", "RESOLVED",
                     "2025-08-06 09:00", "delivered")  # fmt: skip


# ------------------------------------------------------------------------------------ missing scan


def test_missing_scan_opens_at_picked_plus_factor_times_pack_and_any_later_milestone_clears_it():
    orders = orders_frame(
        [
            {"order_id": "open", "picked_at": "2025-08-01 10:00"},
            {"order_id": "packed", "picked_at": "2025-08-01 10:00", "packed_at": "2025-08-01 16:00"},
            {"order_id": "labelled", "picked_at": "2025-08-01 10:00", "labelled_at": "2025-08-01 15:00",
             "packed_at": "2025-08-01 15:30"},
            {"order_id": "in_time", "picked_at": "2025-08-01 10:00", "labelled_at": "2025-08-01 14:00"},
            {"order_id": "boundary", "picked_at": "2025-08-01 10:00", "packed_at": "2025-08-01 14:30"},
            {"order_id": "young", "picked_at": "2025-08-01 15:00"},  # threshold 19:30 < 20:00
            {"order_id": "younger", "picked_at": "2025-08-01 15:30"},  # threshold 20:00 == as_of
            {"order_id": "unpicked", "packed_at": "2025-08-01 10:00"},
        ]
    )  # fmt: skip
    ex = run(orders=orders)
    assert sorted(ex["order_id"]) == ["labelled", "open", "packed", "young"]
    assert set(ex["reason_code"]) == {"MISSING_SCAN"}
    assert_exception(row(ex, "MISSING_SCAN", "open"), "MEDIUM", "sla", "2025-08-01 14:30", "OPEN")
    assert_exception(row(ex, "MISSING_SCAN", "packed"), "MEDIUM", "sla", "2025-08-01 14:30", "RESOLVED",
                     "2025-08-01 16:00", "milestone:packed")  # fmt: skip
    assert_exception(row(ex, "MISSING_SCAN", "labelled"), "MEDIUM", "sla", "2025-08-01 14:30", "RESOLVED",
                     "2025-08-01 15:00", "milestone:labelled")  # fmt: skip
    assert_exception(row(ex, "MISSING_SCAN", "young"), "MEDIUM", "sla", "2025-08-01 19:30", "OPEN")


def test_missing_scan_uses_each_tenants_pack_minutes_and_factor():
    registry = TenantRegistry(
        (default_policy(T), default_policy("acme", sla={"pack_minutes": 120, "missing_scan_factor": 2}))
    )
    orders = orders_frame(
        [{"order_id": "a", "picked_at": "2025-08-01 10:00"}, {"tenant": "acme", "order_id": "b", "picked_at": "2025-08-01 10:00"}]
    )
    for policies in (registry, registry.policy_frame()):
        ex = run(orders=orders, policies=policies)
        assert list(zip(ex["tenant"], ex["opened_at"])) == [("acme", ts("2025-08-01 14:00")), (T, ts("2025-08-01 14:30"))]
    with pytest.raises(ValueError, match="no policy for tenant"):
        run(orders=orders, policies=TenantRegistry((default_policy(T),)))


# ---------------------------------------------------------------------------------- payload rules


def test_address_invalid_opens_on_a_bad_zip_and_a_valid_order_updated_resolves_it():
    events = [
        created(ship_zip="00000"),
        {"event_type": "order_updated", "occurred_at": "2025-08-01 11:00"},  # no address: says nothing
        {"event_type": "order_updated", "occurred_at": "2025-08-01 12:00", "ship_zip": "10001", "address_valid": True},
        created(order_id="2", ship_zip=""),
        {"order_id": "2", "event_type": "order_updated", "occurred_at": "2025-08-01 11:00", "ship_zip": "99999",
         "address_valid": False},
        created(order_id="3", ship_zip="10001"),
        {"order_id": "3", "event_type": "order_updated", "occurred_at": "2025-08-01 11:00", "ship_zip": "INVALID",
         "address_valid": False},
    ]  # fmt: skip
    ex = run(events)
    assert sorted(ex["order_id"]) == ["1001", "2", "3"]
    assert_exception(row(ex, "ADDRESS_INVALID"), "MEDIUM", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 12:00", "address_updated")  # fmt: skip
    assert_exception(row(ex, "ADDRESS_INVALID", "2"), "MEDIUM", "payload", "2025-08-01 10:00", "OPEN")
    assert_exception(row(ex, "ADDRESS_INVALID", "3"), "MEDIUM", "payload", "2025-08-01 11:00", "OPEN")


def test_address_invalid_again_after_a_fix_reopens_the_same_exception():
    events = [
        created(ship_zip="00000"),
        {"event_type": "order_updated", "occurred_at": "2025-08-01 12:00", "ship_zip": "10001", "address_valid": True},
        {"event_type": "order_updated", "occurred_at": "2025-08-01 13:00", "ship_zip": "00000", "address_valid": False},
    ]
    ex = run(events)
    assert len(ex) == 1
    assert_exception(row(ex, "ADDRESS_INVALID"), "MEDIUM", "payload", "2025-08-01 10:00", "OPEN")
    ex = run(events + [{"event_type": "order_updated", "occurred_at": "2025-08-01 14:00", "address_valid": True}])
    assert_exception(row(ex, "ADDRESS_INVALID"), "MEDIUM", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 14:00", "address_updated")  # fmt: skip


def test_payment_failed_opens_on_pending_and_order_paid_resolves_it():
    events = [
        created(financial_status="pending"),
        created(order_id="2", financial_status="pending"),
        {"order_id": "2", "event_type": "order_paid", "occurred_at": "2025-08-01 10:45"},
        created(order_id="3", financial_status="paid"),
    ]
    ex = run(events)
    assert sorted(ex["order_id"]) == ["1001", "2"]
    assert_exception(row(ex, "PAYMENT_FAILED"), "HIGH", "payload", "2025-08-01 10:00", "OPEN")
    assert_exception(row(ex, "PAYMENT_FAILED", "2"), "HIGH", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 10:45", "order_paid")  # fmt: skip


def test_inventory_shortage_high_critical_at_zero_available_and_its_resolutions():
    events = [
        created(inventory_shortage=True),
        created(order_id="2", inventory_shortage=True, zero_available=True),
        {"order_id": "2", "event_type": "pick_completed", "occurred_at": "2025-08-01 13:00"},
        created(order_id="3", inventory_shortage=True),
        {"order_id": "3", "event_type": "order_updated", "occurred_at": "2025-08-01 12:00", "line_count": 1},
        created(order_id="4", inventory_shortage=True),
        {"order_id": "4", "event_type": "order_updated", "occurred_at": "2025-08-01 12:00"},  # no lines: says nothing
    ]
    ex = run(events)
    assert_exception(row(ex, "INVENTORY_SHORTAGE"), "HIGH", "payload", "2025-08-01 10:00", "OPEN")
    assert_exception(row(ex, "INVENTORY_SHORTAGE", "2"), "CRITICAL", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 13:00", "milestone:picked")  # fmt: skip
    assert_exception(row(ex, "INVENTORY_SHORTAGE", "3"), "HIGH", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 12:00", "inventory_available")  # fmt: skip
    assert_exception(row(ex, "INVENTORY_SHORTAGE", "4"), "HIGH", "payload", "2025-08-01 10:00", "OPEN")


# ---------------------------------------------------------------------------------- carrier rules


def test_delivery_failures_open_carrier_issue_then_customer_unavailable_and_delivered_resolves_both():
    failed = [
        {"event_type": "delivery_failed", "occurred_at": "2025-08-03 10:00"},
        {"event_type": "delivery_failed", "occurred_at": "2025-08-04 10:00"},
        {"event_type": "delivery_failed", "occurred_at": "2025-08-05 10:00"},
        {"order_id": "2", "event_type": "delivery_failed", "occurred_at": "2025-08-03 11:00"},
    ]
    ex = run(failed, as_of="2025-08-06 00:00")
    assert sorted(zip(ex["order_id"], ex["reason_code"])) == [
        ("1001", "CARRIER_ISSUE"), ("1001", "CUSTOMER_UNAVAILABLE"), ("2", "CARRIER_ISSUE")
    ]  # fmt: skip
    assert_exception(row(ex, "CARRIER_ISSUE"), "HIGH", "carrier", "2025-08-03 10:00", "OPEN")
    assert_exception(row(ex, "CUSTOMER_UNAVAILABLE"), "MEDIUM", "carrier", "2025-08-04 10:00", "OPEN")
    delivered = failed + [{"event_type": "delivered", "occurred_at": "2025-08-05 15:00"}]
    ex = run(delivered, as_of="2025-08-06 00:00")
    for code, severity, opened in (
        ("CARRIER_ISSUE", "HIGH", "2025-08-03 10:00"), ("CUSTOMER_UNAVAILABLE", "MEDIUM", "2025-08-04 10:00")
    ):
        assert_exception(row(ex, code), severity, "carrier", opened, "RESOLVED", "2025-08-05 15:00", "delivered")
    assert row(ex, "CARRIER_ISSUE", "2")["status"] == "OPEN"


# ------------------------------------------------------------------------------ reported and manual


def test_reported_exceptions_carry_their_code_and_exception_resolved_with_that_code_resolves_them():
    events = [
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 11:00", "reason_code": "DAMAGED_PACKAGE"},
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 11:30", "reason_code": "DAMAGED_PACKAGE"},
        {"event_type": "exception_resolved", "occurred_at": "2025-08-01 12:00", "reason_code": "STOCK_MISMATCH"},
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 11:00", "reason_code": " system_error "},
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 11:05", "reason_code": "LOST_PARCEL"},
        {"order_id": "2", "event_type": "exception_reported", "occurred_at": "2025-08-01 11:00", "reason_code": "STOCK_MISMATCH"},
        {"order_id": "2", "event_type": "exception_resolved", "occurred_at": "2025-08-01 15:00", "reason_code": "STOCK_MISMATCH"},
    ]  # fmt: skip
    ex = run(events)
    assert sorted(zip(ex["order_id"], ex["reason_code"])) == [
        ("1001", "DAMAGED_PACKAGE"), ("1001", "OTHER"), ("1001", "SYSTEM_ERROR"), ("2", "STOCK_MISMATCH")
    ]  # fmt: skip
    assert_exception(row(ex, "DAMAGED_PACKAGE"), "HIGH", "reported", "2025-08-01 11:00", "OPEN")
    assert_exception(row(ex, "SYSTEM_ERROR"), "CRITICAL", "reported", "2025-08-01 11:00", "OPEN")
    assert_exception(row(ex, "OTHER"), "MEDIUM", "reported", "2025-08-01 11:05", "OPEN")
    assert_exception(row(ex, "STOCK_MISMATCH", "2"), "HIGH", "reported", "2025-08-01 11:00", "RESOLVED",
                     "2025-08-01 15:00", "exception_resolved")  # fmt: skip
    held = dict(zip(ex["reason_code"], ex["holds_billing"]))
    assert held == {"DAMAGED_PACKAGE": True, "SYSTEM_ERROR": True, "OTHER": False, "STOCK_MISMATCH": False}


def test_exception_resolved_resolves_any_code_but_only_after_it_opened():
    events = [
        created(financial_status="pending"),
        {"event_type": "exception_resolved", "occurred_at": "2025-08-01 11:00", "reason_code": "PAYMENT_FAILED"},
        {"event_type": "exception_resolved", "occurred_at": "2025-08-01 09:00", "reason_code": "PICK_DELAY"},
    ]
    sla = sla_frame([{"clock": "pick", "started_at": "2025-08-01 10:00", "limit_minutes": 120.0}])
    ex = run(events, sla=sla)
    assert_exception(row(ex, "PAYMENT_FAILED"), "HIGH", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 11:00", "exception_resolved")  # fmt: skip
    assert_exception(row(ex, "PICK_DELAY"), "MEDIUM", "sla", "2025-08-01 12:00", "OPEN")


def test_a_natural_cause_and_exception_resolved_at_the_same_instant_credit_the_natural_cause():
    events = [
        {"event_type": "delivery_failed", "occurred_at": "2025-08-01 10:00"},
        {"event_type": "exception_resolved", "occurred_at": "2025-08-01 12:00", "reason_code": "CARRIER_ISSUE"},
        {"event_type": "delivered", "occurred_at": "2025-08-01 12:00"},
        created(order_id="2", financial_status="pending"),
        {"order_id": "2", "event_type": "exception_resolved", "occurred_at": "2025-08-01 12:00", "reason_code": "PAYMENT_FAILED"},
        {"order_id": "2", "event_type": "order_paid", "occurred_at": "2025-08-01 12:00"},
    ]  # fmt: skip
    ex = run(events)
    assert_exception(row(ex, "CARRIER_ISSUE"), "HIGH", "carrier", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 12:00", "delivered")  # fmt: skip
    assert_exception(row(ex, "PAYMENT_FAILED", "2"), "HIGH", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 12:00", "order_paid")  # fmt: skip


def test_a_clear_at_the_same_instant_as_the_open_resolves_it():
    events = [created(financial_status="pending"), {"event_type": "order_paid", "occurred_at": "2025-08-01 10:00"}]
    assert_exception(row(run(events), "PAYMENT_FAILED"), "HIGH", "payload", "2025-08-01 10:00", "RESOLVED",
                     "2025-08-01 10:00", "order_paid")  # fmt: skip


# ---------------------------------------------------------------------------- as_of and cancellation


def test_events_and_milestones_after_as_of_are_ignored():
    events = [
        created(financial_status="pending"),
        {"event_type": "order_paid", "occurred_at": "2025-08-01 21:00"},
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 20:01", "reason_code": "SYSTEM_ERROR"},
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 20:00", "reason_code": "DAMAGED_PACKAGE"},
    ]
    sla = sla_frame(
        [{"clock": "pick", "started_at": "2025-08-01 10:00", "limit_minutes": 120.0, "ended_at": "2025-08-01 21:00"},
         {"clock": "pack", "started_at": "2025-08-01 21:00", "limit_minutes": 1.0}]
    )  # fmt: skip
    orders = orders_frame([{"picked_at": "2025-08-01 10:00", "packed_at": "2025-08-01 20:30"}])
    ex = run(events, orders=orders, sla=sla, as_of="2025-08-01 20:00")
    assert sorted(ex["reason_code"]) == ["DAMAGED_PACKAGE", "MISSING_SCAN", "PAYMENT_FAILED", "PICK_DELAY"]
    assert (ex["status"] == "OPEN").all()
    assert (ex["as_of"] == ts("2025-08-01 20:00")).all()


def test_cancellation_resolves_detected_exceptions_and_stops_clocks_but_not_reported_ones():
    events = [
        created(ship_zip="00000", financial_status="pending"),
        {"event_type": "exception_reported", "occurred_at": "2025-08-01 11:00", "reason_code": "DAMAGED_PACKAGE"},
        {"event_type": "order_cancelled", "occurred_at": "2025-08-01 13:00"},
        {"event_type": "order_updated", "occurred_at": "2025-08-01 14:00", "inventory_shortage": True},
        created(order_id="2"),
        {"order_id": "2", "event_type": "order_cancelled", "occurred_at": "2025-08-01 13:00"},
        {"order_id": "2", "event_type": "order_updated", "occurred_at": "2025-08-01 13:00", "financial_status": "pending"},
    ]
    sla = sla_frame(
        [{"clock": "pick", "started_at": "2025-08-01 10:00", "limit_minutes": 120.0},  # deadline 12:00 < cancel
         {"clock": "delivery", "started_at": "2025-08-01 10:00", "limit_minutes": 240.0}]  # deadline 14:00 > cancel
    )  # fmt: skip
    ex = run(events, sla=sla)
    assert set(ex["order_id"]) == {"1001"}  # order 2: the pending payload came with the cancellation
    assert sorted(ex["reason_code"]) == ["ADDRESS_INVALID", "DAMAGED_PACKAGE", "PAYMENT_FAILED", "PICK_DELAY"]
    for code, opened in (("ADDRESS_INVALID", "2025-08-01 10:00"), ("PAYMENT_FAILED", "2025-08-01 10:00"),
                         ("PICK_DELAY", "2025-08-01 12:00")):  # fmt: skip
        r = row(ex, code)
        assert (r["opened_at"], r["status"], r["resolved_at"], r["resolution"]) == (
            ts(opened), "RESOLVED", ts("2025-08-01 13:00"), "order_cancelled"
        )
    r = row(ex, "DAMAGED_PACKAGE")
    assert (r["status"], r["holds_billing"]) == ("OPEN", True)


def test_a_return_stops_sla_clocks_and_caps_the_delivery_overrun():
    events = [{"event_type": "returned_to_sender", "occurred_at": "2025-08-05 12:00"}]
    sla = sla_frame([{"clock": "delivery", "started_at": "2025-08-01 10:00", "limit_minutes": 72 * 60.0}])
    ex = run(events, sla=sla, as_of="2025-08-10 00:00")
    assert_exception(row(ex, "DELIVERY_DELAY"), "HIGH", "sla", "2025-08-04 10:00", "RESOLVED",
                     "2025-08-05 12:00", "order_returned")  # fmt: skip


# ------------------------------------------------------------------------------ contract, idempotence


def _mixed_case():
    events = [
        created(financial_status="pending", ship_zip="00000"),
        {"event_type": "order_paid", "occurred_at": "2025-08-01 10:30"},
        {"event_type": "delivery_failed", "occurred_at": "2025-08-02 10:00"},
        {"event_type": "delivered", "occurred_at": "2025-08-02 18:00"},
        {"event_type": "delivered", "occurred_at": "2025-08-02 19:00"},
        created(order_id="2", occurred_at="2025-08-01 09:00"),
        {"order_id": "2", "event_type": "exception_reported", "occurred_at": "2025-08-01 11:00", "reason_code": "STOCK_MISMATCH"},
        {"order_id": "9", "event_type": "exception_reported", "occurred_at": "2025-07-31 23:00", "reason_code": "OTHER"},
    ]  # fmt: skip
    orders = orders_frame([{"picked_at": "2025-08-01 11:00", "packed_at": "2025-08-01 18:00"},
                           {"order_id": "2", "cohort_day": dt.date(2025, 8, 1)}])  # fmt: skip
    sla = sla_frame([{"clock": "pick", "started_at": "2025-08-01 08:00", "limit_minutes": 120.0, "ended_at": "2025-08-01 11:00"}])
    return make_events(events), orders, sla


def test_output_contract_and_cohort_day():
    events, orders, sla = _mixed_case()
    ex = build_exceptions(events, orders, sla, ts("2025-08-03 00:00"), None)
    assert list(ex.columns) == EXCEPTION_COLUMNS
    assert str(ex["opened_at"].dtype) == str(ex["resolved_at"].dtype) == str(ex["as_of"].dtype) == "datetime64[ns, UTC]"
    assert ex["holds_billing"].dtype == bool
    assert not ex.duplicated(["tenant", "order_id", "reason_code"]).any()
    days = dict(zip(ex["order_id"], ex["cohort_day"]))
    assert days == {"1001": DAY, "2": DAY, "9": dt.date(2025, 7, 31)}  # order 9 is unknown to orders: first event
    assert all(type(d) is dt.date for d in ex["cohort_day"])
    assert sorted(zip(ex["order_id"], ex["reason_code"], ex["status"])) == [
        ("1001", "ADDRESS_INVALID", "OPEN"), ("1001", "CARRIER_ISSUE", "RESOLVED"),
        ("1001", "MISSING_SCAN", "RESOLVED"), ("1001", "PAYMENT_FAILED", "RESOLVED"),
        ("1001", "PICK_DELAY", "RESOLVED"), ("2", "STOCK_MISMATCH", "OPEN"), ("9", "OTHER", "OPEN"),
    ]  # fmt: skip
    assert row(ex, "CARRIER_ISSUE")["resolved_at"] == ts("2025-08-02 18:00")  # the first delivery


def test_cohort_day_of_an_order_missing_from_orders_comes_from_the_events_cohort_day_column():
    events = make_events(
        [
            {"order_id": "9", "event_type": "exception_reported", "occurred_at": "2025-08-01 23:00", "reason_code": "OTHER"},
            {"order_id": "8", "event_type": "exception_reported", "occurred_at": "2025-08-01 23:00", "reason_code": "OTHER"},
        ]
    )  # fmt: skip
    events["cohort_day"] = [dt.date(2025, 7, 30), None]  # webhook_events carries the order's cohort day
    ex = build_exceptions(events, None, None, ts("2025-08-02 00:00"), None)
    assert dict(zip(ex["order_id"], ex["cohort_day"])) == {"9": dt.date(2025, 7, 30), "8": DAY}


def test_same_inputs_give_identical_rows_whatever_the_event_order():
    events, orders, sla = _mixed_case()
    as_of = ts("2025-08-03 00:00")
    first = build_exceptions(events, orders, sla, as_of, None)
    pd.testing.assert_frame_equal(first, build_exceptions(events, orders, sla, as_of, None))
    shuffled = events.sample(frac=1.0, random_state=7)
    pd.testing.assert_frame_equal(first, build_exceptions(shuffled, orders.iloc[::-1], sla, as_of, None))
    redelivered = pd.concat([events, events.iloc[:3]], ignore_index=True)  # same (tenant, source, event_id)
    pd.testing.assert_frame_equal(first, build_exceptions(redelivered, orders, sla, as_of, None))


def test_empty_inputs_give_an_empty_frame_with_the_contract_columns():
    ex = build_exceptions(make_events([]), orders_frame([]).iloc[:0], None, ts("2025-08-01 00:00"), None)
    assert list(ex.columns) == EXCEPTION_COLUMNS and ex.empty
    with pytest.raises(ValueError, match="timezone-aware"):
        build_exceptions(make_events([]), None, None, pd.Timestamp("2025-08-01"), None)


def test_with_build_orders_and_build_order_sla():
    orders_mod = pytest.importorskip("e2a_assets.domain.orders")
    sla_mod = pytest.importorskip("e2a_assets.domain.sla")
    registry = TenantRegistry((default_policy(T),))
    events = make_events(
        [
            created(),  # paid at 10:00 by payload
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 13:00"},  # pick deadline 12:00
        ]
    )
    as_of = ts("2025-08-01 18:00")
    orders = orders_mod.build_orders(events, as_of, registry.policy_frame())
    sla = sla_mod.build_order_sla(orders, as_of, registry.policy_frame())
    ex = build_exceptions(events, orders, sla, as_of, registry)
    assert sorted(zip(ex["reason_code"], ex["status"], ex["opened_at"])) == [
        ("MISSING_SCAN", "OPEN", ts("2025-08-01 17:30")),
        ("PACK_DELAY", "OPEN", ts("2025-08-01 16:00")),
        ("PICK_DELAY", "RESOLVED", ts("2025-08-01 12:00")),
    ]


# -------------------------------------------------------------------------------------- prioritize


def exc_frame(rows: list[dict]) -> pd.DataFrame:
    recs = []
    for n, r in enumerate(rows):
        rec = {"tenant": T, "order_id": f"o{n}", "cohort_day": DAY, "reason_code": "OTHER", "severity": "MEDIUM",
               "source": "reported", "opened_at": None, "status": "OPEN", "resolved_at": None, "resolution": None,
               "holds_billing": False, "as_of": "2025-08-02 12:00"}  # fmt: skip
        rec.update(r)
        recs.append(rec)
    frame = pd.DataFrame(recs, columns=EXCEPTION_COLUMNS)
    for c in ("opened_at", "resolved_at", "as_of"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


AS_OF = ts("2025-08-02 12:00")


def test_priority_scores_and_categories_at_the_boundaries():
    ex = exc_frame(
        [
            {"order_id": "crit", "severity": "CRITICAL", "reason_code": "SYSTEM_ERROR", "opened_at": "2025-08-02 11:00"},
            {"order_id": "high8", "severity": "HIGH", "opened_at": "2025-08-02 04:00"},  # 8 h
            {"order_id": "high7.5", "severity": "HIGH", "opened_at": "2025-08-02 04:30"},  # 7.5 h: exactly 120
            {"order_id": "med3", "severity": "MEDIUM", "opened_at": "2025-08-02 09:00"},  # exactly 3 h
            {"order_id": "med3.5", "severity": "MEDIUM", "opened_at": "2025-08-02 08:30"},  # 3.5 h
            {"order_id": "med30", "severity": "MEDIUM", "opened_at": "2025-08-01 06:00"},  # 30 h
            {"order_id": "low30", "severity": "LOW", "opened_at": "2025-08-01 06:00"},
            {"order_id": "low1", "severity": "LOW", "opened_at": "2025-08-02 11:00"},
        ]
    )  # fmt: skip
    p = prioritize(ex, AS_OF)
    assert list(p.columns) == PRIORITY_COLUMNS
    got = {o: (a, s, c) for o, a, s, c in zip(p["order_id"], p["age_hours"], p["score"], p["category"])}
    assert got == {
        "crit": (1.0, 102.0, "critical_urgent"),
        "high8": (8.0, 121.0, "high_impact"),
        "high7.5": (7.5, 120.0, "sla_risk"),
        "med3": (3.0, 56.0, "standard"),
        "med3.5": (3.5, 87.0, "sla_risk"),
        "med30": (30.0, 130.0, "high_impact"),
        "low30": (30.0, 105.0, "sla_risk"),
        "low1": (1.0, 27.0, "standard"),
    }
    assert list(p["order_id"]) == ["med30", "high8", "high7.5", "low30", "crit", "med3.5", "med3", "low1"]
    assert list(p["rank"]) == list(range(1, 9))


def test_prioritize_keeps_only_exceptions_open_at_as_of_and_breaks_ties_by_opened_at_then_order():
    ex = exc_frame(
        [
            {"order_id": "b", "severity": "HIGH", "opened_at": "2025-08-01 06:00"},
            {"order_id": "a", "severity": "HIGH", "opened_at": "2025-08-01 06:00"},
            {"order_id": "c", "severity": "HIGH", "opened_at": "2025-08-01 05:00"},  # same capped score, older
            {"order_id": "done", "status": "RESOLVED", "opened_at": "2025-08-01 06:00", "resolved_at": "2025-08-01 07:00"},
            {"order_id": "later", "status": "RESOLVED", "opened_at": "2025-08-02 10:00", "resolved_at": "2025-08-02 13:00"},
            {"order_id": "future", "opened_at": "2025-08-02 12:01"},
            {"tenant": "acme", "order_id": "z", "severity": "LOW", "opened_at": "2025-08-02 11:00"},
        ]
    )  # fmt: skip
    p = prioritize(ex, AS_OF)
    assert list(zip(p["tenant"], p["order_id"], p["score"], p["rank"])) == [
        (T, "c", 155.0, 1), (T, "a", 155.0, 2), (T, "b", 155.0, 3), (T, "later", 54.0, 4), ("acme", "z", 27.0, 1)
    ]  # fmt: skip
    assert (p["status"] == "OPEN").all() and p["resolved_at"].isna().all()
    assert prioritize(ex.iloc[:0], AS_OF).empty


def test_rank_numbers_each_tenants_queue_within_its_cohort_day():
    """A cohort day's ranks do not depend on which other days were prioritised with it."""
    earlier = DAY - dt.timedelta(days=1)
    ex = exc_frame([
        {"order_id": "old", "cohort_day": earlier, "severity": "HIGH", "opened_at": "2025-08-01 06:00"},
        {"order_id": "new1", "severity": "HIGH", "opened_at": "2025-08-02 06:00"},
        {"order_id": "new2", "severity": "LOW", "opened_at": "2025-08-02 07:00"},
    ])  # fmt: skip
    together = prioritize(ex, AS_OF)
    alone = prioritize(ex[ex["cohort_day"] == DAY], AS_OF)
    assert dict(zip(together["order_id"], together["rank"])) == {"old": 1, "new1": 1, "new2": 2}
    assert dict(zip(alone["order_id"], alone["rank"])) == {"new1": 1, "new2": 2}


def test_prioritize_risk_threshold_follows_the_tenants_response_hours_when_given():
    ex = exc_frame([{"order_id": "m", "severity": "MEDIUM", "opened_at": "2025-08-02 07:00"}])  # 5 h
    registry = TenantRegistry((default_policy(T, sla={"response_hours": 8}),))  # risk after 6 h
    assert prioritize(ex, AS_OF).iloc[0][["score", "category"]].tolist() == [90.0, "sla_risk"]
    assert prioritize(ex, AS_OF, registry).iloc[0][["score", "category"]].tolist() == [60.0, "standard"]


# ------------------------------------------------------------------------------------ plan_actions


def test_one_action_per_exception_with_outcome_from_its_status():
    codes = ["MISSING_SCAN", "ADDRESS_INVALID", "PAYMENT_FAILED", "CARRIER_ISSUE", "DELIVERY_DELAY",
             "CUSTOMER_UNAVAILABLE", "DAMAGED_PACKAGE", "PICK_DELAY", "OTHER"]  # fmt: skip
    done = {"status": "RESOLVED", "resolved_at": "2025-08-02 11:00"}
    ex = exc_frame(
        [{"order_id": "1", "reason_code": c, "opened_at": "2025-08-02 10:00", **(done if c == "ADDRESS_INVALID" else {})}
         for c in codes]
    )  # fmt: skip
    a = plan_actions(ex)
    assert list(a.columns) == ACTION_COLUMNS
    assert dict(zip(a["reason_code"], zip(a["action"], a["automatable"]))) == {
        "MISSING_SCAN": ("infer_scan", True),
        "ADDRESS_INVALID": ("request_address_fix", True),
        "PAYMENT_FAILED": ("retry_payment", True),
        "CARRIER_ISSUE": ("carrier_escalation", False),
        "DELIVERY_DELAY": ("carrier_escalation", False),
        "CUSTOMER_UNAVAILABLE": ("carrier_escalation", False),
        "DAMAGED_PACKAGE": ("manual_review", False),
        "PICK_DELAY": ("manual_review", False),
        "OTHER": ("manual_review", False),
    }
    assert list(a["outcome"]) == ["pending", "succeeded"] + ["pending"] * 7
    assert a.loc[1, "completed_at"] == ts("2025-08-02 11:00") and a["completed_at"].drop(1).isna().all()
    assert (a["requested_at"] == ts("2025-08-02 10:00")).all()
    assert a.loc[0, "action_key"] == "demo-3pl:1:MISSING_SCAN:infer_scan"


def test_automation_success_rate_is_resolved_automatable_over_automatable():
    done = {"status": "RESOLVED", "resolved_at": "2025-08-02 11:00"}
    ex = exc_frame(
        [{"reason_code": "MISSING_SCAN", "opened_at": "2025-08-02 10:00", **done}] * 2
        + [{"reason_code": "MISSING_SCAN", "opened_at": "2025-08-02 10:00"}]
        + [{"reason_code": "PAYMENT_FAILED", "opened_at": "2025-08-02 10:00"}]
        + [{"reason_code": "CARRIER_ISSUE", "opened_at": "2025-08-02 10:00", **done}]
    )
    s = automation_success(plan_actions(ex))
    assert s.to_dict("records") == [
        {"tenant": T, "reason_code": "MISSING_SCAN", "action": "infer_scan", "automatable": 3, "resolved": 2,
         "pending": 1, "success_rate": pytest.approx(2 / 3)},
        {"tenant": T, "reason_code": "PAYMENT_FAILED", "action": "retry_payment", "automatable": 1, "resolved": 0,
         "pending": 1, "success_rate": 0.0},
    ]  # fmt: skip
    assert np.isclose(s["resolved"].sum() / s["automatable"].sum(), 0.5)


def test_a_redelivered_event_counts_once_as_its_first_received_copy_whatever_the_row_order():
    events = make_events(
        [
            created(),
            {"event_type": "delivery_failed", "occurred_at": "2025-08-01 11:00", "event_id": "dup",
             "received_at": "2025-08-01 11:01"},
            {"event_type": "delivery_failed", "occurred_at": "2025-08-01 09:00", "event_id": "dup",
             "received_at": "2025-08-01 12:01"},
        ]
    )  # fmt: skip
    forward = build_exceptions(events, None, None, ts("2025-08-01 20:00"), None)
    backward = build_exceptions(events.iloc[::-1], None, None, ts("2025-08-01 20:00"), None)
    pd.testing.assert_frame_equal(forward, backward)
    assert list(forward["reason_code"]) == ["CARRIER_ISSUE"]  # one failure, not two
    assert_exception(row(forward, "CARRIER_ISSUE"), "HIGH", "carrier", "2025-08-01 11:00", "OPEN")


@pytest.mark.parametrize("zip_code", ["", "   ", " 99999 ", "invalid"])
def test_an_empty_or_blank_zip_from_a_real_delivery_is_address_invalid(zip_code):
    import json

    from e2a_assets.domain.events import canonicalize
    from e2a_tests.factories import shopify_order

    resource = shopify_order(1001, "2025-08-01T10:00:00Z", shipping_address={"zip": zip_code, "country": "US"})
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Event-Id": "e1"}
    event = canonicalize(T, "shopify", headers, json.dumps(resource).encode())
    assert event.address_valid is False
    ex = build_exceptions(pd.DataFrame([event.row()]), None, None, ts("2025-08-01 20:00"), None)
    assert_exception(row(ex, "ADDRESS_INVALID"), "MEDIUM", "payload", "2025-08-01 10:00", "OPEN")
