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
    CHARGE,
    COUNTED,
    COUNTED_KINDS,
    INVOICE,
    LINEAGE_COLUMNS,
    NOT_EVENT_DERIVED_REASONS,
    NOTE,
    charge_lineage,
    line_events,
    new_links,
    validate_event_links,
    validate_line_quantities,
    validate_note_links,
)
from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.statements import REJECTED
from e2a_assets.services.billing import known_events, lines_lineage
from e2a_assets.services.ledger_scope import lines_of
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.schema import MONTHLY_INVOICE
from e2a_assets.warehouse.frames import insert_new, read_days, read_table

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
    """Lineage of the book's standing adjustments known at `as_of`, each counted once: an
    adjustment issued as a note by the note's own links (the document the client holds), one
    without a note yet (pending review) by its own."""
    adjustments = ledger.read_adjustments_for(engine, book)
    kept = standing(adjustments[adjustments["created_at"] <= as_of])
    notes = ledger.notes_of_invoices(engine, list(book["invoice_number"]))
    notes = notes[notes["source_id"].isin(set(kept["adjustment_id"])) & (notes["issued_at"] <= as_of)]
    bare = kept[~kept["adjustment_id"].isin(set(notes["source_id"]))]
    return pd.concat([read_links(engine, NOTE, list(notes["note_number"])),
                      read_links(engine, ADJUSTMENT, list(bare["adjustment_id"]))], ignore_index=True)  # fmt: skip


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
    # A charge's links are under its monthly invoice's number (`charge`), an invoice's under its own.
    linked = pd.concat([read_links(engine, INVOICE, list(new["invoice_number"])),
                        read_links(engine, CHARGE, list(new["invoice_number"])),
                        read_links(engine, ADJUSTMENT, list(kept["adjustment_id"]) if len(kept) else [])])  # fmt: skip
    added = new_links(recomputed, linked)
    return added.merge(new[["tenant", "order_id", "adjustment_id"]], on=["tenant", "order_id"])


def charge_adjustment_lineage(engine: Engine, first: dt.date, last: dt.date, as_of: pd.Timestamp, stored: pd.DataFrame,
                              new: pd.DataFrame, registry: TenantRegistry) -> pd.DataFrame:  # fmt: skip
    """`adjustment_lineage` of `new` adjustments of charges on monthly invoices (cohort days
    [first, last]): the late events each is for, priced with the charge's rate card version."""
    if new is None or new.empty:
        return pd.DataFrame(columns=[*LINEAGE_COLUMNS, "adjustment_id"])
    charges = ledger.read_charges(engine, first, last)
    existing = ledger.read_adjustments_for(engine, charges).merge(charges[["tenant", "order_id"]], on=["tenant", "order_id"])
    return adjustment_lineage(engine, first, last, as_of, stored, charges, existing, new, registry)


