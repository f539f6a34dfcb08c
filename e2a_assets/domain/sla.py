"""SLA clocks per order and daily SLA metrics per tenant (DOMAIN §3).

Pure and vectorised: the orders frame (`build_orders`) in, the `order_sla` long frame and the
`sla_metrics` daily frame out (columns in docs/internals.md). Rules DOMAIN leaves open are in
docs/rules/orders-and-sla.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2a_assets.domain.exceptions import RESOLVED
from e2a_assets.domain.orders import KEYS, TS_DTYPE, _empty, check_policies, utc_timestamp
from e2a_assets.domain.policies import shipped_defaults

# clock -> (start milestone, end milestone, policy column, factor to minutes)
CLOCK_DEFS = {
    "pick": ("paid_at", "picked_at", "pick_minutes", 1.0),
    "pack": ("picked_at", "packed_at", "pack_minutes", 1.0),
    "ship": ("packed_at", "shipped_at", "ship_minutes", 1.0),
    "delivery": ("created_at", "delivered_at", "delivery_hours", 60.0),
}
CLOCKS = tuple(CLOCK_DEFS)

ORDER_SLA_COLUMNS = [
    "tenant",
    "order_id",
    "cohort_day",
    "clock",
    "started_at",
    "ended_at",
    "running",
    "limit_minutes",
    "deadline_at",
    "actual_minutes",
    "breached",
    "delay_minutes",
    "as_of",
]
_SLA_DTYPES = {
    "tenant": "object",
    "order_id": "object",
    "cohort_day": "object",
    "clock": "object",
    "started_at": TS_DTYPE,
    "ended_at": TS_DTYPE,
    "running": "bool",
    "limit_minutes": "float64",
    "deadline_at": TS_DTYPE,
    "actual_minutes": "float64",
    "breached": "bool",
    "delay_minutes": "float64",
    "as_of": TS_DTYPE,
}

METRIC_COLUMNS = [
    "tenant",
    "day",
    "orders",
    "completed",
    "stalled",
    *[f"{c}_{m}" for c in CLOCKS for m in ("compliance", "p50_minutes", "p95_minutes", "breached")],
    "exception_response_compliance",
    "as_of",
]
_METRIC_DTYPES = {
    "tenant": "object",
    "day": "object",
    "orders": "int64",
    "completed": "int64",
    "stalled": "int64",
    **{f"{c}_compliance": "float64" for c in CLOCKS},
    **{f"{c}_p50_minutes": "float64" for c in CLOCKS},
    **{f"{c}_p95_minutes": "float64" for c in CLOCKS},
    **{f"{c}_breached": "int64" for c in CLOCKS},
    "exception_response_compliance": "float64",
    "as_of": TS_DTYPE,
}
COMPLETED_STATUSES = ("shipped", "delivered")


def _ts(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, cache=False).astype(TS_DTYPE)


# ---------------------------------------------------------------------------------- build_order_sla


def build_order_sla(orders: pd.DataFrame, as_of: pd.Timestamp, policies: pd.DataFrame) -> pd.DataFrame:
    """One row per (tenant, order_id, clock) whose start milestone exists (DOMAIN §3).

    A clock ends at its end milestone. Without one it stops (running=False, ended_at NaT) at the
    order's first terminal side event (cancelled or returned), else it runs until `as_of`.
    actual = max(0, stop - start) in exact float minutes; breached when actual > limit.
    """
    as_of = utc_timestamp(as_of)
    if orders is None or orders.empty:
        return _empty(ORDER_SLA_COLUMNS, _SLA_DTYPES)
    limits = check_policies(policies, orders["tenant"].unique(), [d[2] for d in CLOCK_DEFS.values()])

    stops = pd.concat([_ts(orders["cancelled_at"]), _ts(orders["returned_at"])], axis=1).min(axis=1)
    stops = _ts(stops)
    parts = []
    for clock, (start_col, end_col, limit_col, factor) in CLOCK_DEFS.items():
        started = _ts(orders[start_col])
        has = started.notna()
        ended = _ts(orders[end_col])[has]
        started = started[has]
        stop = stops[has]
        part = orders.loc[has, [*KEYS, "cohort_day"]].copy()
        part["clock"] = clock
        part["started_at"] = started
        part["ended_at"] = ended
        # Stopped by cancellation/return: measured to that event (never before the start).
        stopped_at = stop.where(stop > started, started)
        part["running"] = ended.isna() & stop.isna()
        stop_time = ended.where(ended.notna(), stopped_at.where(stop.notna(), as_of))
        part["limit_minutes"] = part["tenant"].map(limits[limit_col]).astype("float64") * factor
        part["_stop"] = _ts(stop_time)
        parts.append(part)
    sla = pd.concat(parts, ignore_index=True)

    sla["deadline_at"] = sla["started_at"] + pd.to_timedelta(sla["limit_minutes"], unit="m")
    actual = (sla["_stop"] - sla["started_at"]).dt.total_seconds() / 60.0
    sla["actual_minutes"] = actual.clip(lower=0.0).astype("float64")
    sla["breached"] = sla["actual_minutes"] > sla["limit_minutes"]
    sla["delay_minutes"] = (sla["actual_minutes"] - sla["limit_minutes"]).clip(lower=0.0)
    sla["as_of"] = pd.Series(as_of, index=sla.index).astype(TS_DTYPE)

    order = {c: i for i, c in enumerate(CLOCKS)}
    sla = sla.assign(_o=sla["clock"].map(order)).sort_values([*KEYS, "_o"], kind="mergesort")
    sla = sla.reset_index(drop=True)[ORDER_SLA_COLUMNS]
    return sla.astype({c: t for c, t in _SLA_DTYPES.items() if t != "object"})


# ------------------------------------------------------------------------------- build_sla_metrics


def _response_hours(policies: pd.DataFrame | None, tenants) -> pd.Series:
    if policies is None:
        return pd.Series(float(shipped_defaults().sla.response_hours), index=pd.Index(sorted(set(tenants)), name="tenant"))
    return check_policies(policies, tenants, ["response_hours"])["response_hours"].astype(float)


def build_sla_metrics(
    orders: pd.DataFrame,
    order_sla: pd.DataFrame,
    exceptions: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
    policies: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (tenant, day = cohort_day) present in `orders` (DOMAIN §3 daily metrics).

    - orders, completed (status shipped or delivered), stalled: counts of orders.
    - per clock c: c_compliance = on-time ended ÷ (ended + not ended but breached), 1.0 when that
      is 0; c_p50/p95_minutes over ended clocks (linear interpolation; NaN when none);
      c_breached = breached clocks (ended, running or stopped).
    - exception_response_compliance = resolved within the tenant's response_hours ÷ resolved
      exceptions (1.0 when none). `exceptions` may be None. `policies` (policy_frame) supplies
      response_hours; when None the shipped default policy's.
    """
    if as_of is None:
        raise ValueError("as_of is required")
    as_of = utc_timestamp(as_of)
    if orders is None or orders.empty:
        return _empty(METRIC_COLUMNS, _METRIC_DTYPES)

    days = ["tenant", "day"]
    o = orders.assign(
        day=orders["cohort_day"],
        _completed=orders["status"].isin(COMPLETED_STATUSES),
        _stalled=orders["stalled"].astype(bool),
    )
    metrics = o.groupby(days, sort=True).agg(
        orders=("order_id", "size"), completed=("_completed", "sum"), stalled=("_stalled", "sum")
    )

    sla = order_sla if order_sla is not None else _empty(ORDER_SLA_COLUMNS, _SLA_DTYPES)
    sla = sla.assign(day=sla["cohort_day"])
    ended = _ts(sla["ended_at"]).notna()
    breached = sla["breached"].astype(bool)
    sla = sla.assign(
        _ended=ended,
        _on_time=ended & ~breached,
        _counted=ended | breached,
        _breached=breached,
        _ended_minutes=sla["actual_minutes"].astype(float).where(ended),
    )
    grouped = sla.groupby([*days, "clock"], sort=True)
    per_clock = grouped.agg(
        on_time=("_on_time", "sum"),
        counted=("_counted", "sum"),
        breached=("_breached", "sum"),
    )
    per_clock["p50_minutes"] = grouped["_ended_minutes"].quantile(0.5)
    per_clock["p95_minutes"] = grouped["_ended_minutes"].quantile(0.95)
    per_clock["compliance"] = np.where(
        per_clock["counted"] > 0, per_clock["on_time"] / per_clock["counted"].where(per_clock["counted"] > 0, 1), 1.0
    )
    wide = per_clock[["compliance", "p50_minutes", "p95_minutes", "breached"]].unstack("clock")
    wide.columns = [f"{clock}_{measure}" for measure, clock in wide.columns]
    metrics = metrics.join(wide, how="left")
    for clock in CLOCKS:
        for col, fill in (("compliance", 1.0), ("p50_minutes", np.nan), ("p95_minutes", np.nan), ("breached", 0)):
            name = f"{clock}_{col}"
            metrics[name] = metrics[name].fillna(fill) if name in metrics.columns else fill

    metrics["exception_response_compliance"] = 1.0
    if exceptions is not None and not exceptions.empty:
        exc = exceptions.assign(day=exceptions["cohort_day"])
        hours = _response_hours(policies, exc["tenant"].unique())
        opened = _ts(exc["opened_at"])
        resolved_at = _ts(exc["resolved_at"])
        resolved = exc["status"].astype(str).str.upper().eq(RESOLVED) & resolved_at.notna()
        taken = (resolved_at - opened).dt.total_seconds() / 3600.0
        within = resolved & (taken <= exc["tenant"].map(hours).astype(float))
        exc = exc.assign(_resolved=resolved, _within=within)
        counts = exc.groupby(days)[["_resolved", "_within"]].sum()
        ratio = (counts["_within"] / counts["_resolved"].where(counts["_resolved"] > 0)).fillna(1.0)
        metrics["exception_response_compliance"] = ratio.reindex(metrics.index).fillna(1.0)

    metrics["as_of"] = as_of
    metrics = metrics.reset_index()
    return metrics[METRIC_COLUMNS].astype({c: t for c, t in _METRIC_DTYPES.items() if t != "object"})
