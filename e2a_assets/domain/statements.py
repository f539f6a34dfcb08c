"""Billing after issue (DOMAIN §5): recalculation adjustments, monthly statements, daily report.

Pure and vectorised like `billing.py` (integer cents, exact ratios, `as_of` passed in).
Adjustment statuses: AUTO_APPLIED and APPLIED_FLAGGED are applied when created; PENDING_REVIEW
is not applied until a reviewer sets it to APPROVED (applied) or REJECTED (not applied).
"""

from __future__ import annotations

from datetime import date
from typing import Iterable

import numpy as np
import pandas as pd

from e2a_assets.domain.billing import (
    APPLIED_FLAGGED,
    APPLIED_STATUSES,
    APPROVED,
    AUTO_APPLIED,
    PENDING_REVIEW,
    REJECTED,
    applied_adjustment_totals,
    as_dates,
    as_int,
    mul_floor,
    policy_table,
    ratio,
)
from e2a_assets.domain.notes import CREDIT, DEBIT, RECALCULATION, adjustment_notes, month_close_notes, month_closed, note_totals
from e2a_assets.domain.payments import INVOICE_STATES, OVERDUE, invoice_states, month_payments, paid_cents
from e2a_assets.domain.policies import FIRST_RATE_CARD_VERSION, TenantRegistry, shipped_defaults

ADJUSTMENT_STATUSES = (AUTO_APPLIED, APPLIED_FLAGGED, PENDING_REVIEW, APPROVED, REJECTED)
ADJUSTMENT_COLUMNS = [
    "adjustment_id", "tenant", "order_id", "invoice_number", "adjustment_seq", "created_at",
    "adjustment_date", "issued_cents", "previously_applied_cents", "recomputed_cents", "delta_cents",
    "kind", "reason", "status", "applied", "flagged", "supersedes", "rate_card_version",
]  # fmt: skip
STATEMENT_COLUMNS = [
    "tenant", "month", "month_start", "month_end", "currency", "invoiced_orders", "gross_cents",
    "discount_rate", "discount_cents", "minimum_fee_cents", "minimum_top_up_cents",
    "adjustments_count", "adjustments_cents", "pending_review_cents", "closed", "credit_notes_count",
    "credit_notes_cents", "debit_notes_count", "debit_notes_cents", "net_due_cents", "payments_cents",
    "balance_due_cents", "overdue_invoices", "overdue_cents", "as_of",
]  # fmt: skip
REPORT_COLUMNS = [
    "tenant", "day", "invoices_issued", "invoiced_cents", "held_orders", "held_cents", "hold_reasons",
    "adjustments_auto_applied", "adjustments_applied_flagged", "adjustments_pending_review",
    "revenue_impact_cents", "pending_review_cents", "invoices_open", "invoices_overdue",
    "invoices_paid", "invoices_partially_paid", "status_breakdown", "overdue_cents", "as_of",
]  # fmt: skip


def _as_of_date(as_of: pd.Timestamp) -> date:
    return pd.Timestamp(as_of).tz_convert("UTC").date() if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of).date()


def _empty_adjustments() -> pd.DataFrame:
    return pd.DataFrame(columns=["adjustment_id", "tenant", "invoice_number", "delta_cents", "status"])


# ---------------------------------------------------------------------------------------------
# 4. Adjustments


