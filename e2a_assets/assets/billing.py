"""Billing group: billable orders, the invoice ledger, adjustments, monthly statements, daily report.

Lineage: orders -> completed_orders -> billable_orders -> invoice_adjustments -> invoices [checks]
-> billing_report; invoices -> monthly_statements (monthly; it also issues the monthly invoices of
`monthly` tenants, DOMAIN §8.3). Adjustments correct invoices issued
by *earlier* runs, so they are recorded before this run issues new invoices; the blocking checks
on `invoices` then verify the whole picture (issued + applied adjustments == recomputed) and stop
the report when the ledger is wrong. See docs/billing.md.
"""

import dagster as dg
import pandas as pd

from e2a_assets.assets.common import FINANCE, OPS, number, preview, warehouse_assets
from e2a_assets.assets.ranges import materialize_by_chunks
from e2a_assets.documents.invoices import lines_for, write_charge_attachments, write_invoice_documents
from e2a_assets.documents.notes import read_note_lines, write_note_documents
from e2a_assets.domain.billing import COMPLETIONS
from e2a_assets.domain.statements import APPLIED_FLAGGED, AUTO_APPLIED, PENDING_REVIEW
from e2a_assets.partitions import monthly_partitions
from e2a_assets.resources import ClockResource, InvoiceDocumentsResource, TenantRegistryResource, WarehouseResource
from e2a_assets.services import billing_reads as reads
from e2a_assets.services.billing import close_and_build_statements
from e2a_assets.services.refresh.billing import (
    issue_invoices,
    record_invoice_adjustments,
    refresh_billable_orders,
    refresh_billing_report,
)
from e2a_assets.services.refresh.orders import refresh_completed_orders
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.frames import replace_partition

billing_asset = warehouse_assets("billing", FINANCE)
# completed_orders is where billing starts, but it belongs to the operations team's orders group.
order_completion_asset = warehouse_assets("orders", OPS)


