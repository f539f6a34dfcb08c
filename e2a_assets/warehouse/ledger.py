"""The invoice ledger: number allocation, issuing, adjustments, reviews, and reads of the ledger.

`invoices`, `invoice_lines`, `invoice_adjustments`, `notes`, `note_lines`, `rate_card_versions` and
`line_events` (which events each document line comes from) are a ledger (ARCHITECTURE principle 2):
rows are inserted once and never updated or deleted by e2a. The only changes after insert are an
adjustment's review status (PENDING_REVIEW -> APPROVED / REJECTED / SUPERSEDED), an invoice's
`paid_at`, which belongs to the finance system, and the one-time filling of a rate card version
that revision 0005 found without its definition. Every other billing table
is derived and replaced per partition like the rest of the warehouse.

Every issued invoice records the rate card version that priced it (DOMAIN §8.1); the first invoice
a version prices records what the version says in `rate_card_versions`, in the same transaction,
and an issue whose registry says otherwise for a recorded version is refused (`RateCardChanged`).

Invoice numbers come from `invoice_sequences`, one row per (tenant, YYYYMM): a run locks the
rows of the months it numbers, reads which orders are still uninvoiced, numbers them with
`plan_invoice_numbers`, inserts invoices and lines and advances the counters, all in one
transaction. A second run numbering the same month waits for the first to commit, so numbers
are unique and gapless; the unique constraints on the number and on (tenant, order_id) are the
last guard.

Credit and debit notes (DOMAIN §8.2) are numbered by the same mechanism (`_lock_counters`,
`_advance_counters`) over `note_sequences`, one row per (tenant, kind, YYYYMM), in the same
transaction as what causes them: an applied adjustment's note with the adjustment
(`record_adjustments`, `review_adjustment`), the month-close notes with their plan
(`issue_month_close_notes`). `source_id` (unique) makes each note issued once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Table, and_, bindparam, func, select, tuple_, update
from sqlalchemy.engine import Connection

from e2a_assets.domain.billing import plan_invoice_numbers
from e2a_assets.domain.lineage import ADJUSTMENT, CHARGE, INVOICE, NOTE, note_lineage
from e2a_assets.domain.monthly import charge_rows
from e2a_assets.domain.notes import MONTH_CLOSE_REASONS, NOTE_KINDS, adjustment_notes, month_close_notes, plan_note_numbers
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.rate_cards import RateCardChanged, changed_versions, version_records
from e2a_assets.domain.statements import APPROVED, PENDING_REVIEW, REJECTED
from e2a_assets.warehouse.frames import insert_frame, insert_new, read_table
from e2a_assets.warehouse.schema import (
    ISSUED,
    MONTHLY_INVOICE,
    ORDER_INVOICE,
    invoice_adjustments,
    invoice_lines,
    invoice_sequences,
    invoices,
    line_events,
    rate_card_versions,
    note_lines,
    note_sequences,
    notes,
    order_charges,
)

SUPERSEDED = "SUPERSEDED"
LINK_KEY = ["document_kind", "document_number", "line_no", "tenant", "source", "event_id", "role"]


# ---------------------------------------------------------------------------------------------
# Issuing invoices


def _lock_counters(conn: Connection, counters: Table, keys: list[tuple]) -> dict[tuple, int]:
    """Create the missing counters of `counters` (invoice_sequences, note_sequences: key columns
    then `last_seq`) and lock them; returns their current values by key.

    The insert comes first on purpose: on SQLite it is the statement that takes the database
    write lock, so every read after it sees the latest committed ledger (no stale snapshot); on
    Postgres `SELECT ... FOR UPDATE` (in key order, so two runs never deadlock) makes a second
    run numbering the same series wait until the first commits.
    """
    names = [c.name for c in counters.primary_key.columns]
    rows = pd.DataFrame(sorted(set(keys)), columns=names).assign(last_seq=0)
    insert_new(conn, counters, rows, names)
    key = tuple_(*(counters.c[n] for n in names))
    found: dict[tuple, int] = {}
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), 500):
        stmt = (
            select(*(counters.c[n] for n in names), counters.c.last_seq)
            .where(key.in_(ordered[start : start + 500]))
            .order_by(*(counters.c[n] for n in names))
            .with_for_update()
        )
        found.update({tuple(row[:-1]): int(row[-1]) for row in conn.execute(stmt)})
    return found


def _advance_counters(conn: Connection, counters: Table, top: pd.DataFrame, stamp: pd.Timestamp) -> None:
    """Set each counter of `top` (key columns + last_seq) to its new value."""
    names = [c.name for c in counters.primary_key.columns]
    where = and_(*(counters.c[n] == bindparam(f"k_{n}") for n in names))
    conn.execute(
        update(counters).where(where).values(last_seq=bindparam("s"), updated_at=stamp.to_pydatetime()),
        [{**{f"k_{n}": row[n] for n in names}, "s": int(row["last_seq"])} for row in top.to_dict("records")],
    )


def _already_invoiced(conn: Connection, frame: pd.DataFrame) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for tenant, orders in frame.groupby("tenant")["order_id"]:
        ids = list(orders)
        for start in range(0, len(ids), 1000):
            stmt = select(invoices.c.tenant, invoices.c.order_id).where(
                and_(invoices.c.tenant == tenant, invoices.c.order_id.in_(ids[start : start + 1000]))
            )
            found.update((t, o) for t, o in conn.execute(stmt))
    return found


def issue_invoices(
    engine: Engine,
    priced_new_invoices: pd.DataFrame,
    lines: pd.DataFrame,
    policies: TenantRegistry | pd.DataFrame | None,
    run_id: str,
    as_of: pd.Timestamp,
    lineage: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Number and insert invoices for the orders of `priced_new_invoices` not invoiced yet.

    `priced_new_invoices`: tenant, order_id, cohort_day, invoice_date, billable_at,
    billable_basis, amount_cents, currency, rate_card_version (priced billable orders); `lines`:
    their `price_orders` lines. One transaction: lock the (tenant, month) counters, skip orders
    that already have an invoice, record the rate card versions that price their first invoice and
    refuse (`RateCardChanged`, nothing written) when `policies` changes a recorded one, plan
    numbers, insert invoices and lines and the lines' `lineage` (`lineage.py::line_events` rows
    of these orders) into `line_events`, advance the counters. An order charged on a monthly
    invoice (DOMAIN §8.3) counts as invoiced. Returns the (invoices, lines) rows written.
    """
    empty = (pd.DataFrame(columns=[c.name for c in invoices.columns]),
             pd.DataFrame(columns=[c.name for c in invoice_lines.columns]))  # fmt: skip
    if priced_new_invoices is None or priced_new_invoices.empty:
        return empty
    candidates = priced_new_invoices.drop_duplicates(["tenant", "order_id"])
    months = pd.to_datetime(pd.Series(candidates["invoice_date"], dtype=object)).dt.strftime("%Y%m")
    keys = sorted(set(zip(candidates["tenant"], months)))
    stamp = pd.Timestamp(as_of).tz_convert("UTC")
    with engine.begin() as conn:
        last_seq = _lock_counters(conn, invoice_sequences, keys)
        # An order charged on a monthly invoice (a tenant that has since left monthly billing) has its invoice.
        done = _already_invoiced(conn, candidates) | _already_charged(conn, candidates)
        if done:
            keep = [(t, o) not in done for t, o in zip(candidates["tenant"], candidates["order_id"])]
            candidates = candidates[keep]
        if candidates.empty:
            return empty
        used = candidates[["tenant", "rate_card_version"]].rename(columns={"rate_card_version": "version"})
        record_rate_cards(conn, used, policies, stamp, run_id)
        planned = plan_invoice_numbers(candidates, last_seq, policies)
        planned["issued_at"] = stamp
        planned["issued_run_id"] = run_id
        planned["status"] = ISSUED
        planned["paid_at"] = None
        planned["invoice_kind"] = ORDER_INVOICE
        rows = planned[[c.name for c in invoices.columns]]
        insert_frame(conn, invoices, rows)
        numbers = planned[["tenant", "order_id", "invoice_number"]]
        issued_lines = lines.merge(numbers, how="inner", on=["tenant", "order_id"])[[c.name for c in invoice_lines.columns]]
        insert_frame(conn, invoice_lines, issued_lines)
        if lineage is not None and len(lineage):
            links = lineage.merge(numbers, how="inner", on=["tenant", "order_id"])
            insert_frame(conn, line_events, link_rows(links, INVOICE, links["invoice_number"], stamp, run_id))
        top = planned.groupby(["tenant", "invoice_month"])["invoice_seq"].max().rename("last_seq").reset_index()
        _advance_counters(conn, invoice_sequences, top, stamp)
    return rows.reset_index(drop=True), issued_lines.reset_index(drop=True)


