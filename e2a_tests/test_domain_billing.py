"""Billing rules (DOMAIN §5): billable orders, amounts and lines, numbering, validation checks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2a_assets.domain.billing import (
    BILLABLE_COLUMNS,
    LINE_COLUMNS,
    COMPLETED_COLUMNS,
    TOTAL_COLUMNS,
    build_billable_orders,
    build_completed_orders,
    mul_floor,
    plan_invoice_numbers,
    price_orders,
    ratio,
)
from e2a_assets.domain.invoice_validation import (
    validate_amounts_non_negative,
    validate_due_dates,
    validate_invoice_amounts,
    validate_invoice_coverage,
    validate_invoice_numbers,
)
from e2a_assets.domain.policies import FLAGS, TenantRegistry, default_policy, load_registry
from e2a_tests.factories import make_events, ts

POLICIES_DIR = Path(__file__).resolve().parents[1] / "policies"


@pytest.fixture(scope="module")
def registry() -> TenantRegistry:
    return load_registry(POLICIES_DIR)


ORDER_TS = ("created_at", "picked_at", "shipped_at", "delivered_at", "cancelled_at")


def make_orders(rows: list[dict]) -> pd.DataFrame:
    """Orders frame by hand (docs/internals.md columns that billing reads)."""
    records = []
    for row in rows:
        rec = {"tenant": "demo-3pl", "created_at": "2025-08-01 10:00", **row}
        for col in ORDER_TS:
            rec.setdefault(col, None)
        flags = rec.pop("flag_list", ())
        for f in FLAGS:
            rec[f"flag_{f}"] = f in flags
        rec["flags"] = ",".join(sorted(flags))
        records.append(rec)
    frame = pd.DataFrame(records)
    for col in ORDER_TS:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["cohort_day"] = frame["created_at"].dt.date
    frame["currency"] = "USD"
    return frame


def billable_rows(rows: list[dict]) -> pd.DataFrame:
    """A `build_billable_orders`-shaped frame for pricing tests."""
    records = []
    for n, row in enumerate(rows):
        rec = {
            "tenant": "demo-3pl", "order_id": f"o{n}", "cohort_day": date(2025, 8, 1),
            "created_at": ts("2025-08-01 10:00"), "billable_at": ts("2025-08-02 10:00"),
            "billable_basis": "shipped", "invoice_date": date(2025, 8, 2), "billable": True, "held": False,
            "hold_reasons": "", "picks": 0, "packs": 0, "labels": 0, "kitting": 0, "returns": 0,
            "storage_days": 1, "currency": "USD",
        }  # fmt: skip
        flags = row.pop("flags", ())
        rec.update(row)
        for f in FLAGS:
            rec[f"flag_{f}"] = f in flags
        rec["flags"] = ",".join(sorted(flags))
        records.append(rec)
    return pd.DataFrame(records, columns=BILLABLE_COLUMNS)


def price_one(policies, **row) -> tuple[int, pd.DataFrame]:
    totals, lines = price_orders(billable_rows([row]), policies)
    assert lines["amount_cents"].sum() == totals["amount_cents"].iloc[0]
    return int(totals["amount_cents"].iloc[0]), lines


def line_amounts(lines: pd.DataFrame) -> dict[str, int]:
    return dict(zip(lines["kind"], lines["amount_cents"].astype(int)))


BASIC = {"picks": 1, "packs": 1, "labels": 1, "storage_days": 1}

# ---------------------------------------------------------------------------------------------
# exact arithmetic


def test_ratio_and_mul_floor_are_exact():
    assert ratio(1.2) == (6, 5) and ratio(1.15) == (23, 20) and ratio(2.0) == (2, 1) and ratio(0.05) == (1, 20)
    # float would give floor(100 * 1.15) = 114
    assert mul_floor(np.array([70, 100, 85]), [6, 23, 3], [5, 20, 2]).tolist() == [84, 115, 127]


# ---------------------------------------------------------------------------------------------
# 1. billable orders


def _scenario_events() -> pd.DataFrame:
    rows = [
        # 1001 shipped: 2 picks (one re-delivered duplicate), 1 pack, 1 label, 1 kitting, 1 return
        {"order_id": "1001", "event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tags": "rush"},
        {"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "p1"},
        {"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "p1"},
        {"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:05", "event_id": "p2"},
        {"order_id": "1001", "event_type": "pack_completed", "occurred_at": "2025-08-01 12:00"},
        {"order_id": "1001", "event_type": "label_created", "occurred_at": "2025-08-01 12:10"},
        {"order_id": "1001", "event_type": "kitting_completed", "occurred_at": "2025-08-01 12:20"},
        {"order_id": "1001", "event_type": "manifested", "occurred_at": "2025-08-03 09:59"},
        {"order_id": "1001", "event_type": "return_received", "occurred_at": "2025-08-09 10:00"},
        {"order_id": "1002", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
        {"order_id": "1003", "event_type": "order_created", "occurred_at": "2025-08-01 10:00"},
        {"order_id": "1004", "event_type": "pick_completed", "occurred_at": "2025-08-02 11:00"},
        {"order_id": "1005", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
        {"order_id": "1006", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00"},
    ]
    return make_events(rows)


def _scenario_orders() -> pd.DataFrame:
    return make_orders([
        {"order_id": "1001", "picked_at": "2025-08-01 11:00", "shipped_at": "2025-08-03 09:59",
         "delivered_at": "2025-08-05 10:00", "flag_list": ("rush",)},
        # cancelled after picking: billed for the pick, on the cancellation day
        {"order_id": "1002", "picked_at": "2025-08-01 11:00", "cancelled_at": "2025-08-03 10:00"},
        # cancelled before picking: never billed
        {"order_id": "1003", "cancelled_at": "2025-08-01 10:30"},
        {"order_id": "1004", "picked_at": "2025-08-02 11:00", "cancelled_at": "2025-08-02 10:00"},
        # delivered with no shipping scan: delivered time; held by open exceptions
        {"order_id": "1005", "picked_at": "2025-08-01 11:00", "delivered_at": "2025-08-04 23:30"},
        # picked only (not shipped): not billable yet
        {"order_id": "1006", "picked_at": "2025-08-01 11:00"},
        # resolved blocking exception and an open non-blocking one do not hold
        {"order_id": "1007", "shipped_at": "2025-08-01 09:00", "created_at": "2025-08-01 10:00"},
    ])  # fmt: skip


def _scenario_exceptions() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("demo-3pl", "1005", "SYSTEM_ERROR", "OPEN"),
            ("demo-3pl", "1005", "STOCK_MISMATCH", "OPEN"),
            ("demo-3pl", "1005", "PICK_DELAY", "OPEN"),
            ("demo-3pl", "1007", "DAMAGED_PACKAGE", "RESOLVED"),
            ("demo-3pl", "1007", "SHIP_DELAY", "OPEN"),
        ],
        columns=["tenant", "order_id", "reason_code", "status"],
    )


def test_build_billable_orders_scenario(registry):
    b = build_billable_orders(_scenario_events(), _scenario_orders(), _scenario_exceptions(), registry)
    assert list(b.columns) == BILLABLE_COLUMNS
    assert b["order_id"].tolist() == ["1001", "1002", "1005", "1007"]
    r = b.set_index("order_id")
    assert r.loc["1001", ["picks", "packs", "labels", "kitting", "returns"]].tolist() == [2, 1, 1, 1, 1]
    assert r.loc["1001", "billable_at"] == ts("2025-08-03 09:59") and r.loc["1001", "billable_basis"] == "shipped"
    assert r.loc["1001", "invoice_date"] == date(2025, 8, 3)
    assert r.loc["1001", "storage_days"] == 1  # 1 day 23 h 59 min floors to 1
    assert bool(r.loc["1001", "flag_rush"]) and r.loc["1001", "flags"] == "rush"
    assert r.loc["1002", "billable_at"] == ts("2025-08-03 10:00") and r.loc["1002", "billable_basis"] == "cancelled"
    assert r.loc["1002", "storage_days"] == 2 and r.loc["1002", "picks"] == 1
    assert r.loc["1005", "billable_basis"] == "delivered" and r.loc["1005", "invoice_date"] == date(2025, 8, 4)
    assert r.loc["1005", "storage_days"] == 3
    assert bool(r.loc["1005", "held"]) and not bool(r.loc["1005", "billable"])
    assert r.loc["1005", "hold_reasons"] == "STOCK_MISMATCH,SYSTEM_ERROR"
    assert not bool(r.loc["1007", "held"]) and bool(r.loc["1007", "billable"]) and r.loc["1007", "hold_reasons"] == ""
    assert r.loc["1007", "storage_days"] == 1  # shipped before created (clock skew): minimum 1
    assert set(b["currency"]) == {"USD"}
    assert b["billable_at"].dtype == "datetime64[ns, UTC]"
    assert b["picks"].dtype == np.int64


def test_holds_are_the_blocking_exceptions_open_at_as_of(registry):
    """A billing run evaluated at 2025-08-05 12:00 sees the holds of that moment, whenever the
    exceptions table was last refreshed."""
    exceptions = pd.DataFrame(
        [
            ("1001", "STOCK_MISMATCH", "RESOLVED", "2025-08-02 10:00", "2025-08-06 09:00"),  # open then
            ("1002", "DAMAGED_PACKAGE", "RESOLVED", "2025-08-02 10:00", "2025-08-05 11:59"),  # resolved by then
            ("1005", "SYSTEM_ERROR", "OPEN", "2025-08-05 12:01", None),  # not opened yet
            ("1007", "SYSTEM_ERROR", "OPEN", "2025-08-05 12:00", None),  # opened at as_of: open
            ("1007", "DAMAGED_PACKAGE", "OPEN", "2025-08-01 08:00", None),
            ("1007", "PICK_DELAY", "OPEN", "2025-08-01 08:00", None),  # not a blocking code
        ],
        columns=["order_id", "reason_code", "status", "opened_at", "resolved_at"],
    ).assign(tenant="demo-3pl")
    b = build_billable_orders(_scenario_events(), _scenario_orders(), exceptions, registry,
                              as_of=ts("2025-08-05 12:00")).set_index("order_id")
    assert b["hold_reasons"].to_dict() == {"1001": "STOCK_MISMATCH", "1002": "", "1005": "",
                                           "1007": "DAMAGED_PACKAGE,SYSTEM_ERROR"}
    assert b["billable"].to_dict() == {"1001": False, "1002": True, "1005": True, "1007": False}
    # Without an evaluation time the stored status decides.
    b = build_billable_orders(_scenario_events(), _scenario_orders(), exceptions, registry).set_index("order_id")
    assert b["hold_reasons"].to_dict() == {"1001": "", "1002": "", "1005": "SYSTEM_ERROR",
                                           "1007": "DAMAGED_PACKAGE,SYSTEM_ERROR"}


def test_completed_orders_are_the_billable_states_with_their_completion():
    """Shipped wins over delivered, delivered over cancelled; cancelled counts only after a pick,
    even with a shipping scan; an order still open is not completed (DOMAIN §5)."""
    orders = make_orders([
        {"order_id": "shipped", "picked_at": "2025-08-01 12:00", "shipped_at": "2025-08-02 10:00",
         "delivered_at": "2025-08-03 09:00"},
        {"order_id": "delivered", "delivered_at": "2025-08-03 09:00"},
        {"order_id": "cancelled_after_pick", "picked_at": "2025-08-01 12:00", "cancelled_at": "2025-08-01 13:00"},
        {"order_id": "cancelled_before_pick", "cancelled_at": "2025-08-01 11:00", "picked_at": "2025-08-01 12:00",
         "shipped_at": "2025-08-02 10:00"},
        {"order_id": "open", "picked_at": "2025-08-01 12:00"},
    ]).assign(order_name="#1", status="x", returned_at=pd.NaT)
    as_of = ts("2025-08-04 00:00")
    done = build_completed_orders(orders, as_of)
    assert list(done.columns) == COMPLETED_COLUMNS
    assert list(zip(done["order_id"], done["completion"], done["completed_at"].astype(str))) == [
        ("shipped", "shipped", "2025-08-02 10:00:00+00:00"),
        ("delivered", "delivered", "2025-08-03 09:00:00+00:00"),
        ("cancelled_after_pick", "cancelled", "2025-08-01 13:00:00+00:00"),
    ]
    billable = build_billable_orders(make_events([]), orders, None, None, as_of)
    assert sorted(billable["order_id"]) == sorted(done["order_id"])
    assert build_completed_orders(orders.iloc[:0], as_of).columns.tolist() == COMPLETED_COLUMNS


def test_build_billable_orders_empty_and_no_exceptions(registry):
    assert build_billable_orders(_scenario_events(), _scenario_orders().iloc[0:0], None, registry).empty
    b = build_billable_orders(_scenario_events(), _scenario_orders(), None, registry)
    assert b["held"].sum() == 0 and b["billable"].all()


def test_storage_days_long_stay(registry):
    orders = make_orders([{"order_id": "9", "picked_at": "2025-05-01 11:00", "created_at": "2025-05-01 10:00",
                           "shipped_at": "2025-08-09 10:00"}])  # fmt: skip
    b = build_billable_orders(make_events([]), orders, None, registry)
    assert b["storage_days"].tolist() == [100]


# ---------------------------------------------------------------------------------------------
# 2. amounts and lines (DOMAIN §5 examples and each step)


def test_domain_example_basic(registry):
    amount, lines = price_one(registry, **BASIC)
    assert amount == 70
    assert list(lines.columns) == LINE_COLUMNS
    assert lines["kind"].tolist() == ["pick", "pack", "label", "storage"]
    assert lines["line_no"].tolist() == [1, 2, 3, 4]
    assert lines[["quantity", "unit_cents", "amount_cents"]].values.tolist() == [[1, 30, 30], [1, 20, 20], [1, 15, 15], [1, 5, 5]]


def test_domain_example_rush(registry):
    amount, lines = price_one(registry, **BASIC, flags=("rush",))
    assert amount == 140
    assert line_amounts(lines)["multiplier_rush"] == 70


def test_domain_example_bigger_order(registry):
    amount, lines = price_one(registry, picks=10, packs=8, labels=5, storage_days=30)
    assert amount == 685
    assert line_amounts(lines) == {"pick": 300, "pack": 160, "label": 75, "storage": 150}


@pytest.mark.parametrize(
    ("flag", "expected"), [("rush", 140), ("oversized", 105), ("hazmat", 210), ("fragile", 84)]
)
def test_each_multiplier(registry, flag, expected):
    amount, lines = price_one(registry, **BASIC, flags=(flag,))
    assert amount == expected
    assert line_amounts(lines)[f"multiplier_{flag}"] == expected - 70


def test_all_multipliers_stacked_in_order(registry):
    amount, lines = price_one(registry, **BASIC, flags=("fragile", "hazmat", "rush", "oversized"))
    assert amount == 756  # 70 -> 140 -> 210 -> 630 -> 756
    mult = lines[lines["kind"].str.startswith("multiplier_")]
    assert mult["kind"].tolist() == ["multiplier_rush", "multiplier_oversized", "multiplier_hazmat", "multiplier_fragile"]
    assert mult["amount_cents"].tolist() == [70, 70, 420, 126]


def test_multipliers_floor_after_each_step(registry):
    # 85 (4 storage days) -> x1.5 = 127.5 -> 127 -> x1.2 = 152.4 -> 152 (not floor(85 x 1.8) = 153)
    amount, lines = price_one(registry, picks=1, packs=1, labels=1, storage_days=4, flags=("oversized", "fragile"))
    assert amount == 152
    assert line_amounts(lines)["multiplier_oversized"] == 42 and line_amounts(lines)["multiplier_fragile"] == 25
    # 85 -> 127 -> 381 -> 457.2 -> 457 (not floor(85 x 5.4) = 459)
    amount, _ = price_one(registry, picks=1, packs=1, labels=1, storage_days=4, flags=("oversized", "hazmat", "fragile"))
    assert amount == 457


def test_all_multipliers_with_odd_tariff():
    odd = TenantRegistry((default_policy("demo-3pl", tariff={"pick_cents": 33}),))
    # 2 x 33 + 5 = 71 -> 142 -> 213 -> 639 -> 766.8 -> 766
    amount, lines = price_one(odd, picks=2, storage_days=1, flags=("rush", "oversized", "hazmat", "fragile"))
    assert amount == 766
    assert lines["amount_cents"].tolist() == [66, 5, 71, 71, 426, 127]


def test_decimal_factor_is_exact_not_float():
    # floor(100 * 1.15) in floats is 114; the rule gives 115.
    custom = TenantRegistry((default_policy("demo-3pl", tariff={"multipliers": {"fragile": 1.15}}),))
    amount, _ = price_one(custom, picks=2, packs=1, labels=1, storage_days=1, flags=("fragile",))
    assert amount == 115


def test_minimum_top_up_before_multipliers(registry):
    amount, lines = price_one(registry, picks=1, storage_days=1)
    assert amount == 50
    assert line_amounts(lines) == {"pick": 30, "storage": 5, "minimum_top_up": 15}
    amount, lines = price_one(registry, picks=1, storage_days=1, flags=("rush",))
    assert amount == 100
    assert line_amounts(lines) == {"pick": 30, "storage": 5, "minimum_top_up": 15, "multiplier_rush": 50}
    amount, lines = price_one(registry, picks=1, packs=1, storage_days=1)  # 55: no top-up
    assert amount == 55 and "minimum_top_up" not in line_amounts(lines)


def test_long_term_storage(registry):
    amount, lines = price_one(registry, **{**BASIC, "storage_days": 100})
    assert amount == 65 + 90 * 5 + 10 * 10  # 615
    st = lines.set_index("kind").loc[["storage", "storage_long_term"], ["quantity", "unit_cents", "amount_cents"]]
    assert st.values.tolist() == [[90, 5, 450], [10, 10, 100]]
    amount, lines = price_one(registry, **{**BASIC, "storage_days": 90})
    assert amount == 65 + 450 and "storage_long_term" not in line_amounts(lines)
    amount, _ = price_one(registry, **{**BASIC, "storage_days": 91})
    assert amount == 65 + 450 + 10


def test_returns(registry):
    amount, lines = price_one(registry, **BASIC, returns=2)
    assert amount == 70 + 2 * 250
    row = lines[lines["kind"] == "returns"].iloc[0]
    assert (row["quantity"], row["unit_cents"], row["amount_cents"]) == (2, 250, 500)
    assert row["description"] == "returns (processing 75 + restock 150 + label 25)"


def test_services(registry):
    amount, lines = price_one(registry, **BASIC, flags=("gift_wrap", "photo", "quality_check", "custom_packaging"))
    assert amount == 70 + 100 + 25 + 50 + 200
    assert [k for k in lines["kind"] if k.startswith("service_")] == [
        "service_gift_wrap", "service_photo", "service_quality_check", "service_custom_packaging"
    ]  # fmt: skip
    amount, _ = price_one(registry, **BASIC, flags=("photo",))
    assert amount == 95


def test_kitting_and_services_before_multipliers(registry):
    amount, lines = price_one(registry, **BASIC, kitting=2, returns=1, flags=("gift_wrap", "rush"))
    assert amount == 2 * (70 + 100 + 100 + 250)
    assert lines["kind"].tolist() == [
        "pick", "pack", "label", "kitting", "storage", "service_gift_wrap", "returns", "multiplier_rush"
    ]  # fmt: skip


def test_tenant_tariff_override_northwind(registry):
    row = {**BASIC, "tenant": "northwind-goods"}
    amount, lines = price_one(registry, **row)
    assert amount == 35 + 20 + 15 + 4  # pick 35 and storage 4/day for northwind
    assert line_amounts(lines)["pick"] == 35
    amount, _ = price_one(registry, tenant="northwind-goods", picks=10, packs=8, labels=5, storage_days=30)
    assert amount == 350 + 160 + 75 + 120


def test_policy_frame_input_matches_registry(registry):
    frame = billable_rows([{**BASIC, "flags": ("rush",)}, {**BASIC, "tenant": "northwind-goods"}])
    t1, l1 = price_orders(frame, registry)
    t2, l2 = price_orders(frame, registry.policy_frame())
    pd.testing.assert_frame_equal(t1, t2)
    pd.testing.assert_frame_equal(l1, l2)


def test_totals_and_lines_for_many_orders(registry):
    frame = billable_rows([
        {**BASIC},
        {"picks": 10, "packs": 8, "labels": 5, "storage_days": 30, "flags": ("hazmat",)},
        {"picks": 1, "storage_days": 200, "returns": 3, "flags": ("photo", "fragile", "oversized")},
        {"picks": 1, "held": True, "billable": False},
    ])  # fmt: skip
    totals, lines = price_orders(frame, registry)
    assert list(totals.columns) == TOTAL_COLUMNS
    # 3rd: 30 + (90 x 5 + 110 x 10) + 25 + 3 x 250 = 2355 -> x1.5 = 3532 -> x1.2 = 4238
    assert totals["amount_cents"].tolist() == [70, 2055, 4238, 50]
    sums = lines.groupby("order_id")["amount_cents"].sum()
    assert (sums.reindex(totals["order_id"]).to_numpy() == totals["amount_cents"].to_numpy()).all()
    assert (lines.groupby("order_id")["line_no"].apply(lambda s: s.tolist() == list(range(1, len(s) + 1)))).all()
    assert totals["amount_cents"].dtype == np.int64 and lines["amount_cents"].dtype == np.int64
    assert bool(totals.loc[3, "held"])  # held orders are priced too (amount on hold)


def test_price_orders_empty(registry):
    totals, lines = price_orders(billable_rows([]).iloc[0:0], registry)
    assert totals.empty and lines.empty and list(lines.columns) == LINE_COLUMNS


def test_end_to_end_events_to_amount(registry):
    b = build_billable_orders(_scenario_events(), _scenario_orders(), _scenario_exceptions(), registry)
    totals, _ = price_orders(b, registry)
    t = totals.set_index("order_id")["amount_cents"]
    # 1001: 2 picks 60 + pack 20 + label 15 + kitting 50 + 1 day 5 + return 250 = 400, rush -> 800
    assert t["1001"] == 800
    assert t["1002"] == 50  # pick 30 + 2 days 10 = 40 -> minimum 50


# ---------------------------------------------------------------------------------------------
# 3. invoice numbers


def _new_invoices() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("demo-3pl", "b", date(2025, 8, 2), ts("2025-08-02 09:00"), 100),
            ("demo-3pl", "a", date(2025, 8, 2), ts("2025-08-02 09:00"), 100),
            ("demo-3pl", "z", date(2025, 8, 1), ts("2025-08-01 23:00"), 100),
            ("demo-3pl", "c", date(2025, 8, 2), ts("2025-08-02 08:00"), 100),
            ("demo-3pl", "s", date(2025, 9, 1), ts("2025-09-01 01:00"), 100),
            ("northwind-goods", "n1", date(2025, 8, 31), ts("2025-08-31 23:59"), 100),
        ],
        columns=["tenant", "order_id", "invoice_date", "billable_at", "amount_cents"],
    )


def test_plan_invoice_numbers_order_and_continuation(registry):
    out = plan_invoice_numbers(_new_invoices(), {("demo-3pl", "202508"): 7}, registry)
    got = dict(zip(out["order_id"], out["invoice_number"]))
    assert got == {
        "z": "DEMO-3PL-202508-0008",
        "c": "DEMO-3PL-202508-0009",
        "a": "DEMO-3PL-202508-0010",
        "b": "DEMO-3PL-202508-0011",
        "s": "DEMO-3PL-202509-0001",
        "n1": "NORTHWIND-GOODS-202508-0001",
    }
    due = dict(zip(out["order_id"], out["due_date"]))
    assert due["z"] == date(2025, 8, 31) and due["s"] == date(2025, 10, 1) and due["n1"] == date(2025, 9, 30)
    assert isinstance(out["invoice_date"].iloc[0], date) and out["invoice_seq"].dtype == np.int64
    assert validate_invoice_numbers(out[out["tenant"] == "northwind-goods"]).empty


def test_plan_invoice_numbers_do_not_depend_on_which_days_a_run_covers(registry):
    """An order of an earlier cohort day that became billable after orders of a later one keeps
    its cohort day's place: one run over both days numbers like one run per day, in order."""
    new = pd.DataFrame(
        [
            ("demo-3pl", "late", date(2025, 8, 28), date(2025, 9, 2), ts("2025-09-02 10:00")),
            ("demo-3pl", "early", date(2025, 9, 1), date(2025, 9, 1), ts("2025-09-01 10:00")),
            ("demo-3pl", "same", date(2025, 9, 1), date(2025, 9, 1), ts("2025-09-01 09:00")),
        ],
        columns=["tenant", "order_id", "cohort_day", "invoice_date", "billable_at"],
    )
    one_run = dict(zip(*plan_invoice_numbers(new, {}, registry)[["order_id", "invoice_number"]].T.values))
    first = plan_invoice_numbers(new.iloc[[0]], {}, registry)
    second = plan_invoice_numbers(new.iloc[1:], {("demo-3pl", "202509"): 1}, registry)
    day_by_day = dict(zip(*pd.concat([first, second])[["order_id", "invoice_number"]].T.values))
    assert one_run == day_by_day == {
        "late": "DEMO-3PL-202509-0001", "same": "DEMO-3PL-202509-0002", "early": "DEMO-3PL-202509-0003"}
    # Without the cohort day (a bare frame), (invoice_date, billable time, order_id) alone.
    bare = plan_invoice_numbers(new.drop(columns="cohort_day"), {}, registry)
    assert list(bare.sort_values("invoice_seq")["order_id"]) == ["same", "early", "late"]
    assert "cohort_day" not in bare.columns and "_cohort" not in plan_invoice_numbers(new, {}, registry).columns


