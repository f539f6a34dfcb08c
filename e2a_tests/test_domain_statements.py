"""Adjustments, monthly statements and the daily billing report (DOMAIN §5)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from e2a_assets.domain.invoice_validation import validate_invoice_amounts
from e2a_assets.domain.policies import load_registry
from e2a_assets.domain.statements import (
    ADJUSTMENT_COLUMNS,
    REPORT_COLUMNS,
    STATEMENT_COLUMNS,
    build_billing_report,
    build_monthly_statements,
    compute_adjustments,
)
from e2a_tests.factories import ts

POLICIES_DIR = Path(__file__).resolve().parents[1] / "policies"
AS_OF = ts("2025-09-02 02:00")


@pytest.fixture(scope="module")
def registry():
    return load_registry(POLICIES_DIR)


def invoices_frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (tenant, order_id, invoice_date, amount_cents[, due_date])."""
    records = []
    seq: dict[tuple[str, str], int] = {}
    for row in rows:
        tenant, order_id, day, amount = row[:4]
        due = row[4] if len(row) > 4 else day + timedelta(days=30)
        key = (tenant, day.strftime("%Y%m"))
        seq[key] = seq.get(key, 0) + 1
        number = f"{tenant.upper()}-{key[1]}-{seq[key]:04d}"
        records.append((tenant, order_id, number, day, due, amount))
    return pd.DataFrame(records, columns=["tenant", "order_id", "invoice_number", "invoice_date", "due_date", "amount_cents"])


def month_invoices(n: int, amount: int, tenant: str = "demo-3pl", day: date = date(2025, 8, 10)) -> pd.DataFrame:
    return invoices_frame([(tenant, f"o{i}", day, amount) for i in range(n)])


# ---------------------------------------------------------------------------------------------
# 4. adjustments

ISSUED_AMOUNT = 1000
RECOMPUTED = {"A": 1300, "B": 400, "C": 3500, "D": 1500, "E": 3000, "F": 3001, "G": 1000, "H": 1499, "I": 1000}


def _issued() -> pd.DataFrame:
    return invoices_frame([("demo-3pl", k, date(2025, 8, 2), ISSUED_AMOUNT) for k in RECOMPUTED])


def _recomputed(**changes) -> pd.DataFrame:
    values = {**RECOMPUTED, **changes}
    return pd.DataFrame({"tenant": "demo-3pl", "order_id": list(values), "amount_cents": list(values.values())})


def test_adjustment_thresholds_and_kinds(registry):
    out = compute_adjustments(_issued(), _recomputed(), None, registry, AS_OF)
    assert list(out.columns) == ADJUSTMENT_COLUMNS
    got = {r.order_id: (r.delta_cents, r.kind, r.status, r.applied, r.flagged) for r in out.itertuples()}
    assert got == {
        "A": (300, "debit", "AUTO_APPLIED", True, False),
        "B": (-600, "credit", "APPLIED_FLAGGED", True, True),
        "C": (2500, "debit", "PENDING_REVIEW", False, False),
        "D": (500, "debit", "APPLIED_FLAGGED", True, True),
        "E": (2000, "debit", "APPLIED_FLAGGED", True, True),
        "F": (2001, "debit", "PENDING_REVIEW", False, False),
        "H": (499, "debit", "AUTO_APPLIED", True, False),
    }
    assert set(out["reason"]) == {"RECALCULATION"}
    a = out.set_index("order_id").loc["A"]
    assert a["adjustment_id"] == "DEMO-3PL-202508-0001-A01" and a["adjustment_seq"] == 1
    assert (a["issued_cents"], a["previously_applied_cents"], a["recomputed_cents"]) == (1000, 0, 1300)
    assert a["created_at"] == AS_OF and a["adjustment_date"] == date(2025, 9, 2)
    assert out["delta_cents"].dtype == np.int64


