"""Billing rules (DOMAIN §5): billable orders, per-order amounts and lines, invoice numbering and
what applied adjustments add up to.

Everything here is pure and vectorised over orders: money is exact integer cents (`int64`), and
every fractional factor (multipliers, long-term storage factor, discount rates) is applied as an
exact integer ratio `amount * num // den`, so `70 × 1.2` is 84, never 83 from float error.
Loops only ever run over tenants or over the fixed list of line kinds, never over orders.
Monthly statements, adjustments and the daily report are in `statements.py`; the rules behind
the invoice asset checks in `invoice_validation.py`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping

import numpy as np
import pandas as pd

from e2a_assets.domain.exceptions import BLOCKING_REASON_CODES, OPEN, holds_billing
from e2a_assets.domain.policies import (
    FIRST_RATE_CARD_VERSION,
    FLAGS,
    MULTIPLIER_FLAGS,
    SERVICE_FLAGS,
    TenantRegistry,
    shipped_defaults,
)
from e2a_assets.domain.rate_cards import rate_card_table, versions_in_force

OPERATIONS = {  # output column -> (line kind, counted event type), in DOMAIN §5 order
    "picks": ("pick", "pick_completed"),
    "packs": ("pack", "pack_completed"),
    "labels": ("label", "label_created"),
    "kitting": ("kitting", "kitting_completed"),
}
RETURN_EVENT = "return_received"
# Per-event line kinds and the event type each counts (DOMAIN §5 "Operations").
COUNTED_KINDS = {**{kind: event for kind, event in OPERATIONS.values()}, "returns": RETURN_EVENT}
EVENT_KEY = ["tenant", "source", "event_id"]  # an event, deduplicated (DOMAIN §1.2)
INVOICE_NUMBER_PATTERN = r"^[A-Z0-9][A-Z0-9-]*-\d{6}-\d{4,}$"
# Line kinds in the order lines are numbered (DOMAIN §5 steps 1..6).
LINE_KINDS = (
    *(kind for kind, _ in OPERATIONS.values()),
    "storage",
    "storage_long_term",
    *(f"service_{s}" for s in SERVICE_FLAGS),
    "returns",
    "minimum_top_up",
    *(f"multiplier_{m}" for m in MULTIPLIER_FLAGS),
)
# The two lines a monthly invoice (DOMAIN §8.3, monthly.py) adds after its orders' summed lines;
# the volume discount is the one negative line an invoice may carry.
VOLUME_DISCOUNT_LINE, MINIMUM_FEE_LINE = "volume_discount", "minimum_monthly_fee"
# What an invoice bills (DOMAIN §8.3): one order (`per_order` tenants) or a tenant's month.
ORDER_INVOICE, MONTHLY_INVOICE = "order", "monthly"
# How an order reached its billable state, in order of precedence (DOMAIN §5).
COMPLETIONS = ("shipped", "delivered", "cancelled")
COMPLETED_COLUMNS = [
    "tenant", "order_id", "order_name", "cohort_day", "status", "completion", "completed_at", "created_at",
    "picked_at", "shipped_at", "delivered_at", "cancelled_at", "returned_at", "flags",
    *(f"flag_{f}" for f in FLAGS), "as_of",
]  # fmt: skip
LINE_COLUMNS = ["tenant", "order_id", "line_no", "kind", "description", "quantity", "unit_cents", "amount_cents",
                "rate_card_version"]
BILLABLE_COLUMNS = [
    "tenant", "order_id", "cohort_day", "created_at", "billable_at", "billable_basis", "invoice_date",
    "billable", "held", "hold_reasons", "picks", "packs", "labels", "kitting", "returns",
    "storage_days", "flags", *(f"flag_{f}" for f in FLAGS), "currency",
]  # fmt: skip
# The money columns of a priced order, in DOMAIN §5 step order.
MONEY_COLUMNS = [
    "operations_cents", "storage_cents", "services_cents", "returns_cents", "subtotal_cents",
    "minimum_top_up_cents", "multiplier_cents", "amount_cents",
]  # fmt: skip
# What pricing adds to a billable order: the rate card version that priced it (DOMAIN §8.1) and the money.
PRICE_COLUMNS = ["rate_card_version", *MONEY_COLUMNS]
TOTAL_COLUMNS = [
    "tenant", "order_id", "cohort_day", "billable_at", "invoice_date", "billable", "held", "currency", *PRICE_COLUMNS,
]


# ---------------------------------------------------------------------------------------------
# Policies and exact arithmetic


def ratio(value: Any) -> tuple[int, int]:
    """A factor as an exact integer ratio from its decimal spelling: 1.2 -> (6, 5), 0.05 -> (1, 20)."""
    frac = Fraction(str(value)).limit_denominator(1_000_000)
    return frac.numerator, frac.denominator


def mul_floor(amount: pd.Series | np.ndarray, num: Any, den: Any) -> np.ndarray:
    """floor(amount × num / den) in exact integer arithmetic (int64 result)."""
    a = np.asarray(amount, dtype=np.int64)
    n = np.broadcast_to(np.asarray(num, dtype=np.int64), a.shape)
    d = np.broadcast_to(np.asarray(den, dtype=np.int64), a.shape)
    if a.size and int(np.abs(a).max()) * int(np.abs(n).max()) >= 2**62:  # would overflow int64
        return np.array([x * y // z for x, y, z in zip(a.tolist(), n.tolist(), d.tolist())], dtype=np.int64)
    return (a * n) // d


def policy_table(policies: TenantRegistry | pd.DataFrame | None, tenants: Any = ()) -> pd.DataFrame:
    """One row per tenant with every `tariff_*` column of `TenantRegistry.policy_frame()`.

    Accepts a registry or an already built policy frame. Tenants that the policies do not know
    (only possible with hand-made frames: ingestion rejects unknown tenants) get the registry's
    loaded defaults (with a frame or no policies, the shipped ones).
    """
    if isinstance(policies, TenantRegistry):
        frame = policies.policy_frame()
        default = policies.default_policy()
    elif isinstance(policies, pd.DataFrame):
        frame, default = policies.copy(), shipped_defaults()
    else:
        frame, default = pd.DataFrame(columns=["tenant"]), shipped_defaults()
    defaults = TenantRegistry((default,)).policy_frame().iloc[0]
    missing = sorted(set(pd.Series(list(tenants), dtype=object).dropna()) - set(frame["tenant"]))
    if missing:
        extra = pd.DataFrame([defaults.to_dict()] * len(missing))
        extra["tenant"] = missing
        frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
    for col, value in defaults.items():
        if col not in frame.columns:
            frame[col] = value
        elif col != "tenant":
            frame[col] = frame[col].fillna(value)
    return frame.reset_index(drop=True)


def _with_ratio_columns(frame: pd.DataFrame, source: str, prefix: str) -> pd.DataFrame:
    """Add `<prefix>_num`/`<prefix>_den` integer columns for the float column `source`."""
    uniques = {v: ratio(v) for v in frame[source].unique()}  # loop over distinct policy values
    frame[f"{prefix}_num"] = frame[source].map(lambda v: uniques[v][0]).astype(np.int64)
    frame[f"{prefix}_den"] = frame[source].map(lambda v: uniques[v][1]).astype(np.int64)
    return frame


def as_int(values: Any, fill: int = 0) -> pd.Series:
    """Numbers (possibly object dtype with NaN/None) as int64, missing -> `fill`."""
    return pd.to_numeric(pd.Series(values)).fillna(fill).astype(np.int64)


def _col(frame: pd.DataFrame, name: str, default: Any = pd.NaT) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index, dtype=object if default is None else None)


def _utc(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True)


def as_dates(series: pd.Series) -> pd.Series:
    """Dates (`datetime.date`, or anything date-like) as datetime64 midnights for arithmetic."""
    return pd.to_datetime(pd.Series(series, dtype=object), errors="coerce")


# ---------------------------------------------------------------------------------------------
# 1. Billable orders


def counted_events(events: pd.DataFrame | None) -> pd.DataFrame:
    """The events pricing counts (DOMAIN §5 "Operations"): each deduplicated event of a per-event
    kind, with the line `kind` it counts for. `_operation_counts` counts these rows and
    `lineage.py::line_events` links them, so a line's quantity is its number of linked events."""
    cols = ["tenant", "order_id", "kind", "source", "event_id", "event_type"]
    if events is None or events.empty:
        return pd.DataFrame(columns=cols)
    ev = events.drop_duplicates(EVENT_KEY)
    kinds = {event: kind for kind, event in COUNTED_KINDS.items()}
    ev = ev[ev["event_type"].isin(list(kinds))]
    return ev.assign(kind=ev["event_type"].map(kinds))[cols].reset_index(drop=True)


