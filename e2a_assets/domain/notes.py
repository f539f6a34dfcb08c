"""Credit and debit notes (DOMAIN §8.2): which notes the ledger issues, their numbers, and how a
monthly statement reconciles with them.

A note is a document the client holds, issued once and never changed. Its `amount_cents` is
always positive; its `kind` says the sign (a credit note lowers what is owed, a debit note raises
it). Two families:

- **adjustment notes** (reason RECALCULATION): one per applied adjustment, `source_id` = the
  adjustment id, referencing the adjustment's invoice. Dated the adjustment's day when it is
  applied at creation (AUTO_APPLIED, APPLIED_FLAGGED), the review day when it is approved later;
- **month-close notes** (VOLUME_DISCOUNT, MINIMUM_TOP_UP): issued by the monthly statement of a
  closed month, dated its last day, referencing the tenant-month (`statement_month`), not an
  invoice. A figure that changes after issue gets a further correcting note for the difference
  (never a rewrite); `source_id` = `{TENANT}-{YYYYMM}-{REASON}-{nn}`.

Numbers `{TENANT}-CN-{YYYYMM}-{seq:04d}` / `{TENANT}-DN-{YYYYMM}-{seq:04d}`, seq per tenant, kind
and month of the note date; within one issue they go out in order of (note_date, source time,
source_id). Pure and vectorised like `billing.py`; the ledger (warehouse/ledger.py) allocates the
sequences under a lock.
"""

from __future__ import annotations

from datetime import date
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from e2a_assets.domain.billing import APPLIED_FLAGGED, APPROVED, AUTO_APPLIED, as_dates, as_int

CREDIT, DEBIT = "credit", "debit"
NOTE_KINDS = (CREDIT, DEBIT)
SERIES = {CREDIT: "CN", DEBIT: "DN"}
RECALCULATION = "RECALCULATION"
VOLUME_DISCOUNT, MINIMUM_TOP_UP = "VOLUME_DISCOUNT", "MINIMUM_TOP_UP"
MONTH_CLOSE_REASONS = (VOLUME_DISCOUNT, MINIMUM_TOP_UP)
NOTE_REASONS = (RECALCULATION, *MONTH_CLOSE_REASONS)
# The kind that *adds* each month-close figure: the discount is a credit, the top-up a debit.
MONTH_CLOSE_KIND = {VOLUME_DISCOUNT: CREDIT, MINIMUM_TOP_UP: DEBIT}
NOTE_NUMBER_PATTERN = r"^[A-Z0-9][A-Z0-9-]*-(CN|DN)-\d{6}-\d{4,}$"
DESCRIPTIONS = {
    RECALCULATION: "Recalculation of invoice {ref}",
    VOLUME_DISCOUNT: "Volume discount {ref}",
    MINIMUM_TOP_UP: "Minimum monthly fee top-up {ref}",
}
# A candidate note before numbering (what the ledger is asked to issue).
CANDIDATE_COLUMNS = [
    "source_id", "tenant", "kind", "reason", "note_date", "source_at", "invoice_number", "order_id",
    "statement_month", "amount_cents", "currency", "description",
]  # fmt: skip
# Malformed / duplicate / gap problems (same words as the invoice numbering check).
MALFORMED, DUPLICATE, GAP = "malformed_number", "duplicate_number", "gap_in_sequence"
NET_DUE_MISMATCH, MONTH_CLOSE_MISMATCH = "net_due_mismatch", "month_close_mismatch"


def _month(days: pd.Series) -> pd.Series:
    return as_dates(days).dt.strftime("%Y%m")


def note_numbers(tenant: pd.Series, kind: pd.Series, month: pd.Series, seq: pd.Series) -> pd.Series:
    """`{TENANT}-CN-{YYYYMM}-{seq:04d}` for credit notes, `…-DN-…` for debit notes."""
    series = kind.map(SERIES)
    return tenant.str.upper() + "-" + series + "-" + month.astype(str) + "-" + seq.astype(np.int64).astype(str).str.zfill(4)