def test_adjustments_are_idempotent_and_make_amounts_valid(registry):
    first = compute_adjustments(_issued(), _recomputed(), None, registry, AS_OF)
    again = compute_adjustments(_issued(), _recomputed(), first, registry, AS_OF)
    assert again.empty
    # only the pending ones (C, F) still differ for the amount check
    bad = validate_invoice_amounts(_issued(), first, _recomputed())
    assert sorted(bad["order_id"]) == ["C", "F"]
    approved = first.assign(status=first["status"].replace("PENDING_REVIEW", "APPROVED"))
    assert validate_invoice_amounts(_issued(), approved, _recomputed()).empty
    assert compute_adjustments(_issued(), _recomputed(), approved, registry, AS_OF).empty


def test_changed_recomputation_supersedes_pending(registry):
    first = compute_adjustments(_issued(), _recomputed(), None, registry, AS_OF)
    second = compute_adjustments(_issued(), _recomputed(C=3600, A=1250), first, registry, ts("2025-09-03 02:00"))
    got = {r.order_id: (r.delta_cents, r.status, r.adjustment_seq, r.supersedes) for r in second.itertuples()}
    assert got == {
        "A": (-50, "AUTO_APPLIED", 2, ""),  # 1250 - (1000 + 300)
        "C": (2600, "PENDING_REVIEW", 2, "DEMO-3PL-202508-0003-A01"),
    }
    assert second.set_index("order_id").loc["C", "adjustment_id"] == "DEMO-3PL-202508-0003-A02"


def test_a_rejected_correction_is_not_asked_for_again(registry):
    first = compute_adjustments(_issued(), _recomputed(), None, registry, AS_OF)
    rejected = first.assign(status=first["status"].replace("PENDING_REVIEW", "REJECTED"))
    # Same events, same deltas for C and F: the reviewer's rejection stands.
    assert compute_adjustments(_issued(), _recomputed(), rejected, registry, AS_OF).empty
    # Newer events move C again: that is a new question for review.
    again = compute_adjustments(_issued(), _recomputed(C=3700), rejected, registry, AS_OF)
    assert list(zip(again["order_id"], again["delta_cents"], again["status"])) == [("C", 2700, "PENDING_REVIEW")]


def test_adjustments_count_existing_applied_and_skip_unknown(registry):
    existing = pd.DataFrame({"adjustment_id": ["x"], "tenant": ["demo-3pl"], "invoice_number": ["DEMO-3PL-202508-0001"],
                             "delta_cents": [300], "status": ["AUTO_APPLIED"]})  # fmt: skip
    out = compute_adjustments(_issued(), _recomputed(), existing, registry, AS_OF)
    assert "A" not in set(out["order_id"])
    out = compute_adjustments(_issued(), _recomputed().iloc[[0]], None, registry, AS_OF)
    assert out["order_id"].tolist() == ["A"]
    assert compute_adjustments(_issued(), _recomputed().iloc[0:0], None, registry, AS_OF).empty


# ---------------------------------------------------------------------------------------------
# 5. monthly statements


def _statement(invoices, registry, adjustments=None, tenant="demo-3pl") -> pd.Series:
    out = build_monthly_statements(invoices, adjustments, registry, date(2025, 8, 1), AS_OF)
    assert list(out.columns) == STATEMENT_COLUMNS
    return out.set_index("tenant").loc[tenant]


