"""`e2a invoices explain NUMBER` and `e2a invoices lineage [--backfill]`: row-level lineage for
people (docs/billing.md, "Lineage"). The reads and the backfill are in `services/lineage.py`."""

from __future__ import annotations

import datetime as dt

import click
import pandas as pd

from e2a_assets.cli.db import prepared_warehouse
from e2a_assets.cli.instance import E2AError
from e2a_assets.documents.formatting import format_money
from e2a_assets.domain.lineage import (
    ADJUSTMENT,
    CHARGE,
    INVOICE,
    NOT_EVENT_DERIVED_KINDS,
    NOT_EVENT_DERIVED_REASONS,
    NOTE,
)
from e2a_assets.partitions import day_chunks
from e2a_assets.settings import Settings

BACKFILL_RUN_ID = "e2a invoices lineage --backfill"


def _when(value) -> str:  # noqa: ANN001
    stamp = pd.to_datetime(value, utc=True) if value is not None and not pd.isna(value) else None
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC") if stamp is not None else "(not in the event log)"


def _deliveries(links: pd.DataFrame, indent: str) -> list[str]:
    """One line per contributing delivery: role, received time, source, event type, event id."""
    out = []
    for row in links.itertuples(index=False):
        out.append(f"{indent}{row.role:<14} received {_when(row.received_at)}  {row.source:<8} {row.event_type:<18} "
                   f"{row.event_id}")  # fmt: skip
    return out


def _groups(links: pd.DataFrame, indent: str) -> list[str]:
    """Links grouped by the line they add to: a count, then one line per delivery."""
    out = []
    for (line_no, kind), group in links.groupby(["line_no", "kind"], sort=True):
        out.append(f"{indent}adds to line {int(line_no)} {kind}: {int((group['role'] == 'counted').sum()) or len(group)} event(s)")
        out += _deliveries(group, indent + "  ")
    return out


def _of(links: pd.DataFrame, kind: str, number: str | None = None) -> pd.DataFrame:
    """The links of one document kind (and number)."""
    if links.empty:
        return links
    mask = links["document_kind"] == kind
    return links[mask & (links["document_number"] == number)] if number is not None else links[mask]


def explain_text(parts: dict[str, pd.DataFrame]) -> str:
    """The printed explanation of one invoice (see `services/lineage.py::explain_invoice`): a
    per-order invoice's lines with their deliveries; a monthly invoice's lines, then each charge
    with the deliveries of its lines; then the adjustments and the notes they were issued as."""
    inv = parts["invoice"].iloc[0]
    currency = inv["currency"]
    money = lambda cents: format_money(int(cents), currency)  # noqa: E731
    links = parts["links"]
    monthly = inv["invoice_kind"] == "monthly"
    billable = f"billable by {inv['billable_basis']} at {_when(inv['billable_at'])}, " if not monthly else ""
    out = [
        f"{'monthly ' if monthly else ''}invoice {inv['invoice_number']}  tenant {inv['tenant']}  order {inv['order_id']}",
        f"  dated {inv['invoice_date']}, due {inv['due_date']}, {billable}issued {_when(inv['issued_at'])}",
        f"  amount {money(inv['amount_cents'])}  rate card version {int(inv['rate_card_version'])}",
    ]
    own = _of(links, CHARGE if monthly else INVOICE)
    if own.empty and not monthly:
        out.append("  no lineage recorded (issued before revision 0007): run `e2a invoices lineage --backfill`")
    for line in parts["lines"].itertuples(index=False):
        out.append(f"  line {int(line.line_no)}  {line.kind:<20} {int(line.quantity)} x {money(line.unit_cents)} = "
                   f"{money(line.amount_cents)}  (rate card v{int(line.rate_card_version)})  {line.description}")  # fmt: skip
        if line.kind in NOT_EVENT_DERIVED_KINDS:
            out.append("      not event-derived: from the month's totals")
        elif monthly:
            mine = own[own["line_no"] == line.line_no] if len(own) else own
            out.append(f"      from {mine['order_id'].nunique() if len(mine) else 0} charge(s), "
                       f"{int((mine['role'] == 'counted').sum()) if len(mine) else 0} counted event(s)")  # fmt: skip
        else:
            out += _deliveries(own[own["line_no"] == line.line_no] if len(own) else own, "      ")
    charges = parts.get("charges")
    if monthly and charges is not None:
        out.append(f"  {len(charges)} charge(s):")
        if len(charges) and own.empty:
            out.append("    no lineage recorded (issued before revision 0009): run `e2a invoices lineage --backfill`")
        for charge in charges.itertuples(index=False):
            out.append(f"    charge order {charge.order_id}  {money(charge.amount_cents)}  (rate card v{int(charge.rate_card_version)})"
                       f"  billable by {charge.billable_basis} at {_when(charge.billable_at)}")  # fmt: skip
            out += _groups(own[own["order_id"] == charge.order_id] if len(own) else own, "      ")
    adjustments = parts["adjustments"]
    notes = parts.get("notes")
    note_of = dict(zip(notes["source_id"], notes["note_number"])) if notes is not None and len(notes) else {}
    for adj in adjustments.itertuples(index=False):
        order = f"  order {adj.order_id}" if monthly else ""
        out.append(f"  adjustment {adj.adjustment_id}{order}  {adj.kind} {money(adj.delta_cents)}  {adj.status}  dated "
                   f"{adj.adjustment_date}  reason {adj.reason}  (rate card v{int(adj.rate_card_version)})")  # fmt: skip
        note = note_of.get(adj.adjustment_id)
        if note is not None:
            out.append(f"    issued as note {note}")
        # A note's own links when it has them (what the client's document is linked to), else the adjustment's.
        mine = _of(links, NOTE, note) if note is not None else links.iloc[0:0]
        mine = mine if len(mine) else _of(links, ADJUSTMENT, adj.adjustment_id)
        if mine.empty:
            out.append("      no contributing events recorded")
        out += _groups(mine, "    ")
    if adjustments.empty:
        out.append("  no adjustments")
    return "\n".join(out)


