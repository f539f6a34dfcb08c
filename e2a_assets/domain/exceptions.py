"""Exception management (DOMAIN §4): detect, resolve, prioritise and plan actions.

Pure and vectorised. Every source of an exception is turned into *signals*: an `open` signal when
its condition becomes true and `clear` signals when it clears; one aggregation then gives one row
per (tenant, order_id, reason_code). Rules DOMAIN leaves open are in docs/rules/exceptions.md.
Patterns and insights over these rows are in `exception_patterns`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from e2a_assets.domain.orders import order_cohort_days
from e2a_assets.domain.policies import shipped_defaults

TS_DTYPE = "datetime64[ns, UTC]"
KEYS = ["tenant", "order_id", "reason_code"]

# Reason codes and their default severity (DOMAIN §4).
REASON_CODES = {
    "PICK_DELAY": "MEDIUM",
    "PACK_DELAY": "MEDIUM",
    "SHIP_DELAY": "HIGH",
    "MISSING_SCAN": "MEDIUM",
    "DELIVERY_DELAY": "HIGH",
    "CARRIER_ISSUE": "HIGH",
    "ADDRESS_INVALID": "MEDIUM",
    "PAYMENT_FAILED": "HIGH",
    "INVENTORY_SHORTAGE": "HIGH",
    "DAMAGED_PACKAGE": "HIGH",
    "CUSTOMER_UNAVAILABLE": "MEDIUM",
    "STOCK_MISMATCH": "HIGH",
    "SYSTEM_ERROR": "CRITICAL",
    "OTHER": "MEDIUM",
}
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
# Priority of an open exception (DOMAIN §4): severity weight + AGE_POINTS_PER_HOUR x age, at most
# AGE_POINTS_CAP, + SLA_RISK_POINTS once its age passes SLA_RISK_SHARE of the response SLA.
SEVERITY_WEIGHT = {"CRITICAL": 100, "HIGH": 75, "MEDIUM": 50, "LOW": 25}
AGE_POINTS_PER_HOUR, AGE_POINTS_CAP = 2.0, 50.0
SLA_RISK_POINTS, SLA_RISK_SHARE = 30.0, 0.75
HIGH_IMPACT_SCORE = 120  # strictly above: high_impact
PRIORITY_CATEGORIES = ("critical_urgent", "high_impact", "sla_risk", "standard")
SOURCES = ("sla", "payload", "carrier", "reported")
OPEN, RESOLVED = "OPEN", "RESOLVED"  # an exception's lifecycle
# An order with an OPEN exception of one of these codes is held from invoicing (DOMAIN §4).
BLOCKING_REASON_CODES = ("DAMAGED_PACKAGE", "STOCK_MISMATCH", "SYSTEM_ERROR")
# SLA clock -> (reason code, resolution when its end milestone happens).
CLOCK_CODES = {
    "pick": ("PICK_DELAY", "milestone:picked"),
    "pack": ("PACK_DELAY", "milestone:packed"),
    "ship": ("SHIP_DELAY", "milestone:shipped"),
    "delivery": ("DELIVERY_DELAY", "delivered"),
}
DELIVERY_CRITICAL_OVERRUN = pd.Timedelta(hours=48)
# Codes whose clock a return stops (like a cancellation stops it): the SLA codes.
CLOCK_STOP_CODES = frozenset({"PICK_DELAY", "PACK_DELAY", "SHIP_DELAY", "DELIVERY_DELAY", "MISSING_SCAN"})
# Codes e2a detects itself: a cancellation ends them (and none opens after it). Reported-only
# codes (damage, stock mismatch, system error, other) need an explicit exception_resolved.
CANCELLATION_CLEARS = CLOCK_STOP_CODES | {
    "ADDRESS_INVALID",
    "PAYMENT_FAILED",
    "INVENTORY_SHORTAGE",
    "CARRIER_ISSUE",
    "CUSTOMER_UNAVAILABLE",
}
# Tie-break between clear signals at the same instant: the natural cause first.
_NATURAL, _STOP, _MANUAL = 0, 1, 2

# Automated resolution (DOMAIN §4): code -> (action, automatable).
ACTIONS = {
    "MISSING_SCAN": ("infer_scan", True),
    "ADDRESS_INVALID": ("request_address_fix", True),
    "PAYMENT_FAILED": ("retry_payment", True),
    "CARRIER_ISSUE": ("carrier_escalation", False),
    "DELIVERY_DELAY": ("carrier_escalation", False),
    "CUSTOMER_UNAVAILABLE": ("carrier_escalation", False),
}
DEFAULT_ACTION = "manual_review"
PENDING, SUCCEEDED = "pending", "succeeded"  # an action's outcome: succeeded once its exception resolves

EXCEPTION_COLUMNS = [
    "tenant", "order_id", "cohort_day", "reason_code", "severity", "source", "opened_at",
    "status", "resolved_at", "resolution", "holds_billing", "as_of",
]  # fmt: skip
PRIORITY_COLUMNS = [*EXCEPTION_COLUMNS, "age_hours", "score", "category", "rank"]
ACTION_COLUMNS = [
    "tenant", "order_id", "cohort_day", "reason_code", "action", "automatable", "requested_at",
    "outcome", "completed_at", "action_key", "as_of",
]  # fmt: skip
AUTOMATION_COLUMNS = ["tenant", "reason_code", "action", "automatable", "resolved", "pending", "success_rate"]
_SIGNAL_COLUMNS = ["tenant", "order_id", "reason_code", "kind", "at", "rank", "source", "resolution", "prio"]


# --------------------------------------------------------------------------------------- helpers


def utc(value: Any, what: str = "as_of") -> pd.Timestamp:
    """A tz-aware timestamp in UTC (ns); a naive one is refused rather than guessed."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {stamp})")
    return stamp.tz_convert("UTC").as_unit("ns")


