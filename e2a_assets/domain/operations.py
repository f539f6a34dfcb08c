"""The daily operations summary (DOMAIN §6): one row per tenant and day plus an overall ("ALL") row.

Pure and vectorised: the day's SLA metrics, exceptions, automated actions, invoices and the
number of failed Dagster runs in; figures, health indicators, a status and recommendations out.

Figures of a day:
- orders processed / completed and SLA compliance come from `sla_metrics` (the day's order
  cohort); overall compliance is weighted by orders;
- exceptions opened / resolved count the exceptions whose `opened_at` / `resolved_at` falls on
  the day (UTC), whatever the cohort of their order;
- automation success is the share of the automatable actions requested on the day whose
  outcome is `succeeded` (as of the run);
- invoices and revenue count the invoices dated that day (when the billing ledger exists);
- runs failed is the number of failed Dagster runs created that day (platform-wide, so every
  tenant's row carries it: a failed run can leave any tenant's figures stale).

Health indicators (healthy when the figure meets the threshold; an indicator without data that
day, e.g. no automatable action, is left out of the share):
    fulfilment compliance (pick, pack, ship)  >= 0.95
    delivery compliance                        >= 0.90
    exception response compliance (4 h)        >= 0.90
    automation success                         >= 0.80
    stalled share of orders                    <= 0.05
    failed runs                                == 0
Status on the share of healthy indicators: EXCELLENT >= 0.9, GOOD >= 0.7, FAIR >= 0.5, else POOR.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from e2a_assets.domain.exceptions import SUCCEEDED

OVERALL = "ALL"
TS_DTYPE = "datetime64[ns, UTC]"
FULFILMENT_CLOCKS = ("pick", "pack", "ship")


@dataclass(frozen=True)
class HealthThresholds:
    """Where each health indicator turns unhealthy (see the module docstring)."""

    fulfilment_compliance: float = 0.95
    delivery_compliance: float = 0.90
    exception_response: float = 0.90
    automation_success: float = 0.80
    max_stalled_share: float = 0.05
    max_failed_runs: int = 0


DEFAULT_THRESHOLDS = HealthThresholds()
# indicator column -> (figure column, healthy when figure >= threshold (True) or <= (False), threshold attribute)
INDICATORS = {
    "fulfilment_ok": ("fulfilment_compliance", True, "fulfilment_compliance"),
    "delivery_ok": ("delivery_compliance", True, "delivery_compliance"),
    "exception_response_ok": ("exception_response_compliance", True, "exception_response"),
    "automation_ok": ("automation_success_rate", True, "automation_success"),
    "stalled_ok": ("stalled_share", False, "max_stalled_share"),
    "runs_ok": ("runs_failed", False, "max_failed_runs"),
}
STATUS_LEVELS = ((0.9, "EXCELLENT"), (0.7, "GOOD"), (0.5, "FAIR"))
LOWEST_STATUS = "POOR"

SUMMARY_COLUMNS = [
    "tenant", "day", "orders_processed", "orders_completed", "completion_rate",
    "fulfilment_compliance", "delivery_compliance", "exception_response_compliance",
    "stalled", "stalled_share", "exceptions_opened", "exceptions_resolved",
    "automation_attempts", "automation_succeeded", "automation_success_rate",
    "invoices", "revenue_cents", "runs_failed", "healthy_indicators", "indicators",
    "health_score", "status", "recommendations", "as_of",
]  # fmt: skip
_COUNTS = ["orders_processed", "orders_completed", "stalled", "exceptions_opened", "exceptions_resolved",
           "automation_attempts", "automation_succeeded", "invoices", "revenue_cents", "runs_failed"]


def status_for(score: float) -> str:
    """EXCELLENT >= 0.9, GOOD >= 0.7, FAIR >= 0.5, else POOR (DOMAIN §6)."""
    for floor, label in STATUS_LEVELS:
        if score >= floor:
            return label
    return LOWEST_STATUS


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _utc_day(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, cache=False).dt.date


def _count_by_day(frame: pd.DataFrame | None, stamp: str, name: str) -> pd.DataFrame:
    """(tenant, day) -> number of rows whose `stamp` falls on the day."""
    if frame is None or frame.empty or stamp not in frame:
        return pd.DataFrame(columns=["tenant", "day", name])
    rows = frame[frame[stamp].notna()]
    out = rows.assign(day=_utc_day(rows[stamp])).groupby(["tenant", "day"]).size()
    return out.rename(name).reset_index()


def _sla_figures(sla_metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Per (tenant, day): orders, completed, stalled and order-weighted compliance sums."""
    cols = ["tenant", "day", "orders_processed", "orders_completed", "stalled",
            "_w", "_fulfil", "_delivery", "_response"]
    if sla_metrics is None or sla_metrics.empty:
        return pd.DataFrame(columns=cols)
    m = sla_metrics
    w = m["orders"].astype(float)
    fulfil = sum(m[f"{c}_compliance"].astype(float) for c in FULFILMENT_CLOCKS) / len(FULFILMENT_CLOCKS)
    out = pd.DataFrame({
        "tenant": m["tenant"],
        "day": pd.to_datetime(m["day"]).dt.date,
        "orders_processed": m["orders"].astype("int64"),
        "orders_completed": m["completed"].astype("int64"),
        "stalled": m["stalled"].astype("int64"),
        "_w": w,
        "_fulfil": fulfil * w,
        "_delivery": m["delivery_compliance"].astype(float) * w,
        "_response": m["exception_response_compliance"].astype(float) * w,
    })
    return out.groupby(["tenant", "day"], as_index=False).sum()


