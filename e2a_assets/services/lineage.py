"""Row-level lineage over the warehouse (issue 11 item 2, docs/billing.md "Lineage"): what the
lineage check verifies, what `e2a invoices explain` prints, and the one-time backfill of invoices
issued before revision 0007. The rules are in `domain/lineage.py`; this module only reads and
writes rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, func, select

from e2a_assets.domain.billing import EVENT_KEY, PRICE_COLUMNS, counted_events, price_orders
from e2a_assets.domain.lineage import (
    ADJUSTMENT,
    COUNTED,
    COUNTED_KINDS,
    INVOICE,
    LINEAGE_COLUMNS,
    line_events,
    new_links,
    validate_event_links,
    validate_line_quantities,
)
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.statements import REJECTED
from e2a_assets.services.billing import known_events, lines_lineage
from e2a_assets.services.ledger_scope import lines_of
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.frames import insert_frame, read_days, read_table

CHUNK = 1000
NO_LINEAGE = "no_lineage"


def read_links(conn_or_engine: Any, kind: str, numbers: list[str]) -> pd.DataFrame:
    """The `line_events` rows of the given documents of one kind (unique index on kind, number)."""
    c = schema.line_events.c
    numbers = sorted(set(numbers))
    parts = [read_table(conn_or_engine, schema.line_events, [c.document_kind == kind, c.document_number.in_(numbers[i : i + CHUNK])])
             for i in range(0, len(numbers), CHUNK)]  # fmt: skip
    if not parts:
        return read_table(conn_or_engine, schema.line_events, [c.document_number.is_(None)])
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def standing(adjustments: pd.DataFrame) -> pd.DataFrame:
    """The adjustments whose events count as billed by them: not superseded (a later adjustment
    asks for its delta again) and not rejected (the next recalculation asks for it again)."""
    return adjustments[~adjustments["status"].isin([ledger.SUPERSEDED, REJECTED])]


def _adjustment_links(engine: Engine, book: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Lineage of the book's standing adjustments known at `as_of`."""
    adjustments = ledger.read_adjustments_for(engine, book)
    return read_links(engine, ADJUSTMENT, list(standing(adjustments[adjustments["created_at"] <= as_of])["adjustment_id"]))


def adjustment_lineage(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, stored: pd.DataFrame,
                       issued: pd.DataFrame, existing: pd.DataFrame, new: pd.DataFrame,
                       registry: TenantRegistry) -> pd.DataFrame:
    """The lineage of `new` recalculation adjustments (of invoices `issued`, cohort days [first,
    last]): the links of the order's pricing again (`stored` billable orders, the invoice's rate
    card version, the events known at `as_of`) that neither the invoice nor a standing adjustment
    has - the late events the delta is for. Adjustments `new` supersedes do not count. Adds
    `adjustment_id`; `line_no` is the line of the recomputed pricing the events add to."""
    if new is None or new.empty:
        return pd.DataFrame(columns=[*LINEAGE_COLUMNS, "adjustment_id"])
    invoiced = stored.drop(columns=[*PRICE_COLUMNS, "as_of"], errors="ignore").merge(
        issued.loc[issued["invoice_number"].isin(set(new["invoice_number"])), ["tenant", "order_id", "rate_card_version"]],
        how="inner", on=["tenant", "order_id"])  # fmt: skip
    _, lines = price_orders(invoiced, registry)
    recomputed = lines_lineage(engine, first, last, as_of, invoiced, lines)
    replaced = {old for ids in new["supersedes"] for old in str(ids).split(",") if old}
    kept = standing(existing[~existing["adjustment_id"].isin(replaced)]) if len(existing) else existing
    linked = pd.concat([read_links(engine, INVOICE, list(new["invoice_number"])),
                        read_links(engine, ADJUSTMENT, list(kept["adjustment_id"]) if len(kept) else [])])  # fmt: skip
    added = new_links(recomputed, linked)
    return added.merge(new[["tenant", "order_id", "adjustment_id"]], on=["tenant", "order_id"])