@order_completion_asset(schema.completed_orders, deps=["orders"])
def completed_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource
) -> dg.MaterializeResult:
    """Orders of the cohort day that are done from the warehouse's point of view - shipped,
    delivered, or cancelled after picking - with their completion time: what billing starts from."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_completed_orders(engine, first, last, as_of)

    def figures(frame, day):  # noqa: ANN001, ANN202
        kinds = frame["completion"].value_counts()
        return {
            "dagster/row_count": number(len(frame)),
            **{f"completed_{k}": number(int(kinds.get(k, 0))) for k in COMPLETIONS},
            "preview": preview(frame, ["tenant", "order_id", "status", "completion", "completed_at"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@billing_asset(schema.billable_orders, deps=["completed_orders", "exceptions", "webhook_events"])
def billable_orders(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """Every completed order of the cohort day with its billable operations and price as of the
    run; orders with an open blocking exception are kept as held (priced, not invoiced)."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    registry = tenant_registry.billing_registry(engine)

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_billable_orders(engine, first, last, as_of, registry)

    def figures(frame, day):  # noqa: ANN001, ANN202
        held = frame[frame["held"]] if len(frame) else frame
        ready = frame[frame["billable"]] if len(frame) else frame
        return {
            "dagster/row_count": number(len(frame)),
            "billable_orders": number(len(ready)),
            "held_orders": number(len(held)),
            "billable_cents": number(int(ready["amount_cents"].sum()) if len(ready) else 0),
            "held_cents": number(int(held["amount_cents"].sum()) if len(held) else 0),
            "preview": preview(frame, ["tenant", "order_id", "invoice_date", "billable", "hold_reasons", "amount_cents"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@billing_asset(schema.invoice_adjustments, deps=["billable_orders"])
def invoice_adjustments(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """RECALCULATION credits/debits for invoices of the cohort days whose recomputed amount moved
    since issue (late returns, extra picks): auto-applied, applied and flagged, or pending review.
    Idempotent; a run evaluated before an invoice or adjustment was written leaves it alone."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    registry = tenant_registry.billing_registry(engine)
    run_id = context.run.run_id

    def step(first, last):  # noqa: ANN001, ANN202
        return record_invoice_adjustments(engine, first, last, as_of, registry, run_id)

    def figures(parts, day):  # noqa: ANN001, ANN202
        new = parts["new"]
        status = new["status"].value_counts() if len(new) else pd.Series(dtype=int)
        applied = new[new["applied"].astype(bool)] if len(new) else new
        return {
            "dagster/row_count": number(len(new)),
            "adjustments_created": number(len(new)),
            "adjustments_cents": number(int(applied["delta_cents"].sum()) if len(applied) else 0),
            "auto_applied": number(int(status.get(AUTO_APPLIED, 0))),
            "applied_flagged": number(int(status.get(APPLIED_FLAGGED, 0))),
            "pending_review": number(int(status.get(PENDING_REVIEW, 0))),
            "pending_review_cents": number(int(new.loc[new["status"] == PENDING_REVIEW, "delta_cents"].sum()) if len(new) else 0),
            "superseded": number(int(new["supersedes"].str.len().gt(0).sum()) if len(new) else 0),
            "skipped_evaluated_before_ledger": number(len(parts["later"])),
            "skipped_damaged_invoices": number(len(parts["damaged"])),
            "preview": preview(new, ["adjustment_id", "tenant", "order_id", "delta_cents", "kind", "status", "supersedes"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@billing_asset(schema.invoices, deps=["billable_orders", "invoice_adjustments"])
def invoices(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
    invoice_documents: InvoiceDocumentsResource,
) -> dg.MaterializeResult:
    """The invoice ledger: one immutable, numbered invoice per billable, not-held order of the
    cohort days that has none yet, with its lines and a printable document. Never rewrites."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    registry = tenant_registry.billing_registry(engine)
    folder = invoice_documents.invoice_dir
    issuer = invoice_documents.get_issuer()
    run_id = context.run.run_id

    def step(first, last):  # noqa: ANN001, ANN202
        return issue_invoices(engine, first, last, as_of, registry, run_id, folder, issuer)

    def figures(parts, day):  # noqa: ANN001, ANN202
        issued, book, stored = parts["issued"], parts["book"], parts["stored"]
        return {
            "dagster/row_count": number(len(book)),
            "issued_now": number(len(issued)),
            "invoiced_cents": number(int(issued["amount_cents"].sum()) if len(issued) else 0),
            "invoices_total": number(len(book)),
            "ledger_cents": number(int(book["amount_cents"].sum()) if len(book) else 0),
            "held_orders": number(int(stored["held"].sum()) if len(stored) else 0),
            "documents_written": number(len(parts["documents"])),
            "preview": preview(issued, ["invoice_number", "tenant", "order_id", "invoice_date", "due_date", "amount_cents", "currency"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@billing_asset(schema.billing_report, deps=["invoices", "invoice_adjustments", "billable_orders"])
def billing_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource
) -> dg.MaterializeResult:
    """Per tenant and day: invoices issued and amount, held backlog with reasons, adjustments by
    status and revenue impact, open/partially paid/overdue/paid breakdown (payments included) and
    what is left to pay on the overdue invoices."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_billing_report(engine, first, last, as_of)

    def figures(frame, day):  # noqa: ANN001, ANN202
        return {
            "dagster/row_count": number(len(frame)),
            "invoices_issued": number(int(frame["invoices_issued"].sum()) if len(frame) else 0),
            "invoiced_cents": number(int(frame["invoiced_cents"].sum()) if len(frame) else 0),
            "revenue_impact_cents": number(int(frame["revenue_impact_cents"].sum()) if len(frame) else 0),
            "pending_review_cents": number(int(frame["pending_review_cents"].sum()) if len(frame) else 0),
            "overdue_cents": number(int(frame["overdue_cents"].sum()) if len(frame) else 0),
            "preview": preview(frame, ["tenant", "day", "invoices_issued", "invoiced_cents", "held_orders", "hold_reasons",
                                       "revenue_impact_cents", "status_breakdown"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="day", chunk_days=warehouse.chunk_days, as_of=as_of)


@billing_asset(
    schema.monthly_statements,
    deps=[
        dg.AssetDep("invoices", partition_mapping=dg.TimeWindowPartitionMapping()),
        dg.AssetDep("invoice_adjustments", partition_mapping=dg.TimeWindowPartitionMapping()),
    ],
    partitions_def=monthly_partitions,
)
def monthly_statements(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
    invoice_documents: InvoiceDocumentsResource,
) -> dg.MaterializeResult:
    """One statement per tenant and calendar month: invoiced orders, gross, volume discount,
    minimum monthly fee top-up, applied adjustments, net due, and what is overdue at as_of. Issues
    first the monthly invoices of `monthly` tenants whose grace period has passed (DOMAIN §8.3),
    with their document and per-order detail CSV."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    registry = tenant_registry.get_registry()
    issuer = invoice_documents.get_issuer()
    run_id = context.run.run_id
    closing, documents, issued = {}, {}, {}  # month -> month-close notes, documents written, monthly invoices issued by this run

    def step(first, last):  # noqa: ANN001, ANN202
        # One month at a time: its invoices, adjustments and notes (a closed month gets its
        # month-close notes first); what is overdue (any month) comes as a SQL aggregate.
        frame, closing[first] = close_and_build_statements(engine, registry, first, last, as_of, run_id)
        month_notes = ledger.read_notes(engine, first, last)
        documents[first] = write_note_documents(invoice_documents.invoice_dir, month_notes, registry, issuer,
                                                read_note_lines(engine, list(month_notes["note_number"])))
        # Monthly invoices (DOMAIN §8.3) issued for these months: document and per-order detail CSV.
        book = reads.invoices_dated(engine, first, last)
        monthly = book[(book["invoice_kind"] == schema.MONTHLY_INVOICE) & (book["issued_at"] <= as_of)]
        numbers = list(monthly["invoice_number"])
        issued[first] = monthly[monthly["issued_run_id"] == run_id]
        documents[first] += write_invoice_documents(invoice_documents.invoice_dir, monthly, lines_for(engine, numbers), registry,
                                                    issuer)
        documents[first] += write_charge_attachments(invoice_documents.invoice_dir, monthly,
                                                     ledger.read_charges(engine, numbers=numbers))  # fmt: skip
        replace_partition(engine, schema.monthly_statements, frame, "month_start", first, last)
        return frame

    def figures(frame, month):  # noqa: ANN001, ANN202
        return {
            "dagster/row_count": number(len(frame)),
            **{c: number(int(frame[c].sum()) if len(frame) else 0)
               for c in ("invoiced_orders", "gross_cents", "discount_cents", "minimum_top_up_cents", "adjustments_cents",
                         "net_due_cents", "overdue_cents")},  # fmt: skip
            "month_close_notes_issued": number(len(closing.get(month, ()))),
            "monthly_invoices_issued": number(len(issued.get(month, ()))),
            "monthly_invoiced_cents": number(int(issued[month]["amount_cents"].sum()) if len(issued.get(month, ())) else 0),
            # Documents, not files: a note's HTML and PDF are one document.
            "note_documents_written": number(len({path.stem for path in documents.get(month, ())})),
            "preview": preview(frame, ["tenant", "month", "invoiced_orders", "gross_cents", "discount_cents",
                                       "minimum_top_up_cents", "adjustments_cents", "net_due_cents", "overdue_cents"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="month_start", chunk_days=warehouse.chunk_days,
                                 as_of=as_of, monthly=True)  # fmt: skip