@pytest.mark.parametrize(
    ("invoices", "gross", "rate", "discount", "top_up", "net"),
    [
        (month_invoices(99, 100), 9900, 0.0, 0, 100, 10000),
        (pd.concat([month_invoices(99, 200), invoices_frame([("demo-3pl", "x", date(2025, 8, 31), 219)])]),
         20019, 0.05, 1000, 0, 19019),  # 1000.95 floors to 1000
        (month_invoices(100, 100), 10000, 0.05, 500, 500, 10000),  # minimum fee after discount
        (month_invoices(499, 100), 49900, 0.05, 2495, 0, 47405),
        (month_invoices(500, 100), 50000, 0.10, 5000, 0, 45000),
        (month_invoices(999, 101), 100899, 0.10, 10089, 0, 90810),  # 10089.9 floors to 10089
        (month_invoices(1000, 100), 100000, 0.15, 15000, 0, 85000),
        (month_invoices(1000, 333), 333000, 0.15, 49950, 0, 283050),
    ],
    ids=["99", "100-floor", "100-minimum-fee", "499", "500", "999", "1000", "1000b"],
)
def test_statement_tiers_and_minimum_fee(registry, invoices, gross, rate, discount, top_up, net):
    st = _statement(invoices, registry)
    assert st["invoiced_orders"] == len(invoices)
    assert (st["gross_cents"], st["discount_cents"], st["minimum_top_up_cents"], st["net_due_cents"]) == (
        gross, discount, top_up, net,
    )  # fmt: skip
    assert st["discount_rate"] == pytest.approx(rate)


def test_statement_month_window_adjustments_and_overdue(registry):
    invoices = pd.concat([
        month_invoices(3, 5000),  # August: gross 15000
        invoices_frame([
            ("demo-3pl", "jul", date(2025, 7, 31), 700),                          # other month, due 08-30
            ("demo-3pl", "jun1", date(2025, 6, 10), 400),                         # due 07-10: overdue
            ("demo-3pl", "due-today", date(2025, 8, 3), 900, date(2025, 9, 2)),   # due on as_of day: not overdue
            ("demo-3pl", "sep", date(2025, 9, 1), 800),                           # issued after month end
            ("demo-3pl", "late", date(2025, 9, 5), 100, date(2025, 9, 1)),         # after as_of: ignored
        ]),
    ], ignore_index=True)  # fmt: skip
    jun = invoices.loc[invoices["order_id"] == "jun1", "invoice_number"].item()
    adjustments = pd.DataFrame(
        [
            ("a1", "demo-3pl", "DEMO-3PL-202508-0001", 300, "AUTO_APPLIED", date(2025, 8, 20)),
            ("a2", "demo-3pl", "DEMO-3PL-202508-0002", -600, "APPLIED_FLAGGED", date(2025, 8, 21)),
            ("a3", "demo-3pl", "DEMO-3PL-202508-0003", 2500, "PENDING_REVIEW", date(2025, 8, 22)),
            ("a4", "demo-3pl", "DEMO-3PL-202508-0003", 100, "AUTO_APPLIED", date(2025, 9, 1)),
            ("a5", "demo-3pl", jun, -50, "AUTO_APPLIED", date(2025, 7, 1)),
        ],
        columns=["adjustment_id", "tenant", "invoice_number", "delta_cents", "status", "adjustment_date"],
    )
    adjustments["created_at"] = pd.to_datetime(adjustments["adjustment_date"].astype(str), utc=True)
    st = _statement(invoices, registry, adjustments)
    assert st["invoiced_orders"] == 4 and st["gross_cents"] == 15900  # 3 x 5000 + the 08-03 invoice
    assert st["discount_cents"] == 0 and st["minimum_top_up_cents"] == 0
    assert (st["adjustments_count"], st["adjustments_cents"], st["pending_review_cents"]) == (2, -300, 2500)
    assert st["net_due_cents"] == 15600
    # overdue across months: jul (due 08-30) 700 + jun1 (due 07-10) 400 - 50 applied credit
    assert (st["overdue_invoices"], st["overdue_cents"]) == (2, 1050)
    assert (st["month"], st["month_start"], st["month_end"]) == ("202508", date(2025, 8, 1), date(2025, 8, 31))
    paid = invoices.assign(paid_at=pd.Series(pd.NaT, index=invoices.index, dtype="datetime64[ns, UTC]"))
    paid.loc[paid["order_id"] == "jun1", "paid_at"] = ts("2025-08-01 00:00")
    assert _statement(paid, registry, adjustments)[["overdue_invoices", "overdue_cents"]].tolist() == [1, 700]


