"""Orders domain rules (DOMAIN §2, docs/rules/orders-and-sla.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from e2a_assets.domain.orders import ORDER_COLUMNS, build_orders, cohort_days, parse_flags
from e2a_assets.domain.policies import FLAGS, load_registry
from e2a_tests.factories import make_events, ts

ROOT = Path(__file__).resolve().parents[1]
AS_OF = ts("2025-08-10 00:00")


@pytest.fixture(scope="module")
def policies() -> pd.DataFrame:
    return load_registry(ROOT / "policies").policy_frame()


def one(events, policies, as_of=AS_OF) -> pd.Series:
    frame = build_orders(make_events(events), as_of, policies)
    assert len(frame) == 1
    return frame.iloc[0]


def test_full_lifecycle_milestones(policies):
    row = one(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "financial_status": "pending"},
            {"event_type": "order_paid", "occurred_at": "2025-08-01 10:05"},
            {"event_type": "pick_started", "occurred_at": "2025-08-01 10:30"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
            {"event_type": "pack_completed", "occurred_at": "2025-08-01 12:00"},
            {"event_type": "label_created", "occurred_at": "2025-08-01 12:10"},
            {"event_type": "manifested", "occurred_at": "2025-08-01 13:00"},
            {"event_type": "picked_up", "occurred_at": "2025-08-01 12:50"},
            {"event_type": "order_fulfilled", "occurred_at": "2025-08-01 13:30"},
            {"event_type": "in_transit", "occurred_at": "2025-08-02 08:00"},
            {"event_type": "delivered", "occurred_at": "2025-08-03 09:00"},
        ],
        policies,
    )
    assert row["tenant"] == "demo-3pl"
    assert row["order_id"] == "1001"
    assert row["order_name"] == "#1001"
    assert row["cohort_day"] == dt.date(2025, 8, 1)
    assert row["created_at"] == ts("2025-08-01 10:00")
    assert row["paid_at"] == ts("2025-08-01 10:05")
    assert row["picked_at"] == ts("2025-08-01 11:00")
    assert row["packed_at"] == ts("2025-08-01 12:00")
    assert row["labelled_at"] == ts("2025-08-01 12:10")
    assert row["shipped_at"] == ts("2025-08-01 12:50")  # earliest of manifested/picked_up/fulfilled
    assert row["delivered_at"] == ts("2025-08-03 09:00")
    assert pd.isna(row["cancelled_at"]) and pd.isna(row["returned_at"]) and pd.isna(row["delivery_failed_at"])
    assert row["delivery_failed_count"] == 0
    assert row["status"] == "delivered"
    assert row["last_event_at"] == ts("2025-08-03 09:00")
    assert row["event_count"] == 11
    assert bool(row["stalled"]) is False
    assert row["as_of"] == AS_OF


def test_rescans_do_not_move_milestones(policies):
    row = one(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 15:00"},
            {"event_type": "pack_completed", "occurred_at": "2025-08-01 16:00"},
            {"event_type": "pack_completed", "occurred_at": "2025-08-01 17:00"},
        ],
        policies,
    )
    assert row["picked_at"] == ts("2025-08-01 11:00")
    assert row["packed_at"] == ts("2025-08-01 16:00")
    assert row["event_count"] == 5
    assert row["last_event_at"] == ts("2025-08-01 17:00")


def test_out_of_order_events_give_the_same_orders(policies):
    rows = [
        {"event_type": "delivered", "occurred_at": "2025-08-03 09:00", "order_id": "A"},
        {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "order_id": "A"},
        {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "order_id": "A"},
        {"event_type": "pick_completed", "occurred_at": "2025-08-01 10:30", "order_id": "B"},
        {"event_type": "manifested", "occurred_at": "2025-08-01 14:00", "order_id": "A"},
        {"event_type": "order_created", "occurred_at": "2025-08-01 09:00", "order_id": "B"},
    ]
    forward = build_orders(make_events(rows), AS_OF, policies)
    backward = build_orders(make_events(rows[::-1]), AS_OF, policies)
    pd.testing.assert_frame_equal(forward, backward)
    assert list(forward["order_id"]) == ["A", "B"]
    assert list(forward["status"]) == ["delivered", "picked"]
    assert forward.loc[0, "shipped_at"] == ts("2025-08-01 14:00")
    assert forward.loc[1, "picked_at"] == ts("2025-08-01 10:30")


def test_duplicate_deliveries_are_counted_once(policies):
    events = make_events(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "event_id": "e1"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "e2"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "e2"},
        ]
    )
    row = build_orders(events, AS_OF, policies).iloc[0]
    assert row["event_count"] == 2


@pytest.mark.parametrize(
    ("financial_status", "paid_event", "expected_paid"),
    [
        ("paid", None, "2025-08-01 10:00"),  # fallback: created time
        ("PAID", None, "2025-08-01 10:00"),  # case-insensitive
        ("pending", None, None),  # not paid
        ("pending", "2025-08-01 12:00", "2025-08-01 12:00"),
        ("paid", "2025-08-01 12:00", "2025-08-01 12:00"),  # a real order_paid wins over the fallback
    ],
)
def test_paid_fallback(policies, financial_status, paid_event, expected_paid):
    events = [{"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "financial_status": financial_status}]
    if paid_event:
        events.append({"event_type": "order_paid", "occurred_at": paid_event})
    row = one(events, policies)
    if expected_paid is None:
        assert pd.isna(row["paid_at"])
        assert row["status"] == "created"
    else:
        assert row["paid_at"] == ts(expected_paid)
        assert row["status"] == "paid"


def test_paid_fallback_needs_the_order_created_payload(policies):
    # order_updated saying paid is not the order_created payload: no fallback.
    row = one(
        [
            {"event_type": "order_updated", "occurred_at": "2025-08-01 10:00", "financial_status": "paid"},
        ],
        policies,
    )
    assert pd.isna(row["created_at"]) and pd.isna(row["paid_at"])
    assert row["status"] == "created"
    assert row["financial_status"] == "paid"


LIFECYCLE = [
    ("order_created", "created"),
    ("order_paid", "paid"),
    ("pick_completed", "picked"),
    ("pack_completed", "packed"),
    ("label_created", "packed"),  # labelled is a milestone, not a status
    ("manifested", "shipped"),
    ("delivered", "delivered"),
    ("return_received", "returned"),
    ("order_cancelled", "cancelled"),
]


@pytest.mark.parametrize("upto", range(len(LIFECYCLE)))
def test_status_precedence_every_status(policies, upto):
    events = [
        {"event_type": etype, "occurred_at": f"2025-08-01 {10 + n:02d}:00", "financial_status": "pending"}
        if etype == "order_created"
        else {"event_type": etype, "occurred_at": f"2025-08-01 {10 + n:02d}:00"}
        for n, (etype, _) in enumerate(LIFECYCLE[: upto + 1])
    ]
    assert one(events, policies)["status"] == LIFECYCLE[upto][1]


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["order_created", "order_cancelled", "delivered", "return_received"], "cancelled"),
        (["order_created", "delivered", "returned_to_sender"], "returned"),
        (["order_created", "returned_to_sender"], "returned"),
        (["order_created", "picked_up", "delivered"], "delivered"),
        (["order_created", "order_fulfilled"], "shipped"),
        (["order_created", "pack_completed"], "packed"),  # no pick scan: still packed
        (["pick_completed"], "picked"),  # no order_created yet
        (["in_transit"], "created"),  # nothing that sets a status
        (["order_created", "delivery_failed"], "paid"),  # side state only
    ],
)
def test_status_first_match(policies, types, expected):
    events = [{"event_type": t, "occurred_at": f"2025-08-01 {10 + n:02d}:00"} for n, t in enumerate(types)]
    assert one(events, policies)["status"] == expected


def test_side_states_delivery_failed_latest_and_count_returned_earliest(policies):
    row = one(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "manifested", "occurred_at": "2025-08-01 14:00"},
            {"event_type": "delivery_failed", "occurred_at": "2025-08-03 09:00"},
            {"event_type": "delivery_failed", "occurred_at": "2025-08-02 09:00"},
            {"event_type": "returned_to_sender", "occurred_at": "2025-08-05 09:00"},
            {"event_type": "return_received", "occurred_at": "2025-08-06 09:00"},
        ],
        policies,
    )
    assert row["delivery_failed_at"] == ts("2025-08-03 09:00")
    assert row["delivery_failed_count"] == 2
    assert row["returned_at"] == ts("2025-08-05 09:00")
    assert row["status"] == "returned"


@pytest.mark.parametrize(
    ("types", "as_of", "stalled"),
    [
        (["order_created"], "2025-08-01 14:00", False),  # exactly 4 h: not stalled
        (["order_created"], "2025-08-01 14:00:01", True),  # 1 s over
        (["order_created", "pick_completed"], "2025-08-01 15:00:01", True),  # latest event 11:00
        (["order_created", "pick_completed"], "2025-08-01 15:00", False),
        (["order_created", "pack_completed"], "2025-08-02 00:00", True),
        (["order_created", "manifested"], "2025-08-09 00:00", False),  # shipped
        (["order_created", "delivered"], "2025-08-09 00:00", False),
        (["order_created", "order_cancelled"], "2025-08-09 00:00", False),
        (["order_created", "manifested", "return_received"], "2025-08-09 00:00", False),  # returned
    ],
)
def test_stalled_boundary(policies, types, as_of, stalled):
    events = [{"event_type": t, "occurred_at": f"2025-08-01 {10 + n:02d}:00"} for n, t in enumerate(types)]
    assert bool(one(events, policies, ts(as_of))["stalled"]) is stalled


def test_stalled_uses_the_tenant_stalled_hours(policies):
    custom = policies.copy()
    custom.loc[custom["tenant"] == "northwind-goods", "stalled_hours"] = 1.5
    events = make_events(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tenant": "demo-3pl", "order_id": "d"},
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tenant": "northwind-goods", "order_id": "n"},
        ]
    )
    frame = build_orders(events, ts("2025-08-01 11:31"), custom).set_index("tenant")
    assert bool(frame.loc["demo-3pl", "stalled"]) is False
    assert bool(frame.loc["northwind-goods", "stalled"]) is True


def test_cohort_day_from_created_at_payload(policies):
    # created_at late on 31 July, webhook triggered after midnight: cohort is 31 July.
    row = one(
        [
            {
                "event_type": "order_created",
                "occurred_at": "2025-08-01 00:10",
                "order_created_at": pd.Timestamp("2025-07-31 23:30", tz="UTC"),
            },
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 02:00"},
        ],
        policies,
    )
    assert row["cohort_day"] == dt.date(2025, 7, 31)
    assert row["created_at"] == ts("2025-08-01 00:10")  # the milestone is the event time


def test_cohort_day_fallback_earliest_occurred_at(policies):
    events = make_events(
        [
            {"event_type": "pack_completed", "occurred_at": "2025-08-03 01:00", "order_id": "X"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-02 23:59", "order_id": "X"},
            {"event_type": "order_created", "occurred_at": "2025-08-05 10:00", "order_id": "Y"},
        ]
    )
    expected = pd.DataFrame(
        {"tenant": ["demo-3pl", "demo-3pl"], "order_id": ["X", "Y"], "cohort_day": [dt.date(2025, 8, 2), dt.date(2025, 8, 5)]}
    )
    pd.testing.assert_frame_equal(cohort_days(events), expected)
    assert list(build_orders(events, AS_OF, policies)["cohort_day"]) == [dt.date(2025, 8, 2), dt.date(2025, 8, 5)]


def test_flags_parsed_case_insensitive_trimmed(policies):
    row = one(
        [{"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tags": " Rush, FRAGILE ,vip, gift_wrap,rushed"}],
        policies,
    )
    assert row["flags"] == "fragile,gift_wrap,rush"
    assert {f: bool(row[f"flag_{f}"]) for f in FLAGS} == {
        "rush": True,
        "oversized": False,
        "hazmat": False,
        "fragile": True,
        "gift_wrap": True,
        "photo": False,
        "quality_check": False,
        "custom_packaging": False,
    }


def test_parse_flags_empty_and_missing_tags():
    out = parse_flags(pd.Series(["", None, "HAZMAT", "photo,quality_check,custom_packaging,oversized"]))
    assert list(out["flags"]) == ["", "", "hazmat", "custom_packaging,oversized,photo,quality_check"]
    assert list(out["flag_hazmat"]) == [False, False, True, False]
    assert list(out["flag_oversized"]) == [False, False, False, True]


def test_latest_payload_fields(policies):
    row = one(
        [
            {
                "event_type": "order_created",
                "occurred_at": "2025-08-01 10:00",
                "financial_status": "pending",
                "tags": "rush",
                "total_price_cents": 5000,
            },
            # later order_updated: bad address, new tags, new total
            {
                "event_type": "order_updated",
                "occurred_at": "2025-08-01 11:00",
                "ship_zip": "00000",
                "address_valid": False,
                "tags": "fragile",
                "total_price_cents": 7500,
            },
            # order_paid: no address in this payload -> address fields stay from order_updated
            {"event_type": "order_paid", "occurred_at": "2025-08-01 12:00", "financial_status": "paid"},
            # order_cancelled's payload is not one of the latest-payload sources
            {"event_type": "order_cancelled", "occurred_at": "2025-08-01 13:00", "financial_status": "voided"},
        ],
        policies,
    )
    assert row["financial_status"] == "paid"
    assert row["ship_zip"] == "00000"
    assert bool(row["address_valid"]) is False
    assert row["total_price_cents"] == 7500
    assert row["currency"] == "USD"
    assert row["shipping_code"] == "standard"
    assert row["flags"] == "fragile"
    assert bool(row["flag_rush"]) is False
    assert row["status"] == "cancelled"


def test_address_valid_missing_when_no_payload_has_an_address(policies):
    row = one([{"event_type": "pick_completed", "occurred_at": "2025-08-01 10:00"}], policies)
    assert pd.isna(row["address_valid"])
    assert row["order_name"] is None and row["financial_status"] is None
    assert pd.isna(row["total_price_cents"])
    assert row["flags"] == ""


def test_output_columns_and_dtypes(policies):
    frame = build_orders(
        make_events([{"event_type": "order_created", "occurred_at": "2025-08-01 10:00"}]), AS_OF, policies
    )
    assert list(frame.columns) == ORDER_COLUMNS
    for col in ("created_at", "paid_at", "shipped_at", "delivery_failed_at", "last_event_at", "as_of"):
        assert str(frame[col].dtype) == "datetime64[ns, UTC]"
    assert frame["stalled"].dtype == bool and frame["flag_rush"].dtype == bool
    assert frame["event_count"].dtype == "int64" and frame["delivery_failed_count"].dtype == "int64"
    assert str(frame["total_price_cents"].dtype) == "Int64"
    assert str(frame["address_valid"].dtype) == "boolean"
    assert isinstance(frame.loc[0, "cohort_day"], dt.date)


def test_empty_events_give_empty_typed_frame(policies):
    empty = make_events([])
    frame = build_orders(empty, AS_OF, policies)
    assert frame.empty
    assert list(frame.columns) == ORDER_COLUMNS
    typed = build_orders(make_events([{"event_type": "order_created", "occurred_at": "2025-08-01 10:00"}]), AS_OF, policies)
    pd.testing.assert_series_equal(frame.dtypes, typed.dtypes)
    assert list(cohort_days(empty).columns) == ["tenant", "order_id", "cohort_day"]
    assert cohort_days(empty).empty


def test_unknown_tenant_raises(policies):
    events = make_events([{"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tenant": "ghost-3pl"}])
    with pytest.raises(ValueError, match="ghost-3pl"):
        build_orders(events, AS_OF, policies)


def test_naive_as_of_is_refused(policies):
    events = make_events([{"event_type": "order_created", "occurred_at": "2025-08-01 10:00"}])
    with pytest.raises(ValueError, match="timezone-aware"):
        build_orders(events, pd.Timestamp("2025-08-10"), policies)


def test_same_events_same_as_of_identical_output(policies):
    events = make_events(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tags": "rush"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
        ]
    )
    pd.testing.assert_frame_equal(build_orders(events, AS_OF, policies), build_orders(events.copy(), AS_OF, policies))


def test_redelivered_event_keeps_the_first_received_copy_whatever_the_row_order(policies):
    # Same (tenant, source, event_id) twice with different content: the log stores the first
    # delivery, so the first received copy counts, in any row order.
    events = make_events(
        [
            {"event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "dup",
             "received_at": "2025-08-01 11:01"},
            {"event_type": "pick_completed", "occurred_at": "2025-08-01 12:00", "event_id": "dup",
             "received_at": "2025-08-01 12:01"},
        ]
    )  # fmt: skip
    forward = build_orders(events, AS_OF, policies)
    backward = build_orders(events.iloc[::-1], AS_OF, policies)
    pd.testing.assert_frame_equal(forward, backward)
    assert forward.iloc[0]["picked_at"] == ts("2025-08-01 11:00")
    assert forward.iloc[0]["event_count"] == 2


def test_cohort_day_rule_prefers_the_payload_created_at_and_falls_back_to_the_first_event():
    from e2a_assets.domain.orders import cohort_day

    created = pd.Series(["2025-07-31T23:50:00+00:00", None, "2025-08-01 04:00:00-05:00"], dtype=object)
    first = pd.Series(pd.to_datetime(["2025-08-01 00:05", "2025-08-02 10:00", "2025-07-30 10:00"], utc=True))
    assert [str(d) for d in cohort_day(created, first)] == ["2025-07-31", "2025-08-02", "2025-08-01"]