def test_plan_invoice_numbers_inputs(registry):
    last = pd.DataFrame({"tenant": ["demo-3pl"], "month": ["202508"], "last_seq": [2]})
    out = plan_invoice_numbers(_new_invoices(), last, registry)
    assert out.loc[out["order_id"] == "z", "invoice_number"].item() == "DEMO-3PL-202508-0003"
    fresh = plan_invoice_numbers(_new_invoices(), None)
    assert validate_invoice_numbers(fresh).empty
    assert fresh.loc[fresh["order_id"] == "z", "invoice_number"].item() == "DEMO-3PL-202508-0001"
    terms = TenantRegistry((default_policy("demo-3pl", tariff={"payment_terms_days": 14}),))
    out = plan_invoice_numbers(_new_invoices().iloc[[2]], {}, terms)
    assert out["due_date"].tolist() == [date(2025, 8, 15)] and out["payment_terms_days"].tolist() == [14]
    with pytest.raises(ValueError):
        plan_invoice_numbers(pd.concat([_new_invoices(), _new_invoices().iloc[[0]]]), {})
    assert plan_invoice_numbers(_new_invoices().iloc[0:0], {}).empty


def test_plan_invoice_numbers_is_deterministic(registry):
    a = plan_invoice_numbers(_new_invoices(), {}, registry)
    b = plan_invoice_numbers(_new_invoices().sample(frac=1, random_state=3), {}, registry)
    assert dict(zip(a["order_id"], a["invoice_number"])) == dict(zip(b["order_id"], b["invoice_number"]))