def test_statement_counts_an_approval_only_once_it_has_happened(registry):
    """Statements evaluated at AS_OF (09-02 02:00) are the same whenever they are re-run."""
    invoices = month_invoices(3, 5000)
    adjustments = pd.DataFrame(
        [
            ("r1", "demo-3pl", "DEMO-3PL-202508-0001", 2500, "APPROVED", "2025-08-20", "2025-08-25 09:00"),
            ("r2", "demo-3pl", "DEMO-3PL-202508-0002", 4000, "APPROVED", "2025-08-21", "2025-09-03 10:00"),
            ("r3", "demo-3pl", "DEMO-3PL-202508-0003", -900, "REJECTED", "2025-08-22", "2025-09-04 10:00"),
        ],
        columns=["adjustment_id", "tenant", "invoice_number", "delta_cents", "status", "adjustment_date", "reviewed_at"],
    )
    adjustments["adjustment_date"] = pd.to_datetime(adjustments["adjustment_date"]).dt.date
    adjustments["created_at"] = pd.to_datetime(adjustments["adjustment_date"].astype(str), utc=True)
    adjustments["reviewed_at"] = pd.to_datetime(adjustments["reviewed_at"], utc=True)
    st = _statement(invoices, registry, adjustments)
    # r1 was approved before AS_OF; r2's approval and r3's rejection were still pending then.
    assert (st["adjustments_count"], st["adjustments_cents"], st["pending_review_cents"]) == (1, 2500, 3100)
    assert st["net_due_cents"] == 15000 + 2500
    # r2's approval on 09-03 issues its debit note that day (DOMAIN §8.2): it is on September's
    # statement, and August's - re-run later - keeps the figures the client already holds.
    later = build_monthly_statements(invoices, adjustments, registry, date(2025, 8, 1), ts("2025-09-05 00:00"))
    assert later.set_index("tenant").loc["demo-3pl", ["adjustments_count", "adjustments_cents", "pending_review_cents"]] \
        .tolist() == [1, 2500, 0]
    sept = build_monthly_statements(invoices, adjustments, registry, date(2025, 9, 1), ts("2025-09-05 00:00"))
    assert sept.set_index("tenant").loc["demo-3pl", ["adjustments_count", "adjustments_cents", "debit_notes_cents"]] \
        .tolist() == [1, 4000, 4000]


def test_statement_for_tenant_without_orders(registry):
    out = build_monthly_statements(month_invoices(2, 100), None, registry, date(2025, 8, 1), AS_OF)
    # Every registry tenant; harbor-supply (billed monthly) gets its figures from its monthly
    # invoice in the asset (domain/monthly.py::apply_monthly_figures), this is the per-order rule.
    assert out["tenant"].tolist() == ["demo-3pl", "harbor-supply", "northwind-goods"]
    nw = out.set_index("tenant").loc["northwind-goods"]
    assert (nw["invoiced_orders"], nw["gross_cents"], nw["minimum_top_up_cents"], nw["net_due_cents"]) == (0, 0, 10000, 10000)
    assert nw["currency"] == "USD"
    assert out["net_due_cents"].dtype == np.int64


# ---------------------------------------------------------------------------------------------
# 7. billing report