def _automation(actions: pd.DataFrame | None) -> pd.DataFrame:
    """Per (tenant, day of request): automatable actions and how many succeeded."""
    cols = ["tenant", "day", "automation_attempts", "automation_succeeded"]
    if actions is None or actions.empty:
        return pd.DataFrame(columns=cols)
    auto = actions[actions["automatable"].astype(bool)]
    if auto.empty:
        return pd.DataFrame(columns=cols)
    auto = auto.assign(day=_utc_day(auto["requested_at"]), _ok=auto["outcome"].eq(SUCCEEDED).astype("int64"))
    return auto.groupby(["tenant", "day"], as_index=False).agg(
        automation_attempts=("_ok", "size"), automation_succeeded=("_ok", "sum")
    )


def _invoices(invoices: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["tenant", "day", "invoices", "revenue_cents"]
    if invoices is None or invoices.empty:
        return pd.DataFrame(columns=cols)
    inv = invoices.assign(day=pd.to_datetime(invoices["invoice_date"]).dt.date,
                          _amount=pd.to_numeric(invoices["amount_cents"]).fillna(0).astype("int64"))
    return inv.groupby(["tenant", "day"], as_index=False).agg(invoices=("order_id", "size"), revenue_cents=("_amount", "sum"))


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype(float)
    return (num.astype(float) / den.where(den > 0)).astype(float)


def _indicators(frame: pd.DataFrame, thresholds: HealthThresholds) -> pd.DataFrame:
    applicable = pd.Series(0, index=frame.index, dtype="int64")
    healthy = pd.Series(0, index=frame.index, dtype="int64")
    for name, (figure, at_least, attr) in INDICATORS.items():
        value = frame[figure].astype(float)
        limit = getattr(thresholds, attr)
        ok = value >= limit if at_least else value <= limit
        known = value.notna()
        frame[name] = ok.where(known)  # NaN: not applicable that day
        applicable += known.astype("int64")
        healthy += (ok & known).astype("int64")
    frame["indicators"] = applicable
    frame["healthy_indicators"] = healthy
    frame["health_score"] = _ratio(healthy, applicable).fillna(1.0)
    frame["status"] = frame["health_score"].map(status_for)
    return frame


def _recommend(row: Any, thresholds: HealthThresholds) -> str:
    """Recommendations for one row, most urgent first; '' when nothing needs attention."""
    out: list[str] = []
    if row.runs_failed > thresholds.max_failed_runs:
        out.append(f"{int(row.runs_failed)} Dagster run(s) failed: inspect them and re-run the affected partitions")
    if row.fulfilment_ok == 0:
        out.append(f"fulfilment SLA compliance {row.fulfilment_compliance:.0%} is below "
                   f"{thresholds.fulfilment_compliance:.0%}: review pick/pack/ship staffing and wave planning")
    if row.delivery_ok == 0:
        out.append(f"delivery compliance {row.delivery_compliance:.0%} is below {thresholds.delivery_compliance:.0%}: "
                   "review carrier performance and escalate late shipments")
    if row.exception_response_ok == 0:
        out.append(f"only {row.exception_response_compliance:.0%} of exceptions got a response within the SLA: "
                   "work the exception queue (exception_priorities) first")
    if row.automation_ok == 0:
        out.append(f"automation success {row.automation_success_rate:.0%} is below {thresholds.automation_success:.0%}: "
                   "check the automated actions still pending in exception_actions")
    if row.stalled_ok == 0:
        out.append(f"{int(row.stalled)} stalled order(s) ({row.stalled_share:.0%}): chase orders without progress")
    if row.exceptions_opened > row.exceptions_resolved and row.exceptions_opened >= 5:
        out.append(f"exception backlog grew by {int(row.exceptions_opened - row.exceptions_resolved)}: "
                   "more opened than resolved")
    # No "completed but not invoiced" rule: invoices are dated when issued, orders by cohort day,
    # so the two rarely meet on the same day (billing validation lives in the invoice checks).
    return "; ".join(out)


def build_operations_summary(
    first: dt.date,
    last: dt.date,
    *,
    sla_metrics: pd.DataFrame | None,
    exceptions: pd.DataFrame | None,
    actions: pd.DataFrame | None,
    invoices: pd.DataFrame | None,
    runs_failed: Mapping[dt.date, int],
    as_of: pd.Timestamp,
    tenants: list[str] | tuple[str, ...] = (),
    thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """One row per (tenant, day) in first..last plus an "ALL" row per day (SUMMARY_COLUMNS).

    `invoices=None` means billing is not deployed: invoice figures are 0. Tenants seen in any input (or listed) get a row for every day.
    """
    parts = [_sla_figures(sla_metrics), _count_by_day(exceptions, "opened_at", "exceptions_opened"),
             _count_by_day(exceptions, "resolved_at", "exceptions_resolved"), _automation(actions),
             _invoices(invoices)]
    seen = set(tenants)
    for part in parts:
        seen.update(part["tenant"].dropna().unique())
    days = _days(first, last)
    grid = pd.MultiIndex.from_product([sorted(seen), days], names=["tenant", "day"]).to_frame(index=False)
    frame = grid
    for part in parts:
        part = part[part["day"].isin(days)] if len(part) else part
        frame = frame.merge(part, on=["tenant", "day"], how="left")
    sums = [c for c in frame.columns if c not in ("tenant", "day")]
    frame[sums] = frame[sums].astype(float).fillna(0.0)

    overall = frame.groupby("day", as_index=False)[sums].sum().assign(tenant=OVERALL)
    frame = pd.concat([frame, overall], ignore_index=True) if len(frame) else \
        pd.DataFrame({"tenant": OVERALL, "day": days, **{c: 0.0 for c in sums}})

    frame["runs_failed"] = frame["day"].map(lambda d: int(runs_failed.get(d, 0))).astype("int64")
    frame["completion_rate"] = _ratio(frame["orders_completed"], frame["orders_processed"])
    frame["fulfilment_compliance"] = _ratio(frame["_fulfil"], frame["_w"])
    frame["delivery_compliance"] = _ratio(frame["_delivery"], frame["_w"])
    frame["exception_response_compliance"] = _ratio(frame["_response"], frame["_w"])
    frame["stalled_share"] = _ratio(frame["stalled"], frame["orders_processed"])
    frame["automation_success_rate"] = _ratio(frame["automation_succeeded"], frame["automation_attempts"])
    frame = _indicators(frame, thresholds)
    frame["recommendations"] = [_recommend(r, thresholds) for r in frame.itertuples(index=False)]
    frame["as_of"] = pd.Timestamp(as_of)
    for col in _COUNTS:
        frame[col] = frame[col].astype("int64")
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True, cache=False)
    order = np.where(frame["tenant"] == OVERALL, 0, 1)
    frame = frame.assign(_o=order).sort_values(["day", "_o", "tenant"], kind="mergesort")
    return frame.reset_index(drop=True)[SUMMARY_COLUMNS]


def _levels_text() -> str:
    """"EXCELLENT >= 90 % of indicators healthy, GOOD >= 70 %, FAIR >= 50 %" from STATUS_LEVELS."""
    levels = [f"{label} >= {floor * 100:.0f} %" for floor, label in STATUS_LEVELS]
    return ", ".join([levels[0] + " of indicators healthy", *levels[1:]])


def _pct(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def summary_markdown(summary: pd.DataFrame, thresholds: HealthThresholds = DEFAULT_THRESHOLDS) -> str:
    """The executive report of the newest day in `summary`: overall, per tenant, recommendations."""
    if summary.empty:
        return "_no data_"
    day = summary["day"].max()
    today = summary[summary["day"] == day]
    lines = [f"## Operations summary {day.isoformat()}", ""]
    lines.append("| tenant | status | health | orders | completed | fulfilment SLA | delivery SLA | "
                 "exceptions opened / resolved | automation | invoices | revenue | failed runs |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in today.itertuples(index=False):
        lines.append(
            f"| {r.tenant} | **{r.status}** | {r.healthy_indicators}/{r.indicators} | {r.orders_processed} | "
            f"{r.orders_completed} | {_pct(r.fulfilment_compliance)} | {_pct(r.delivery_compliance)} | "
            f"{r.exceptions_opened} / {r.exceptions_resolved} | {_pct(r.automation_success_rate)} | {r.invoices} | "
            f"{r.revenue_cents / 100:,.2f} | {r.runs_failed} |"
        )
    lines += ["", "### Recommendations", ""]
    recs = [(r.tenant, r.recommendations) for r in today.itertuples(index=False) if r.recommendations]
    lines += [f"- **{t}**: {rec}" for t, rec in recs] or ["- nothing needs attention"]
    t = thresholds
    lines += ["", f"_Healthy when: fulfilment SLA >= {t.fulfilment_compliance:.0%}, delivery SLA >= "
              f"{t.delivery_compliance:.0%}, exception response >= {t.exception_response:.0%}, automation >= "
              f"{t.automation_success:.0%}, stalled <= {t.max_stalled_share:.0%}, failed runs <= {t.max_failed_runs}. "
              f"{_levels_text()}, else {LOWEST_STATUS}._"]
    return "\n".join(lines)