def lineage_problems(engine: Engine, book: pd.DataFrame, first: dt.date, last: dt.date,
                     as_of: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """Offending lines and events of the invoices `book` (of cohort days [first, last], issued by
    `as_of`): invoices without lineage, lines whose quantity is not their counted events or that
    lack a link, events that should be on the invoice (counted, occurred by its issue) linked to no
    line, events linked to more than one line (invoice lines and standing adjustments), links to
    events that do not exist. Returns (offenders, links checked)."""
    cols = ["tenant", "order_id", "invoice_number", "line_no", "kind", "quantity", "linked_events", "source", "event_id",
            "event_type", "problem"]  # fmt: skip
    numbers = list(book["invoice_number"])
    links = read_links(engine, INVOICE, numbers)
    # An invoice's links belong to it whenever they were written (a backfill writes them later).
    links = links.rename(columns={"document_number": "invoice_number"})
    bare = book[~book["invoice_number"].isin(set(links["invoice_number"]))].assign(problem=NO_LINEAGE)
    judged = book[book["invoice_number"].isin(set(links["invoice_number"]))]
    lines = lines_of(engine, list(judged["invoice_number"]), ["tenant", "order_id", "invoice_number", "line_no", "kind",
                                                             "quantity"])  # fmt: skip
    found = [bare.reindex(columns=cols), validate_line_quantities(lines, links).reindex(columns=cols)]

    events = known_events(engine, first, last, as_of)
    known = counted_events(events)
    issued = judged[["tenant", "order_id", "invoice_number", "issued_at"]]
    at_issue = events.merge(issued, on=["tenant", "order_id"])
    at_issue = at_issue[at_issue["occurred_at"] <= at_issue["issued_at"]]
    expected = counted_events(at_issue).merge(issued[["tenant", "order_id", "invoice_number"]], on=["tenant", "order_id"])
    counted = pd.concat([links.rename(columns={"invoice_number": "document_number"}),
                         _adjustment_links(engine, judged, as_of)], ignore_index=True)  # fmt: skip
    counted = counted[counted["role"].eq(COUNTED)]
    found.append(validate_event_links(expected, counted, known).reindex(columns=cols))
    parts = [p for p in found if len(p)]
    offenders = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return offenders, len(links)


# ---------------------------------------------------------------------------------------------
# Backfill of invoices issued before revision 0007


def invoices_without_lineage(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Invoices of cohort days [first, last] that have no `line_events` row."""
    book = ledger.read_invoices(engine, first=first, last=last)
    if book.empty:
        return book
    linked = read_links(engine, INVOICE, list(book["invoice_number"]))
    return book[~book["invoice_number"].isin(set(linked["document_number"]))].reset_index(drop=True)


def derive_invoice_lineage(events: pd.DataFrame, book: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Lineage of issued invoices from the events (docs/rules/lineage.md, "Backfill"): the events
    that had occurred by each invoice's `issued_at`, linked by the domain rules to the stored lines;
    a per-event line keeps its first `quantity` events in time order (an event delivered after the
    issue that occurred before it is then left for the adjustments). Adds `invoice_number`."""
    at_issue = events.merge(book[["tenant", "order_id", "issued_at"]], on=["tenant", "order_id"])
    at_issue = at_issue[at_issue["occurred_at"] <= at_issue["issued_at"]].drop(columns="issued_at")
    links = line_events(at_issue, book[["tenant", "order_id", "billable_basis"]], lines)
    if links.empty:
        return links.assign(invoice_number=pd.Series(dtype=object))
    links = links.merge(book[["tenant", "order_id", "invoice_number"]], on=["tenant", "order_id"])
    timing = at_issue.drop_duplicates(EVENT_KEY)[[*EVENT_KEY, "occurred_at", "received_at"]]
    links = links.merge(timing, how="left", on=EVENT_KEY).sort_values(
        ["invoice_number", "line_no", "occurred_at", "received_at", "event_id"], kind="mergesort")
    rank = links.groupby(["invoice_number", "line_no", "role"]).cumcount()
    quantity = links[["invoice_number", "line_no"]].merge(
        lines[["invoice_number", "line_no", "quantity"]], how="left", on=["invoice_number", "line_no"])["quantity"]
    per_event = links["kind"].isin(list(COUNTED_KINDS)).to_numpy() & links["role"].eq(COUNTED).to_numpy()
    keep = ~per_event | (rank.to_numpy() < quantity.fillna(0).astype(np.int64).to_numpy())
    return links[keep][[*LINEAGE_COLUMNS, "invoice_number"]].reset_index(drop=True)


def derive_adjustment_lineage(events: pd.DataFrame, billable: pd.DataFrame, book: pd.DataFrame,
                              adjustments: pd.DataFrame, links: pd.DataFrame,
                              registry: TenantRegistry) -> pd.DataFrame:
    """Lineage of recalculation adjustments recorded without one (before revision 0007), as the
    asset writes it (`adjustment_lineage`): per adjustment, in `adjustment_seq` order, the links of
    the order priced again (stored `billable` row, the invoice's rate card version) over the events
    that had occurred by its `created_at`, less those of the invoice and of the earlier standing
    adjustments. `links`: the existing `line_events` rows of `book`'s invoices and adjustments.
    Adds `adjustment_id`."""
    cols = [*LINEAGE_COLUMNS, "adjustment_id"]
    if adjustments.empty:
        return pd.DataFrame(columns=cols)
    orders = adjustments[["tenant", "order_id"]].drop_duplicates()
    invoiced = billable.drop(columns=[*PRICE_COLUMNS, "as_of"], errors="ignore").merge(orders, on=["tenant", "order_id"])
    invoiced = invoiced.merge(book[["tenant", "order_id", "rate_card_version"]], on=["tenant", "order_id"])
    _, lines = price_orders(invoiced, registry)
    seen = links.assign(_seq=0)
    seqs = adjustments.set_index("adjustment_id")["adjustment_seq"]
    seen["_seq"] = seen["document_number"].map(seqs).fillna(0).astype(np.int64)
    added = []
    for seq in sorted(set(adjustments["adjustment_seq"].astype(int))):  # a handful of rounds, never per order
        now = adjustments[adjustments["adjustment_seq"].astype(int) == seq]
        at = events.merge(now[["tenant", "order_id", "created_at"]], on=["tenant", "order_id"])
        at = at[at["occurred_at"] <= at["created_at"]].drop(columns="created_at")
        recomputed = line_events(at, invoiced, lines.merge(now[["tenant", "order_id"]], on=["tenant", "order_id"]))
        kept = standing(adjustments[adjustments["adjustment_seq"].astype(int) < seq])
        earlier = seen[(seen["document_kind"] == INVOICE) | seen["document_number"].isin(set(kept["adjustment_id"]))]
        fresh = new_links(recomputed, earlier).merge(now[["tenant", "order_id", "adjustment_id"]], on=["tenant", "order_id"])
        added.append(fresh)
        seen = pd.concat([seen, fresh.assign(document_kind=ADJUSTMENT, document_number=fresh["adjustment_id"], _seq=seq)],
                         ignore_index=True)  # fmt: skip
    out = pd.concat(added, ignore_index=True)
    return out[cols] if len(out) else pd.DataFrame(columns=cols)


def backfill_lineage(engine: Engine, first: dt.date, last: dt.date, registry: TenantRegistry, run_id: str,
                     stamp: pd.Timestamp) -> tuple[int, int]:
    """Write the lineage of the invoices of cohort days [first, last] that have none, then of their
    adjustments that have none; returns (documents, links) written. Each document's rows go in
    at once, never next to existing rows, so a second backfill writes nothing."""
    book = ledger.read_invoices(engine, first=first, last=last)
    if book.empty:
        return 0, 0
    events = known_events(engine, first, last, stamp)
    bare = invoices_without_lineage(engine, first, last)
    lines = lines_of(engine, list(bare["invoice_number"]), [c.name for c in schema.invoice_lines.columns])
    invoice_links = derive_invoice_lineage(events, bare, lines)
    adjustments = ledger.read_adjustments_for(engine, book)
    billable = read_days(engine, schema.billable_orders, "cohort_day", first, last)
    with engine.begin() as conn:
        # Another backfill may have written some meanwhile: only documents still without rows.
        again = read_links(conn, INVOICE, list(bare["invoice_number"]))
        invoice_links = invoice_links[~invoice_links["invoice_number"].isin(set(again["document_number"]))]
        insert_frame(conn, schema.line_events,
                     ledger.link_rows(invoice_links, INVOICE, invoice_links["invoice_number"], stamp, run_id))  # fmt: skip
        existing = pd.concat([read_links(conn, INVOICE, list(book["invoice_number"])),
                              read_links(conn, ADJUSTMENT, list(adjustments["adjustment_id"]))], ignore_index=True)  # fmt: skip
        todo = adjustments[~adjustments["adjustment_id"].isin(set(existing["document_number"]))]
        adjustment_links = derive_adjustment_lineage(events, billable, book, todo, existing, registry)
        insert_frame(conn, schema.line_events, ledger.link_rows(
            adjustment_links, ADJUSTMENT, adjustment_links["adjustment_id"], stamp, run_id))  # fmt: skip
    documents = invoice_links["invoice_number"].nunique() + adjustment_links["adjustment_id"].nunique()
    return int(documents), len(invoice_links) + len(adjustment_links)


# ---------------------------------------------------------------------------------------------
# `e2a invoices explain`


def explain_invoice(engine: Engine, number: str) -> dict[str, pd.DataFrame] | None:
    """Everything `e2a invoices explain` prints for one invoice number, None when unknown:
    invoice, lines, their links with each event's delivery (received_at, source, type, id),
    adjustments and their links."""
    inv = read_table(engine, schema.invoices, [schema.invoices.c.invoice_number == number])
    if inv.empty:
        return None
    lines = read_table(engine, schema.invoice_lines, [schema.invoice_lines.c.invoice_number == number])
    adjustments = ledger.read_adjustments_for(engine, inv).sort_values("adjustment_id")
    links = pd.concat([read_links(engine, INVOICE, [number]),
                       read_links(engine, ADJUSTMENT, list(adjustments["adjustment_id"]))], ignore_index=True)  # fmt: skip
    return {"invoice": inv, "lines": lines.sort_values("line_no"), "adjustments": adjustments,
            "notes": ledger.notes_of_invoices(engine, [number]), "links": _with_deliveries(engine, links)}  # fmt: skip


def explain_note(engine: Engine, number: str) -> dict[str, pd.DataFrame] | None:
    """What `e2a invoices explain` prints for a credit or debit note number, None when unknown:
    the note, its line, and - for a recalculation note - the links of the adjustment it was issued
    for (the late events it bills), with each event's delivery. Month-close notes (volume discount,
    minimum top-up) come from the month's totals, not from events."""
    note = read_table(engine, schema.notes, [schema.notes.c.note_number == number])
    if note.empty:
        return None
    lines = read_table(engine, schema.note_lines, [schema.note_lines.c.note_number == number])
    source = str(note["source_id"].iloc[0])
    return {"note": note, "lines": lines.sort_values("line_no"),
            "links": _with_deliveries(engine, read_links(engine, ADJUSTMENT, [source]))}  # fmt: skip


def _with_deliveries(engine: Engine, links: pd.DataFrame) -> pd.DataFrame:
    """`links` with each event's `received_at` (first accepted delivery, from the event log) and
    `occurred_at`."""
    log = schema.event_log.c
    if links.empty:
        return links.assign(received_at=pd.Series(dtype=object), occurred_at=pd.Series(dtype=object))
    tenant = links["tenant"].iloc[0]
    stmt = (select(log.source, log.event_id, func.min(log.received_at).label("received_at"),
                   func.min(log.occurred_at).label("occurred_at"))
            .where(and_(log.tenant == tenant, log.event_id.in_(sorted(set(links["event_id"])))))
            .group_by(log.source, log.event_id))  # fmt: skip
    with engine.connect() as conn:
        seen = pd.DataFrame(conn.execute(stmt).all(), columns=["source", "event_id", "received_at", "occurred_at"])
    return links.merge(seen, how="left", on=["source", "event_id"])
