"""Monthly billing mode (DOMAIN §8.3): one invoice per tenant and month, issued `grace_days` after
the month ends, holding the month's per-order charges summed by line kind, the volume discount
and the minimum monthly fee top-up as lines; the per-order detail is its attachment.

Per-order charges are priced exactly as per-order invoices are (`billing.py::price_orders`); only
the document differs. Pure and vectorised like the rest of the domain; the decisions DOMAIN
leaves open are in docs/rules/billing-modes.md.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from e2a_assets.domain.billing import (
    LINE_COLUMNS,
    LINE_KINDS,
    MINIMUM_FEE_LINE,
    MONTHLY_INVOICE,
    VOLUME_DISCOUNT_LINE,
    as_int,
    mul_floor,
    policy_table,
)
from e2a_assets.domain.invoice_validation import validate_invoice_amounts
from e2a_assets.domain.notes import month_end
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.statements import discount_tiers

MONTHLY_ORDER_PREFIX = "MONTHLY-"
CHARGE_COLUMNS = [
    "tenant", "order_id", "invoice_number", "billing_month", "cohort_day", "invoice_date", "billable_at",
    "billable_basis", "amount_cents", "currency", "rate_card_version", "issued_at",
]  # fmt: skip
PLAN_COLUMNS = [
    "tenant", "order_id", "cohort_day", "invoice_date", "billable_at", "billable_basis", "amount_cents", "currency",
    "rate_card_version", "orders", "charges_cents", "discount_rate", "discount_cents", "minimum_top_up_cents",
]  # fmt: skip
MONTHLY_LINE_COLUMNS = LINE_COLUMNS  # a monthly invoice's lines are stored like any invoice's
# The problems the monthly checks report.
MISSING_CHARGE, CHARGED_TWICE, CHARGE_WITHOUT_INVOICE = "missing_charge", "charged_twice", "charge_without_invoice"
CHARGES_MISMATCH, UNBILLABLE_CHARGE = "charges_mismatch", "unbillable_charge"


def monthly_order_id(month_start: date) -> str:
    """The `order_id` a monthly invoice carries in `invoices`: `MONTHLY-{YYYYMM}`."""
    return MONTHLY_ORDER_PREFIX + pd.Timestamp(month_start).strftime("%Y%m")


def issue_time(month_start: date, grace_days: int) -> pd.Timestamp:
    """When a month's invoice may be issued: the month's end (midnight UTC after its last day)
    plus `grace_days` days."""
    end = pd.Timestamp(month_end(month_start)) + pd.Timedelta(days=1)
    return end.tz_localize("UTC") + pd.Timedelta(days=int(grace_days))


def issue_due(month_start: date, grace_days: int, as_of: pd.Timestamp) -> bool:
    """True once `as_of` >= month end + grace days (not a second before)."""
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    return stamp >= issue_time(month_start, grace_days)


def due_tenants(registry: TenantRegistry, month_start: date, as_of: pd.Timestamp) -> list[str]:
    """The monthly tenants whose invoice for the month is due at `as_of`."""
    return [t for t in registry.monthly_tenants() if issue_due(month_start, registry.grace_days(t), as_of)]


def _volume_discount(tenants: pd.Series, orders: pd.Series, gross: pd.Series,
                     policies: TenantRegistry | pd.DataFrame | None) -> tuple[pd.Series, np.ndarray]:  # fmt: skip
    """(rate, cents) of the volume discount tier each tenant's order count reaches (DOMAIN §5):
    floor(gross × rate), the same rule as the per-order statement's."""
    st = pd.DataFrame({"tenant": tenants.to_numpy(), "orders": orders.to_numpy()})
    tiers = discount_tiers(policies, sorted(set(st["tenant"]))).merge(st, on="tenant")
    tiers = tiers[tiers["orders"] >= tiers["min_orders"]].sort_values("min_orders").drop_duplicates("tenant", keep="last")
    chosen = st.merge(tiers[["tenant", "rate", "num", "den"]], how="left", on="tenant")
    rate = chosen["rate"].fillna(0.0).astype(float)
    cents = mul_floor(gross.to_numpy(dtype=np.int64), chosen["num"].fillna(0).to_numpy(), chosen["den"].fillna(1).to_numpy())
    return rate, np.asarray(cents, dtype=np.int64)