def signed_cents(notes: pd.DataFrame) -> pd.Series:
    """+amount for a debit note, −amount for a credit note."""
    amount = notes["amount_cents"].astype(np.int64)
    return amount.where(notes["kind"] == DEBIT, -amount)


def month_end(month_start: date) -> date:
    start = pd.Timestamp(month_start).replace(day=1)
    return (start + pd.offsets.MonthBegin(1) - pd.Timedelta(days=1)).date()


def month_closed(month_start: date, as_of: pd.Timestamp) -> bool:
    """A month is closed once the as_of (UTC) day is after its last day: only then are its
    month-close notes issued; before, the statement is provisional."""
    stamp = pd.Timestamp(as_of)
    day = (stamp.tz_convert("UTC") if stamp.tzinfo else stamp).date()
    return day > month_end(month_start)


# ---------------------------------------------------------------------------------------------
# Which notes


def adjustment_notes(adjustments: pd.DataFrame, currencies: pd.DataFrame) -> pd.DataFrame:
    """Candidate notes (`CANDIDATE_COLUMNS`) for the applied adjustments among `adjustments`
    (AUTO_APPLIED, APPLIED_FLAGGED, APPROVED) with a non-zero delta.

    `currencies`: invoice_number, currency (of the adjusted invoices). Note date: the adjustment
    date, or the review day (UTC) for an approved one; source time: created_at, or reviewed_at.
    """
    if adjustments is None or adjustments.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    adj = adjustments[adjustments["status"].isin([AUTO_APPLIED, APPLIED_FLAGGED, APPROVED])]
    adj = adj[adj["delta_cents"].astype(np.int64) != 0]
    if adj.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    approved = (adj["status"] == APPROVED).to_numpy()
    created = pd.to_datetime(adj["created_at"], utc=True)
    reviewed = pd.to_datetime(adj["reviewed_at"], utc=True) if "reviewed_at" in adj.columns else created
    reviewed = reviewed.fillna(created)
    at = created.where(~approved, reviewed)
    day = as_dates(adj["adjustment_date"]).dt.date
    out = pd.DataFrame({
        "source_id": adj["adjustment_id"].astype(str),
        "tenant": adj["tenant"],
        "kind": np.where(adj["delta_cents"].astype(np.int64) < 0, CREDIT, DEBIT),
        "reason": RECALCULATION,
        "note_date": day.where(~approved, at.dt.date),
        "source_at": at,
        "invoice_number": adj["invoice_number"],
        "order_id": adj["order_id"] if "order_id" in adj.columns else None,
        "statement_month": None,
        "amount_cents": adj["delta_cents"].astype(np.int64).abs(),
    })  # fmt: skip
    out["currency"] = out["invoice_number"].map(currencies.drop_duplicates("invoice_number").set_index("invoice_number")["currency"])
    out["description"] = DESCRIPTIONS[RECALCULATION].format(ref="") + out["invoice_number"].astype(str)
    return out[CANDIDATE_COLUMNS].reset_index(drop=True)