def test_billing_report(registry):
    invoices = invoices_frame([
        ("demo-3pl", "a", date(2025, 8, 2), 700),
        ("demo-3pl", "b", date(2025, 8, 2), 300),
        ("demo-3pl", "c", date(2025, 8, 1), 100),
        ("demo-3pl", "old", date(2025, 6, 1), 400),
        ("northwind-goods", "n", date(2025, 8, 3), 999),
    ])  # fmt: skip
    billable = pd.DataFrame({
        "tenant": ["demo-3pl"] * 3 + ["northwind-goods"],
        "order_id": ["h1", "h2", "a", "h3"],
        "invoice_date": [date(2025, 8, 1), date(2025, 8, 2), date(2025, 8, 2), date(2025, 8, 5)],
        "held": [True, True, False, True],
        "hold_reasons": ["STOCK_MISMATCH,SYSTEM_ERROR", "STOCK_MISMATCH", "", "DAMAGED_PACKAGE"],
        "amount_cents": [100, 200, 700, 50],
    })  # fmt: skip
    adjustments = pd.DataFrame(
        [
            ("x1", "demo-3pl", "DEMO-3PL-202508-0001", 300, "AUTO_APPLIED", date(2025, 8, 2)),
            ("x2", "demo-3pl", "DEMO-3PL-202508-0002", -900, "APPLIED_FLAGGED", date(2025, 8, 2)),
            ("x3", "demo-3pl", "DEMO-3PL-202508-0003", 2500, "PENDING_REVIEW", date(2025, 8, 2)),
            ("x4", "demo-3pl", "DEMO-3PL-202508-0003", 10, "AUTO_APPLIED", date(2025, 8, 1)),
        ],
        columns=["adjustment_id", "tenant", "invoice_number", "delta_cents", "status", "adjustment_date"],
    )
    out = build_billing_report(invoices, billable, adjustments, ts("2025-08-03 02:00"), date(2025, 8, 2))
    assert list(out.columns) == REPORT_COLUMNS
    r = out.set_index("tenant").loc["demo-3pl"]
    assert (r["invoices_issued"], r["invoiced_cents"]) == (2, 1000)
    assert (r["held_orders"], r["held_cents"], r["hold_reasons"]) == (2, 300, "STOCK_MISMATCH:2,SYSTEM_ERROR:1")
    assert (r["adjustments_auto_applied"], r["adjustments_applied_flagged"], r["adjustments_pending_review"]) == (1, 1, 1)
    assert (r["revenue_impact_cents"], r["pending_review_cents"]) == (-600, 2500)
    # x2's credit of 900 leaves nothing to pay on its invoice of 700: paid (domain/payments.py).
    assert (r["invoices_open"], r["invoices_overdue"], r["invoices_paid"]) == (2, 1, 1)
    assert r["status_breakdown"] == "open:2,partially_paid:0,overdue:1,paid:1"
    assert r["overdue_cents"] == 400 and r["day"] == date(2025, 8, 2)
    n = out.set_index("tenant").loc["northwind-goods"]
    assert (n["invoices_issued"], n["held_orders"], n["hold_reasons"], n["invoices_open"]) == (0, 0, "", 0)

    # x3 approved after the report's as_of: re-running the report at that as_of still shows it pending.
    x3 = adjustments["adjustment_id"] == "x3"
    reviewed = adjustments.assign(status=adjustments["status"].where(~x3, "APPROVED"),
                                  reviewed_at=pd.Series(pd.NaT, index=adjustments.index).mask(x3, ts("2025-08-04 09:00")))
    again = build_billing_report(invoices, billable, reviewed, ts("2025-08-03 02:00"), date(2025, 8, 2))
    assert again.set_index("tenant").loc["demo-3pl", ["adjustments_pending_review", "revenue_impact_cents",
                                                      "pending_review_cents"]].tolist() == [1, -600, 2500]
    later = build_billing_report(invoices, billable, reviewed, ts("2025-08-05 02:00"), date(2025, 8, 2))
    assert later.set_index("tenant").loc["demo-3pl", ["adjustments_pending_review", "revenue_impact_cents",
                                                      "pending_review_cents"]].tolist() == [0, 1900, 0]


def test_billing_report_empty_inputs():
    out = build_billing_report(None, None, None, AS_OF, date(2025, 9, 1))
    assert out.empty and list(out.columns) == REPORT_COLUMNS
