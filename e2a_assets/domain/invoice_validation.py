"""The rules behind the blocking asset checks on `invoices` (DOMAIN §5 "Validation").

Each function takes ledger rows and returns the offending ones with a `problem`, empty when all
is well, so a failing check can list exactly which invoices are wrong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2a_assets.domain.billing import (
    INVOICE_NUMBER_PATTERN,
    VOLUME_DISCOUNT_LINE,
    applied_adjustment_totals,
    as_dates,
    as_int,
    invoice_numbers,
    payment_terms,
)
from e2a_assets.domain.policies import TenantRegistry

# The `problem` of an offending row, one per broken rule.
NOT_RECOMPUTED, AMOUNT_MISMATCH = "not_recomputed", "amount_mismatch"
MALFORMED, DUPLICATE, GAP = "malformed", "duplicate", "gap"
MISSING_INVOICE, SEVERAL_INVOICES, UNBILLABLE_ORDER = "missing_invoice", "several_invoices", "unbillable_order"
WRONG_DUE_DATE, NEGATIVE_AMOUNT, NEGATIVE_LINE = "wrong_due_date", "negative_amount", "negative_line"


def validate_invoice_amounts(
    invoices: pd.DataFrame, adjustments: pd.DataFrame | None, recomputed: pd.DataFrame
) -> pd.DataFrame:
    """Invoices whose issued amount + applied adjustments != amount recomputed from events (or none)."""
    cols = ["tenant", "order_id", "invoice_number", "issued_cents", "applied_cents", "recomputed_cents", "difference_cents", "problem"]
    if invoices is None or invoices.empty:
        return pd.DataFrame(columns=cols)
    inv = invoices[["tenant", "order_id", "invoice_number", "amount_cents"]].rename(columns={"amount_cents": "issued_cents"})
    inv = inv.merge(applied_adjustment_totals(adjustments), how="left", on=["tenant", "invoice_number"])
    rec = recomputed[["tenant", "order_id", "amount_cents"]].rename(columns={"amount_cents": "recomputed_cents"})
    inv = inv.merge(rec, how="left", on=["tenant", "order_id"])
    inv["applied_cents"] = as_int(inv["applied_cents"])
    inv["difference_cents"] = inv["recomputed_cents"] - inv["issued_cents"] - inv["applied_cents"]
    bad = inv["recomputed_cents"].isna() | (inv["difference_cents"] != 0)
    inv["problem"] = np.where(inv["recomputed_cents"].isna(), NOT_RECOMPUTED, AMOUNT_MISMATCH)
    return inv.loc[bad, cols].reset_index(drop=True)


def validate_invoice_numbers(invoices: pd.DataFrame) -> pd.DataFrame:
    """Malformed, duplicate and missing (gap) numbers; seq per tenant+month must be exactly 1..n.

    Gap rows carry the missing number with order_id None.
    """
    cols = ["tenant", "order_id", "invoice_number", "problem"]
    if invoices is None or invoices.empty:
        return pd.DataFrame(columns=cols)
    inv = invoices[["tenant", "order_id", "invoice_number", "invoice_date"]].copy()
    number = inv["invoice_number"].astype(str)
    month = as_dates(inv["invoice_date"]).dt.strftime("%Y%m").to_numpy()
    parts = number.str.rsplit("-", n=2)
    seq = pd.to_numeric(parts.str[-1], errors="coerce")
    well_formed = number.str.match(INVOICE_NUMBER_PATTERN).fillna(False).astype(bool)
    well_formed &= (parts.str[0] == inv["tenant"].str.upper()) & (parts.str[1] == month) & (seq >= 1)
    # The seq must be spelled `{seq:04d}`: "00001" would be a second seq 1 under another string.
    well_formed &= parts.str[-1] == seq.fillna(0).astype(np.int64).astype(str).str.zfill(4)
    problems = [inv[~well_formed].assign(problem=MALFORMED)]
    dup = number.duplicated(keep=False)
    problems.append(inv[dup].assign(problem=DUPLICATE))
    # Gaps: seqs 1..max that no well-formed number holds (a duplicated number still holds its seq).
    good = inv[well_formed].assign(_month=month[well_formed], _seq=seq[well_formed].astype(np.int64))
    good = good.drop_duplicates(["tenant", "_month", "_seq"])
    if not good.empty:
        top = good.groupby(["tenant", "_month"])["_seq"].max().reset_index()
        expected = top.loc[top.index.repeat(top["_seq"])].copy()
        expected["_seq"] = expected.groupby(["tenant", "_month"]).cumcount() + 1
        gaps = expected.merge(good[["tenant", "_month", "_seq"]], how="left", on=["tenant", "_month", "_seq"], indicator=True)
        gaps = gaps[gaps["_merge"] == "left_only"]
        problems.append(pd.DataFrame({
            "tenant": gaps["tenant"], "order_id": None, "problem": GAP,
            "invoice_number": invoice_numbers(gaps["tenant"], gaps["_month"], gaps["_seq"]),
        }))  # fmt: skip
    out = pd.concat([p[cols] for p in problems if not p.empty], ignore_index=True) if any(not p.empty for p in problems) else None
    return out if out is not None else pd.DataFrame(columns=cols)


def validate_invoice_coverage(invoices: pd.DataFrame, billable: pd.DataFrame) -> pd.DataFrame:
    """Billable orders with no invoice, orders with several invoices, invoices for ineligible orders.

    A held order is eligible (it may have been invoiced before the blocking exception opened); an
    invoice is only "unbillable" when its order is absent from `billable` (never billable).
    """
    cols = ["tenant", "order_id", "invoice_number", "problem"]
    inv = invoices if invoices is not None else pd.DataFrame(columns=["tenant", "order_id", "invoice_number"])
    inv = inv[["tenant", "order_id", "invoice_number"]]
    bil = billable[["tenant", "order_id", "billable"]] if billable is not None else pd.DataFrame(columns=["tenant", "order_id", "billable"])
    missing = bil[bil["billable"].astype(bool)].merge(inv, how="left", on=["tenant", "order_id"])
    missing = missing[missing["invoice_number"].isna()].assign(problem=MISSING_INVOICE)
    several = inv[inv.duplicated(["tenant", "order_id"], keep=False)].assign(problem=SEVERAL_INVOICES)
    stray = inv.merge(bil, how="left", on=["tenant", "order_id"], indicator=True)
    stray = stray[stray["_merge"] == "left_only"].assign(problem=UNBILLABLE_ORDER)
    parts = [p[cols] for p in (missing, several, stray) if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def validate_due_dates(invoices: pd.DataFrame, policies: TenantRegistry | pd.DataFrame | None = None) -> pd.DataFrame:
    """Invoices whose due_date != invoice_date + payment terms (the invoice's own, else the tariff's)."""
    cols = ["tenant", "order_id", "invoice_number", "invoice_date", "due_date", "expected_due_date", "problem"]
    if invoices is None or invoices.empty:
        return pd.DataFrame(columns=cols)
    inv = invoices.copy()
    expected = as_dates(inv["invoice_date"]) + pd.to_timedelta(payment_terms(inv, policies).to_numpy(), unit="D")
    inv["expected_due_date"] = expected.dt.date.to_numpy()
    bad = (as_dates(inv["due_date"]) != expected).to_numpy()
    return inv.loc[bad].assign(problem=WRONG_DUE_DATE)[cols].reset_index(drop=True)


def validate_amounts_non_negative(invoices: pd.DataFrame, lines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Invoices with a negative or missing amount (and, if given, negative lines other than
    multipliers and a monthly invoice's volume discount)."""
    cols = ["tenant", "order_id", "invoice_number", "amount_cents", "problem"]
    parts = []
    if invoices is not None and not invoices.empty:
        bad = invoices[invoices["amount_cents"].isna() | (invoices["amount_cents"] < 0)]
        parts.append(bad.assign(problem=NEGATIVE_AMOUNT).reindex(columns=cols))
    if lines is not None and not lines.empty:
        bad = lines[(lines["amount_cents"] < 0) & ~lines["kind"].str.startswith("multiplier_")
                    & (lines["kind"] != VOLUME_DISCOUNT_LINE)]  # a monthly invoice's discount (DOMAIN §8.3)
        parts.append(bad.assign(problem=NEGATIVE_LINE, invoice_number=None).reindex(columns=cols))
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