# ---------------------------------------------------------------------------------------------
# 6. validation checks


def _issued(registry) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    b = build_billable_orders(_scenario_events(), _scenario_orders(), _scenario_exceptions(), registry)
    totals, lines = price_orders(b, registry)
    invoices = plan_invoice_numbers(totals[totals["billable"]], {}, registry)
    return b, totals, invoices


def test_validations_pass_on_good_data(registry):
    b, totals, invoices = _issued(registry)
    assert len(invoices) == 3
    assert validate_invoice_amounts(invoices, None, totals).empty
    assert validate_invoice_numbers(invoices).empty
    assert validate_invoice_coverage(invoices, b).empty
    assert validate_due_dates(invoices, registry).empty
    assert validate_amounts_non_negative(invoices, price_orders(b, registry)[1]).empty


def test_validate_amounts_flags_mismatch_and_counts_applied_adjustments(registry):
    _, totals, invoices = _issued(registry)
    bad = invoices.copy()
    bad.loc[0, "amount_cents"] += 1
    out = validate_invoice_amounts(bad, None, totals)
    assert out["invoice_number"].tolist() == [bad.loc[0, "invoice_number"]] and out["difference_cents"].tolist() == [-1]
    adj = pd.DataFrame({"tenant": ["demo-3pl"], "invoice_number": [bad.loc[0, "invoice_number"]],
                        "delta_cents": [-1], "status": ["AUTO_APPLIED"]})  # fmt: skip
    assert validate_invoice_amounts(bad, adj, totals).empty
    assert len(validate_invoice_amounts(bad, adj.assign(status="PENDING_REVIEW"), totals)) == 1
    missing = validate_invoice_amounts(invoices, None, totals.iloc[1:])
    assert missing["problem"].tolist() == ["not_recomputed"]