def _ts(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, cache=False).astype(TS_DTYPE)


def _empty(columns: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in columns})


_EXC_DTYPES = {"opened_at": TS_DTYPE, "resolved_at": TS_DTYPE, "as_of": TS_DTYPE, "holds_billing": "bool"}


def holds_billing(reason_codes: pd.Series) -> pd.Series:
    """Where an exception of that code, while OPEN, holds its order from invoicing (DOMAIN §4)."""
    return reason_codes.astype(str).str.strip().str.upper().isin(BLOCKING_REASON_CODES)


def normalise_code(codes: pd.Series) -> pd.Series:
    """Reported codes upper-cased and trimmed; anything DOMAIN does not know becomes OTHER."""
    norm = codes.fillna("").astype(str).str.strip().str.upper()
    return norm.where(norm.isin(list(REASON_CODES)), "OTHER")


def sla_policies(policies: Any, tenants: Any) -> pd.DataFrame:
    """Per-tenant SLA numbers indexed by tenant, from a TenantRegistry or its policy_frame().

    `None` means the shipped default policy for every tenant; a given frame must cover every tenant.
    """
    cols = ["pack_minutes", "missing_scan_factor", "response_hours"]
    tenants = pd.Index(pd.unique(pd.Series(list(tenants), dtype=object)), name="tenant")
    if policies is None:
        defaults = shipped_defaults().sla.model_dump()
        return pd.DataFrame({c: float(defaults[c]) for c in cols}, index=tenants)
    frame = policies if isinstance(policies, pd.DataFrame) else policies.policy_frame()
    absent = [c for c in ["tenant", *cols] if c not in frame.columns]
    if absent:
        raise ValueError(f"policies frame lacks column(s): {', '.join(absent)}")
    frame = frame.drop_duplicates("tenant").set_index("tenant")[cols].astype(float)
    missing = sorted(set(tenants) - set(frame.index))
    if missing:
        raise ValueError(f"no policy for tenant(s): {', '.join(map(str, missing))}")
    return frame.reindex(tenants)