def lineage_problems(engine: Engine, book: pd.DataFrame, first: dt.date, last: dt.date,
                     as_of: pd.Timestamp) -> tuple[pd.DataFrame, int]:
    """Offending lines, charges, notes and events of the documents of cohort days [first, last]
    known at `as_of` (`book`: their invoices, both kinds; the charges on monthly invoices are read
    here): per-order invoices and charges without lineage; lines whose quantity is not their
    counted events or that lack a link (a monthly invoice's lines against its charges' links; its
    volume discount and minimum fee must link nothing); notes whose links are not their
    adjustment's (or that link events though month-close); events that should be on a document
    (counted, occurred by its issue) linked to none; events linked more than once (invoice lines,
    charges, and each standing adjustment once: by its note's links when it has one); links to
    events that do not exist. Returns (offenders, links checked)."""
    cols = ["tenant", "order_id", "invoice_number", "note_number", "line_no", "kind", "quantity", "linked_events",
            "source", "event_id", "event_type", "problem"]  # fmt: skip
    doc_cols = ["tenant", "order_id", "invoice_number", "issued_at"]
    per_order = book[book["invoice_kind"] != MONTHLY_INVOICE]
    monthly = book[book["invoice_kind"] == MONTHLY_INVOICE]
    charges = ledger.read_charges(engine, first, last)
    charges = charges[charges["issued_at"] <= as_of]
    if book.empty and charges.empty:
        return pd.DataFrame(columns=cols), 0
    # An invoice's links belong to it whenever they were written (a backfill writes them later).
    links = read_links(engine, INVOICE, list(per_order["invoice_number"])).rename(columns={"document_number": "invoice_number"})
    charged = read_links(engine, CHARGE, list(charges["invoice_number"])).rename(columns={"document_number": "invoice_number"})
    charged = charged.merge(charges[["tenant", "order_id", "invoice_number"]], on=["tenant", "order_id", "invoice_number"])
    has_links = lambda docs, found: pd.Series(  # noqa: E731
        [k in set(zip(found["invoice_number"], found["order_id"])) for k in zip(docs["invoice_number"], docs["order_id"])],
        index=docs.index, dtype=bool)  # fmt: skip
    judged = pd.concat([per_order[has_links(per_order, links)][doc_cols], charges[has_links(charges, charged)][doc_cols]],
                       ignore_index=True)  # fmt: skip
    found = [per_order[~has_links(per_order, links)].assign(problem=NO_LINEAGE).reindex(columns=cols),
             charges[~has_links(charges, charged)].assign(problem=NO_LINEAGE).reindex(columns=cols)]  # fmt: skip
    line_cols = ["tenant", "order_id", "invoice_number", "line_no", "kind", "quantity"]
    lines = lines_of(engine, list(per_order.loc[has_links(per_order, links), "invoice_number"]), line_cols)
    found.append(validate_line_quantities(lines, links).reindex(columns=cols))
    # A monthly invoice's lines sum its charges' lines: judged against every link of its charges.
    month_links = read_links(engine, CHARGE, list(monthly["invoice_number"])).rename(columns={"document_number": "invoice_number"})
    found.append(validate_line_quantities(lines_of(engine, list(monthly["invoice_number"]), line_cols), month_links)
                 .reindex(columns=cols))  # fmt: skip

    events = known_events(engine, first, last, as_of)
    known = counted_events(events)
    at_issue = events.merge(judged, on=["tenant", "order_id"])
    at_issue = at_issue[at_issue["occurred_at"] <= at_issue["issued_at"]]
    expected = counted_events(at_issue).merge(judged[["tenant", "order_id", "invoice_number"]], on=["tenant", "order_id"])
    noted = _adjustment_links(engine, judged, as_of).merge(judged[["tenant", "order_id"]], on=["tenant", "order_id"])
    counted = pd.concat([links.rename(columns={"invoice_number": "document_number"}),
                         charged.rename(columns={"invoice_number": "document_number"}), noted], ignore_index=True)  # fmt: skip
    counted = counted[counted["role"].eq(COUNTED)]
    found.append(validate_event_links(expected, counted, known).reindex(columns=cols))

    notes = ledger.notes_of_invoices(engine, list(judged["invoice_number"]))
    notes = notes[notes["order_id"].isin(set(judged["order_id"])) | notes["order_id"].isna()]
    close = ledger.read_notes(engine, first, last)
    notes = pd.concat([notes, close[close["reason"].isin(NOT_EVENT_DERIVED_REASONS)]]).drop_duplicates("note_number")
    notes = notes[notes["issued_at"] <= as_of]
    note_links = read_links(engine, NOTE, list(notes["note_number"]))
    found.append(validate_note_links(notes, note_links, read_links(engine, ADJUSTMENT, list(notes["source_id"])))
                 .reindex(columns=cols))  # fmt: skip
    parts = [p for p in found if len(p)]
    offenders = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return offenders, len(links) + len(charged) + len(note_links)


# ---------------------------------------------------------------------------------------------
# Backfill of invoices issued before revision 0007


