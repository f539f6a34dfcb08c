"""Exception patterns and insights (DOMAIN §4): rolling 7-day window per tenant, week over week.

Pure and vectorised: the exceptions frame (`build_exceptions`) in, a long-format patterns frame
and an insights frame out. Rules DOMAIN leaves open are in docs/rules/exceptions.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from e2a_assets.domain.exceptions import RESOLVED, SEVERITIES, TS_DTYPE

# Patterns look at a window of days ending at the partition day and compare it with as many days
# before it (DOMAIN §4): a run for one day reads exceptions opened in the lookback before it.
PATTERN_WINDOW_DAYS = 7
PATTERN_LOOKBACK_DAYS = 2 * PATTERN_WINDOW_DAYS - 1
BY_REASON_CODE = "reason_code"
DIMENSIONS = (BY_REASON_CODE, "severity", "hour", "weekday")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EMERGING_MIN_COUNT = 5
EMERGING_FACTOR = 2
TOP_CODES = 5
PREVENTION_MIN_COUNT = 5  # strictly more than this -> prevention opportunity
RESOLUTION_TARGET = 0.8

PATTERN_COLUMNS = [
    "tenant", "day", "dimension", "key", "count", "distinct_orders", "resolved",
    "mean_resolution_hours", "previous_count", "wow_change", "emerging", "top_rank",
]  # fmt: skip
_PATTERN_DTYPES = {
    "count": "int64", "distinct_orders": "int64", "resolved": "int64", "mean_resolution_hours": "float64",
    "previous_count": "int64", "wow_change": "float64", "emerging": "bool", "top_rank": "Int64",
}  # fmt: skip
INSIGHT_COLUMNS = ["tenant", "day", "kind", "subject", "value", "message"]
RECOMMENDATION = "recommendation"
INSIGHT_KINDS = (
    "most_common_code", "peak_hour", "peak_weekday", "emerging_code", "prevention_opportunity",
    "resolution_rate", RECOMMENDATION,
)  # fmt: skip
# What to change upstream when a code keeps coming back (prevention opportunities).
PREVENTION_HINTS = {
    "PICK_DELAY": "add pickers or wave-release earlier in the peak hours",
    "PACK_DELAY": "rebalance pack stations against the pick rate",
    "SHIP_DELAY": "move carrier cut-offs or add a pickup",
    "MISSING_SCAN": "check scanner coverage and the pack-scan step",
    "DELIVERY_DELAY": "review carrier performance on the affected lanes",
    "CARRIER_ISSUE": "review carrier performance on the affected lanes",
    "ADDRESS_INVALID": "validate shipping addresses at checkout",
    "PAYMENT_FAILED": "hold fulfilment until payment is captured",
    "INVENTORY_SHORTAGE": "raise reorder points for the short SKUs",
    "DAMAGED_PACKAGE": "review packaging for fragile items",
    "CUSTOMER_UNAVAILABLE": "offer delivery-time choice or pickup points",
    "STOCK_MISMATCH": "schedule cycle counts for the affected locations",
    "SYSTEM_ERROR": "investigate the integration errors with the WMS team",
    "OTHER": "classify these exceptions into specific reason codes",
}


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return pd.Timestamp(value).tz_convert("UTC").date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp).date()


def _empty(columns: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in columns})


def _window_start(end: dt.date, days: int) -> pd.Timestamp:
    return pd.Timestamp(end, tz="UTC") - pd.Timedelta(days=days - 1)


def in_pattern_window(opened_at: pd.Series, window_end_day: Any, days: int = PATTERN_WINDOW_DAYS) -> pd.Series:
    """Exceptions opened in the `days` UTC days ending at `window_end_day` (inclusive)."""
    opened_day = pd.to_datetime(opened_at, utc=True, cache=False).astype(TS_DTYPE).dt.floor("D")
    end = _as_date(window_end_day)
    return (opened_day >= _window_start(end, days)) & (opened_day <= pd.Timestamp(end, tz="UTC"))


def lookback_start(first_day: dt.date) -> dt.date:
    """The first day whose exceptions the patterns of `first_day` read (the window before it included)."""
    return first_day - dt.timedelta(days=PATTERN_LOOKBACK_DAYS)


# --------------------------------------------------------------------------------- build_patterns


def build_patterns(exceptions: pd.DataFrame, window_end_day: Any, days: int = PATTERN_WINDOW_DAYS) -> pd.DataFrame:
    """Per tenant, dimension and key: exceptions opened in the `days` UTC days ending at
    `window_end_day` (inclusive) against the `days` before them.

    Keys seen in either window get a row (count 0 when only the previous window had them).
    `resolved` / `mean_resolution_hours` use the status the exceptions frame has at its as_of.
    wow_change = count / previous_count (NaN when previous_count is 0); emerging (reason_code rows
    only) when count >= 5 and count >= 2 x previous_count; top_rank 1-5 for the five codes with the
    highest count (ties: code name), null otherwise.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    end = _as_date(window_end_day)
    if exceptions is None or exceptions.empty:
        return _empty(PATTERN_COLUMNS, _PATTERN_DTYPES)
    opened = pd.to_datetime(exceptions["opened_at"], utc=True, cache=False).astype(TS_DTYPE)
    resolved_at = pd.to_datetime(exceptions["resolved_at"], utc=True, cache=False).astype(TS_DTYPE)
    opened_day = opened.dt.floor("D")
    start_ts = _window_start(end, days)
    current = in_pattern_window(opened, end, days)
    previous = (opened_day >= start_ts - pd.Timedelta(days=days)) & (opened_day < start_ts)

    ex = pd.DataFrame(
        {
            "tenant": exceptions["tenant"],
            "order_id": exceptions["order_id"].astype(str),
            "_current": current,
            "_resolved": exceptions["status"].eq(RESOLVED),
            "_hours": (resolved_at - opened) / pd.Timedelta(hours=1),
            "reason_code": exceptions["reason_code"],
            "severity": exceptions["severity"],
            "hour": opened.dt.hour.map("{:02d}".format),
            "weekday": opened.dt.day_name(),
        }
    )[current | previous]
    if ex.empty:
        return _empty(PATTERN_COLUMNS, _PATTERN_DTYPES)
    long = pd.concat(
        [ex.drop(columns=list(DIMENSIONS)).assign(dimension=d, key=ex[d].astype(str)) for d in DIMENSIONS],
        ignore_index=True,
    )
    by = ["tenant", "dimension", "key"]
    cur = long[long["_current"]]
    stats = cur.groupby(by).agg(
        count=("order_id", "size"),
        distinct_orders=("order_id", "nunique"),
        resolved=("_resolved", "sum"),
        mean_resolution_hours=("_hours", "mean"),  # NaN hours of open ones are skipped
    )
    prev = long[~long["_current"]].groupby(by).size().rename("previous_count")
    out = stats.join(prev, how="outer").reset_index()
    for col in ("count", "distinct_orders", "resolved", "previous_count"):
        out[col] = out[col].fillna(0).astype("int64")
    out["wow_change"] = (out["count"] / out["previous_count"].where(out["previous_count"] > 0)).astype(float)
    is_code = out["dimension"].eq(BY_REASON_CODE)
    out["emerging"] = (
        is_code & (out["count"] >= EMERGING_MIN_COUNT) & (out["count"] >= EMERGING_FACTOR * out["previous_count"])
    )
    ranked = out[is_code & (out["count"] > 0)].sort_values(["tenant", "count", "key"], ascending=[True, False, True])
    rank = ranked.groupby("tenant").cumcount() + 1
    out["top_rank"] = pd.array(rank[rank <= TOP_CODES].reindex(out.index), dtype="Int64")
    out["day"] = end

    # Stable, readable order: dimensions as listed; codes by name, severities high to low,
    # hours 00-23, weekdays Monday-Sunday.
    sev_order = {s: f"{len(SEVERITIES) - i:02d}" for i, s in enumerate(SEVERITIES)}
    day_order = {d: f"{i:02d}" for i, d in enumerate(WEEKDAYS)}
    sort_key = np.select(
        [out["dimension"].eq("severity"), out["dimension"].eq("weekday")],
        [out["key"].map(sev_order).fillna(out["key"]), out["key"].map(day_order).fillna(out["key"])],
        default=out["key"],
    )
    out = out.assign(_d=out["dimension"].map({d: i for i, d in enumerate(DIMENSIONS)}), _k=sort_key)
    out = out.sort_values(["tenant", "_d", "_k"], kind="mergesort").reset_index(drop=True)
    return out[PATTERN_COLUMNS].astype(_PATTERN_DTYPES)


