"""`e2a invoices explain NUMBER` and `e2a invoices lineage [--backfill]`: row-level lineage for
people (docs/billing.md, "Lineage"). The reads and the backfill are in `services/lineage.py`."""

from __future__ import annotations

import datetime as dt

import click
import pandas as pd

from e2a_assets.cli.db import prepared_warehouse
from e2a_assets.cli.instance import E2AError
from e2a_assets.documents.formatting import format_money
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


def explain_text(parts: dict[str, pd.DataFrame]) -> str:
    """The printed explanation of one invoice (see `services/lineage.py::explain_invoice`)."""
    inv = parts["invoice"].iloc[0]
    currency = inv["currency"]
    money = lambda cents: format_money(int(cents), currency)  # noqa: E731
    links = parts["links"]
    out = [
        f"invoice {inv['invoice_number']}  tenant {inv['tenant']}  order {inv['order_id']}",
        f"  dated {inv['invoice_date']}, due {inv['due_date']}, billable by {inv['billable_basis']} at "
        f"{_when(inv['billable_at'])}, issued {_when(inv['issued_at'])}",
        f"  amount {money(inv['amount_cents'])}  rate card version {int(inv['rate_card_version'])}",
    ]
    own = links[links["document_kind"] == "invoice"] if len(links) else links
    if own.empty:
        out.append("  no lineage recorded (issued before revision 0007): run `e2a invoices lineage --backfill`")
    for line in parts["lines"].itertuples(index=False):
        out.append(f"  line {int(line.line_no)}  {line.kind:<20} {int(line.quantity)} x {money(line.unit_cents)} = "
                   f"{money(line.amount_cents)}  (rate card v{int(line.rate_card_version)})  {line.description}")  # fmt: skip
        out += _deliveries(own[own["line_no"] == line.line_no] if len(own) else own, "      ")
    adjustments = parts["adjustments"]
    notes = parts.get("notes")
    note_of = dict(zip(notes["source_id"], notes["note_number"])) if notes is not None and len(notes) else {}
    for adj in adjustments.itertuples(index=False):
        out.append(f"  adjustment {adj.adjustment_id}  {adj.kind} {money(adj.delta_cents)}  {adj.status}  dated "
                   f"{adj.adjustment_date}  reason {adj.reason}  (rate card v{int(adj.rate_card_version)})")  # fmt: skip
        if adj.adjustment_id in note_of:
            out.append(f"    issued as note {note_of[adj.adjustment_id]}")
        mine = links[(links["document_kind"] == "adjustment") & (links["document_number"] == adj.adjustment_id)] \
            if len(links) else links  # fmt: skip
        if mine.empty:
            out.append("      no contributing events recorded")
        for (line_no, kind), group in mine.groupby(["line_no", "kind"], sort=True):
            out.append(f"    adds to line {int(line_no)} {kind}: {int((group['role'] == 'counted').sum()) or len(group)} event(s)")
            out += _deliveries(group, "      ")
    if adjustments.empty:
        out.append("  no adjustments")
    return "\n".join(out)


def explain_note_text(parts: dict[str, pd.DataFrame]) -> str:
    """The printed explanation of one credit or debit note (see `services/lineage.py::explain_note`)."""
    note = parts["note"].iloc[0]
    money = lambda cents: format_money(int(cents), note["currency"])  # noqa: E731
    refers = f"invoice {note['invoice_number']}" if note["invoice_number"] else f"statement month {note['statement_month']}"
    out = [f"{note['kind']} note {note['note_number']}  tenant {note['tenant']}  for {refers}",
           f"  dated {note['note_date']}, issued {_when(note['issued_at'])}  amount {money(note['amount_cents'])}  "
           f"reason {note['reason']}"]  # fmt: skip
    for line in parts["lines"].itertuples(index=False):
        out.append(f"  line {int(line.line_no)}  {line.kind:<20} {int(line.quantity)} x {money(line.unit_cents)} = "
                   f"{money(line.amount_cents)}  {line.description}")  # fmt: skip
    links = parts["links"]
    if len(links):
        out.append(f"  from adjustment {note['source_id']}:")
        for (line_no, kind), group in links.groupby(["line_no", "kind"], sort=True):
            out.append(f"    adds to line {int(line_no)} {kind}: {int((group['role'] == 'counted').sum()) or len(group)} event(s)")
            out += _deliveries(group, "      ")
    elif note["reason"] == "RECALCULATION":
        out.append(f"  from adjustment {note['source_id']}: no contributing events recorded")
    else:
        out.append("  from the month's totals (no events): see the monthly statement")
    return "\n".join(out)


@click.command("explain")
@click.argument("number")
def explain(number: str) -> None:
    """Each line of an invoice with its amount and rate card version, and under it every delivery
    that produced it (received time, source, event type, event id); then its adjustments and the
    notes they were issued as. Given a credit or debit note number: the note, its line and the
    deliveries of the adjustment it was issued for."""
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


@click.command("lineage")
@click.option("--backfill", is_flag=True, help="Derive and write the lineage of invoices that have none.")
def lineage(backfill: bool) -> None:
    """How many invoices have no row-level lineage (issued before revision 0007); with
    --backfill, derive it from the events and write it, for invoices and their adjustments (once
    per document)."""
    from e2a_assets.services.lineage import backfill_lineage, invoices_without_lineage
    from e2a_assets.warehouse.ledger import cohort_day_span

    settings = Settings.from_env()
    registry = settings.registry()
    engine = prepared_warehouse(settings)
    span = cohort_day_span(engine)
    chunks = list(day_chunks(span[0], span[1], settings.chunk_days)) if span else []
    if not backfill:
        missing = sum(len(invoices_without_lineage(engine, first, last)) for first, last in chunks)
        click.echo(f"{missing} invoice(s) without lineage" + (": run `e2a invoices lineage --backfill`" if missing else ""))
        return
    stamp = pd.Timestamp(dt.datetime.now(dt.timezone.utc))
    invoices = links = 0
    for first, last in chunks:
        done, written = backfill_lineage(engine, first, last, registry, BACKFILL_RUN_ID, stamp)
        invoices, links = invoices + done, links + written
    click.echo(f"backfilled the lineage of {invoices} document(s) (invoices and adjustments): {links} link(s)")