def link_rows(links: pd.DataFrame, kind: str, numbers: pd.Series, stamp: Any, run_id: str) -> pd.DataFrame:
    """`line_events` rows for `lineage.py::line_events` rows of documents of one kind (`stamp`: one
    time, or one per row)."""
    stamps = stamp.to_numpy() if isinstance(stamp, pd.Series) else stamp
    rows = links.assign(document_kind=kind, document_number=numbers.to_numpy(), linked_at=stamps, linked_run_id=run_id)
    return rows[[c.name for c in line_events.columns]]


def issue_monthly_invoices(
    engine: Engine,
    plans: pd.DataFrame,
    plan_lines: pd.DataFrame,
    charges: pd.DataFrame,
    policies: TenantRegistry | pd.DataFrame | None,
    run_id: str,
    as_of: pd.Timestamp,
    lineage: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Number and insert the monthly invoices of `plans` (`domain/monthly.py::plan_monthly_invoices`)
    with their lines and their per-order charges (DOMAIN §8.3), in the invoice number series, and
    the charges' `lineage` (`lineage.py::charge_lineage` rows: each on its monthly invoice line).

    `charges`: the priced orders on each tenant's invoice (tenant, order_id, cohort_day,
    invoice_date, billable_at, billable_basis, amount_cents, currency, rate_card_version). One
    transaction: lock the (tenant, month) counters, skip a tenant whose invoice for the month exists
    (a rerun, or a concurrent run that committed first), refuse when an order is already charged
    or invoiced (nothing written), record the rate card versions, number, insert invoice, lines
    and `order_charges`, advance the counters. Returns the (invoices, lines, charges) written.
    """
    empty = (pd.DataFrame(columns=[c.name for c in invoices.columns]),
             pd.DataFrame(columns=[c.name for c in invoice_lines.columns]),
             pd.DataFrame(columns=[c.name for c in order_charges.columns]))  # fmt: skip
    if plans is None or plans.empty:
        return empty
    months = pd.to_datetime(pd.Series(plans["invoice_date"], dtype=object)).dt.strftime("%Y%m")
    keys = sorted(set(zip(plans["tenant"], months)))
    stamp = pd.Timestamp(as_of).tz_convert("UTC")
    with engine.begin() as conn:
        last_seq = _lock_counters(conn, invoice_sequences, keys)
        done = _already_invoiced(conn, plans)
        candidates = plans[[(t, o) not in done for t, o in zip(plans["tenant"], plans["order_id"])]]
        if candidates.empty:
            return empty
        mine = charges[charges["tenant"].isin(set(candidates["tenant"]))]
        taken = _already_invoiced(conn, mine) | _already_charged(conn, mine)
        if taken:
            tenant, order = sorted(taken)[0]
            raise ValueError(f"{tenant}: order {order} is already invoiced or charged; the monthly invoice is not issued")
        # The versions of its charges and its own (a month without orders: the version in force then).
        used = pd.concat([mine[["tenant", "rate_card_version"]], candidates[["tenant", "rate_card_version"]]])
        record_rate_cards(conn, used.rename(columns={"rate_card_version": "version"}), policies, stamp, run_id)
        planned = plan_invoice_numbers(candidates, last_seq, policies)
        planned = planned.assign(issued_at=stamp, issued_run_id=run_id, status=ISSUED, paid_at=None,
                                 invoice_kind=MONTHLY_INVOICE)  # fmt: skip
        rows = planned[[c.name for c in invoices.columns]]
        insert_frame(conn, invoices, rows)
        numbers = planned[["tenant", "invoice_number", "invoice_month"]]
        lines = plan_lines.merge(numbers[["tenant", "invoice_number"]], on="tenant")[[c.name for c in invoice_lines.columns]]
        insert_frame(conn, invoice_lines, lines)
        charged = charge_rows(mine, numbers, stamp)
        insert_frame(conn, order_charges, charged)
        if lineage is not None and len(lineage):
            links = lineage.merge(charged[["tenant", "order_id", "invoice_number"]], on=["tenant", "order_id"])
            insert_frame(conn, line_events, link_rows(links, CHARGE, links["invoice_number"], stamp, run_id))
        top = planned.groupby(["tenant", "invoice_month"])["invoice_seq"].max().rename("last_seq").reset_index()
        _advance_counters(conn, invoice_sequences, top, stamp)
    return rows.reset_index(drop=True), lines.reset_index(drop=True), charged


def _already_charged(conn: Connection, frame: pd.DataFrame) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for tenant, orders in frame.groupby("tenant")["order_id"]:
        ids = list(orders)
        for start in range(0, len(ids), 1000):
            stmt = select(order_charges.c.tenant, order_charges.c.order_id).where(
                and_(order_charges.c.tenant == tenant, order_charges.c.order_id.in_(ids[start : start + 1000])))
            found.update((t, o) for t, o in conn.execute(stmt))
    return found


def read_charges(conn_or_engine: Any, first: dt.date | None = None, last: dt.date | None = None,
                 numbers: list[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """Per-order charges of monthly invoices: of cohort days [first, last] (index
    ix_order_charges_day) and/or of the given invoice numbers."""
    where = []
    if first is not None:
        where.append(order_charges.c.cohort_day >= first)
    if last is not None:
        where.append(order_charges.c.cohort_day <= last)
    if numbers is not None:
        numbers = sorted(set(numbers))
        if not numbers:  # nothing to read: no query
            return pd.DataFrame(columns=[c.name for c in order_charges.columns])
        parts = [read_table(conn_or_engine, order_charges, [*where, order_charges.c.invoice_number.in_(numbers[i : i + 1000])])
                 for i in range(0, len(numbers), 1000)]  # fmt: skip
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    else:
        frame = read_table(conn_or_engine, order_charges, where)
    return frame.sort_values(["tenant", "order_id"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Rate card versions


def _as_registry(policies: TenantRegistry | pd.DataFrame | None) -> TenantRegistry:
    """The registry that priced: given, else the shipped defaults (what pricing without one uses)."""
    return policies if isinstance(policies, TenantRegistry) else TenantRegistry(())


def record_rate_cards(conn: Connection, used: pd.DataFrame, policies: TenantRegistry | pd.DataFrame | None,
                      stamp: pd.Timestamp, run_id: str | None) -> None:
    """Record the rate card versions of `used` (tenant, version) that price their first invoice,
    fill in those revision 0005 left without a definition, and refuse with `RateCardChanged`
    (one line naming tenant and version) when `policies` defines a recorded one differently."""
    registry = _as_registry(policies)
    keys = sorted(set(zip(used["tenant"], used["version"].astype(int))))
    if not keys:
        return
    records = version_records(registry, pd.DataFrame(keys, columns=["tenant", "version"]))
    insert_new(conn, rate_card_versions, records.assign(first_used_at=stamp, first_used_run_id=run_id),
               ["tenant", "version"])  # fmt: skip
    adopt_rate_cards(conn, registry, keys)
    stored = read_table(conn, rate_card_versions,
                        [tuple_(rate_card_versions.c.tenant, rate_card_versions.c.version).in_(keys)])  # fmt: skip
    problems = changed_versions(stored, registry)
    if problems:
        raise RateCardChanged(problems[0])


def adopt_rate_cards(conn: Connection, registry: TenantRegistry, keys: list[tuple[str, int]] | None = None) -> int:
    """Fill the definition of recorded versions that have none (found by revision 0005 on a ledger
    made before rate cards) from `registry`; returns how many. Only empty rows are ever written."""
    where = [rate_card_versions.c.fingerprint.is_(None)]
    if keys is not None:
        where.append(tuple_(rate_card_versions.c.tenant, rate_card_versions.c.version).in_(keys))
    empty = read_table(conn, rate_card_versions, where, columns=["tenant", "version"])
    known = [(t, v) for t, v in zip(empty["tenant"], empty["version"].astype(int))
             if any(card.version == v for card in (registry.get(t) or registry.default_policy()).rate_card_versions())]
    if not known:
        return 0
    records = version_records(registry, pd.DataFrame(known, columns=["tenant", "version"]))
    conn.execute(
        update(rate_card_versions)
        .where(and_(rate_card_versions.c.tenant == bindparam("t"), rate_card_versions.c.version == bindparam("v"),
                    rate_card_versions.c.fingerprint.is_(None)))
        .values(effective_from=bindparam("start"), definition=bindparam("d"), fingerprint=bindparam("f")),
        [{"t": r.tenant, "v": int(r.version), "start": r.effective_from, "d": r.definition, "f": r.fingerprint}
         for r in records.itertuples(index=False)],
    )  # fmt: skip
    return len(records)


def read_rate_cards(conn_or_engine: Any, tenant: str | None = None) -> pd.DataFrame:
    """The recorded rate card versions (of one tenant), in (tenant, version) order."""
    where = [rate_card_versions.c.tenant == tenant] if tenant is not None else []
    return read_table(conn_or_engine, rate_card_versions, where).sort_values(["tenant", "version"]).reset_index(drop=True)


def months_priced(conn_or_engine: Any, tenant: str) -> pd.DataFrame:
    """Per rate card version and invoice month of a tenant: invoices and their amount (one SQL
    aggregate over the tenant's invoices)."""
    stmt = (
        select(invoices.c.rate_card_version, invoices.c.invoice_month, func.count().label("invoices"),
               func.sum(invoices.c.amount_cents).label("amount_cents"))
        .where(invoices.c.tenant == tenant)
        .group_by(invoices.c.rate_card_version, invoices.c.invoice_month)
        .order_by(invoices.c.rate_card_version, invoices.c.invoice_month)
    )  # fmt: skip
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            rows = conn.execute(stmt).all()
    else:
        rows = conn_or_engine.execute(stmt).all()
    frame = pd.DataFrame(rows, columns=["rate_card_version", "invoice_month", "invoices", "amount_cents"])
    return frame.astype({"rate_card_version": "int64", "invoices": "int64", "amount_cents": "int64"})
# Notes

NOTE_COLUMNS = [c.name for c in notes.columns]


def _issued_sources(conn: Connection, source_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(source_ids), 1000):
        stmt = select(notes.c.source_id).where(notes.c.source_id.in_(source_ids[start : start + 1000]))
        found.update(conn.execute(stmt).scalars())
    return found


def _issue_notes(conn: Connection, candidates: pd.DataFrame, run_id: str,
                 extra_keys: list[tuple[str, str, str]] = ()) -> pd.DataFrame:  # fmt: skip
    """Number and insert the candidate notes (`domain/notes.py::CANDIDATE_COLUMNS`) whose source has
    no note yet, in the caller's transaction: lock the (tenant, kind, month) counters (plus
    `extra_keys`), skip issued sources, plan, insert notes and lines, advance. A note's
    `issued_at` is its source time (the adjustment's creation or review, the statement's as_of).
    Returns the notes."""
    if candidates is None or candidates.empty:
        return pd.DataFrame(columns=NOTE_COLUMNS)
    months = pd.to_datetime(pd.Series(candidates["note_date"], dtype=object)).dt.strftime("%Y%m")
    keys = sorted(set(zip(candidates["tenant"], candidates["kind"], months)) | set(extra_keys))
    last_seq = _lock_counters(conn, note_sequences, keys)
    done = _issued_sources(conn, sorted(set(candidates["source_id"])))
    fresh = candidates[~candidates["source_id"].isin(done)]
    if fresh.empty:
        return pd.DataFrame(columns=NOTE_COLUMNS)
    planned = plan_note_numbers(fresh, last_seq)
    planned["issued_at"] = pd.to_datetime(planned["source_at"], utc=True)
    planned["issued_run_id"] = run_id
    rows = planned[NOTE_COLUMNS]
    insert_frame(conn, notes, rows)
    lines = pd.DataFrame({
        "note_number": planned["note_number"], "tenant": planned["tenant"], "line_no": 1, "kind": planned["reason"],
        "description": planned["description"], "quantity": 1, "unit_cents": planned["amount_cents"],
        "amount_cents": planned["amount_cents"],
    })  # fmt: skip
    insert_frame(conn, note_lines, lines)
    link_notes(conn, rows, run_id)
    top = planned.groupby(["tenant", "kind", "note_month"])["note_seq"].max().rename("last_seq").reset_index()
    _advance_counters(conn, note_sequences, top, planned["issued_at"].max())
    return rows.reset_index(drop=True)


def link_notes(conn: Connection, issued: pd.DataFrame, run_id: str) -> int:
    """Give the recalculation notes among `issued` (notes rows) their own `line_events` rows: their
    adjustment's links under the note's number (`lineage.py::note_lineage`), stamped with the
    note's `issued_at`; once per link. Month-close notes link nothing. Returns the links written."""
    sources = sorted(set(issued["source_id"]))
    parts = [read_table(conn, line_events, [line_events.c.document_kind == ADJUSTMENT,
                                            line_events.c.document_number.in_(sources[i : i + 1000])])
             for i in range(0, len(sources), 1000)]  # fmt: skip
    found = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if found.empty:
        return 0
    links = note_lineage(found.rename(columns={"document_number": "adjustment_id"}), issued)
    links = links.merge(issued[["note_number", "issued_at"]], on="note_number")
    return insert_new(conn, line_events, link_rows(links, NOTE, links["note_number"], links["issued_at"], run_id), LINK_KEY)


def _currencies(conn: Connection, numbers: list[str]) -> pd.DataFrame:
    parts = [read_table(conn, invoices, [invoices.c.invoice_number.in_(numbers[i : i + 1000])],
                        columns=["invoice_number", "currency"]) for i in range(0, len(numbers), 1000)]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["invoice_number", "currency"])


