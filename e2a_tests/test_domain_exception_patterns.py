"""Exception patterns and insights (DOMAIN §4, docs/rules/exceptions.md)."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from e2a_assets.domain.exception_patterns import (
    INSIGHT_COLUMNS,
    PATTERN_COLUMNS,
    build_insights,
    build_patterns,
    insights_markdown,
)
from e2a_assets.domain.exceptions import EXCEPTION_COLUMNS

T = "demo-3pl"
END = dt.date(2025, 9, 3)  # window 2025-08-28 .. 2025-09-03, previous 2025-08-21 .. 2025-08-27


def exc_frame(rows: list[dict]) -> pd.DataFrame:
    recs = []
    for n, r in enumerate(rows):
        rec = {"tenant": T, "order_id": f"o{n}", "cohort_day": dt.date(2025, 9, 1), "reason_code": "OTHER",
               "severity": "MEDIUM", "source": "reported", "opened_at": None, "status": "OPEN", "resolved_at": None,
               "resolution": None, "holds_billing": False, "as_of": "2025-09-04 00:00"}  # fmt: skip
        rec.update(r)
        recs.append(rec)
    frame = pd.DataFrame(recs, columns=EXCEPTION_COLUMNS)
    for c in ("opened_at", "resolved_at", "as_of"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def resolved(opened: str, hours: float) -> dict:
    at = pd.Timestamp(opened, tz="UTC") + pd.Timedelta(hours=hours)
    return {"opened_at": opened, "status": "RESOLVED", "resolved_at": at, "resolution": "exception_resolved"}


def pick(patterns: pd.DataFrame, dimension: str, key: str, tenant: str = T) -> dict:
    hit = patterns[(patterns["tenant"] == tenant) & (patterns["dimension"] == dimension) & (patterns["key"] == key)]
    assert len(hit) == 1, f"expected one {dimension}={key} row, got {len(hit)}"
    return hit.iloc[0].to_dict()


def test_the_seven_day_window_crosses_the_month_boundary():
    ex = exc_frame(
        [
            {"reason_code": "PICK_DELAY", "opened_at": "2025-08-28 00:00"},  # first day of the window
            {"reason_code": "PICK_DELAY", "opened_at": "2025-09-03 23:59"},  # last instant of the window
            {"reason_code": "PICK_DELAY", "opened_at": "2025-09-01 12:00", "order_id": "o0"},  # same order as row 0
            {"reason_code": "PICK_DELAY", "opened_at": "2025-08-27 23:59"},  # previous week
            {"reason_code": "PICK_DELAY", "opened_at": "2025-08-21 00:00"},  # previous week, first day
            {"reason_code": "PICK_DELAY", "opened_at": "2025-08-20 23:59"},  # before both windows
            {"reason_code": "PICK_DELAY", "opened_at": "2025-09-04 00:00"},  # after the window
        ]
    )
    p = build_patterns(ex, END)
    assert list(p.columns) == PATTERN_COLUMNS
    assert set(p["day"]) == {END} and all(type(d) is dt.date for d in p["day"])
    r = pick(p, "reason_code", "PICK_DELAY")
    assert (r["count"], r["distinct_orders"], r["previous_count"], r["wow_change"]) == (3, 2, 2, 1.5)
    # The same answer for a Timestamp or an ISO string as the window end.
    pd.testing.assert_frame_equal(p, build_patterns(ex, "2025-09-03"))
    pd.testing.assert_frame_equal(p, build_patterns(ex, pd.Timestamp("2025-09-03 18:00", tz="UTC")))


def test_counts_resolved_and_mean_resolution_hours_per_dimension():
    ex = exc_frame(
        [
            {"reason_code": "ADDRESS_INVALID", "severity": "MEDIUM", **resolved("2025-09-03 09:15", 2.0)},
            {"reason_code": "ADDRESS_INVALID", "severity": "MEDIUM", **resolved("2025-09-02 09:45", 5.0)},
            {"reason_code": "ADDRESS_INVALID", "severity": "MEDIUM", "opened_at": "2025-09-02 14:00"},
            {"reason_code": "SYSTEM_ERROR", "severity": "CRITICAL", "opened_at": "2025-09-03 09:00", "order_id": "o0"},
        ]
    )
    p = build_patterns(ex, END)
    hours = p["mean_resolution_hours"].astype(object).where(p["mean_resolution_hours"].notna(), None)
    got = {(d, k): (c, o, r, h) for d, k, c, o, r, h in
           zip(p["dimension"], p["key"], p["count"], p["distinct_orders"], p["resolved"], hours)}  # fmt: skip
    nan = None  # no resolved exception: mean is NaN
    assert got == {
        ("reason_code", "ADDRESS_INVALID"): (3, 3, 2, 3.5),
        ("reason_code", "SYSTEM_ERROR"): (1, 1, 0, nan),
        ("severity", "CRITICAL"): (1, 1, 0, nan),
        ("severity", "MEDIUM"): (3, 3, 2, 3.5),
        ("hour", "09"): (3, 2, 2, 3.5),
        ("hour", "14"): (1, 1, 0, nan),
        ("weekday", "Tuesday"): (2, 2, 1, 5.0),
        ("weekday", "Wednesday"): (2, 1, 1, 2.0),
    }
    # Fixed order: dimensions as listed, severities high to low, hours and weekdays in calendar order.
    assert list(zip(p["dimension"], p["key"])) == [
        ("reason_code", "ADDRESS_INVALID"), ("reason_code", "SYSTEM_ERROR"), ("severity", "CRITICAL"),
        ("severity", "MEDIUM"), ("hour", "09"), ("hour", "14"), ("weekday", "Tuesday"), ("weekday", "Wednesday"),
    ]  # fmt: skip


def _week(code: str, current: int, previous: int, tenant: str = T) -> list[dict]:
    cur = [{"tenant": tenant, "reason_code": code, "opened_at": f"2025-09-0{1 + n % 3} 10:00"} for n in range(current)]
    prev = [{"tenant": tenant, "reason_code": code, "opened_at": f"2025-08-2{2 + n % 5} 10:00"} for n in range(previous)]
    return cur + prev


def test_emerging_needs_at_least_five_and_at_least_double_the_previous_week():
    ex = exc_frame(
        _week("PICK_DELAY", 5, 2) + _week("PACK_DELAY", 5, 3) + _week("MISSING_SCAN", 4, 0)
        + _week("SYSTEM_ERROR", 6, 0) + _week("OTHER", 0, 4)
    )  # fmt: skip
    p = build_patterns(ex, END)
    got = {k: (r["count"], r["previous_count"], r["wow_change"], r["emerging"])
           for k in ("PICK_DELAY", "PACK_DELAY", "MISSING_SCAN", "SYSTEM_ERROR", "OTHER")
           for r in [pick(p, "reason_code", k)]}  # fmt: skip
    assert got["PICK_DELAY"] == (5, 2, 2.5, True)
    assert got["PACK_DELAY"] == (5, 3, pytest.approx(5 / 3), False)
    assert got["MISSING_SCAN"][:2] == (4, 0) and math.isnan(got["MISSING_SCAN"][2]) and not got["MISSING_SCAN"][3]
    assert got["SYSTEM_ERROR"][:2] == (6, 0) and math.isnan(got["SYSTEM_ERROR"][2]) and got["SYSTEM_ERROR"][3]
    assert got["OTHER"] == (0, 4, 0.0, False)  # only last week: kept with count 0
    assert pd.isna(pick(p, "reason_code", "OTHER")["top_rank"])
    assert not p.loc[p["dimension"] != "reason_code", "emerging"].any()


def test_top_rank_marks_the_five_most_frequent_codes_ties_by_name():
    counts = {"PICK_DELAY": 4, "PACK_DELAY": 4, "SHIP_DELAY": 3, "OTHER": 6, "MISSING_SCAN": 1, "SYSTEM_ERROR": 2}
    ex = exc_frame([r for code, n in counts.items() for r in _week(code, n, 0)])
    p = build_patterns(ex, END)
    codes = p[p["dimension"] == "reason_code"]
    assert dict(zip(codes["key"], codes["top_rank"].astype(object).where(codes["top_rank"].notna(), None))) == {
        "OTHER": 1, "PACK_DELAY": 2, "PICK_DELAY": 3, "SHIP_DELAY": 4, "SYSTEM_ERROR": 5, "MISSING_SCAN": None
    }
    assert str(p["top_rank"].dtype) == "Int64"
    assert p.loc[p["dimension"] != "reason_code", "top_rank"].isna().all()


def test_patterns_are_per_tenant_idempotent_and_empty_without_exceptions():
    ex = exc_frame(_week("PICK_DELAY", 5, 1) + _week("PICK_DELAY", 2, 1, tenant="acme"))
    p = build_patterns(ex, END)
    assert pick(p, "reason_code", "PICK_DELAY")["count"] == 5
    assert pick(p, "reason_code", "PICK_DELAY", tenant="acme")["count"] == 2
    assert list(p["tenant"].drop_duplicates()) == ["acme", T]
    pd.testing.assert_frame_equal(p, build_patterns(ex.iloc[::-1].reset_index(drop=True), END))
    assert build_patterns(ex.iloc[:0], END).empty
    assert build_patterns(ex, dt.date(2025, 7, 1)).empty
    assert list(build_patterns(ex.iloc[:0], END).columns) == PATTERN_COLUMNS


# --------------------------------------------------------------------------------------- insights


def _insight_case() -> pd.DataFrame:
    rows = (
        [{"reason_code": "ADDRESS_INVALID", **resolved("2025-09-02 14:10", 1.0)} for _ in range(6)]  # Tuesday 14h
        + _week("ADDRESS_INVALID", 0, 4)  # 6 against 4: not emerging
        + [{"reason_code": "PICK_DELAY", "opened_at": "2025-09-01 09:00"} for _ in range(5)]  # Monday 09h, open
        + [{"reason_code": "PICK_DELAY", "opened_at": "2025-08-25 09:00"} for _ in range(2)]  # previous week
        + [{"reason_code": "DAMAGED_PACKAGE", "opened_at": "2025-09-03 14:30", "holds_billing": True}]
        + [{"tenant": "acme", "reason_code": "OTHER", **resolved("2025-09-03 08:00", 2.0)} for _ in range(4)]
        + [{"tenant": "acme", "reason_code": "OTHER", "opened_at": "2025-09-03 08:00"}]  # 4 of 5 resolved = 80 %
    )
    return exc_frame(rows)


def test_insights_per_tenant():
    ex = _insight_case()
    ins = build_insights(build_patterns(ex, END), ex)
    assert list(ins.columns) == INSIGHT_COLUMNS
    got = [(t, k, s, v) for t, k, s, v in zip(ins["tenant"], ins["kind"], ins["subject"], ins["value"])]
    assert got == [
        ("acme", "most_common_code", "OTHER", 5.0),
        ("acme", "peak_hour", "08:00", 5.0),
        ("acme", "peak_weekday", "Wednesday", 5.0),
        ("acme", "emerging_code", "OTHER", 5.0),  # 5 against 0: emerging
        ("acme", "resolution_rate", "resolution_rate", 0.8),
        (T, "most_common_code", "ADDRESS_INVALID", 6.0),
        (T, "peak_hour", "14:00", 7.0),
        (T, "peak_weekday", "Tuesday", 6.0),
        (T, "emerging_code", "PICK_DELAY", 5.0),
        (T, "prevention_opportunity", "ADDRESS_INVALID", 6.0),
        (T, "resolution_rate", "resolution_rate", 0.5),
        (T, "recommendation", "resolution_rate", 0.5),
    ]
    assert set(ins["day"]) == {END}
    messages = dict(zip(zip(ins["tenant"], ins["kind"]), ins["message"]))
    assert messages[(T, "emerging_code")] == "PICK_DELAY is emerging: 5 this week against 2 the week before."
    assert messages[(T, "prevention_opportunity")] == (
        "ADDRESS_INVALID occurred 6 times: validate shipping addresses at checkout."
    )
    assert messages[(T, "recommendation")] == (
        "Resolution rate 50% is below the 80% target: work the open PICK_DELAY exceptions first (5 open)."
        " 1 order(s) are held from billing by open exceptions."
    )
    assert messages[("acme", "resolution_rate")] == "80% of the 5 exceptions opened in the window are resolved."


def test_prevention_needs_more_than_five_occurrences():
    ex = exc_frame(
        [{"reason_code": "ADDRESS_INVALID", **resolved("2025-09-02 10:00", 1.0)} for _ in range(5)]
        + _week("ADDRESS_INVALID", 0, 3)  # 5 against 3: not emerging
    )
    ins = build_insights(build_patterns(ex, END), ex)
    assert list(ins["kind"]) == ["most_common_code", "peak_hour", "peak_weekday", "resolution_rate"]
    assert ins["value"].tolist() == [5.0, 5.0, 5.0, 1.0]


def test_no_insights_when_only_the_previous_week_had_exceptions():
    ex = exc_frame(_week("PICK_DELAY", 0, 3))
    patterns = build_patterns(ex, END)
    assert patterns[["dimension", "key", "count", "previous_count"]].values.tolist()[0] == ["reason_code", "PICK_DELAY", 0, 3]
    ins = build_insights(patterns, ex)
    assert ins.empty and list(ins.columns) == INSIGHT_COLUMNS


def test_insights_markdown():
    ex = _insight_case()
    md = insights_markdown(build_insights(build_patterns(ex, END), ex))
    assert md.startswith("# Exception insights\n\n## acme — 2025-09-03\n\n- **Most common**: OTHER is the most")
    assert "\n## demo-3pl — 2025-09-03\n" in md
    assert "- **Emerging**: PICK_DELAY is emerging: 5 this week against 2 the week before.\n" in md
    assert md.count("\n- **") == 12
    assert insights_markdown(build_insights(build_patterns(ex.iloc[:0], END), ex.iloc[:0])) == (
        "# Exception insights\n\nNo exceptions in the window.\n"
    )