def month_close_notes(statements: pd.DataFrame, issued: pd.DataFrame | None, at: pd.Timestamp) -> pd.DataFrame:
    """Candidate month-close notes that bring the issued ones to the statement's figures.

    `statements`: tenant, month (YYYYMM), month_start, currency, discount_cents,
    minimum_top_up_cents (of closed months). `issued`: the month-close notes already issued for
    those tenant-months (tenant, statement_month, reason, kind, amount_cents). Per figure the
    issued net (credits for the discount, debits for the top-up) is compared with the figure: the
    difference is one further note (the figure's own kind when it grew, the other kind when it
    shrank); equal → nothing. Idempotent: re-running with the returned notes issued gives none.
    """
    if statements is None or statements.empty:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    prior = issued if issued is not None and len(issued) else pd.DataFrame(
        columns=["tenant", "statement_month", "reason", "kind", "amount_cents"])
    parts = []
    for reason, column in ((VOLUME_DISCOUNT, "discount_cents"), (MINIMUM_TOP_UP, "minimum_top_up_cents")):
        own = MONTH_CLOSE_KIND[reason]
        mine = prior[prior["reason"] == reason]
        sign = np.where(mine["kind"] == own, 1, -1)
        net = (mine["amount_cents"].astype(np.int64) * sign).groupby([mine["tenant"], mine["statement_month"]]).sum()
        count = mine.groupby(["tenant", "statement_month"]).size()
        keys = pd.MultiIndex.from_arrays([statements["tenant"], statements["month"].astype(str)])
        st = statements.assign(
            _net=as_int(pd.Series(net.reindex(keys).to_numpy(), index=statements.index)).to_numpy(),
            _n=as_int(pd.Series(count.reindex(keys).to_numpy(), index=statements.index)).to_numpy(),
        )
        st["_diff"] = st[column].astype(np.int64) - st["_net"]
        st = st[st["_diff"] != 0]
        if st.empty:
            continue
        other = DEBIT if own == CREDIT else CREDIT
        parts.append(pd.DataFrame({
            "source_id": st["tenant"].str.upper() + "-" + st["month"].astype(str) + "-" + reason + "-"
                         + (st["_n"] + 1).astype(str).str.zfill(2),
            "tenant": st["tenant"],
            "kind": np.where(st["_diff"] > 0, own, other),
            "reason": reason,
            "note_date": [month_end(d) for d in st["month_start"]],
            "source_at": pd.Timestamp(at),
            "invoice_number": None,
            "order_id": None,
            "statement_month": st["month"].astype(str),
            "amount_cents": st["_diff"].abs().astype(np.int64),
            "currency": st["currency"],
            "description": [DESCRIPTIONS[reason].format(ref=f"{m[:4]}-{m[4:]}") + (" (correction)" if n else "")
                            for m, n in zip(st["month"].astype(str), st["_n"])],
        }))  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CANDIDATE_COLUMNS]


# ---------------------------------------------------------------------------------------------
# Numbers


def plan_note_numbers(candidates: pd.DataFrame, last_seq: Mapping[tuple[str, str, str], int] | None) -> pd.DataFrame:
    """Number candidate notes, continuing each (tenant, kind, YYYYMM) sequence of `last_seq`
    (absent ones start at 1), in order of (note_date, source_at, source_id). Adds note_month,
    note_seq, note_number."""
    if candidates is None or candidates.empty:
        return pd.DataFrame(columns=[*CANDIDATE_COLUMNS, "note_month", "note_seq", "note_number"])
    if candidates["source_id"].duplicated().any():
        raise ValueError("plan_note_numbers: a source appears twice")
    notes = candidates.copy()
    notes["note_month"] = _month(notes["note_date"]).to_numpy()
    notes["_day"] = as_dates(notes["note_date"]).to_numpy()
    notes["_at"] = pd.to_datetime(notes["source_at"], utc=True)
    notes = notes.sort_values(["_day", "_at", "source_id"], kind="stable")
    rows = [(t, k, str(m), int(s)) for (t, k, m), s in dict(last_seq or {}).items()]
    start = pd.DataFrame(rows, columns=["tenant", "kind", "note_month", "_last"])
    notes = notes.merge(start, how="left", on=["tenant", "kind", "note_month"])
    notes["note_seq"] = as_int(notes.pop("_last")) + notes.groupby(["tenant", "kind", "note_month"]).cumcount().astype(np.int64) + 1
    notes["note_number"] = note_numbers(notes["tenant"], notes["kind"], notes["note_month"], notes["note_seq"])
    notes["note_date"] = notes["_day"].dt.date
    return notes.drop(columns=["_day", "_at"]).reset_index(drop=True)