# ------------------------------------------------------------------------------------ insights


def _peak(patterns: pd.DataFrame, dimension: str, order: dict[str, int] | None = None) -> pd.DataFrame:
    """Per tenant, the key of `dimension` with the highest count (ties: earliest key)."""
    p = patterns[patterns["dimension"].eq(dimension) & (patterns["count"] > 0)]
    p = p.assign(_o=p["key"].map(order) if order else p["key"])
    p = p.sort_values(["tenant", "count", "_o"], ascending=[True, False, True], kind="mergesort")
    return p.drop_duplicates("tenant")


def build_insights(patterns: pd.DataFrame, exceptions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per tenant: most common code, peak hour, peak weekday, emerging codes, prevention
    opportunities (> 5 in the window), resolution rate and, below 80 %, a recommendation.

    `exceptions` (optional) adds the tenant's open billing holds to the recommendation.
    """
    if patterns is None or patterns.empty:
        return _empty(INSIGHT_COLUMNS, {"value": "float64"})
    p = patterns
    codes = p[p["dimension"].eq(BY_REASON_CODE) & (p["count"] > 0)]
    parts = []

    top = codes[codes["top_rank"].eq(1).fillna(False)]
    parts.append(top.assign(kind="most_common_code", subject=top["key"], value=top["count"],
                            message=top["key"] + " is the most common exception: " + top["count"].astype(str)
                            + " opened in the window ending " + top["day"].astype(str) + "."))  # fmt: skip
    hour = _peak(p, "hour")
    parts.append(hour.assign(kind="peak_hour", subject=hour["key"] + ":00", value=hour["count"],
                             message="Exceptions peak at " + hour["key"] + ":00 UTC ("
                             + hour["count"].astype(str) + " opened in that hour of the day)."))  # fmt: skip
    wd = _peak(p, "weekday", {d: i for i, d in enumerate(WEEKDAYS)})
    parts.append(wd.assign(kind="peak_weekday", subject=wd["key"], value=wd["count"],
                           message="The busiest weekday for exceptions is " + wd["key"] + " ("
                           + wd["count"].astype(str) + " opened)."))  # fmt: skip
    em = codes[codes["emerging"]]
    parts.append(em.assign(kind="emerging_code", subject=em["key"], value=em["count"],
                           message=em["key"] + " is emerging: " + em["count"].astype(str) + " this week against "
                           + em["previous_count"].astype(str) + " the week before."))  # fmt: skip
    prev = codes[codes["count"] > PREVENTION_MIN_COUNT]
    parts.append(prev.assign(kind="prevention_opportunity", subject=prev["key"], value=prev["count"],
                             message=prev["key"] + " occurred " + prev["count"].astype(str) + " times: "
                             + prev["key"].map(PREVENTION_HINTS).fillna("review the root cause") + "."))  # fmt: skip

    totals = codes.groupby(["tenant", "day"], as_index=False)[["count", "resolved"]].sum()
    totals["rate"] = totals["resolved"] / totals["count"]
    pct = (totals["rate"] * 100).round(0).astype(int).astype(str) + "%"
    parts.append(totals.assign(kind="resolution_rate", subject="resolution_rate", value=totals["rate"],
                               message=pct + " of the " + totals["count"].astype(str)
                               + " exceptions opened in the window are resolved."))  # fmt: skip
    low = totals[totals["rate"] < RESOLUTION_TARGET].copy()
    if not low.empty:
        backlog = codes.assign(open=codes["count"] - codes["resolved"])
        backlog = backlog.sort_values(["tenant", "open", "key"], ascending=[True, False, True]).drop_duplicates("tenant")
        low = low.merge(backlog[["tenant", "key", "open"]], on="tenant", how="left")
        holds = pd.Series(0, index=low.index)
        if exceptions is not None and not exceptions.empty:
            held = exceptions[exceptions["holds_billing"].astype(bool)].groupby("tenant")["order_id"].nunique()
            holds = low["tenant"].map(held).fillna(0).astype(int)
        hold_text = np.where(holds > 0, " " + holds.astype(str) + " order(s) are held from billing by open exceptions.", "")
        low_pct = (low["rate"] * 100).round(0).astype(int).astype(str) + "%"
        parts.append(low.assign(kind=RECOMMENDATION, subject="resolution_rate", value=low["rate"],
                                message="Resolution rate " + low_pct + f" is below the {RESOLUTION_TARGET:.0%} target: work the open "
                                + low["key"] + " exceptions first (" + low["open"].astype(str) + " open)." + hold_text))  # fmt: skip

    parts = [x[INSIGHT_COLUMNS] for x in parts if not x.empty]
    if not parts:  # e.g. only last week had exceptions
        return _empty(INSIGHT_COLUMNS, {"value": "float64"})
    out = pd.concat(parts, ignore_index=True)
    out["value"] = out["value"].astype(float)
    out = out.assign(_k=out["kind"].map({k: i for i, k in enumerate(INSIGHT_KINDS)}))
    out = out.sort_values(["tenant", "day", "_k", "subject"], kind="mergesort").reset_index(drop=True)
    return out[INSIGHT_COLUMNS]


_KIND_TITLES = {
    "most_common_code": "Most common",
    "peak_hour": "Peak hour",
    "peak_weekday": "Peak weekday",
    "emerging_code": "Emerging",
    "prevention_opportunity": "Prevention",
    "resolution_rate": "Resolution",
    RECOMMENDATION: "Recommendation",
}


def insights_markdown(insights: pd.DataFrame) -> str:
    """Insights as Markdown: one section per (tenant, day), one bullet per insight."""
    if insights is None or insights.empty:
        return "# Exception insights\n\nNo exceptions in the window.\n"
    bullets = "- **" + insights["kind"].map(_KIND_TITLES).fillna(insights["kind"]) + "**: " + insights["message"]
    frame = insights.assign(_b=bullets)
    sections = frame.groupby(["tenant", "day"], sort=True)["_b"].agg("\n".join)
    body = "\n\n".join("## " + t + " — " + str(d) + "\n\n" + b for (t, d), b in sections.items())
    return "# Exception insights\n\n" + body + "\n"