def explain_note_text(parts: dict[str, pd.DataFrame]) -> str:
    """The printed explanation of one credit or debit note (see `services/lineage.py::explain_note`)."""
    note = parts["note"].iloc[0]
    money = lambda cents: format_money(int(cents), note["currency"])  # noqa: E731
    refers = f"invoice {note['invoice_number']}" if note["invoice_number"] else f"statement month {note['statement_month']}"
    order = f"  order {note['order_id']}" if note["order_id"] and not pd.isna(note["order_id"]) else ""
    out = [f"{note['kind']} note {note['note_number']}  tenant {note['tenant']}  for {refers}{order}",
           f"  dated {note['note_date']}, issued {_when(note['issued_at'])}  amount {money(note['amount_cents'])}  "
           f"reason {note['reason']}"]  # fmt: skip
    for line in parts["lines"].itertuples(index=False):
        out.append(f"  line {int(line.line_no)}  {line.kind:<20} {int(line.quantity)} x {money(line.unit_cents)} = "
                   f"{money(line.amount_cents)}  {line.description}")  # fmt: skip
    links = parts["links"]
    if note["reason"] in NOT_EVENT_DERIVED_REASONS:
        out.append("  not event-derived: from the month's totals (no events), see the monthly statement "
                   f"{note['tenant']} {note['statement_month']}")  # fmt: skip
    elif len(links):
        out.append(f"  from adjustment {note['source_id']}:")
        out += _groups(links, "    ")
    else:
        out.append(f"  from adjustment {note['source_id']}: no lineage recorded (issued before revision 0009): "
                   "run `e2a invoices lineage --backfill`")  # fmt: skip
    return "\n".join(out)


@click.command("explain")
@click.argument("number")
def explain(number: str) -> None:
    """Each line of an invoice with its amount and rate card version, and under it every delivery
    that produced it (received time, source, event type, event id); for a monthly invoice, each
    charge (order) with the deliveries of its lines; then its adjustments and the notes they were
    issued as. Given a credit or debit note number: the note, its line and the deliveries it bills
    (a month-close note: none, it comes from the month's totals)."""
    from e2a_assets.services.lineage import explain_invoice, explain_note

    engine = prepared_warehouse(Settings.from_env())
    parts = explain_invoice(engine, number.strip())
    if parts is None:
        note = explain_note(engine, number.strip())
        if note is None:
            raise E2AError(f"{number}: no invoice or note with that number")
        click.echo(explain_note_text(note))
        return
    click.echo(explain_text(parts))


def ledger_chunks(engine, settings: Settings) -> list[tuple[dt.date, dt.date]]:  # noqa: ANN001
    """The ledger's cohort days (invoices and charges) cut into the warehouse's chunks."""
    from e2a_assets.warehouse.ledger import cohort_day_span

    span = cohort_day_span(engine)
    return list(day_chunks(span[0], span[1], settings.chunk_days)) if span else []


def backfill_ledger(engine, settings: Settings, run_id: str = BACKFILL_RUN_ID) -> tuple[int, int] | None:  # noqa: ANN001
    """Derive and write the lineage of every document that has none: (documents, links); None
    when the ledger holds no invoice or charge at all."""
    from e2a_assets.services.lineage import backfill_all

    chunks = ledger_chunks(engine, settings)
    return backfill_all(engine, settings.registry(), chunks, run_id) if chunks else None


@click.command("lineage")
@click.option("--backfill", is_flag=True, help="Derive and write the lineage of documents that have none.")
def lineage(backfill: bool) -> None:
    """How many documents (per-order invoices, charges on monthly invoices, recalculation notes)
    have no row-level lineage (issued before revision 0007 / 0009); with --backfill, derive it
    from the events and write it, for them and their adjustments (once per document). `e2a db
    upgrade` runs the backfill itself."""
    from e2a_assets.services.lineage import unlinked_documents

    settings = Settings.from_env()
    engine = prepared_warehouse(settings)
    if not backfill:
        missing = sum(unlinked_documents(engine, first, last) for first, last in ledger_chunks(engine, settings))
        click.echo(f"{missing} document(s) without lineage" + (": run `e2a invoices lineage --backfill`" if missing else ""))
        return
    documents, links = backfill_ledger(engine, settings) or (0, 0)
    click.echo(f"backfilled the lineage of {documents} document(s) (invoices, charges, adjustments, notes): {links} link(s)")