def _operation_counts(events: pd.DataFrame) -> pd.DataFrame:
    columns = {kind: col for col, (kind, _) in OPERATIONS.items()} | {"returns": "returns"}
    cols = list(OPERATIONS) + ["returns"]
    counted = counted_events(events)
    if counted.empty:
        return pd.DataFrame(columns=["tenant", "order_id", *cols])
    counts = counted.groupby(["tenant", "order_id", "kind"]).size().unstack("kind")
    counts = counts.reindex(columns=list(columns), fill_value=0).fillna(0).rename(columns=columns)
    return counts[cols].astype(np.int64).reset_index()


def _open_at(exceptions: pd.DataFrame, as_of: pd.Timestamp | None) -> pd.Series:
    """Which exceptions were OPEN at `as_of`: opened by then and not resolved by then.

    Taken from `opened_at`/`resolved_at` when the frame has them, so a billing run evaluated at an
    earlier time than the exceptions table (a backfill) sees the holds of its own moment; without
    `as_of` or the timestamps, the stored status decides.
    """
    status_open = exceptions["status"].astype(str).str.strip().str.upper() == OPEN
    if as_of is None or "opened_at" not in exceptions.columns:
        return status_open
    opened = _utc(exceptions["opened_at"])
    resolved = _utc(_col(exceptions, "resolved_at"))
    # A RESOLVED row without a resolution time cannot be placed in time: it stays resolved.
    still_open = (resolved.isna().to_numpy() & status_open.to_numpy()) | (resolved > as_of).fillna(False).to_numpy()
    return pd.Series((opened <= as_of).fillna(False).to_numpy() & still_open, index=exceptions.index)