def test_validate_numbers_flags_malformed_duplicate_and_gap(registry):
    _, _, invoices = _issued(registry)
    bad = invoices.copy()
    bad.loc[0, "invoice_number"] = "DEMO-3PL-2025-08-1"
    assert set(validate_invoice_numbers(bad)["problem"]) >= {"malformed"}
    wrong_month = invoices.copy()
    wrong_month.loc[0, "invoice_number"] = wrong_month.loc[0, "invoice_number"].replace("202508", "202507")
    assert "malformed" in set(validate_invoice_numbers(wrong_month)["problem"])
    dup = invoices.copy()
    dup.loc[1, "invoice_number"] = dup.loc[0, "invoice_number"]
    out = validate_invoice_numbers(dup)
    assert (out["problem"] == "duplicate").sum() == 2 and "gap" in set(out["problem"])
    gap = invoices.iloc[[0, 2]]
    out = validate_invoice_numbers(gap)
    assert out[["invoice_number", "problem"]].values.tolist() == [["DEMO-3PL-202508-0002", "gap"]]
    zero = invoices.copy()
    zero.loc[0, "invoice_number"] = "DEMO-3PL-202508-0000"
    assert "malformed" in set(validate_invoice_numbers(zero)["problem"])


def test_validate_coverage_flags_missing_several_and_unbillable(registry):
    b, _, invoices = _issued(registry)
    assert validate_invoice_coverage(invoices.iloc[1:], b)["problem"].tolist() == ["missing_invoice"]
    several = pd.concat([invoices, invoices.iloc[[0]].assign(invoice_number="DEMO-3PL-202508-0099")])
    assert set(validate_invoice_coverage(several, b)["problem"]) == {"several_invoices"}
    stray = pd.concat([invoices, invoices.iloc[[0]].assign(order_id="1003", invoice_number="X")])
    out = validate_invoice_coverage(stray, b)
    assert out[["order_id", "problem"]].values.tolist() == [["1003", "unbillable_order"]]
    # held order that already has an invoice is not an error; an un-invoiced held order is not missing
    held_now = b.assign(held=True, billable=False)
    assert validate_invoice_coverage(invoices, held_now).empty