def validate_note_numbers(notes: pd.DataFrame) -> pd.DataFrame:
    """Malformed, duplicate and missing (gap) note numbers; seq per tenant, kind and month must be
    exactly 1..n. Columns tenant, note_number, problem."""
    cols = ["tenant", "note_number", "problem"]
    if notes is None or notes.empty:
        return pd.DataFrame(columns=cols)
    n = notes[["tenant", "kind", "note_date", "note_number"]].copy()
    number = n["note_number"].astype(str)
    month = _month(n["note_date"]).to_numpy()
    seq = pd.to_numeric(number.str.rsplit("-", n=1).str[-1], errors="coerce")
    expected = note_numbers(n["tenant"], n["kind"], pd.Series(month, index=n.index), seq.fillna(0))
    well_formed = number.str.match(NOTE_NUMBER_PATTERN).fillna(False).astype(bool) & (number == expected) & (seq >= 1)
    problems = [n[~well_formed].assign(problem=MALFORMED), n[number.duplicated(keep=False)].assign(problem=DUPLICATE)]
    good = n[well_formed].assign(_month=month[well_formed.to_numpy()], _seq=seq[well_formed].astype(np.int64))
    good = good.drop_duplicates(["tenant", "kind", "_month", "_seq"])
    if not good.empty:
        top = good.groupby(["tenant", "kind", "_month"])["_seq"].max().reset_index()
        want = top.loc[top.index.repeat(top["_seq"])].copy()
        want["_seq"] = want.groupby(["tenant", "kind", "_month"]).cumcount() + 1
        gaps = want.merge(good[["tenant", "kind", "_month", "_seq"]], how="left", on=["tenant", "kind", "_month", "_seq"], indicator=True)
        gaps = gaps[gaps["_merge"] == "left_only"]
        problems.append(pd.DataFrame({
            "tenant": gaps["tenant"], "problem": GAP,
            "note_number": note_numbers(gaps["tenant"], gaps["kind"], gaps["_month"], gaps["_seq"]),
        }))  # fmt: skip
    return pd.concat([p[cols] for p in problems if len(p)], ignore_index=True) if any(len(p) for p in problems) else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------------------------------------
# Statement figures and reconciliation