def _events_until(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Canonical events that happened at or before `as_of`, deduplicated, in a fixed order."""
    ev = events[events["event_type"].notna() & events["order_id"].notna()].copy()
    ev["occurred_at"] = _ts(ev["occurred_at"])
    ev["order_id"] = ev["order_id"].astype(str)
    ev = ev[ev["occurred_at"] <= as_of]
    if {"source", "event_id"} <= set(ev.columns):
        # A re-delivery is stored once: keep the first received copy, whatever the row order.
        if "received_at" in ev.columns:
            ev = ev.assign(received_at=_ts(ev["received_at"]))
        first = [c for c in ("received_at", "occurred_at") if c in ev.columns]
        ev = ev.sort_values(first, kind="mergesort").drop_duplicates(["tenant", "source", "event_id"])
    by = [c for c in ("tenant", "order_id", "occurred_at", "event_id") if c in ev.columns]
    return ev.sort_values(by, kind="mergesort").reset_index(drop=True)


def _signals(frame: pd.DataFrame, code: Any, kind: str, source: str | None = None,
             resolution: Any = None, severity: Any = None, prio: int = _NATURAL) -> pd.DataFrame:  # fmt: skip
    """Signal rows from `frame` (tenant, order_id, occurred_at) for one or more reason codes."""
    out = pd.DataFrame({"tenant": frame["tenant"], "order_id": frame["order_id"], "at": frame["occurred_at"]})
    out["reason_code"] = code
    out["kind"] = kind
    sev = severity if severity is not None else out["reason_code"].map(REASON_CODES)
    out["rank"] = pd.Series(sev, index=out.index).map(SEVERITY_RANK) if kind == "open" else np.nan
    out["source"] = source
    out["resolution"] = resolution
    out["prio"] = prio
    return out[_SIGNAL_COLUMNS]


def _first(ev: pd.DataFrame, event_type: str) -> pd.DataFrame:
    sub = ev.loc[ev["event_type"].eq(event_type)]
    return sub.groupby(["tenant", "order_id"], as_index=False)["occurred_at"].min()


# --------------------------------------------------------------------------------------- sources


def _sla_signals(order_sla: pd.DataFrame, as_of: pd.Timestamp) -> list[pd.DataFrame]:
    """PICK/PACK/SHIP/DELIVERY_DELAY: open at the deadline when the clock overran it at as_of."""
    s = order_sla.loc[order_sla["clock"].isin(list(CLOCK_CODES))].copy()
    if s.empty:
        return []
    s["order_id"] = s["order_id"].astype(str)
    started, ended = _ts(s["started_at"]), _ts(s["ended_at"])
    if "deadline_at" in s.columns:
        deadline = _ts(s["deadline_at"])
    else:
        deadline = started + pd.to_timedelta(s["limit_minutes"].astype(float), unit="m")
    end = ended.where(ended <= as_of)  # a milestone after as_of has not happened yet
    breached = started.notna() & (started <= as_of) & (deadline < as_of) & (end.isna() | (end > deadline))
    s, end, deadline = s[breached], end[breached], deadline[breached]
    code = s["clock"].map({k: v[0] for k, v in CLOCK_CODES.items()})
    overrun = end.fillna(as_of) - deadline  # capped at a cancellation/return in _stop_signals
    severity = pd.Series(np.where(overrun > DELIVERY_CRITICAL_OVERRUN, "CRITICAL", "HIGH"), index=s.index)
    severity = severity.where(code.eq("DELIVERY_DELAY"), code.map(REASON_CODES))
    frame = pd.DataFrame({"tenant": s["tenant"], "order_id": s["order_id"], "occurred_at": deadline})
    opens = _signals(frame, code, "open", "sla", severity=severity)
    opens["_deadline"] = deadline  # lets a clock stop re-evaluate the overrun
    done = end.notna()
    frame = pd.DataFrame({"tenant": s["tenant"], "order_id": s["order_id"], "occurred_at": end})[done]
    clears = _signals(frame, code[done], "clear", resolution=s["clock"].map({k: v[1] for k, v in CLOCK_CODES.items()})[done])
    return [opens, clears]


def _missing_scan_signals(orders: pd.DataFrame, as_of: pd.Timestamp, policy: pd.DataFrame) -> list[pd.DataFrame]:
    """Picked and no pack scan for > missing_scan_factor x pack_minutes; any later milestone clears."""
    o = orders.loc[orders["picked_at"].notna(), ["tenant", "order_id"]].copy()
    if o.empty:
        return []
    o["order_id"] = o["order_id"].astype(str)
    picked = _ts(orders.loc[o.index, "picked_at"])
    picked = picked.where(picked <= as_of)
    later = {}
    for name in ("packed", "labelled", "shipped", "delivered"):
        col = _ts(orders.loc[o.index, f"{name}_at"])
        later[name] = col.where((col <= as_of) & (col >= picked))
    later = pd.DataFrame(later)
    first_later = _ts(later.min(axis=1))
    label = np.select([later[n].eq(first_later) for n in later.columns], [f"milestone:{n}" for n in later.columns], None)
    minutes = o["tenant"].map(policy["pack_minutes"] * policy["missing_scan_factor"]).astype(float)
    threshold = picked + pd.to_timedelta(minutes, unit="m")
    hit = picked.notna() & (threshold < as_of) & (first_later.isna() | (first_later > threshold))
    opens = _signals(o.assign(occurred_at=threshold)[hit], "MISSING_SCAN", "open", "sla")
    done = hit & first_later.notna()
    clears = _signals(o.assign(occurred_at=first_later)[done], "MISSING_SCAN", "clear", resolution=label[done.to_numpy()])
    return [opens, clears]


def _payload_signals(ev: pd.DataFrame) -> list[pd.DataFrame]:
    """ADDRESS_INVALID, PAYMENT_FAILED, INVENTORY_SHORTAGE from order_created/order_updated payloads."""
    payload = ev.loc[ev["event_type"].isin(["order_created", "order_updated"])]
    updated = payload["event_type"].eq("order_updated")
    valid = payload["address_valid"].astype("boolean") if "address_valid" in payload else pd.Series(pd.NA, index=payload.index, dtype="boolean")
    status = payload["financial_status"].fillna("").astype(str).str.strip().str.lower()
    shortage = payload["inventory_shortage"].fillna(False).astype(bool)
    zero = payload["zero_available"].fillna(False).astype(bool)
    has_lines = payload["line_count"].notna() if "line_count" in payload else pd.Series(False, index=payload.index)
    short = payload[shortage]
    return [
        _signals(payload[valid.eq(False).fillna(False)], "ADDRESS_INVALID", "open", "payload"),
        _signals(payload[(updated & valid.eq(True)).fillna(False)], "ADDRESS_INVALID", "clear", resolution="address_updated"),
        _signals(payload[status.eq("pending")], "PAYMENT_FAILED", "open", "payload"),
        _signals(ev.loc[ev["event_type"].eq("order_paid")], "PAYMENT_FAILED", "clear", resolution="order_paid"),
        _signals(short, "INVENTORY_SHORTAGE", "open", "payload", severity=np.where(zero[shortage], "CRITICAL", "HIGH")),
        _signals(payload[updated & has_lines & ~shortage], "INVENTORY_SHORTAGE", "clear", resolution="inventory_available"),
        _signals(ev.loc[ev["event_type"].eq("pick_completed")], "INVENTORY_SHORTAGE", "clear", resolution="milestone:picked"),
    ]


def _carrier_signals(ev: pd.DataFrame) -> list[pd.DataFrame]:
    """First delivery_failed -> CARRIER_ISSUE, each further one -> CUSTOMER_UNAVAILABLE; delivered clears."""
    failed = ev.loc[ev["event_type"].eq("delivery_failed")]
    nth = failed.groupby(["tenant", "order_id"]).cumcount()
    delivered = ev.loc[ev["event_type"].eq("delivered")]
    out = [
        _signals(failed[nth.eq(0)], "CARRIER_ISSUE", "open", "carrier"),
        _signals(failed[nth.ge(1)], "CUSTOMER_UNAVAILABLE", "open", "carrier"),
    ]
    for code in ("CARRIER_ISSUE", "CUSTOMER_UNAVAILABLE", "DELIVERY_DELAY"):
        out.append(_signals(delivered, code, "clear", resolution="delivered"))
    return out


def _reported_signals(ev: pd.DataFrame) -> list[pd.DataFrame]:
    """exception_reported opens its own code (unknown -> OTHER); exception_resolved clears that code."""
    rep = ev.loc[ev["event_type"].eq("exception_reported")]
    res = ev.loc[ev["event_type"].eq("exception_resolved")]
    return [
        _signals(rep, normalise_code(rep["reason_code"]), "open", "reported"),
        _signals(res, normalise_code(res["reason_code"]), "clear", resolution="exception_resolved", prio=_MANUAL),
    ]


def _stop_signals(opens: pd.DataFrame, ev: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cancellation and return: drop opens after the stop, cap the overrun, add clear signals."""
    cancel = _first(ev, "order_cancelled").rename(columns={"occurred_at": "_cancel"})
    ret = ev.loc[ev["event_type"].isin(["return_received", "returned_to_sender"])]
    ret = ret.groupby(["tenant", "order_id"], as_index=False)["occurred_at"].min().rename(columns={"occurred_at": "_return"})
    o = opens.merge(cancel, on=["tenant", "order_id"], how="left").merge(ret, on=["tenant", "order_id"], how="left")
    by_cancel = o["reason_code"].isin(list(CANCELLATION_CLEARS))
    by_return = o["reason_code"].isin(list(CLOCK_STOP_CODES))
    cancel_at = _ts(o["_cancel"]).where(by_cancel)
    return_at = _ts(o["_return"]).where(by_return)
    stop = _ts(pd.concat([cancel_at, return_at], axis=1).min(axis=1))
    keep = stop.isna() | (o["at"] < stop)
    # DELIVERY_DELAY overrun is measured to the stop when the order was not delivered before it.
    capped = (stop - o["_deadline"]) <= DELIVERY_CRITICAL_OVERRUN
    downgrade = o["reason_code"].eq("DELIVERY_DELAY") & o["source"].eq("sla") & capped.fillna(False)
    o["rank"] = o["rank"].where(~downgrade, SEVERITY_RANK["HIGH"])
    o = o[keep]
    stops = []
    for at, label in ((cancel_at, "order_cancelled"), (return_at, "order_returned")):
        hit = keep & at.notna()
        frame = o.loc[hit[keep], ["tenant", "order_id", "reason_code"]].assign(occurred_at=at[hit])
        stops.append(_signals(frame, frame["reason_code"], "clear", resolution=label, prio=_STOP))
    return o[_SIGNAL_COLUMNS], pd.concat(stops, ignore_index=True)


# ------------------------------------------------------------------------------- build_exceptions


def build_exceptions(
    events: pd.DataFrame,
    orders: pd.DataFrame,
    order_sla: pd.DataFrame,
    as_of: pd.Timestamp,
    policies: Any = None,
) -> pd.DataFrame:
    """One row per (tenant, order_id, reason_code) whose condition was true at some point <= as_of.

    `opened_at` is the first time the condition became true; the row is RESOLVED when a clear
    signal (see docs/rules/exceptions.md) happened at or after the *last* open signal, else OPEN.
    Events after `as_of` are ignored. `policies`: TenantRegistry, its policy_frame(), or None.
    """
    as_of = utc(as_of)
    if events is None or events.empty:
        events = pd.DataFrame(columns=["tenant", "order_id", "event_type", "occurred_at"])
    ev = _events_until(events, as_of)
    orders = orders if orders is not None else pd.DataFrame(columns=["tenant", "order_id", "picked_at"])
    tenants = set(ev["tenant"]) | set(orders["tenant"])
    parts = _payload_signals(ev) + _carrier_signals(ev) + _reported_signals(ev) if not ev.empty else []
    if order_sla is not None and not order_sla.empty:
        parts += _sla_signals(order_sla, as_of)
    if not orders.empty:
        parts += _missing_scan_signals(orders, as_of, sla_policies(policies, tenants))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return _empty(EXCEPTION_COLUMNS, _EXC_DTYPES)
    sig = pd.concat(parts, ignore_index=True)
    sig["at"] = _ts(sig["at"])
    sig["_deadline"] = _ts(sig["_deadline"]) if "_deadline" in sig else pd.Series(pd.NaT, index=sig.index, dtype=TS_DTYPE)
    opens = sig[sig["kind"].eq("open")]
    if opens.empty:
        return _empty(EXCEPTION_COLUMNS, _EXC_DTYPES)
    opens, stops = _stop_signals(opens, ev)
    clears = pd.concat([sig.loc[sig["kind"].eq("clear"), _SIGNAL_COLUMNS], stops], ignore_index=True)

    opens = opens.sort_values([*KEYS, "at", "source"], kind="mergesort")
    first = opens.drop_duplicates(KEYS, keep="first")[[*KEYS, "at", "source"]].rename(columns={"at": "opened_at"})
    agg = opens.groupby(KEYS, as_index=False).agg(_last_open=("at", "max"), _rank=("rank", "max"))
    exc = first.merge(agg, on=KEYS, how="left")

    # The earliest clear at or after the last open signal resolves the exception.
    c = clears.merge(exc[[*KEYS, "_last_open"]], on=KEYS, how="inner")
    c = c[c["at"] >= c["_last_open"]].sort_values([*KEYS, "at", "prio", "resolution"], kind="mergesort")
    c = c.drop_duplicates(KEYS, keep="first")[[*KEYS, "at", "resolution"]].rename(columns={"at": "resolved_at"})
    exc = exc.merge(c, on=KEYS, how="left")

    exc["severity"] = exc["_rank"].astype(int).map(dict(enumerate(SEVERITIES)))
    exc["resolved_at"] = _ts(exc["resolved_at"])
    exc["status"] = np.where(exc["resolved_at"].notna(), RESOLVED, OPEN)
    exc["resolution"] = exc["resolution"].astype(object).where(exc["resolved_at"].notna(), None)
    exc["holds_billing"] = exc["status"].eq(OPEN) & holds_billing(exc["reason_code"])
    exc = exc.merge(_cohort_days(orders, ev), on=["tenant", "order_id"], how="left")
    exc["as_of"] = pd.Series(as_of, index=exc.index).astype(TS_DTYPE)
    exc = exc.sort_values(["tenant", "opened_at", "order_id", "reason_code"], kind="mergesort").reset_index(drop=True)
    return exc[EXCEPTION_COLUMNS].astype(_EXC_DTYPES)


def _cohort_days(orders: pd.DataFrame, ev: pd.DataFrame) -> pd.DataFrame:
    """cohort_day from the orders frame; for orders it lacks, the events' own `cohort_day`
    (webhook_events carries it), else the cohort-day rule over the events."""
    known = pd.DataFrame(columns=["tenant", "order_id", "cohort_day"])
    if not orders.empty and "cohort_day" in orders.columns:
        known = orders[["tenant", "order_id", "cohort_day"]].astype({"order_id": str})
    first = order_cohort_days(ev)
    if "cohort_day" in ev.columns and ev["cohort_day"].notna().any():
        given = ev.dropna(subset=["cohort_day"]).groupby(["tenant", "order_id"])["cohort_day"].first()
        given = pd.to_datetime(given.astype(str)).dt.date
        keys = pd.MultiIndex.from_frame(first[["tenant", "order_id"]])
        first["cohort_day"] = pd.Series(given.reindex(keys).to_numpy(), index=first.index).fillna(first["cohort_day"])
    extra = first.merge(known[["tenant", "order_id"]], on=["tenant", "order_id"], how="left", indicator=True)
    extra = extra.loc[extra["_merge"].eq("left_only"), ["tenant", "order_id", "cohort_day"]]
    return pd.concat([known, extra], ignore_index=True).drop_duplicates(["tenant", "order_id"])


# ------------------------------------------------------------------------------------- prioritize


def prioritize(exceptions: pd.DataFrame, as_of: pd.Timestamp, policies: Any = None) -> pd.DataFrame:
    """Exceptions open at `as_of`, scored and categorised (DOMAIN §4), best first.

    score = severity weight + min(2 x age_hours, 50) + 30 if age_hours > 3 (75 % of the 4 h
    response SLA; with `policies`, 75 % of each tenant's response_hours). `rank` is 1.. within
    each tenant and cohort day; rows are ordered by score desc, opened_at, order_id (then tenant, reason_code).
    """
    as_of = utc(as_of)
    ex = exceptions.copy()
    ex["opened_at"], ex["resolved_at"] = _ts(ex["opened_at"]), _ts(ex["resolved_at"])
    # Open at as_of: opened by then and not resolved by then (works for a frame built later too).
    ex = ex[(ex["opened_at"] <= as_of) & (ex["resolved_at"].isna() | (ex["resolved_at"] > as_of))].copy()
    if ex.empty:
        return _empty(PRIORITY_COLUMNS, {**_EXC_DTYPES, "age_hours": "float64", "score": "float64", "rank": "int64"})
    ex["status"], ex["resolved_at"], ex["resolution"] = OPEN, pd.NaT, None
    ex["resolved_at"] = _ts(ex["resolved_at"])
    ex["holds_billing"] = holds_billing(ex["reason_code"])
    ex["as_of"] = pd.Series(as_of, index=ex.index).astype(TS_DTYPE)
    threshold = ex["tenant"].map(SLA_RISK_SHARE * sla_policies(policies, ex["tenant"])["response_hours"])
    age = (as_of - ex["opened_at"]) / pd.Timedelta(hours=1)
    risk = age > threshold
    ex["age_hours"] = age.astype(float)
    ex["score"] = (ex["severity"].map(SEVERITY_WEIGHT).astype(float) + np.minimum(AGE_POINTS_PER_HOUR * age, AGE_POINTS_CAP)
                   + np.where(risk, SLA_RISK_POINTS, 0.0))  # fmt: skip
    critical_urgent, high_impact, sla_risk, standard = PRIORITY_CATEGORIES
    ex["category"] = np.select(
        [ex["severity"].eq("CRITICAL"), ex["score"] > HIGH_IMPACT_SCORE, risk],
        [critical_urgent, high_impact, sla_risk],
        default=standard,
    )
    ex = ex.assign(_neg=-ex["score"]).sort_values(
        ["_neg", "opened_at", "order_id", "tenant", "reason_code"], kind="mergesort"
    )
    # Per tenant and cohort day: a partition's ranks are the same whether the day was refreshed
    # alone, in a range run or in chunks (a queue across days orders by score, as above).
    ex["rank"] = ex.groupby(["tenant", "cohort_day"], sort=False).cumcount().astype("int64") + 1
    return ex.reset_index(drop=True)[PRIORITY_COLUMNS]


# ----------------------------------------------------------------------------------- plan_actions


def plan_actions(exceptions: pd.DataFrame) -> pd.DataFrame:
    """One action per exception (DOMAIN §4): pending while it is OPEN, succeeded once RESOLVED.

    `action_key` (tenant:order_id:reason_code:action) is the outbox idempotency key.
    """
    dtypes = {"automatable": "bool", "requested_at": TS_DTYPE, "completed_at": TS_DTYPE, "as_of": TS_DTYPE}
    if exceptions is None or exceptions.empty:
        return _empty(ACTION_COLUMNS, dtypes)
    ex = exceptions
    out = ex[["tenant", "order_id", "cohort_day", "reason_code"]].copy()
    out["action"] = ex["reason_code"].map({k: v[0] for k, v in ACTIONS.items()}).fillna(DEFAULT_ACTION)
    out["automatable"] = ex["reason_code"].isin([k for k, v in ACTIONS.items() if v[1]])
    out["requested_at"] = _ts(ex["opened_at"])
    resolved = ex["status"].eq(RESOLVED)
    out["outcome"] = np.where(resolved, SUCCEEDED, PENDING)
    out["completed_at"] = _ts(ex["resolved_at"]).where(resolved)
    out["action_key"] = out["tenant"] + ":" + out["order_id"].astype(str) + ":" + out["reason_code"] + ":" + out["action"]
    out["as_of"] = _ts(ex["as_of"]) if "as_of" in ex else pd.NaT
    return out.reset_index(drop=True)[ACTION_COLUMNS].astype(dtypes)


def automation_success_rate(success: pd.DataFrame) -> float:
    """Resolved automatable ÷ automatable over `automation_success` rows (DOMAIN §4); 1.0 when
    nothing was automatable (no automated action has failed)."""
    automatable = int(success["automatable"].sum()) if len(success) else 0
    return int(success["resolved"].sum()) / automatable if automatable else 1.0


def automation_success(actions: pd.DataFrame) -> pd.DataFrame:
    """Per tenant and automatable code: automatable, resolved, pending, success_rate (resolved / automatable)."""
    dtypes = {"automatable": "int64", "resolved": "int64", "pending": "int64", "success_rate": "float64"}
    auto = actions[actions["automatable"].astype(bool)] if actions is not None and not actions.empty else None
    if auto is None or auto.empty:
        return _empty(AUTOMATION_COLUMNS, dtypes)
    auto = auto.assign(_ok=auto["outcome"].eq(SUCCEEDED))
    out = auto.groupby(["tenant", "reason_code", "action"], as_index=False).agg(
        automatable=("_ok", "size"), resolved=("_ok", "sum")
    )
    out["pending"] = out["automatable"] - out["resolved"]
    out["success_rate"] = out["resolved"] / out["automatable"]
    return out.sort_values(["tenant", "reason_code"], kind="mergesort").reset_index(drop=True)[AUTOMATION_COLUMNS].astype(dtypes)