def test_validate_due_dates_and_non_negative(registry):
    _, _, invoices = _issued(registry)
    bad = invoices.copy()
    bad.loc[1, "due_date"] = date(2025, 9, 1)
    out = validate_due_dates(bad, registry)
    assert out["invoice_number"].tolist() == [bad.loc[1, "invoice_number"]]
    neg = invoices.copy()
    neg.loc[2, "amount_cents"] = -5
    assert validate_amounts_non_negative(neg)["invoice_number"].tolist() == [neg.loc[2, "invoice_number"]]


def test_validate_numbers_requires_canonical_seq_and_reports_only_real_gaps(registry):
    _, _, invoices = _issued(registry)
    # "00001" is seq 1 again under another spelling: not `{seq:04d}`, and 0002 is now missing.
    padded = invoices.copy()
    padded.loc[1, "invoice_number"] = "DEMO-3PL-202508-00001"
    out = validate_invoice_numbers(padded)
    assert out[["invoice_number", "problem"]].values.tolist() == [
        ["DEMO-3PL-202508-00001", "malformed"], ["DEMO-3PL-202508-0002", "gap"]]
    # A duplicated number still occupies its seq: the only gap is the seq nobody holds.
    dup = invoices.copy()
    dup.loc[1, "invoice_number"] = dup.loc[0, "invoice_number"]
    out = validate_invoice_numbers(dup)
    assert out.loc[out["problem"] == "gap", "invoice_number"].tolist() == ["DEMO-3PL-202508-0002"]
    # Beyond 9999 the number simply grows (`{seq:04d}`): well-formed.
    big = plan_invoice_numbers(_new_invoices().iloc[[2]], {("demo-3pl", "202508"): 9999}, registry)
    assert big["invoice_number"].tolist() == ["DEMO-3PL-202508-10000"]
    assert set(validate_invoice_numbers(big)["problem"]) == {"gap"}