def invoices_without_lineage(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Per-order invoices of cohort days [first, last] that have no `line_events` row (a monthly
    invoice's lineage is that of its charges: `charges_without_lineage`)."""
    book = ledger.read_invoices(engine, first=first, last=last)
    book = book[book["invoice_kind"] != MONTHLY_INVOICE]
    if book.empty:
        return book
    linked = read_links(engine, INVOICE, list(book["invoice_number"]))
    return book[~book["invoice_number"].isin(set(linked["document_number"]))].reset_index(drop=True)


def charges_without_lineage(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Charges on monthly invoices (orders of cohort days [first, last]) that have no `line_events` row."""
    charges = ledger.read_charges(engine, first, last)
    if charges.empty:
        return charges
    linked = read_links(engine, CHARGE, list(charges["invoice_number"]))
    have = set(zip(linked["document_number"], linked["order_id"]))
    keep = np.array([k not in have for k in zip(charges["invoice_number"], charges["order_id"])], dtype=bool)
    return charges[keep].reset_index(drop=True)


def notes_without_lineage(conn_or_engine: Any, numbers: list[str]) -> pd.DataFrame:
    """The recalculation notes of the given invoices that have no `line_events` row of their own
    while their adjustment has some (notes issued before revision 0009). A note whose adjustment
    links no event (nothing late to point at) and the month-close notes, which are not
    event-derived, never have any."""
    notes = ledger.notes_of_invoices(conn_or_engine, numbers)
    notes = notes[~notes["reason"].isin(NOT_EVENT_DERIVED_REASONS)]
    sources = read_links(conn_or_engine, ADJUSTMENT, list(notes["source_id"]))
    notes = notes[notes["source_id"].isin(set(sources["document_number"]))]
    linked = read_links(conn_or_engine, NOTE, list(notes["note_number"]))
    return notes[~notes["note_number"].isin(set(linked["document_number"]))].reset_index(drop=True)


def unlinked_documents(engine: Engine, first: dt.date, last: dt.date) -> int:
    """How many invoices, charges and notes of cohort days [first, last] have no lineage."""
    book = ledger.read_invoices(engine, first=first, last=last)
    numbers = list(book["invoice_number"]) + list(ledger.read_charges(engine, first, last)["invoice_number"])
    return (len(invoices_without_lineage(engine, first, last)) + len(charges_without_lineage(engine, first, last))
            + len(notes_without_lineage(engine, numbers)))  # fmt: skip


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


def derive_charge_lineage(events: pd.DataFrame, billable: pd.DataFrame, charges: pd.DataFrame,
                          monthly_lines: pd.DataFrame, registry: TenantRegistry) -> pd.DataFrame:
    """Lineage of charges on monthly invoices issued without one (before revision 0009), as
    `issue_monthly` writes it: each charged order (stored `billable` row) priced with the charge's
    rate card version over the events that had occurred by the charge's `issued_at`, its links
    moved onto the monthly invoice's stored lines (`charge_lineage`). Adds `invoice_number`."""
    cols = [*LINEAGE_COLUMNS, "invoice_number"]
    orders = billable.drop(columns=[*PRICE_COLUMNS, "as_of", "rate_card_version"], errors="ignore").merge(
        charges[["tenant", "order_id", "rate_card_version"]], on=["tenant", "order_id"])
    if orders.empty:
        return pd.DataFrame(columns=cols)
    _, lines = price_orders(orders, registry)
    at = events.merge(charges[["tenant", "order_id", "issued_at"]], on=["tenant", "order_id"])
    at = at[at["occurred_at"] <= at["issued_at"]].drop(columns="issued_at")
    links = charge_lineage(line_events(at, orders, lines), lines, monthly_lines)
    return links.merge(charges[["tenant", "order_id", "invoice_number"]], on=["tenant", "order_id"])[cols]


def backfill_lineage(engine: Engine, first: dt.date, last: dt.date, registry: TenantRegistry, run_id: str,
                     stamp: pd.Timestamp) -> tuple[int, int]:
    """Write the lineage of the documents of cohort days [first, last] that have none: per-order
    invoices, charges on monthly invoices, then the adjustments of both, then the recalculation
    notes (their adjustment's links); returns (documents, links) written. Each document's rows go
    in at once, never next to existing rows, so a second backfill writes nothing."""
    book = ledger.read_invoices(engine, first=first, last=last)
    charges = ledger.read_charges(engine, first, last)
    if book.empty and charges.empty:
        return 0, 0
    events = known_events(engine, first, last, stamp)
    bare = invoices_without_lineage(engine, first, last)
    lines = lines_of(engine, list(bare["invoice_number"]), [c.name for c in schema.invoice_lines.columns])
    invoice_links = derive_invoice_lineage(events, bare, lines)
    billable = read_days(engine, schema.billable_orders, "cohort_day", first, last)
    uncharged = charges_without_lineage(engine, first, last)
    monthly_lines = lines_of(engine, list(uncharged["invoice_number"]), [c.name for c in schema.invoice_lines.columns])
    charge_links = derive_charge_lineage(events, billable, uncharged, monthly_lines.drop(columns="order_id"), registry)
    # Adjustments name the invoice (a charge's: its monthly invoice); priced with that document's version.
    documents = pd.concat([book[book["invoice_kind"] != MONTHLY_INVOICE], charges], ignore_index=True)
    adjustments = ledger.read_adjustments_for(engine, documents)
    numbers = list(documents["invoice_number"])
    with engine.begin() as conn:
        # Another backfill may have written some meanwhile: only documents still without rows.
        again = read_links(conn, INVOICE, list(bare["invoice_number"]))
        invoice_links = invoice_links[~invoice_links["invoice_number"].isin(set(again["document_number"]))]
        insert_new(conn, schema.line_events,
                   ledger.link_rows(invoice_links, INVOICE, invoice_links["invoice_number"], stamp, run_id), ledger.LINK_KEY)
        again = read_links(conn, CHARGE, list(uncharged["invoice_number"]))
        done = set(zip(again["document_number"], again["order_id"]))
        fresh = np.array([k not in done for k in zip(charge_links["invoice_number"], charge_links["order_id"])], dtype=bool)
        charge_links = charge_links[fresh]
        insert_new(conn, schema.line_events,
                   ledger.link_rows(charge_links, CHARGE, charge_links["invoice_number"], stamp, run_id), ledger.LINK_KEY)
        existing = pd.concat([read_links(conn, INVOICE, numbers), read_links(conn, CHARGE, numbers),
                              read_links(conn, ADJUSTMENT, list(adjustments["adjustment_id"]))], ignore_index=True)  # fmt: skip
        todo = adjustments[~adjustments["adjustment_id"].isin(set(existing["document_number"]))]
        adjustment_links = derive_adjustment_lineage(events, billable, documents, todo, existing, registry)
        insert_new(conn, schema.line_events, ledger.link_rows(
            adjustment_links, ADJUSTMENT, adjustment_links["adjustment_id"], stamp, run_id), ledger.LINK_KEY)
        notes = notes_without_lineage(conn, numbers)
        note_links = ledger.link_notes(conn, notes, run_id) if len(notes) else 0
    linked_notes = read_links(engine, NOTE, list(notes["note_number"]))["document_number"].nunique() if note_links else 0
    count = (invoice_links["invoice_number"].nunique() + len(set(zip(charge_links["invoice_number"], charge_links["order_id"])))
             + adjustment_links["adjustment_id"].nunique() + linked_notes)  # fmt: skip
    return int(count), len(invoice_links) + len(charge_links) + len(adjustment_links) + int(note_links)


def backfill_all(engine: Engine, registry: TenantRegistry, chunks: list[tuple[dt.date, dt.date]],
                 run_id: str) -> tuple[int, int]:
    """`backfill_lineage` over the cohort-day `chunks` (the ledger's span, `e2a db upgrade` and
    `e2a invoices lineage --backfill`): (documents, links) written."""
    stamp = pd.Timestamp(dt.datetime.now(dt.timezone.utc))
    documents = links = 0
    for first, last in chunks:
        done, written = backfill_lineage(engine, first, last, registry, run_id, stamp)
        documents, links = documents + done, links + written
    return documents, links


# ---------------------------------------------------------------------------------------------
# `e2a invoices explain`


def explain_invoice(engine: Engine, number: str) -> dict[str, pd.DataFrame] | None:
    """Everything `e2a invoices explain` prints for one invoice number, None when unknown:
    invoice, lines, their links with each event's delivery (received_at, source, type, id),
    the charges of a monthly invoice (their links are its lines'), adjustments, the notes they
    were issued as, and the links of both (a note's own, else its adjustment's)."""
    inv = read_table(engine, schema.invoices, [schema.invoices.c.invoice_number == number])
    if inv.empty:
        return None
    lines = read_table(engine, schema.invoice_lines, [schema.invoice_lines.c.invoice_number == number])
    adjustments = ledger.read_adjustments_for(engine, inv).sort_values("adjustment_id")
    notes = ledger.notes_of_invoices(engine, [number])
    links = pd.concat([read_links(engine, INVOICE, [number]), read_links(engine, CHARGE, [number]),
                       read_links(engine, ADJUSTMENT, list(adjustments["adjustment_id"])),
                       read_links(engine, NOTE, list(notes["note_number"]))], ignore_index=True)  # fmt: skip
    return {"invoice": inv, "lines": lines.sort_values("line_no"), "adjustments": adjustments,
            "charges": ledger.read_charges(engine, numbers=[number]), "notes": notes,
            "links": _with_deliveries(engine, links)}  # fmt: skip


def explain_note(engine: Engine, number: str) -> dict[str, pd.DataFrame] | None:
    """What `e2a invoices explain` prints for a credit or debit note number, None when unknown:
    the note, its line, and its own links (a recalculation note's: the late events it bills),
    with each event's delivery. Month-close notes (volume discount, minimum top-up) come from the
    month's totals and link no event."""
    note = read_table(engine, schema.notes, [schema.notes.c.note_number == number])
    if note.empty:
        return None
    lines = read_table(engine, schema.note_lines, [schema.note_lines.c.note_number == number])
    return {"note": note, "lines": lines.sort_values("line_no"),
            "links": _with_deliveries(engine, read_links(engine, NOTE, [number]))}  # fmt: skip


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