def _issue_adjustment_notes(conn: Connection, adjustments: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """The notes of the applied ones among `adjustments` (one per adjustment, never twice)."""
    if adjustments is None or adjustments.empty:
        return pd.DataFrame(columns=NOTE_COLUMNS)
    candidates = adjustment_notes(adjustments, _currencies(conn, sorted(set(adjustments["invoice_number"]))))
    missing = candidates[candidates["currency"].isna()]
    if len(missing):
        raise LookupError(f"{missing['source_id'].iloc[0]}: invoice {missing['invoice_number'].iloc[0]} "
                          "is not in the ledger; no note can reference it")  # fmt: skip
    return _issue_notes(conn, candidates, run_id)


def issue_adjustment_notes(engine: Engine, adjustments: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Issue the notes of the applied ones among `adjustments` that have none (one transaction)."""
    with engine.begin() as conn:
        return _issue_adjustment_notes(conn, adjustments, run_id)


def issue_month_close_notes(engine: Engine, statements: pd.DataFrame, run_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Issue the volume-discount credit notes and minimum top-up debit notes of closed months.

    `statements`: tenant, month, month_start, currency, discount_cents, minimum_top_up_cents.
    One transaction: lock both note counters of each tenant-month first (so two statement runs
    of the same month take turns), read the month-close notes already issued, issue what
    `domain/notes.py::month_close_notes` says is missing (nothing on a rerun; a correcting note
    when a figure changed). Returns the notes issued now.
    """
    if statements is None or statements.empty:
        return pd.DataFrame(columns=NOTE_COLUMNS)
    stamp = pd.Timestamp(as_of).tz_convert("UTC")
    months = statements["month"].astype(str)
    keys = sorted({(t, k, m) for t, m in zip(statements["tenant"], months) for k in NOTE_KINDS})
    with engine.begin() as conn:
        _lock_counters(conn, note_sequences, keys)
        issued = read_table(conn, notes, [notes.c.reason.in_(MONTH_CLOSE_REASONS),
                                          tuple_(notes.c.tenant, notes.c.statement_month).in_(sorted(set(zip(statements["tenant"], months))))])  # fmt: skip
        candidates = month_close_notes(statements, issued, stamp)
        return _issue_notes(conn, candidates, run_id, keys)


def read_notes(conn_or_engine: Any, first: dt.date | None = None, last: dt.date | None = None,
               tenant: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Notes dated in [first, last] (index ix_notes_date), optionally of one tenant."""
    where = []
    if first is not None:
        where.append(notes.c.note_date >= first)
    if last is not None:
        where.append(notes.c.note_date <= last)
    if tenant is not None:
        where.append(notes.c.tenant == tenant)
    frame = read_table(conn_or_engine, notes, where)
    return frame.sort_values(["tenant", "kind", "note_month", "note_seq"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Adjustments


def record_adjustments(engine: Engine, new: pd.DataFrame, cohort_days: pd.DataFrame | None, run_id: str,
                       lineage: pd.DataFrame | None = None) -> int:
    """Insert new RECALCULATION adjustments, mark the pending ones they supersede, and issue the
    note of every applied one (same transaction).

    `cohort_days` maps (tenant, invoice_number) to the invoice's cohort day. Inserted once per
    `adjustment_id`; only PENDING_REVIEW rows are ever marked SUPERSEDED (never applied ones).
    `lineage` (with `adjustment_id`) goes into `line_events` in the same transaction, once per link.
    """
    if new is None or new.empty:
        return 0
    # A charge's adjustment (a monthly invoice holds many orders) comes with its order's cohort day.
    rows = new.copy() if "cohort_day" in new.columns else new.merge(cohort_days, how="left", on=["tenant", "invoice_number"])
    rows["created_run_id"] = run_id
    with engine.begin() as conn:
        written = insert_new(conn, invoice_adjustments, rows, ["adjustment_id"])
        if lineage is not None and len(lineage):
            links = lineage.merge(rows[["adjustment_id", "created_at"]], on="adjustment_id")
            links = link_rows(links, ADJUSTMENT, links["adjustment_id"], links["created_at"], run_id)
            insert_new(conn, line_events, links, LINK_KEY)
        stale = [(old, new_id) for new_id, ids in zip(rows["adjustment_id"], rows["supersedes"]) for old in ids.split(",") if old]
        if stale:
            conn.execute(
                update(invoice_adjustments)
                .where(and_(invoice_adjustments.c.adjustment_id == bindparam("old"),
                            invoice_adjustments.c.status == PENDING_REVIEW))
                .values(status=SUPERSEDED, superseded_by=bindparam("new_id")),
                [{"old": o, "new_id": n} for o, n in stale],
            )  # fmt: skip
        _issue_adjustment_notes(conn, rows, run_id)
    return written


def review_adjustment(engine: Engine, adjustment_id: str, approve: bool, reviewer: str, at: dt.datetime) -> bool:
    """Approve (applied from then on, and issued as a note dated the review day) or reject a
    PENDING_REVIEW adjustment; False if not pending. Raises LookupError (nothing changed) when an
    approved adjustment's invoice is not in the ledger."""
    with engine.begin() as conn:
        result = conn.execute(
            update(invoice_adjustments)
            .where(and_(invoice_adjustments.c.adjustment_id == adjustment_id,
                        invoice_adjustments.c.status == PENDING_REVIEW))
            .values(status=APPROVED if approve else REJECTED, applied=bool(approve), reviewed_at=at, reviewed_by=reviewer)
        )  # fmt: skip
        if result.rowcount and approve:
            row = read_table(conn, invoice_adjustments, [invoice_adjustments.c.adjustment_id == adjustment_id])
            _issue_adjustment_notes(conn, row, f"review:{reviewer}"[:64])
    return bool(result.rowcount)


def notes_of_invoices(conn_or_engine: Any, numbers: list[str]) -> pd.DataFrame:
    """Notes referencing the given invoices (index ix_notes_invoice)."""
    numbers = sorted(set(numbers))
    parts = [read_table(conn_or_engine, notes, [notes.c.invoice_number.in_(numbers[i : i + 1000])])
             for i in range(0, len(numbers), 1000)] or [read_table(conn_or_engine, notes, [notes.c.note_number.is_(None)])]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def notes_for(conn_or_engine: Any, source_id: str) -> pd.DataFrame:
    """The note issued for a source (an adjustment id): one row, or none."""
    return read_table(conn_or_engine, notes, [notes.c.source_id == source_id])


def note_of(conn_or_engine: Any, source_id: str) -> str | None:
    """The number of the note issued for a source (an adjustment id), None when there is none."""
    frame = notes_for(conn_or_engine, source_id)
    return str(frame["note_number"].iloc[0]) if len(frame) else None


# ---------------------------------------------------------------------------------------------
# Reads


def read_invoices(conn_or_engine: Any, tenant: str | None = None, month: str | None = None,
                  first: dt.date | None = None, last: dt.date | None = None) -> pd.DataFrame:
    """Invoices, optionally of one tenant, one invoice month (YYYYMM) and a cohort-day range."""
    where = []
    if tenant is not None:
        where.append(invoices.c.tenant == tenant)
    if month is not None:
        where.append(invoices.c.invoice_month == month)
    if first is not None:
        where.append(invoices.c.cohort_day >= first)
    if last is not None:
        where.append(invoices.c.cohort_day <= last)
    frame = read_table(conn_or_engine, invoices, where)
    return frame.sort_values(["tenant", "invoice_month", "invoice_seq"]).reset_index(drop=True)


def invoices_by_number(conn_or_engine: Any, numbers: list[str]) -> pd.DataFrame:
    """The invoices with the given numbers (unique index on invoice_number)."""
    numbers = sorted(set(numbers))
    parts = [read_table(conn_or_engine, invoices, [invoices.c.invoice_number.in_(numbers[i : i + 1000])])
             for i in range(0, len(numbers), 1000)] or [read_table(conn_or_engine, invoices, [invoices.c.invoice_number.is_(None)])]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def invoices_of_orders(conn_or_engine: Any, orders: pd.DataFrame) -> pd.DataFrame:
    """The invoices of the given (tenant, order_id) pairs (unique index on tenant, order_id)."""
    keys = sorted(set(zip(orders["tenant"], orders["order_id"])))
    parts = [read_table(conn_or_engine, invoices, [tuple_(invoices.c.tenant, invoices.c.order_id).in_(keys[i : i + 500])])
             for i in range(0, len(keys), 500)] or [read_table(conn_or_engine, invoices, [invoices.c.invoice_number.is_(None)])]  # fmt: skip
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def cohort_day_span(engine: Engine) -> tuple[dt.date, dt.date] | None:
    """First and last cohort day of the invoice ledger, charges included (a monthly invoice is
    dated its month's last day, its orders earlier); None when it is empty."""
    days = []
    with engine.connect() as conn:
        for table in (invoices, order_charges):
            days += [d for d in conn.execute(select(func.min(table.c.cohort_day), func.max(table.c.cohort_day))).one()
                     if d is not None]  # fmt: skip
    if not days:
        return None
    return min(pd.Timestamp(d).date() for d in days), max(pd.Timestamp(d).date() for d in days)


def tenant_months(engine: Engine) -> list[tuple[str, str]]:
    """Every (tenant, invoice_month) of the ledger, sorted, from the unique index (no invoice rows)."""
    stmt = select(invoices.c.tenant, invoices.c.invoice_month).group_by(invoices.c.tenant, invoices.c.invoice_month)
    with engine.connect() as conn:
        return sorted((tenant, str(month)) for tenant, month in conn.execute(stmt))


def read_adjustments_for(conn_or_engine: Any, inv: pd.DataFrame) -> pd.DataFrame:
    """Every adjustment of the given invoices (all of them when `inv` covers the whole ledger)."""
    if inv is None or inv.empty:
        return read_table(conn_or_engine, invoice_adjustments, [invoice_adjustments.c.adjustment_id.is_(None)])
    numbers = sorted(set(inv["invoice_number"]))
    parts = [
        read_table(conn_or_engine, invoice_adjustments, [invoice_adjustments.c.invoice_number.in_(numbers[i : i + 1000])])
        for i in range(0, len(numbers), 1000)
    ]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def line_totals(conn_or_engine: Any, inv: pd.DataFrame) -> pd.DataFrame:
    """Sum of the stored lines of the given invoices: invoice_number, lines_cents, lines."""
    lines = read_table(
        conn_or_engine, invoice_lines,
        [invoice_lines.c.invoice_number.in_(sorted(set(inv["invoice_number"])))] if inv is not None and len(inv) else
        [invoice_lines.c.invoice_number.is_(None)],
        columns=["invoice_number", "amount_cents"],
    )  # fmt: skip
    out = lines.groupby("invoice_number")["amount_cents"].agg(["sum", "size"]).reset_index()
    return out.rename(columns={"sum": "lines_cents", "size": "lines"})


def inconsistent_invoices(conn_or_engine: Any, inv: pd.DataFrame) -> pd.DataFrame:
    """Invoices whose amount differs from the sum of their lines (a damaged ledger row): they are
    never "corrected" by adjustments, the amount check reports them."""
    cols = ["tenant", "order_id", "invoice_number", "amount_cents", "lines_cents", "problem"]
    if inv is None or inv.empty:
        return pd.DataFrame(columns=cols)
    both = inv.merge(line_totals(conn_or_engine, inv), how="left", on="invoice_number")
    both["lines_cents"] = both["lines_cents"].fillna(0).astype("int64")  # a zero-amount invoice has no lines
    bad = both[both["lines_cents"] != both["amount_cents"]]
    return bad.assign(problem="lines_mismatch")[cols].reset_index(drop=True)
