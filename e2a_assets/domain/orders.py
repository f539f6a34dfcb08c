"""Orders: one row per (tenant, order_id) derived from the event log (DOMAIN §2).

Pure and vectorised: events in, order frame out (columns in docs/internals.md, "Orders").
Rules DOMAIN leaves open are written down in docs/rules/orders-and-sla.md.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from e2a_assets.domain.policies import FLAGS

KEYS = ["tenant", "order_id"]
TS_DTYPE = "datetime64[ns, UTC]"

# Milestones: earliest occurred_at of any event of these kinds (DOMAIN §2).
MILESTONE_OF = {
    "order_created": "created_at",
    "order_paid": "paid_at",
    "pick_completed": "picked_at",
    "pack_completed": "packed_at",
    "label_created": "labelled_at",
    "manifested": "shipped_at",
    "picked_up": "shipped_at",
    "order_fulfilled": "shipped_at",
    "delivered": "delivered_at",
    "order_cancelled": "cancelled_at",
    "return_received": "returned_at",
    "returned_to_sender": "returned_at",
}
MILESTONE_COLUMNS = [
    "created_at",
    "paid_at",
    "picked_at",
    "packed_at",
    "labelled_at",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
]
# Status, first match wins (DOMAIN §2); `created` is the fallback.
STATUS_ORDER = (
    ("cancelled", "cancelled_at"),
    ("returned", "returned_at"),
    ("delivered", "delivered_at"),
    ("shipped", "shipped_at"),
    ("packed", "packed_at"),
    ("picked", "picked_at"),
    ("paid", "paid_at"),
)
STATUSES = tuple(s for s, _ in STATUS_ORDER) + ("created",)
# Statuses that can stall (everything that is not finished: cancelled/returned/shipped/delivered).
OPEN_STATUSES = ("packed", "picked", "paid", "created")
# Event types whose Shopify order payload feeds the "latest payload" fields.
PAYLOAD_EVENT_TYPES = ("order_created", "order_updated", "order_paid")
PAYLOAD_FIELDS = [
    "order_name",
    "financial_status",
    "total_price_cents",
    "currency",
    "shipping_code",
    "ship_zip",
    "address_valid",
    "tags",
]

ORDER_COLUMNS = [
    "tenant",
    "order_id",
    "order_name",
    "cohort_day",
    "created_at",
    "paid_at",
    "picked_at",
    "packed_at",
    "labelled_at",
    "shipped_at",
    "delivered_at",
    "cancelled_at",
    "delivery_failed_at",
    "delivery_failed_count",
    "returned_at",
    "status",
    "last_event_at",
    "stalled",
    "event_count",
    "financial_status",
    "total_price_cents",
    "currency",
    "shipping_code",
    "ship_zip",
    "address_valid",
    "flags",
    *[f"flag_{f}" for f in FLAGS],
    "as_of",
]
_TS_COLUMNS = [*MILESTONE_COLUMNS, "delivery_failed_at", "returned_at", "last_event_at", "as_of"]
_DTYPES: dict[str, str] = {
    **{c: "object" for c in ORDER_COLUMNS},
    **{c: TS_DTYPE for c in _TS_COLUMNS},
    "delivery_failed_count": "int64",
    "event_count": "int64",
    "stalled": "bool",
    "total_price_cents": "Int64",
    "address_valid": "boolean",
    **{f"flag_{f}": "bool" for f in FLAGS},
}


# --------------------------------------------------------------------------------------- helpers


def utc_timestamp(as_of: pd.Timestamp | str, what: str = "as_of") -> pd.Timestamp:
    """A tz-aware evaluation time in UTC; a naive one is refused (never guess the zone)."""
    value = pd.Timestamp(as_of)
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value})")
    return value.tz_convert("UTC").as_unit("ns")


def check_policies(policies: pd.DataFrame, tenants: Iterable[str], columns: Iterable[str]) -> pd.DataFrame:
    """The policy rows for `tenants`, indexed by tenant; unknown tenants raise a clear ValueError."""
    if policies is None or "tenant" not in policies.columns:
        raise ValueError("policies must be TenantRegistry.policy_frame() (a frame with a 'tenant' column)")
    columns = list(columns)
    absent = [c for c in columns if c not in policies.columns]
    if absent:
        raise ValueError(f"policies frame lacks column(s): {', '.join(absent)}")
    frame = policies.drop_duplicates("tenant").set_index("tenant")[columns]
    missing = sorted(set(tenants) - set(frame.index))
    if missing:
        raise ValueError(f"no policy for tenant(s): {', '.join(map(str, missing))} (not in the tenant registry)")
    return frame


def _empty(columns: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in columns})


def _normalise_events(events: pd.DataFrame) -> pd.DataFrame:
    """Keep canonical order events, normalise timestamps, drop duplicate deliveries."""
    ev = events
    if "event_type" in ev.columns:
        ev = ev[ev["event_type"].notna() & ev["order_id"].notna()]
    ev = ev.copy()
    for col in ("occurred_at", "received_at", "order_created_at"):
        if col in ev.columns:
            ev[col] = pd.to_datetime(ev[col], utc=True, cache=False).astype(TS_DTYPE)
    if {"source", "event_id"} <= set(ev.columns):
        # A re-delivery is stored once: keep the first received copy, whatever the row order.
        first = [c for c in ("received_at", "occurred_at") if c in ev.columns]
        ev = ev.sort_values(first, kind="mergesort") if first else ev
        ev = ev.drop_duplicates(["tenant", "source", "event_id"])
    ev["order_id"] = ev["order_id"].astype(str)
    return ev


def _sorted_by_time(ev: pd.DataFrame) -> pd.DataFrame:
    """Deterministic chronological order: occurred_at, then received_at, then event_id."""
    by = [c for c in ("occurred_at", "received_at", "event_id") if c in ev.columns]
    return ev.sort_values(by, kind="mergesort")


def cohort_day(created_at: Any, first_event_at: Any) -> pd.Series:
    """The cohort day of orders (DOMAIN §2): the UTC day of the `order_created` payload's
    `created_at`, else of the order's earliest event. Vectorised over orders: both arguments are
    aligned per-order series of timestamps (or ISO strings, as SQLite returns them)."""
    created = pd.to_datetime(pd.Series(created_at), utc=True, format="mixed")
    first = pd.to_datetime(pd.Series(first_event_at), utc=True, format="mixed")
    return created.fillna(first).dt.date


def _cohort_days(ev: pd.DataFrame) -> pd.DataFrame:
    if "cohort_day" in ev.columns and ev["cohort_day"].notna().all():
        # Events read from a partition carry the cohort the event log gave them (all events, not
        # just those up to as_of): the order stays in the partition it is read from.
        return ev.groupby(KEYS, as_index=False)["cohort_day"].first()
    return order_cohort_days(ev)


def order_cohort_days(ev: pd.DataFrame) -> pd.DataFrame:
    """`tenant, order_id, cohort_day` by `cohort_day` over normalised events (timestamps parsed,
    duplicates dropped); any `cohort_day` column they carry is ignored."""
    first_seen = ev.groupby(KEYS)["occurred_at"].min()
    if "order_created_at" in ev.columns:
        created = ev.loc[ev["event_type"].eq("order_created")]
        payload_created = created.groupby(KEYS)["order_created_at"].min().reindex(first_seen.index)
    else:
        payload_created = pd.Series(pd.NaT, index=first_seen.index)
    return cohort_day(payload_created, first_seen).rename("cohort_day").reset_index()


def cohort_days(events: pd.DataFrame) -> pd.DataFrame:
    """`tenant, order_id, cohort_day` for every order in `events` (DOMAIN §2).

    The UTC day of the `order_created` payload's `created_at`; if no `order_created` event with a
    `created_at` has arrived, the UTC day of the earliest `occurred_at` among the order's events.
    """
    if events is None or events.empty:
        return _empty(["tenant", "order_id", "cohort_day"], {"tenant": "object", "order_id": "object", "cohort_day": "object"})
    ev = _normalise_events(events)
    if ev.empty:
        return _empty(["tenant", "order_id", "cohort_day"], {"tenant": "object", "order_id": "object", "cohort_day": "object"})
    return _cohort_days(ev)


def parse_flags(tags: pd.Series) -> pd.DataFrame:
    """`flags` (sorted, comma-joined) and one boolean `flag_<name>` per known flag, from raw tags.

    Tags are comma-separated, matched case-insensitively after trimming; unknown tags are ignored.
    """
    norm = tags.fillna("").astype(str).str.lower()
    out = pd.DataFrame(index=tags.index)
    for flag in FLAGS:
        out[f"flag_{flag}"] = norm.str.contains(rf"(?:^|,)\s*{flag}\s*(?:,|$)", regex=True).astype(bool)
    joined = pd.Series("", index=tags.index, dtype=object)
    for flag in sorted(FLAGS):
        joined = joined + np.where(out[f"flag_{flag}"], flag + ",", "")
    out.insert(0, "flags", joined.str.rstrip(",").astype(object))
    return out


# ------------------------------------------------------------------------------------ build_orders


def build_orders(events: pd.DataFrame, as_of: pd.Timestamp, policies: pd.DataFrame) -> pd.DataFrame:
    """Current state of every order in `events` at `as_of` (DOMAIN §2, docs/internals.md "Orders").

    `policies` is `TenantRegistry.policy_frame()`; it must have a row for every tenant in `events`
    (else ValueError). Returns one row per (tenant, order_id), sorted by tenant then order_id.
    """
    as_of = utc_timestamp(as_of)
    if events is None or events.empty:
        return _empty(ORDER_COLUMNS, _DTYPES)
    ev = _normalise_events(events)
    if ev.empty:
        return _empty(ORDER_COLUMNS, _DTYPES)
    stalled_hours = check_policies(policies, ev["tenant"].unique(), ["stalled_hours"])["stalled_hours"]

    ev = _sorted_by_time(ev)
    base = ev.groupby(KEYS).agg(last_event_at=("occurred_at", "max"), event_count=("occurred_at", "size"))

    # Milestones: earliest occurred_at per kind; re-scans and out-of-order arrival cannot move them.
    kind = ev["event_type"].map(MILESTONE_OF)
    # (unstack on naive UTC values: pandas cannot unstack an empty tz-aware series)
    ms = (
        ev.assign(_kind=kind, _t=ev["occurred_at"].dt.tz_convert(None))
        .dropna(subset=["_kind"])
        .groupby([*KEYS, "_kind"])["_t"]
        .min()
        .unstack("_kind")
        .reindex(columns=[*MILESTONE_COLUMNS, "returned_at"])
    )
    # delivery_failed: latest attempt and how many.
    failed = (
        ev.loc[ev["event_type"].eq("delivery_failed")]
        .groupby(KEYS)["occurred_at"]
        .agg(delivery_failed_at="max", delivery_failed_count="size")
    )
    # The first order_created payload decides the paid fallback.
    created = ev.loc[ev["event_type"].eq("order_created")].groupby(KEYS)["financial_status"].first()
    # Latest value of each payload field among the order payload events that carry it.
    payload = ev.loc[ev["event_type"].isin(PAYLOAD_EVENT_TYPES), [*KEYS, *PAYLOAD_FIELDS]]
    latest = payload.groupby(KEYS)[PAYLOAD_FIELDS].last()

    orders = (
        base.join(ms, how="left")
        .join(failed, how="left")
        .join(created.rename("_created_financial_status"), how="left")
        .join(latest, how="left")
        .reset_index()
    )
    orders = orders.merge(_cohort_days(ev), on=KEYS, how="left")
    for col in [*MILESTONE_COLUMNS, "returned_at", "delivery_failed_at", "last_event_at"]:
        orders[col] = pd.to_datetime(orders[col], utc=True, cache=False).astype(TS_DTYPE)

    paid_fallback = (
        orders["_created_financial_status"].fillna("").astype(str).str.strip().str.lower().eq("paid")
    )
    orders["paid_at"] = orders["paid_at"].where(orders["paid_at"].notna() | ~paid_fallback, orders["created_at"])

    orders["status"] = np.select(
        [orders[col].notna() for _, col in STATUS_ORDER], [s for s, _ in STATUS_ORDER], default="created"
    ).astype(object)
    limit = pd.to_timedelta(orders["tenant"].map(stalled_hours).astype(float), unit="h")
    orders["stalled"] = orders["status"].isin(OPEN_STATUSES) & ((as_of - orders["last_event_at"]) > limit)

    flags = parse_flags(orders["tags"])
    orders = pd.concat([orders, flags], axis=1)
    orders["delivery_failed_count"] = orders["delivery_failed_count"].fillna(0).astype("int64")
    orders["event_count"] = orders["event_count"].astype("int64")
    orders["total_price_cents"] = pd.array(orders["total_price_cents"], dtype="Int64")
    orders["address_valid"] = pd.array(orders["address_valid"].astype(object), dtype="boolean")
    for col in ("order_name", "financial_status", "currency", "shipping_code", "ship_zip"):
        orders[col] = orders[col].astype(object).where(orders[col].notna(), None)
    orders["as_of"] = pd.Series(as_of, index=orders.index).astype(TS_DTYPE)
    orders = orders.sort_values(KEYS, kind="mergesort").reset_index(drop=True)
    return orders[ORDER_COLUMNS].astype({c: t for c, t in _DTYPES.items() if t != "object"})