def test_factor_labels_are_formatted_once_per_distinct_factor_not_per_order():
    """Line descriptions ("rush multiplier x2") must not cost a Python call per order (hot path)."""
    from e2a_assets.domain.billing import _factor_label

    calls = []

    class Factor(float):
        def __float__(self):
            calls.append(self)
            return float.__float__(self)

    labels = _factor_label(pd.Series([Factor(1.2)] * 5000 + [Factor(2.0)] * 5000, dtype=object))
    assert labels.iloc[0] == "1.2" and labels.iloc[-1] == "2" and len(labels) == 10000
    assert len(calls) <= 2


# ---------------------------------------------------------------------------------------------
# defaults: the policy files are their one source


def test_the_policy_models_hold_no_default_value():
    from e2a_assets.domain.policies import SlaPolicy, Tariff, TenantPolicy

    for model in (SlaPolicy, Tariff):
        assert [name for name, field in model.model_fields.items() if not field.is_required()] == []
    assert TenantPolicy.model_fields["sla"].is_required() and TenantPolicy.model_fields["tariff"].is_required()


def test_a_value_changed_in_the_default_tariff_file_changes_the_price(tmp_path):
    """pick_cents 30 -> 45 in a copy of default_tariffs.yaml: pick + pack + label + 1 storage day is
    85 instead of 70, for the registry's tenants and for a tenant it does not list (its loaded
    defaults); the shipped files still price 70."""
    import shutil

    copy = tmp_path / "policies"
    shutil.copytree(POLICIES_DIR, copy)
    tariffs = copy / "default_tariffs.yaml"
    text = tariffs.read_text()
    assert "\npick_cents: 30\n" in text
    tariffs.write_text(text.replace("\npick_cents: 30\n", "\npick_cents: 45\n"))
    changed = load_registry(copy)
    assert price_one(changed, **BASIC)[0] == 85
    assert price_one(changed, tenant="acme", **BASIC)[0] == 85
    assert price_one(load_registry(POLICIES_DIR), **BASIC)[0] == 70
    assert price_one(load_registry(POLICIES_DIR), tenant="acme", **BASIC)[0] == 70


def test_an_unknown_tenant_gets_the_registry_defaults_with_the_environment_overrides():
    fourteen = load_registry(POLICIES_DIR, overrides={"payment_terms_days": 14})
    out = plan_invoice_numbers(_new_invoices().assign(tenant="acme").iloc[[2]], {}, fourteen)
    assert out["payment_terms_days"].tolist() == [14] and out["due_date"].tolist() == [date(2025, 8, 15)]
    assert plan_invoice_numbers(_new_invoices().assign(tenant="acme").iloc[[2]], {})["payment_terms_days"].tolist() == [30]