def _hold_reasons(exceptions: pd.DataFrame | None, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    if exceptions is None or exceptions.empty:
        return pd.DataFrame(columns=["tenant", "order_id", "hold_reasons"])
    ex = exceptions.assign(reason_code=exceptions["reason_code"].astype(str).str.strip().str.upper())
    ex = ex[_open_at(exceptions, as_of) & holds_billing(ex["reason_code"])]
    ex = ex.drop_duplicates(["tenant", "order_id", "reason_code"]).sort_values("reason_code")
    return ex.groupby(["tenant", "order_id"])["reason_code"].agg(",".join).rename("hold_reasons").reset_index()


def billable_state(orders: pd.DataFrame) -> pd.DataFrame:
    """Whether each order reached a billable state (DOMAIN §5), when, and by which milestone.

    Eligible: shipped, or delivered, or cancelled after a pick (`picked_at <= cancelled_at`); an
    order cancelled before any pick never is, even if shipping scans exist. The completion time is
    shipped, else delivered, else cancelled. Columns `eligible`, `completed_at` (NaT when not
    eligible), `completion` (one of `COMPLETIONS`), aligned with `orders`.
    """
    shipped, delivered, cancelled, picked = (
        _utc(_col(orders, c)) for c in ("shipped_at", "delivered_at", "cancelled_at", "picked_at")
    )
    cancelled_before_pick = cancelled.notna() & ~(picked.notna() & (picked <= cancelled))
    eligible = ~cancelled_before_pick & (shipped.notna() | delivered.notna() | cancelled.notna())
    shipped_, delivered_, cancelled_ = COMPLETIONS
    return pd.DataFrame(
        {
            "eligible": eligible,
            "completed_at": shipped.fillna(delivered).fillna(cancelled).where(eligible),
            "completion": np.select([shipped.notna(), delivered.notna()], [shipped_, delivered_], cancelled_),
        },
        index=orders.index,
    )


def build_completed_orders(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Orders that reached a billable state with their completion time and kind (`billable_state`),
    columns `COMPLETED_COLUMNS`: what billing starts from."""
    if orders is None or orders.empty:
        return pd.DataFrame(columns=COMPLETED_COLUMNS)
    state = billable_state(orders)
    done = state["eligible"].to_numpy()
    frame = orders[done].copy()
    frame["completed_at"] = state.loc[done, "completed_at"].set_axis(frame.index)
    frame["completion"] = state.loc[done, "completion"].set_axis(frame.index)
    frame["as_of"] = as_of
    return frame[COMPLETED_COLUMNS].reset_index(drop=True)


def build_billable_orders(
    events: pd.DataFrame,
    orders: pd.DataFrame,
    exceptions: pd.DataFrame | None,
    policies: TenantRegistry | pd.DataFrame | None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per order that is billable or held (DOMAIN §5), columns `BILLABLE_COLUMNS`.

    Eligible: `billable_state`. `held` = an exception of a `BLOCKING_REASON_CODES` code OPEN at
    `as_of` (by its opened/resolved times; by its stored status when `as_of` is not given);
    `billable = ~held`.
    """
    if orders is None or orders.empty:
        return pd.DataFrame(columns=BILLABLE_COLUMNS)
    state = billable_state(orders)
    eligible = state["eligible"].to_numpy()
    o = orders[eligible].copy()
    if o.empty:
        return pd.DataFrame(columns=BILLABLE_COLUMNS)
    created = _utc(_col(o, "created_at"))

    # Created time falls back to the order's earliest event (DOMAIN §2) when the orders frame lacks it.
    if created.isna().any() and events is not None and not events.empty:
        first = events.groupby(["tenant", "order_id"])["occurred_at"].min().rename("_first").reset_index()
        fallback = o[["tenant", "order_id"]].merge(first, how="left", on=["tenant", "order_id"])["_first"]
        created = created.fillna(pd.Series(_utc(fallback).to_numpy(), index=created.index))
    billable_at = state.loc[eligible, "completed_at"].set_axis(o.index)
    o["created_at"] = created
    o["billable_at"] = billable_at
    o["billable_basis"] = state.loc[eligible, "completion"].set_axis(o.index)
    o["invoice_date"] = billable_at.dt.date
    if "cohort_day" not in o.columns:
        o["cohort_day"] = created.dt.date
    elapsed_days = np.floor((billable_at - created).dt.total_seconds().fillna(0).to_numpy() / 86400)
    o["storage_days"] = np.maximum(1, elapsed_days).astype(np.int64)

    o = o.merge(_operation_counts(events), how="left", on=["tenant", "order_id"])
    for col in (*OPERATIONS, "returns"):
        o[col] = as_int(o[col])
    o = o.merge(_hold_reasons(exceptions, as_of), how="left", on=["tenant", "order_id"])
    o["held"] = o["hold_reasons"].notna()
    o["hold_reasons"] = o["hold_reasons"].fillna("")
    o["billable"] = ~o["held"]
    for flag in FLAGS:
        o[f"flag_{flag}"] = _col(o, f"flag_{flag}", False).fillna(False).astype(bool)
    if "flags" not in o.columns:
        joined = pd.Series("", index=o.index)
        for f in sorted(FLAGS):
            joined = joined + np.where(o[f"flag_{f}"], f + ",", "")
        o["flags"] = joined.str.rstrip(",")
    tariffs = policy_table(policies, o["tenant"].unique())[["tenant", "currency"]]
    o = o.drop(columns=["currency"], errors="ignore").merge(tariffs, how="left", on="tenant")
    return o[BILLABLE_COLUMNS].sort_values(["tenant", "order_id"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 2. Amounts and lines


def _factor_label(values: pd.Series) -> pd.Series:
    """`2.0` -> "2", `1.2` -> "1.2", formatted once per distinct factor (a few per tenant)."""
    return values.map({v: f"{float(v):g}" for v in pd.unique(values)})


def price_orders(
    billable: pd.DataFrame, policies: TenantRegistry | pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Price every row of `build_billable_orders` (held ones too) per DOMAIN §5, each with the
    rate card version that prices it (DOMAIN §8.1): its own `rate_card_version` when the row has
    one (an invoiced order: the version recorded on the invoice), else the version in force on its
    invoice_date (`rate_cards.py::versions_in_force`). A policy frame (no versions) is version 1.

    Returns (totals, lines): totals has `TOTAL_COLUMNS` (one row per order); lines has
    `LINE_COLUMNS`, one row per charged kind in `LINE_KINDS` order, summing to `amount_cents`.
    """
    if billable is None or billable.empty:
        return pd.DataFrame(columns=TOTAL_COLUMNS), pd.DataFrame(columns=LINE_COLUMNS)
    if billable.duplicated(["tenant", "order_id"]).any():
        raise ValueError("price_orders: an order appears twice in the billable frame")
    tenants = billable["tenant"].unique()
    if isinstance(policies, TenantRegistry):
        tariffs = rate_card_table(policies, tenants)
    else:
        tariffs = policy_table(policies, tenants).assign(rate_card_version=FIRST_RATE_CARD_VERSION, effective_from=pd.NaT)
    tariffs = _with_ratio_columns(tariffs, "tariff_long_term_storage_factor", "_lt")
    for m in MULTIPLIER_FLAGS:
        tariffs = _with_ratio_columns(tariffs, f"tariff_multiplier_{m}", f"_m_{m}")
    b = billable.drop(columns=["currency"], errors="ignore").reset_index(drop=True)
    b["rate_card_version"] = versions_in_force(b, tariffs)
    b = b.merge(tariffs.drop(columns="effective_from"), how="left", on=["tenant", "rate_card_version"])
    i64 = lambda s: s.astype(np.int64)  # noqa: E731

    parts: list[tuple[str, pd.Series, pd.Series, pd.Series, pd.Series, pd.Series]] = []
    # kind, description, quantity, unit_cents, amount_cents, include-mask

    def add(kind, description, quantity, unit, amount, mask):
        parts.append((kind, description, i64(quantity), i64(unit), pd.Series(amount, index=b.index).astype(np.int64), mask))

    # 1) operations
    operations = pd.Series(0, index=b.index, dtype=np.int64)
    for col, (kind, event) in OPERATIONS.items():
        qty, unit = i64(b[col]), i64(b[f"tariff_{kind}_cents"])
        operations += qty * unit
        add(kind, pd.Series(f"{event} operations", index=b.index), qty, unit, qty * unit, qty > 0)
    # 2) storage: days up to the threshold at the day rate, days over it at rate × factor (floored)
    days, rate, after = i64(b["storage_days"]), i64(b["tariff_storage_day_cents"]), i64(b["tariff_long_term_storage_after_days"])
    base_days = np.minimum(days, after)
    over_days = days - base_days
    storage = base_days * rate
    long_term = pd.Series(mul_floor(over_days * rate, b["_lt_num"], b["_lt_den"]), index=b.index)
    add("storage", "storage days (first " + after.astype(str) + ")", base_days, rate, storage, base_days > 0)
    lt_desc = ("storage days over " + after.astype(str) + " at x" + _factor_label(b["tariff_long_term_storage_factor"]))
    lt_unit = mul_floor(rate, b["_lt_num"], b["_lt_den"])
    add("storage_long_term", lt_desc, over_days, pd.Series(lt_unit, index=b.index), long_term, over_days > 0)
    # 3) services when flagged
    services = pd.Series(0, index=b.index, dtype=np.int64)
    for s in SERVICE_FLAGS:
        flagged = b[f"flag_{s}"].astype(bool)
        price = i64(b[f"tariff_service_{s}_cents"])
        services += np.where(flagged, price, 0)
        add(f"service_{s}", pd.Series(f"{s.replace('_', ' ')} service", index=b.index), flagged.astype(np.int64), price, np.where(flagged, price, 0), flagged)
    # 4) returns: processing + restock + label per return
    per_return = i64(b["tariff_return_processing_cents"] + b["tariff_return_restock_cents"] + b["tariff_return_label_cents"])
    returns = i64(b["returns"]) * per_return
    ret_desc = (
        "returns (processing " + b["tariff_return_processing_cents"].astype(np.int64).astype(str)
        + " + restock " + b["tariff_return_restock_cents"].astype(np.int64).astype(str)
        + " + label " + b["tariff_return_label_cents"].astype(np.int64).astype(str) + ")"
    )
    add("returns", ret_desc, b["returns"], per_return, returns, b["returns"] > 0)
    # 5) minimum order charge
    subtotal = operations + storage + long_term + services + returns
    minimum = i64(b["tariff_minimum_order_cents"])
    top_up = np.maximum(minimum - subtotal, 0)
    add("minimum_top_up", "minimum order charge top-up to " + minimum.astype(str), pd.Series(1, index=b.index), top_up, top_up, top_up > 0)
    # 6) multipliers in DOMAIN order, each floored to a whole cent
    amount = (subtotal + top_up).to_numpy(dtype=np.int64)
    multiplied = np.zeros(len(b), dtype=np.int64)
    for m in MULTIPLIER_FLAGS:
        flagged = b[f"flag_{m}"].astype(bool).to_numpy()
        new_amount = np.where(flagged, mul_floor(amount, b[f"_m_{m}_num"], b[f"_m_{m}_den"]), amount)
        added = pd.Series(new_amount - amount, index=b.index)
        multiplied += added.to_numpy()
        desc = f"{m} multiplier x" + _factor_label(b[f"tariff_multiplier_{m}"])
        add(f"multiplier_{m}", desc, pd.Series(1, index=b.index), added, added, pd.Series(flagged, index=b.index))
        amount = new_amount

    totals = b[[c for c in TOTAL_COLUMNS if c in b.columns]].copy()
    totals["operations_cents"] = operations
    totals["storage_cents"] = storage + long_term
    totals["services_cents"] = services
    totals["returns_cents"] = returns
    totals["subtotal_cents"] = subtotal
    totals["minimum_top_up_cents"] = top_up.astype(np.int64)
    totals["multiplier_cents"] = multiplied
    totals["amount_cents"] = amount
    totals = totals.reindex(columns=TOTAL_COLUMNS)

    frames = []
    for rank, (kind, desc, qty, unit, amt, mask) in enumerate(parts):
        mask = pd.Series(mask, index=b.index).astype(bool)
        frames.append(pd.DataFrame({
            "tenant": b.loc[mask, "tenant"], "order_id": b.loc[mask, "order_id"], "_rank": rank, "kind": kind,
            "description": pd.Series(desc, index=b.index)[mask], "quantity": qty[mask], "unit_cents": unit[mask],
            "amount_cents": amt[mask], "rate_card_version": b.loc[mask, "rate_card_version"],
        }))  # fmt: skip
    lines = pd.concat(frames, ignore_index=True).sort_values(["tenant", "order_id", "_rank"], kind="stable")
    lines["line_no"] = lines.groupby(["tenant", "order_id"]).cumcount().astype(np.int64) + 1
    for col in ("quantity", "unit_cents", "amount_cents", "rate_card_version"):
        lines[col] = lines[col].astype(np.int64)
    return totals.reset_index(drop=True), lines[LINE_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 3. Invoice numbers


def payment_terms(frame: pd.DataFrame, policies: TenantRegistry | pd.DataFrame | None) -> pd.Series:
    """Payment terms in days of each row: its own `payment_terms_days`, else its tenant's tariff."""
    if "payment_terms_days" in frame.columns and frame["payment_terms_days"].notna().all():
        return frame["payment_terms_days"].astype(np.int64)
    terms = policy_table(policies, frame["tenant"].unique()).set_index("tenant")["tariff_payment_terms_days"]
    return frame["tenant"].map(terms).astype(np.int64)


def invoice_numbers(tenant: pd.Series, month: pd.Series, seq: pd.Series) -> pd.Series:
    """`{TENANT upper-cased}-{YYYYMM}-{seq:04d}` (DOMAIN §5), e.g. DEMO-3PL-202508-0001."""
    return tenant.str.upper() + "-" + month + "-" + seq.astype(np.int64).astype(str).str.zfill(4)


def _last_seq_frame(last_seq: Mapping[tuple[str, str], int] | pd.DataFrame | None) -> pd.DataFrame:
    if last_seq is None:
        return pd.DataFrame(columns=["tenant", "invoice_month", "last_seq"])
    if isinstance(last_seq, pd.DataFrame):
        frame = last_seq.rename(columns={"month": "invoice_month", "seq": "last_seq", "max_seq": "last_seq"})
        return frame[["tenant", "invoice_month", "last_seq"]].astype({"invoice_month": str})
    rows = [(t, str(m), int(s)) for (t, m), s in dict(last_seq).items()]
    return pd.DataFrame(rows, columns=["tenant", "invoice_month", "last_seq"])


def plan_invoice_numbers(
    new_invoices: pd.DataFrame,
    last_seq_by_tenant_month: Mapping[tuple[str, str], int] | pd.DataFrame | None,
    policies: TenantRegistry | pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Number invoices `{TENANT}-{YYYYMM}-{seq:04d}` continuing each (tenant, month) sequence.

    `new_invoices` needs tenant, order_id, invoice_date, billable_at (e.g. billable totals not yet
    invoiced). `last_seq_by_tenant_month` is `{(tenant, "YYYYMM"): max seq}` or a frame with
    tenant, month, last_seq; absent months start at 1. Numbers are allocated in order of
    (invoice_date, billable_at, order_id) within each cohort day, cohort days in order when the
    frame has `cohort_day` (docs/rules/billing.md): an order of an earlier cohort day that became
    billable later is numbered with its own day, so the numbers do not depend on which days a run
    or chunk happens to cover. Adds invoice_month, invoice_seq, invoice_number, payment_terms_days
    (the invoice's own column, else the tenant tariff) and due_date.
    """
    extra = ["invoice_month", "invoice_seq", "invoice_number", "payment_terms_days", "due_date"]
    if new_invoices is None or new_invoices.empty:
        return pd.DataFrame(columns=[*(new_invoices.columns if new_invoices is not None else []), *extra])
    if new_invoices.duplicated(["tenant", "order_id"]).any():
        raise ValueError("plan_invoice_numbers: an order appears twice in new_invoices")
    inv = new_invoices.copy()
    day = as_dates(inv["invoice_date"])
    inv["invoice_month"] = day.dt.strftime("%Y%m").to_numpy()
    inv["_day"] = day.to_numpy()
    inv["_at"] = _utc(inv["billable_at"])
    cohort = ["_cohort"] if "cohort_day" in inv.columns else []
    if cohort:
        inv["_cohort"] = as_dates(inv["cohort_day"]).to_numpy()
    inv = inv.sort_values([*cohort, "_day", "_at", "order_id", "tenant"], kind="stable")
    inv = inv.merge(_last_seq_frame(last_seq_by_tenant_month), how="left", on=["tenant", "invoice_month"])
    start = as_int(inv["last_seq"])
    inv["invoice_seq"] = start + inv.groupby(["tenant", "invoice_month"]).cumcount().astype(np.int64) + 1
    inv["invoice_number"] = invoice_numbers(inv["tenant"], inv["invoice_month"], inv["invoice_seq"])
    inv["payment_terms_days"] = payment_terms(inv, policies)
    inv["due_date"] = (inv["_day"] + pd.to_timedelta(inv["payment_terms_days"], unit="D")).dt.date
    inv["invoice_date"] = inv["_day"].dt.date
    return inv.drop(columns=["_day", "_at", "last_seq", *cohort]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 4. Adjustment arithmetic

# Adjustment statuses (DOMAIN §5): the first two are applied when created; PENDING_REVIEW is not
# applied until a reviewer sets it to APPROVED (applied) or REJECTED (not applied).
AUTO_APPLIED, APPLIED_FLAGGED, PENDING_REVIEW = "AUTO_APPLIED", "APPLIED_FLAGGED", "PENDING_REVIEW"
APPROVED, REJECTED = "APPROVED", "REJECTED"
APPLIED_STATUSES = (AUTO_APPLIED, APPLIED_FLAGGED, APPROVED)


def applied_adjustment_totals(adjustments: pd.DataFrame | None) -> pd.DataFrame:
    """Sum of applied adjustment deltas per (tenant, invoice_number)."""
    if adjustments is None or adjustments.empty:
        return pd.DataFrame(columns=["tenant", "invoice_number", "applied_cents"])
    applied = adjustments[adjustments["status"].isin(APPLIED_STATUSES)]
    out = applied.groupby(["tenant", "invoice_number"])["delta_cents"].sum().rename("applied_cents").reset_index()
    out["applied_cents"] = out["applied_cents"].astype(np.int64)
    return out