def compute_adjustments(
    issued: pd.DataFrame,
    recomputed: pd.DataFrame,
    existing_adjustments: pd.DataFrame | None,
    policies: TenantRegistry | pd.DataFrame | None,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """New RECALCULATION adjustments (columns `ADJUSTMENT_COLUMNS`) for issued invoices whose
    recomputed amount differs from issued + applied adjustments.

    `issued`: tenant, order_id, invoice_number, amount_cents, rate_card_version (1 when absent).
    `recomputed`: tenant, order_id, amount_cents (from `price_orders`) priced with the version
    recorded on each invoice, never a later one (DOMAIN §8.1): a recomputed row that carries
    another `rate_card_version` than its invoice is an error. `existing_adjustments`: adjustment_id, tenant,
    invoice_number, delta_cents, status. No row is added when a PENDING_REVIEW or REJECTED adjustment
    with the same delta already exists; a new row lists in `supersedes` the ids of that invoice's pending
    adjustments with another delta (the caller marks them superseded). Invoices absent from
    `recomputed` are skipped. Idempotent: re-running with the returned rows added yields nothing.
    """
    if issued is None or issued.empty or recomputed is None or recomputed.empty:
        return pd.DataFrame(columns=ADJUSTMENT_COLUMNS)
    existing = existing_adjustments if existing_adjustments is not None and len(existing_adjustments) else _empty_adjustments()
    inv = issued[["tenant", "order_id", "invoice_number", "amount_cents"]].rename(columns={"amount_cents": "issued_cents"})
    recorded = issued["rate_card_version"] if "rate_card_version" in issued.columns else pd.Series(None, index=issued.index)
    inv["rate_card_version"] = as_int(recorded.to_numpy(), FIRST_RATE_CARD_VERSION).to_numpy()
    rec = recomputed[["tenant", "order_id", "amount_cents"]].rename(columns={"amount_cents": "recomputed_cents"})
    if "rate_card_version" in recomputed.columns:
        rec["_priced_by"] = recomputed["rate_card_version"].to_numpy()
    inv = inv.merge(rec, how="inner", on=["tenant", "order_id"])
    if "_priced_by" in inv.columns:
        other = inv[inv.pop("_priced_by").astype("int64").to_numpy() != inv["rate_card_version"].to_numpy()]
        if len(other):
            raise ValueError(f"compute_adjustments: invoice {other['invoice_number'].iloc[0]} was priced with rate card "
                             f"version {other['rate_card_version'].iloc[0]}; recompute it with that version")
    inv = inv.merge(applied_adjustment_totals(existing), how="left", on=["tenant", "invoice_number"])
    inv["previously_applied_cents"] = as_int(inv.pop("applied_cents"))
    inv["issued_cents"] = inv["issued_cents"].astype(np.int64)
    inv["recomputed_cents"] = inv["recomputed_cents"].astype(np.int64)
    inv["delta_cents"] = inv["recomputed_cents"] - inv["issued_cents"] - inv["previously_applied_cents"]
    inv = inv[inv["delta_cents"] != 0]

    pending = existing[existing["status"] == PENDING_REVIEW][["tenant", "invoice_number", "adjustment_id", "delta_cents"]]
    # The same correction is not asked for twice: not while it waits for review, and not after a
    # reviewer rejected it (a different delta, from newer events, is a new question).
    reviewed = existing[existing["status"].isin([PENDING_REVIEW, REJECTED])][["tenant", "invoice_number", "delta_cents"]]
    same = inv.merge(reviewed, how="inner", on=["tenant", "invoice_number", "delta_cents"])[["tenant", "invoice_number"]]
    inv = inv.merge(same.drop_duplicates().assign(_dup=True), how="left", on=["tenant", "invoice_number"])
    inv = inv[inv["_dup"].isna()].drop(columns="_dup")
    if inv.empty:
        return pd.DataFrame(columns=ADJUSTMENT_COLUMNS)

    stale = pending.astype({"adjustment_id": str}).sort_values("adjustment_id")
    stale = stale.groupby(["tenant", "invoice_number"])["adjustment_id"].agg(",".join).rename("supersedes").reset_index()
    inv = inv.merge(stale, how="left", on=["tenant", "invoice_number"])
    inv["supersedes"] = inv["supersedes"].fillna("")
    count = existing.groupby(["tenant", "invoice_number"]).size().rename("_n").reset_index()
    inv = inv.merge(count, how="left", on=["tenant", "invoice_number"])
    inv["adjustment_seq"] = as_int(inv.pop("_n")) + 1
    inv["adjustment_id"] = inv["invoice_number"] + "-A" + inv["adjustment_seq"].astype(str).str.zfill(2)

    limits = policy_table(policies, inv["tenant"].unique()).set_index("tenant")
    auto = inv["tenant"].map(limits["tariff_adjustment_auto_limit_cents"]).astype(np.int64)
    review = inv["tenant"].map(limits["tariff_adjustment_review_limit_cents"]).astype(np.int64)
    size = inv["delta_cents"].abs()
    inv["status"] = np.select([size < auto, size <= review], [AUTO_APPLIED, APPLIED_FLAGGED], default=PENDING_REVIEW)
    inv["applied"] = inv["status"] != PENDING_REVIEW
    inv["flagged"] = inv["status"] == APPLIED_FLAGGED
    inv["kind"] = np.where(inv["delta_cents"] < 0, CREDIT, DEBIT)
    inv["reason"] = RECALCULATION
    as_of = pd.Timestamp(as_of)
    inv["created_at"] = pd.Series(as_of, index=inv.index).dt.tz_convert("UTC")
    inv["adjustment_date"] = _as_of_date(as_of)
    return inv[ADJUSTMENT_COLUMNS].sort_values(["tenant", "invoice_number"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 5. Monthly statements


def discount_tiers(policies: TenantRegistry | pd.DataFrame | None, tenants: list[str]) -> pd.DataFrame:
    """Long frame tenant, min_orders, rate, num, den (loops over tenants and their few tiers only)."""
    registry = policies if isinstance(policies, TenantRegistry) else None
    known = {p.tenant: p.tariff.volume_discounts for p in registry.policies} if registry else {}
    default = (registry.default_policy() if registry else shipped_defaults()).tariff.volume_discounts
    rows = [
        (t, tier.min_orders, tier.rate, *ratio(tier.rate)) for t in tenants for tier in known.get(t, default)
    ]
    return pd.DataFrame(rows, columns=["tenant", "min_orders", "rate", "num", "den"])


def reviewed_as_of(adjustments: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Adjustments as they stood at `as_of`: a review (APPROVED / REJECTED) made later is undone,
    so a statement evaluated at `as_of` counts an approval only once it has happened."""
    if adjustments is None or adjustments.empty or "reviewed_at" not in adjustments.columns:
        return adjustments
    later = adjustments["status"].isin([APPROVED, REJECTED]).to_numpy() & \
        (pd.to_datetime(adjustments["reviewed_at"], utc=True) > as_of).fillna(False).to_numpy()
    return adjustments.assign(status=adjustments["status"].where(~later, PENDING_REVIEW))


def _with_applied_adjustments(invoices: pd.DataFrame, adjustments: pd.DataFrame | None, until: pd.Timestamp) -> pd.Series:
    """Invoice amount plus its adjustments created and applied by `until` (what is owed)."""
    adj = reviewed_as_of(adjustments, until) if adjustments is not None and len(adjustments) else None
    if adj is None:
        return invoices["amount_cents"].astype(np.int64)
    if "created_at" in adj.columns:
        adj = adj[pd.to_datetime(adj["created_at"], utc=True) <= until]
    owed = invoices[["tenant", "invoice_number"]].merge(applied_adjustment_totals(adj), how="left", on=["tenant", "invoice_number"])
    return invoices["amount_cents"].astype(np.int64) + as_int(owed["applied_cents"]).to_numpy()


def states_at(invoices: pd.DataFrame, adjustments: pd.DataFrame | None, payments: pd.DataFrame | None,
              as_of: pd.Timestamp) -> pd.DataFrame:
    """Each invoice's status at `as_of` (domain/payments.py::invoice_states, same index): its
    adjustments applied by as_of and its account's payments received by as_of."""
    frame = invoices.assign(adjustments_cents=_with_applied_adjustments(invoices, adjustments, as_of)
                            - invoices["amount_cents"].astype(np.int64),
                            paid_cents=paid_cents(invoices, payments, as_of))  # fmt: skip
    return invoice_states(frame, as_of)


def build_monthly_statements(
    invoices: pd.DataFrame,
    adjustments: pd.DataFrame | None,
    policies: TenantRegistry | pd.DataFrame | None,
    month_start: date,
    as_of: pd.Timestamp,
    tenants: Iterable[str] = (),
    overdue: pd.DataFrame | None = None,
    notes: pd.DataFrame | None = None,
    payments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One statement per tenant (every registry tenant, plus any tenant with invoices) for the
    month starting `month_start`, columns `STATEMENT_COLUMNS`.

    A caller that passes only the month's invoices and adjustments gives the other invoiced
    `tenants` and the ledger-wide `overdue` per tenant (tenant, invoices_overdue, overdue_cents,
    as `services/billing_reads.py::ledger_states` computes them); with the whole ledger passed,
    both are computed here (the reference).

    Month's invoices: invoice_date in the month and <= as_of date. Volume discount tier by their
    count, floor(gross × rate); minimum monthly fee top-up on gross − discount.

    Notes (DOMAIN §8.2, domain/notes.py): `notes` are the ledger's notes dated in the month (the
    asset reads them after issuing the month-close notes); the statement counts those issued by
    as_of. Without `notes` (the reference computation) they are the notes the rules imply: one
    per adjustment applied by as_of (a later approval does not count yet), plus - for a month
    closed at as_of - the discount credit note and top-up debit note. adjustments = the signed
    RECALCULATION notes; net due = gross + Σ debit notes − Σ credit notes, every figure a
    document. In a month still open at as_of (`closed` False) discount and top-up are provisional
    figures not yet issued, so they are not in the net due. pending_review = adjustments dated in
    the month still pending at as_of. Overdue: all the tenant's invoices (any month) past due at as_of,
    for what is left to pay on them. `payments` (tenant, invoice_number, document_month,
    amount_cents, payment_date; domain/payments.py): those received by as_of against the month's
    documents are `payments_cents`; balance due = net due − payments.
    """
    as_of = pd.Timestamp(as_of)
    as_of_day = pd.Timestamp(_as_of_date(as_of))
    start = pd.Timestamp(month_start).replace(day=1)
    end = start + pd.offsets.MonthBegin(1)
    inv = invoices if invoices is not None else pd.DataFrame(columns=["tenant", "invoice_number", "invoice_date", "due_date", "amount_cents"])
    adj = reviewed_as_of(adjustments, as_of) if adjustments is not None and len(adjustments) else \
        _empty_adjustments().assign(adjustment_date=None)

    tenants = sorted(set(policies.tenants if isinstance(policies, TenantRegistry) else [])
                     | set(policies["tenant"] if isinstance(policies, pd.DataFrame) else [])
                     | set(inv["tenant"]) | set(tenants))  # fmt: skip
    st = pd.DataFrame({"tenant": tenants})
    day = as_dates(inv["invoice_date"])
    in_month = inv[((day >= start) & (day < end) & (day <= as_of_day)).to_numpy()]
    gross = in_month.groupby("tenant")["amount_cents"].agg(["size", "sum"])
    st["invoiced_orders"] = as_int(st["tenant"].map(gross["size"]))
    st["gross_cents"] = as_int(st["tenant"].map(gross["sum"]))

    tiers = discount_tiers(policies, tenants).merge(st[["tenant", "invoiced_orders"]], on="tenant")
    tiers = tiers[tiers["invoiced_orders"] >= tiers["min_orders"]].sort_values("min_orders").drop_duplicates("tenant", keep="last")
    st = st.merge(tiers[["tenant", "rate", "num", "den"]], how="left", on="tenant")
    st["discount_rate"] = st.pop("rate").fillna(0.0).astype(float)
    st["discount_cents"] = mul_floor(st["gross_cents"], st.pop("num").fillna(0), st.pop("den").fillna(1))

    table = policy_table(policies, tenants).set_index("tenant")
    st["currency"] = st["tenant"].map(table["currency"])
    st["minimum_fee_cents"] = st["tenant"].map(table["tariff_minimum_monthly_fee_cents"]).astype(np.int64)
    st["minimum_top_up_cents"] = np.maximum(st["minimum_fee_cents"] - (st["gross_cents"] - st["discount_cents"]), 0)

    adj_day = as_dates(adj["adjustment_date"]) if "adjustment_date" in adj.columns else as_dates(pd.to_datetime(adj["created_at"], utc=True).dt.date)
    adj_month = adj[((adj_day >= start) & (adj_day < end) & (adj_day <= as_of_day)).to_numpy()]
    pending = adj_month[adj_month["status"] == PENDING_REVIEW].groupby("tenant")["delta_cents"].sum()
    st["pending_review_cents"] = as_int(st["tenant"].map(pending))
    st["closed"] = month_closed(start.date(), as_of)
    st["month"] = start.strftime("%Y%m")
    st["month_start"] = start.date()
    if notes is None:
        known = adj
        if len(known) and "created_at" in known.columns:
            known = known[(pd.to_datetime(known["created_at"], utc=True) <= as_of).to_numpy()]
        currencies = inv[["invoice_number", "currency"]] if "currency" in inv.columns else \
            pd.DataFrame(columns=["invoice_number", "currency"])
        implied = [adjustment_notes(known, currencies) if len(known) and "adjustment_id" in known.columns else None]
        if st["closed"].all():
            implied.append(month_close_notes(st, None, as_of))
        notes = pd.concat([n for n in implied if n is not None and len(n)], ignore_index=True) \
            if any(n is not None and len(n) for n in implied) else None
    totals = note_totals(notes, start.date(), as_of).set_index("tenant")
    for col in ("adjustments_count", "adjustments_cents", "credit_notes_count", "credit_notes_cents",
                "debit_notes_count", "debit_notes_cents"):
        st[col] = as_int(st["tenant"].map(totals[col]))
    st["net_due_cents"] = st["gross_cents"] + st["debit_notes_cents"] - st["credit_notes_cents"]
    st["payments_cents"] = as_int(st["tenant"].map(month_payments(payments, start.strftime("%Y%m"), as_of)))
    st["balance_due_cents"] = st["net_due_cents"] - st["payments_cents"]

    if overdue is not None:
        by_tenant = overdue.set_index("tenant").rename(columns={"invoices_overdue": "size", "overdue_cents": "sum"})
    else:
        states = states_at(inv, adjustments, payments, as_of) if len(inv) else pd.DataFrame(columns=["state", "balance_cents"])
        late = inv.assign(_owed=states["balance_cents"])[(states["state"] == OVERDUE).to_numpy()] if len(inv) else inv.assign(_owed=0)
        by_tenant = late.groupby("tenant")["_owed"].agg(["size", "sum"])
    st["overdue_invoices"] = as_int(st["tenant"].map(by_tenant["size"]))
    st["overdue_cents"] = as_int(st["tenant"].map(by_tenant["sum"]))
    st["month_end"] = (end - pd.Timedelta(days=1)).date()
    st["as_of"] = pd.Series(as_of, index=st.index).dt.tz_convert("UTC") if as_of.tzinfo else as_of
    for col in ("discount_cents", "minimum_top_up_cents", "net_due_cents", "payments_cents", "balance_due_cents"):
        st[col] = st[col].astype(np.int64)
    return st[STATEMENT_COLUMNS]


# ---------------------------------------------------------------------------------------------
# 7. Daily billing report


def _counts_text(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """Per tenant "a:2,b:1" from a long (tenant, key, count) frame, keys sorted."""
    if frame.empty:
        return pd.Series(dtype=object)
    f = frame.sort_values(["tenant", key])
    text = f[key].astype(str) + ":" + f[value].astype(str)
    return text.groupby(f["tenant"]).agg(",".join)


def build_billing_report(
    invoices: pd.DataFrame,
    billable: pd.DataFrame,
    adjustments: pd.DataFrame | None,
    as_of: pd.Timestamp,
    day: date,
    earlier: pd.DataFrame | None = None,
    payments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per tenant for `day` (columns `REPORT_COLUMNS`).

    `earlier` (tenant, invoices_open, invoices_partially_paid, invoices_overdue, invoices_paid, overdue_cents, as
    `services/billing_reads.py::ledger_states` computes them) stands for the invoices issued
    before the ones passed in `invoices`: its counts and overdue amount are added to the status
    breakdown. Passing every invoice and no `earlier` is the reference computation.

    Issued: invoices with invoice_date == day. Held: orders of `billable` held at as_of whose
    invoice_date <= day (the backlog), `hold_reasons` as "CODE:count" and held_cents when
    `billable` carries amount_cents (priced totals). Adjustments: those dated `day`, by their
    status at as_of (a later review does not count yet); revenue impact = their applied deltas.
    Status breakdown over every invoice issued by `day`: its status at as_of (domain/payments.py:
    open, partially paid, overdue, paid) from its applied adjustments and the `payments` on its
    account (tenant, invoice_number, amount_cents, payment_date); the overdue amount is what is
    left to pay on the overdue ones.
    """
    as_of = pd.Timestamp(as_of)
    the_day = pd.Timestamp(day)
    inv = invoices if invoices is not None else pd.DataFrame(columns=["tenant", "invoice_number", "invoice_date", "due_date", "amount_cents"])
    bil = billable if billable is not None else pd.DataFrame(columns=["tenant", "order_id", "invoice_date", "held", "hold_reasons"])
    adj = reviewed_as_of(adjustments, as_of) if adjustments is not None and len(adjustments) else \
        _empty_adjustments().assign(adjustment_date=None)
    before = earlier.set_index("tenant") if earlier is not None else pd.DataFrame(
        columns=[*(f"invoices_{state}" for state in INVOICE_STATES), "overdue_cents"])
    tenants = sorted(set(inv["tenant"]) | set(bil["tenant"]) | set(adj["tenant"]) | set(before.index))
    rep = pd.DataFrame({"tenant": tenants})
    m = lambda s: as_int(rep["tenant"].map(s))  # noqa: E731  (per-tenant count/sum, 0 when none)

    inv_day = as_dates(inv["invoice_date"])
    issued = inv[(inv_day == the_day).to_numpy()].groupby("tenant")["amount_cents"].agg(["size", "sum"])
    rep["invoices_issued"] = m(issued["size"])
    rep["invoiced_cents"] = m(issued["sum"])

    held = bil[(bil["held"].astype(bool) & (as_dates(bil["invoice_date"]) <= the_day)).to_numpy()]
    rep["held_orders"] = m(held.groupby("tenant").size())
    held_cents = held.groupby("tenant")["amount_cents"].sum() if "amount_cents" in held.columns else pd.Series(dtype=np.int64)
    rep["held_cents"] = m(held_cents)
    codes = held.assign(code=held["hold_reasons"].str.split(",")).explode("code")
    codes = codes.groupby(["tenant", "code"]).size().rename("n").reset_index()
    rep["hold_reasons"] = rep["tenant"].map(_counts_text(codes, "code", "n")).fillna("")

    adj_day = as_dates(adj["adjustment_date"]) if "adjustment_date" in adj.columns else as_dates(pd.to_datetime(adj["created_at"], utc=True).dt.date)
    today = adj[(adj_day == the_day).to_numpy()]
    for status, col in ((AUTO_APPLIED, "adjustments_auto_applied"), (APPLIED_FLAGGED, "adjustments_applied_flagged"), (PENDING_REVIEW, "adjustments_pending_review")):
        rep[col] = m(today[today["status"] == status].groupby("tenant").size())
    rep["revenue_impact_cents"] = m(today[today["status"].isin(APPLIED_STATUSES)].groupby("tenant")["delta_cents"].sum())
    rep["pending_review_cents"] = m(today[today["status"] == PENDING_REVIEW].groupby("tenant")["delta_cents"].sum())

    book = inv[(inv_day <= the_day).to_numpy()].copy()
    states = states_at(book, adjustments, payments, as_of) if len(book) else pd.DataFrame(columns=["state", "balance_cents"])
    book["state"], book["_left"] = states["state"], states["balance_cents"]
    counts = book.groupby(["tenant", "state"]).size().rename("n").reset_index()
    for state in INVOICE_STATES:
        rep[f"invoices_{state}"] = m(counts[counts["state"] == state].set_index("tenant")["n"]) + m(before[f"invoices_{state}"])
    rep["status_breakdown"] = rep[[f"invoices_{s}" for s in INVOICE_STATES]].astype(str).apply(
        lambda row: ",".join(f"{s}:{n}" for s, n in zip(INVOICE_STATES, row)), axis=1) if len(rep) else ""
    late = book[book["state"] == OVERDUE]
    rep["overdue_cents"] = m(late.groupby("tenant")["_left"].sum() if len(late) else pd.Series(dtype=np.int64)) + m(before["overdue_cents"])
    rep["day"] = the_day.date()
    rep["as_of"] = as_of
    return rep[REPORT_COLUMNS]


def statement_number(tenant: str, month: str) -> str:
    """The monthly statement's reference (docs/billing.md "Documents"): `{TENANT}-ST-{YYYYMM}`, the
    remittance reference of its balance, like the invoice and note series of DOMAIN §5 and §8.2."""
    return f"{tenant.upper()}-ST-{month}"