def note_totals(notes: pd.DataFrame | None, month_start: date, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Per tenant, the notes dated in the month and issued by `as_of` (all of them when None):
    credit/debit counts and sums, the signed RECALCULATION sum and count, and the net of each
    month-close figure."""
    cols = ["tenant", "credit_notes_count", "credit_notes_cents", "debit_notes_count", "debit_notes_cents",
            "adjustments_count", "adjustments_cents", "noted_discount_cents", "noted_top_up_cents"]  # fmt: skip
    if notes is None or notes.empty:
        return pd.DataFrame(columns=cols)
    start = pd.Timestamp(month_start).replace(day=1)
    day = as_dates(notes["note_date"])
    keep = (day >= start) & (day <= pd.Timestamp(month_end(start)))
    if "issued_at" in notes.columns and as_of is not None:
        keep &= (pd.to_datetime(notes["issued_at"], utc=True) <= pd.Timestamp(as_of)).fillna(True)
    n = notes[keep.to_numpy()].assign(_signed=lambda f: signed_cents(f) if len(f) else 0)
    if n.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({"tenant": sorted(set(n["tenant"]))})
    by = lambda frame, col, how: as_int(out["tenant"].map(frame.groupby("tenant")[col].agg(how)))  # noqa: E731
    credit, debit = n[n["kind"] == CREDIT], n[n["kind"] == DEBIT]
    out["credit_notes_count"], out["credit_notes_cents"] = by(credit, "amount_cents", "size"), by(credit, "amount_cents", "sum")
    out["debit_notes_count"], out["debit_notes_cents"] = by(debit, "amount_cents", "size"), by(debit, "amount_cents", "sum")
    recalc = n[n["reason"] == RECALCULATION]
    out["adjustments_count"], out["adjustments_cents"] = by(recalc, "_signed", "size"), by(recalc, "_signed", "sum")
    out["noted_discount_cents"] = -by(n[n["reason"] == VOLUME_DISCOUNT], "_signed", "sum")
    out["noted_top_up_cents"] = by(n[n["reason"] == MINIMUM_TOP_UP], "_signed", "sum")
    return out[cols]


def validate_statement_reconciliation(statements: pd.DataFrame, invoices: pd.DataFrame, notes: pd.DataFrame | None,
                                      monthly: pd.DataFrame | None = None,
                                      monthly_tenants: Iterable[str] = ()) -> pd.DataFrame:  # fmt: skip
    """Statements whose net due is not Σ invoices + Σ debit notes − Σ credit notes of the month
    in the ledger (invoices dated in the month by the statement's as_of day; notes dated in the
    month and issued by its as_of), or - for a closed month - whose discount / top-up differ from
    the month-close notes issued for them (whenever issued: a statement re-evaluated at an as_of
    between the month end and the close run does not count them in its net due, yet they are
    that month's documents). A `monthly` tenant's discount and top-up are lines of its monthly
    invoice, not notes (DOMAIN §8.3): for the `monthly_tenants`, `monthly` (tenant, month,
    discount_cents, minimum_top_up_cents of each issued monthly invoice) replaces the notes, and
    only a statement that counts the invoice as issued (`closed`) is judged on them. Columns tenant, month, net_due_cents, ledger_cents,
    discount_cents, noted_discount_cents, minimum_top_up_cents, noted_top_up_cents, problem."""
    cols = ["tenant", "month", "net_due_cents", "ledger_cents", "discount_cents", "noted_discount_cents",
            "minimum_top_up_cents", "noted_top_up_cents", "problem"]  # fmt: skip
    if statements is None or statements.empty:
        return pd.DataFrame(columns=cols)
    parts = []
    inv = invoices if invoices is not None else pd.DataFrame(columns=["tenant", "invoice_date", "amount_cents"])
    for (month_start, as_of), st in statements.groupby(["month_start", "as_of"]):
        start = pd.Timestamp(month_start)
        stamp = pd.Timestamp(as_of)
        last = min(pd.Timestamp(month_end(start)), pd.Timestamp((stamp.tz_convert("UTC") if stamp.tzinfo else stamp).date()))
        day = as_dates(inv["invoice_date"])
        gross = inv[((day >= start) & (day <= last)).to_numpy()].groupby("tenant")["amount_cents"].sum()
        totals = note_totals(notes, start.date(), stamp).set_index("tenant")
        ever = note_totals(notes, start.date(), None).set_index("tenant")
        st = st.copy()
        m = lambda s: as_int(st["tenant"].map(s)).to_numpy()  # noqa: E731
        st["ledger_cents"] = m(gross) + m(totals["debit_notes_cents"]) - m(totals["credit_notes_cents"])
        st["noted_discount_cents"] = m(ever["noted_discount_cents"])
        st["noted_top_up_cents"] = m(ever["noted_top_up_cents"])
        bad_net = st["net_due_cents"].astype(np.int64) != st["ledger_cents"]
        parts.append(st[bad_net.to_numpy()].assign(problem=NET_DUE_MISMATCH))
        if monthly is not None and len(monthly):
            mine = monthly[monthly["month"].astype(str) == start.strftime("%Y%m")].set_index("tenant")
            on_invoice = st["tenant"].isin(mine.index).to_numpy()
            st.loc[on_invoice, "noted_discount_cents"] = m(mine["discount_cents"])[on_invoice]
            st.loc[on_invoice, "noted_top_up_cents"] = m(mine["minimum_top_up_cents"])[on_invoice]
        if month_closed(start.date(), stamp):
            bad_close = (st["discount_cents"].astype(np.int64) != st["noted_discount_cents"]) | \
                (st["minimum_top_up_cents"].astype(np.int64) != st["noted_top_up_cents"])
            if list(monthly_tenants):
                bad_close &= ~(st["tenant"].isin(list(monthly_tenants)) & ~st["closed"].astype(bool))
            parts.append(st[bad_close.to_numpy()].assign(problem=MONTH_CLOSE_MISMATCH))
    bad = [p[cols] for p in parts if len(p)]
    return pd.concat(bad, ignore_index=True) if bad else pd.DataFrame(columns=cols)