def _version_on(policies: TenantRegistry | pd.DataFrame | None, tenant: str, day: date) -> int:
    """The rate card version in force on `day` (DOMAIN §8.1): what a month with no orders records."""
    if not isinstance(policies, TenantRegistry):
        return 1
    cards = (policies.get(tenant) or policies.default_policy()).rate_card_versions()
    return max(c.version for c in cards if c.effective_from is None or c.effective_from <= day)


def plan_monthly_invoices(
    totals: pd.DataFrame, lines: pd.DataFrame, policies: TenantRegistry | pd.DataFrame | None, month_start: date,
    tenants: list[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The monthly invoices of one month, before numbering: (invoices, lines).

    `totals`/`lines`: `price_orders` output of the tenant's charges to put on the month's invoice
    (one row per order). One invoice per tenant (columns `PLAN_COLUMNS`, order_id
    `MONTHLY-{YYYYMM}`, dated the month's last day): amount = Σ charges − volume discount +
    minimum monthly fee top-up. Lines (`MONTHLY_LINE_COLUMNS`): per line kind, rate card version
    and unit price, the summed quantity and amount (kinds in DOMAIN §5 order), then the volume
    discount (negative; quantity = the orders, unit = the discount) and the minimum fee top-up
    (on Σ charges − discount, to the tenant's `minimum_monthly_fee_cents`). Lines add up to the
    amount.
    """
    last = month_end(month_start)
    order_id = monthly_order_id(month_start)
    totals = totals if totals is not None and len(totals) else pd.DataFrame(columns=["tenant", "order_id", "amount_cents",
                                                                                     "rate_card_version", "currency"])
    lines = lines if lines is not None and len(lines) else pd.DataFrame(columns=MONTHLY_LINE_COLUMNS)
    t = totals.assign(amount_cents=totals["amount_cents"].astype(np.int64))
    inv = t.groupby("tenant", sort=True).agg(orders=("order_id", "size"), charges_cents=("amount_cents", "sum"),
                                             rate_card_version=("rate_card_version", "max"),
                                             currency=("currency", "first")).reset_index()  # fmt: skip
    # A tenant without orders in the month still owes its minimum monthly fee: an invoice of that line.
    idle = sorted(set(tenants) - set(inv["tenant"]))
    if idle:
        table = policy_table(policies, idle).set_index("tenant")
        inv = pd.concat([inv, pd.DataFrame({
            "tenant": idle, "orders": 0, "charges_cents": 0, "currency": [table.loc[x, "currency"] for x in idle],
            "rate_card_version": [_version_on(policies, x, last) for x in idle]})], ignore_index=True)  # fmt: skip
    if inv.empty:
        return pd.DataFrame(columns=PLAN_COLUMNS), pd.DataFrame(columns=MONTHLY_LINE_COLUMNS)
    inv = inv.astype({"orders": np.int64, "charges_cents": np.int64, "rate_card_version": np.int64})
    rate, discount = _volume_discount(inv["tenant"], inv["orders"], inv["charges_cents"], policies)
    inv["discount_rate"] = rate.to_numpy()
    inv["discount_cents"] = discount
    fees = policy_table(policies, inv["tenant"].unique()).set_index("tenant")["tariff_minimum_monthly_fee_cents"]
    inv["_fee"] = inv["tenant"].map(fees).astype(np.int64)
    inv["minimum_top_up_cents"] = np.maximum(inv["_fee"] - (inv["charges_cents"] - inv["discount_cents"]), 0)
    inv["amount_cents"] = inv["charges_cents"] - inv["discount_cents"] + inv["minimum_top_up_cents"]
    inv = inv[(inv["orders"] > 0) | (inv["amount_cents"] > 0)].reset_index(drop=True)
    inv["order_id"] = order_id
    inv["cohort_day"] = last
    inv["invoice_date"] = last
    inv["billable_at"] = pd.Timestamp(last).tz_localize("UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    inv["billable_basis"] = MONTHLY_INVOICE

    rank = {kind: n for n, kind in enumerate(LINE_KINDS)}
    if lines.empty:
        lines = pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("quantity", "unit_cents", "amount_cents", "rate_card_version",
                                                                     "line_no") else object) for c in MONTHLY_LINE_COLUMNS})
    grouped = lines.assign(_rank=lines["kind"].map(rank)).groupby(
        ["tenant", "_rank", "kind", "rate_card_version", "unit_cents"], sort=True, dropna=False
    ).agg(quantity=("quantity", "sum"), amount_cents=("amount_cents", "sum"), orders=("order_id", "nunique"),
          description=("description", "first")).reset_index()  # fmt: skip
    # A multiplier's "unit" is what it added to one order: summed lines of one kind keep one row per
    # rate card version, with quantity = orders and the amount summed.
    multiplier = grouped["kind"].str.startswith("multiplier_")
    if multiplier.any():
        mult = grouped[multiplier].groupby(["tenant", "_rank", "kind", "rate_card_version"], sort=True).agg(
            quantity=("quantity", "sum"), amount_cents=("amount_cents", "sum"), description=("description", "first")
        ).reset_index().assign(unit_cents=lambda f: f["amount_cents"] // f["quantity"].clip(lower=1))  # fmt: skip
        grouped = pd.concat([grouped[~multiplier], mult], ignore_index=True)
    grouped["description"] = grouped["description"] + np.where(
        grouped["rate_card_version"] > 1, " (rate card v" + grouped["rate_card_version"].astype(str) + ")", "")
    extra = []
    for _, row in inv.iterrows():  # one row per tenant
        if row["discount_cents"] > 0:
            extra.append({"tenant": row["tenant"], "_rank": len(LINE_KINDS), "kind": VOLUME_DISCOUNT_LINE,
                          "rate_card_version": row["rate_card_version"], "unit_cents": -int(row["discount_cents"]),
                          "quantity": 1, "amount_cents": -int(row["discount_cents"]),
                          "description": f"volume discount {row['discount_rate']:.0%} on {int(row['orders'])} orders"})
        if row["minimum_top_up_cents"] > 0:
            extra.append({"tenant": row["tenant"], "_rank": len(LINE_KINDS) + 1, "kind": MINIMUM_FEE_LINE,
                          "rate_card_version": row["rate_card_version"], "unit_cents": int(row["minimum_top_up_cents"]),
                          "quantity": 1, "amount_cents": int(row["minimum_top_up_cents"]),
                          "description": f"minimum monthly fee top-up to {int(row['_fee'])}"})
    if extra:
        grouped = pd.concat([grouped, pd.DataFrame(extra)], ignore_index=True)
    grouped = grouped.sort_values(["tenant", "_rank", "rate_card_version", "unit_cents"], kind="stable")
    grouped["order_id"] = order_id
    grouped["line_no"] = grouped.groupby("tenant").cumcount().astype(np.int64) + 1
    for col in ("quantity", "unit_cents", "amount_cents", "rate_card_version"):
        grouped[col] = grouped[col].astype(np.int64)
    return inv[PLAN_COLUMNS].reset_index(drop=True), grouped[MONTHLY_LINE_COLUMNS].reset_index(drop=True)


def charge_rows(charges: pd.DataFrame, numbers: pd.DataFrame, stamp: pd.Timestamp) -> pd.DataFrame:
    """The `order_charges` rows (`CHARGE_COLUMNS`) of the orders on the issued monthly invoices:
    `charges` (priced orders with their billable_basis), `numbers` (tenant, invoice_number,
    invoice_month of the issued invoices)."""
    rows = charges.merge(numbers.rename(columns={"invoice_month": "billing_month"}), on="tenant")
    rows["issued_at"] = stamp
    rows["amount_cents"] = rows["amount_cents"].astype(np.int64)
    return rows[CHARGE_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Adjustments of charges (DOMAIN §8.2: late events after issue become notes)


def charge_key(frame: pd.DataFrame) -> pd.Series:
    """The key a charge's adjustments are counted under: `{invoice_number}-{order_id}` (a monthly
    invoice holds many orders; each order's charge is corrected on its own)."""
    return frame["invoice_number"].astype(str) + "-" + frame["order_id"].astype(str)


def as_charge_invoices(charges: pd.DataFrame, existing: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """`charges` as the per-order invoices `statements.compute_adjustments` expects (number = the
    charge key) and the existing adjustments of those charges under the same key: the
    recalculation rules (thresholds, review, supersession) apply to each charge unchanged."""
    issued = charges.assign(invoice_number=charge_key(charges))
    if existing is None or existing.empty:
        return issued, existing
    return issued, existing.assign(invoice_number=charge_key(existing))


def restore_invoice_numbers(new: pd.DataFrame, charges: pd.DataFrame) -> pd.DataFrame:
    """Adjustments computed by charge key back on their monthly invoice number (the ids keep the
    key: `{invoice_number}-{order_id}-A01`)."""
    if new is None or new.empty:
        return new
    keyed = charges.assign(_key=charge_key(charges))[["tenant", "_key", "invoice_number"]]
    out = new.rename(columns={"invoice_number": "_key"}).merge(keyed, on=["tenant", "_key"], how="left")
    return out.drop(columns="_key")[list(new.columns)]


def charge_amount_problems(charges: pd.DataFrame, adjustments: pd.DataFrame | None, recomputed: pd.DataFrame) -> pd.DataFrame:
    """Charges whose amount + applied adjustments != the amount recomputed from the events (or
    none recomputed), as `invoice_validation.validate_invoice_amounts` judges invoices."""
    if charges is None or charges.empty:
        return validate_invoice_amounts(None, None, recomputed)
    issued, existing = as_charge_invoices(charges, adjustments)
    found = validate_invoice_amounts(issued, existing, recomputed)
    return restore_invoice_numbers(found, charges) if len(found) else found


# ---------------------------------------------------------------------------------------------
# Validation (the invoice checks, adapted: DOMAIN §8.3)


def validate_charge_coverage(charges: pd.DataFrame, invoices: pd.DataFrame, billable: pd.DataFrame) -> pd.DataFrame:
    """Charges of orders that are not billable, orders charged twice (or charged and invoiced on
    their own), and charges naming no monthly invoice of the ledger. `invoices`: tenant,
    order_id, invoice_number, invoice_kind of the ledger rows that may be referenced or collide."""
    cols = ["tenant", "order_id", "invoice_number", "problem"]
    if charges is None or charges.empty:
        return pd.DataFrame(columns=cols)
    ch = charges[["tenant", "order_id", "invoice_number"]]
    parts = [ch[ch.duplicated(["tenant", "order_id"], keep=False)].assign(problem=CHARGED_TWICE)]
    per_order = invoices[invoices["invoice_kind"] != MONTHLY_INVOICE][["tenant", "order_id", "invoice_number"]]
    both = ch.merge(per_order[["tenant", "order_id"]], on=["tenant", "order_id"])
    parts.append(both.assign(problem=CHARGED_TWICE))
    monthly = invoices[invoices["invoice_kind"] == MONTHLY_INVOICE][["tenant", "invoice_number"]].assign(_known=True)
    orphan = ch.merge(monthly, how="left", on=["tenant", "invoice_number"])
    parts.append(orphan[orphan["_known"].isna()].assign(problem=CHARGE_WITHOUT_INVOICE))
    stray = ch.merge(billable[["tenant", "order_id"]], how="left", on=["tenant", "order_id"], indicator=True)
    parts.append(stray[stray["_merge"] == "left_only"].assign(problem=UNBILLABLE_CHARGE))
    parts = [p[cols] for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def validate_monthly_invoices(invoices: pd.DataFrame, lines: pd.DataFrame, charges: pd.DataFrame,
                              due: pd.DataFrame) -> pd.DataFrame:  # fmt: skip
    """Monthly invoices whose per-order lines (every kind but the discount and the minimum fee)
    do not add up to Σ of their charges (`charges_mismatch`), and billable orders due on one
    that no invoice or charge holds (`missing_charge`).

    `due`: tenant, order_id, invoice_number - the billable, not held orders each issued monthly
    invoice should hold (priced no later than its issue, dated up to its month's end, invoiced
    nowhere else)."""
    cols = ["tenant", "order_id", "invoice_number", "charged_cents", "lines_cents", "problem"]
    parts = []
    if invoices is not None and len(invoices):
        per_order = lines[~lines["kind"].isin([VOLUME_DISCOUNT_LINE, MINIMUM_FEE_LINE])]
        got = per_order.groupby("invoice_number")["amount_cents"].sum()
        charged = charges.groupby("invoice_number")["amount_cents"].sum() if len(charges) else pd.Series(dtype=np.int64)
        inv = invoices[["tenant", "order_id", "invoice_number"]].copy()
        inv["lines_cents"] = as_int(inv["invoice_number"].map(got)).to_numpy()
        inv["charged_cents"] = as_int(inv["invoice_number"].map(charged)).to_numpy()
        parts.append(inv[inv["lines_cents"] != inv["charged_cents"]].assign(problem=CHARGES_MISMATCH))
    if due is not None and len(due):
        held = due.merge(charges[["tenant", "order_id"]], how="left", on=["tenant", "order_id"], indicator=True) \
            if charges is not None and len(charges) else due.assign(_merge="left_only")  # fmt: skip
        parts.append(held[held["_merge"] == "left_only"].assign(problem=MISSING_CHARGE))
    parts = [p.reindex(columns=cols) for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def monthly_statement_figures(invoices: pd.DataFrame, lines: pd.DataFrame, charges: pd.DataFrame) -> pd.DataFrame:
    """Per issued monthly invoice: tenant, month, invoiced_orders (its charges), gross_cents
    (Σ charges), discount_rate, discount_cents and minimum_top_up_cents (its lines): what the
    monthly statement of a `monthly` tenant shows."""
    cols = ["tenant", "month", "invoiced_orders", "gross_cents", "discount_cents", "minimum_top_up_cents"]
    if invoices is None or invoices.empty:
        return pd.DataFrame(columns=cols)
    inv = invoices[["tenant", "invoice_number", "invoice_month"]].rename(columns={"invoice_month": "month"}).copy()
    by_charge = charges.groupby("invoice_number")["amount_cents"].agg(["size", "sum"]) if len(charges) else \
        pd.DataFrame(columns=["size", "sum"])  # fmt: skip
    inv["invoiced_orders"] = as_int(inv["invoice_number"].map(by_charge["size"])).to_numpy()
    inv["gross_cents"] = as_int(inv["invoice_number"].map(by_charge["sum"])).to_numpy()
    kind_sum = lambda kind: as_int(inv["invoice_number"].map(  # noqa: E731
        lines[lines["kind"] == kind].groupby("invoice_number")["amount_cents"].sum())).to_numpy()
    inv["discount_cents"] = -kind_sum(VOLUME_DISCOUNT_LINE)
    inv["minimum_top_up_cents"] = kind_sum(MINIMUM_FEE_LINE)
    return inv[cols].reset_index(drop=True)


def apply_monthly_figures(statement: pd.DataFrame, issued: pd.DataFrame, provisional: pd.DataFrame,
                          monthly_tenants: list[str], policies: TenantRegistry | pd.DataFrame | None) -> pd.DataFrame:  # fmt: skip
    """A month's statements (`statements.build_monthly_statements`) with the rows of
    `monthly_tenants` showing their monthly invoice (DOMAIN §8.3): invoiced orders and gross =
    its charges, discount and top-up = its lines, `closed` True (`issued`, from
    `monthly_statement_figures`); before issue the provisional figures of the invoice it would be
    (`provisional`, from `plan_monthly_invoices`), `closed` False; zeros without either. The
    discount rate is the tier of the order count. The net due is left as computed: Σ invoices +
    Σ debit notes − Σ credit notes (the invoice amount holds its discount and top-up)."""
    mine = [t for t in monthly_tenants if t in set(statement["tenant"])]
    if not mine:
        return statement
    out = statement.set_index("tenant")
    cols = ["invoiced_orders", "gross_cents", "discount_cents", "minimum_top_up_cents"]
    out.loc[mine, cols] = 0
    out.loc[mine, "closed"] = False
    later = provisional.rename(columns={"orders": "invoiced_orders", "charges_cents": "gross_cents"})
    for frame, closed in ((later, False), (issued, True)):
        rows = frame[frame["tenant"].isin(mine)].set_index("tenant") if len(frame) else None
        if rows is not None and len(rows):
            out.loc[rows.index, cols] = rows[cols].to_numpy()
            out.loc[rows.index, "closed"] = closed
    out = out.reset_index()
    for col in cols:
        out[col] = out[col].astype(np.int64)
    out["closed"] = out["closed"].astype(bool)
    rows = out["tenant"].isin(mine).to_numpy()
    rate, _ = _volume_discount(out.loc[rows, "tenant"], out.loc[rows, "invoiced_orders"], out.loc[rows, "gross_cents"], policies)
    out.loc[rows, "discount_rate"] = rate.to_numpy()
    return out[statement.columns]
