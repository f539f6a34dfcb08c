"""Invoice validation (DOMAIN §5) as blocking asset checks on the `invoices` ledger.

One check per rule. Each runs in the same run as `invoices`, right after it; a failure (severity
ERROR) stops the downstream billing assets of that run (`billing_report`) and lists the offending
invoices in its metadata (count + markdown table).

Scope, chosen per rule:
- numbering, due dates, non-negative amounts: the **tenant-months the run touched** (the
  tenant + invoice_month of the invoices of the run's cohort days; a gap or a duplicate is a
  property of a whole tenant-month, whatever day touched it). A run with no partition - the
  explicitly launched `ledger_audit_job` - audits the whole ledger with the same functions;
- amounts vs recomputation and coverage: the **run's cohort days** (partition or backfill range),
  because they re-price orders from the source events; a run with no partition (a check launched
  on its own) evaluates every day of the ledger.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from e2a_assets.checks.offenders import offenders_markdown
from e2a_assets.domain.invoice_validation import (
    AMOUNT_MISMATCH,
    MISSING_INVOICE,
    UNBILLABLE_ORDER,
    validate_amounts_non_negative,
    validate_due_dates,
    validate_invoice_amounts,
    validate_invoice_coverage,
    validate_invoice_numbers,
)
from e2a_assets.domain.monthly import charge_amount_problems, validate_charge_coverage
from e2a_assets.domain.statements import PENDING_REVIEW
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG, day_chunks
from e2a_assets.resources import ClockResource, TenantRegistryResource, WarehouseResource
from e2a_assets.services.billing import recompute_billable
from e2a_assets.services.ledger_scope import invoices_of_months, lines_of, touched_months
from e2a_assets.services.lineage import lineage_problems
from e2a_assets.warehouse import ledger
from e2a_assets.warehouse.schema import MONTHLY_INVOICE

RANGE_START, RANGE_END, PARTITION = RANGE_START_TAG, RANGE_END_TAG, "dagster/partition"


def run_days(context: dg.AssetCheckExecutionContext) -> tuple[dt.date, dt.date] | None:
    """The cohort days of the run (one partition or a single-run range), None when unpartitioned."""
    tags = context.run.tags if context.run else {}
    if tags.get(RANGE_START) and tags.get(RANGE_END):
        return dt.date.fromisoformat(tags[RANGE_START]), dt.date.fromisoformat(tags[RANGE_END])
    if tags.get(PARTITION):
        day = dt.date.fromisoformat(tags[PARTITION])
        return day, day
    return None


def _run_chunks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    """The run's cohort days cut into the warehouse's chunks (memory stays that of one chunk
    whatever the range); without a partition, the days the ledger covers (none when empty)."""
    engine = warehouse.get_engine()
    days = run_days(context) or ledger.cohort_day_span(engine)
    return engine, ([] if days is None else list(day_chunks(days[0], days[1], warehouse.chunk_days)))


def _result(offenders: pd.DataFrame, columns: list[str], extra: dict | None = None) -> dg.AssetCheckResult:
    table = offenders_markdown(offenders, columns)
    return dg.AssetCheckResult(
        passed=offenders.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "offending_invoices": dg.MetadataValue.int(int(offenders["invoice_number"].nunique(dropna=False))
                                                       if len(offenders) else 0),
            "offending_rows": dg.MetadataValue.int(len(offenders)),
            "offenders": dg.MetadataValue.md(table),
            **(extra or {}),
        },
    )  # fmt: skip


CHECK = dict(asset="invoices", blocking=True)


@dg.asset_check(**CHECK, description="Issued amount + applied adjustments equals the amount recomputed "
                "from the source events, to the cent, and the amount equals its lines (run's cohort days).")  # fmt: skip
def invoice_amounts_match_events(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.AssetCheckResult:
    engine, chunks = _run_chunks(context, warehouse)
    as_of = clock.as_of_for(context.op_execution_context)
    registry = tenant_registry.get_registry()
    found, checked, awaiting_review = [], 0, 0
    for first, last in chunks:
        # Only what was known at the run's evaluation time: later invoices/adjustments are not judged.
        book = ledger.read_invoices(engine, first=first, last=last)
        book = book[book["issued_at"] <= as_of]
        # Charges on monthly invoices (DOMAIN §8.3) are judged per order like invoices.
        charges = ledger.read_charges(engine, first, last)
        charges = charges[charges["issued_at"] <= as_of]
        if book.empty and charges.empty:
            continue
        adjustments = ledger.read_adjustments_for(engine, pd.concat([book, charges[["invoice_number"]]]))
        adjustments = adjustments[adjustments["created_at"] <= as_of]
        _, recomputed, _ = recompute_billable(engine, first, last, as_of, registry)
        per_order = book[book["invoice_kind"] != MONTHLY_INVOICE]
        offenders = pd.concat([validate_invoice_amounts(per_order, adjustments, recomputed),
                               charge_amount_problems(charges, adjustments, recomputed)], ignore_index=True)  # fmt: skip
        # A difference exactly covered by adjustments awaiting review is known and visible in the
        # report; it is not a ledger error (it becomes one if a stale adjustment gets approved).
        pending = adjustments[adjustments["status"] == PENDING_REVIEW].groupby(["invoice_number", "order_id"])["delta_cents"].sum()
        waiting = pd.Series(pending.reindex(pd.MultiIndex.from_frame(offenders[["invoice_number", "order_id"]])).to_numpy(),
                            index=offenders.index)  # fmt: skip
        awaiting = waiting.eq(offenders["difference_cents"]) & offenders["problem"].eq(AMOUNT_MISMATCH)
        found += [offenders[~awaiting], ledger.inconsistent_invoices(engine, book)]
        checked, awaiting_review = checked + len(book) + len(charges), awaiting_review + int(awaiting.sum())
    return _result(
        _concat(found),
        ["invoice_number", "tenant", "order_id", "issued_cents", "applied_cents", "recomputed_cents", "difference_cents",
         "lines_cents", "problem"],
        {"invoices_checked": dg.MetadataValue.int(checked), "awaiting_review": dg.MetadataValue.int(awaiting_review)},
    )  # fmt: skip


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Offenders found chunk by chunk, as one frame (an empty one with an invoice_number column)."""
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"invoice_number": pd.Series(dtype=object)})


def _month_batches(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    """The (tenant, invoice_month) pairs the run's invoices belong to - every pair of the ledger
    without a partition (ledger_audit_job) - one invoice month at a time, so a year-long backfill
    or a whole-ledger audit holds one month of invoices at once."""
    engine = warehouse.get_engine()
    days = run_days(context)
    if days is None:
        keys = ledger.tenant_months(engine)
    else:
        keys = sorted({key for first, last in day_chunks(days[0], days[1], warehouse.chunk_days)
                       for key in touched_months(ledger.read_invoices(engine, first=first, last=last))})  # fmt: skip
    months = sorted({month for _, month in keys})
    return engine, [[key for key in keys if key[1] == month] for month in months]


@dg.asset_check(**CHECK, description="Invoice numbers are well-formed, unique and gapless per tenant "
                "and month (the tenant-months the run touched; whole ledger in ledger_audit_job).")  # fmt: skip
def invoice_numbers_unique_and_gapless(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine, batches = _month_batches(context, warehouse)
    found, checked = [], 0
    for keys in batches:
        book = invoices_of_months(engine, keys, ["tenant", "order_id", "invoice_number", "invoice_date"])
        found.append(validate_invoice_numbers(book))
        checked += len(book)
    return _result(_concat(found), ["invoice_number", "tenant", "order_id", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(checked)})  # fmt: skip


@dg.asset_check(**CHECK, description="Exactly one invoice per billable, not-held order and none for "
                "orders that are not billable (run's cohort days).")  # fmt: skip
def one_invoice_per_billable_order(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.AssetCheckResult:
    engine, chunks = _run_chunks(context, warehouse)
    as_of = clock.as_of_for(context.op_execution_context)
    registry = tenant_registry.get_registry()
    found, checked, due = [], 0, 0
    for first, last in chunks:
        book = ledger.read_invoices(engine, first=first, last=last)
        billable, _, _ = recompute_billable(engine, first, last, as_of, registry)
        # An order that became billable after the run's evaluation time is not due an invoice yet.
        billable = billable[billable["billable_at"] <= as_of]
        # A `monthly` tenant's orders are due a charge on its monthly invoice, not an invoice of their
        # own (checked on monthly_statements, which issues it); here: each charge once, on an
        # invoice of the ledger, for a billable order, and never beside a per-order invoice.
        charges = ledger.read_charges(engine, first, last)
        per_order = book[book["invoice_kind"] != MONTHLY_INVOICE]
        offenders = validate_invoice_coverage(per_order, billable)
        charged = set(zip(charges["tenant"], charges["order_id"]))
        offenders = offenders[~(offenders["problem"].eq(MISSING_INVOICE)
                                & (offenders["tenant"].isin(registry.monthly_tenants())
                                   | pd.Series([k in charged for k in zip(offenders["tenant"], offenders["order_id"])],
                                               index=offenders.index, dtype=bool)))]  # fmt: skip
        referenced = ledger.invoices_by_number(engine, list(charges["invoice_number"]))
        collide = ledger.invoices_of_orders(engine, charges[["tenant", "order_id"]])
        offenders = pd.concat([offenders, validate_charge_coverage(charges, pd.concat([referenced, collide]).drop_duplicates("invoice_number"), billable)],
                              ignore_index=True)  # fmt: skip
        # An invoice issued after the run's evaluation time (a backfill with an older as_of) cannot be
        # judged "unbillable" by what was known then; it still counts as the order's invoice.
        later = set(book.loc[book["issued_at"] > as_of, "invoice_number"])
        found.append(offenders[~(offenders["problem"].eq(UNBILLABLE_ORDER) & offenders["invoice_number"].isin(later))])
        checked, due = checked + len(book) + len(charges), due + (int(billable["billable"].sum()) if len(billable) else 0)
    return _result(_concat(found), ["invoice_number", "tenant", "order_id", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(checked), "billable_orders": dg.MetadataValue.int(due)})  # fmt: skip


@dg.asset_check(**CHECK, description="due_date = invoice_date + payment terms (the tenant-months the run "
                "touched; whole ledger in ledger_audit_job).")  # fmt: skip
def invoice_due_dates(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, tenant_registry: TenantRegistryResource
) -> dg.AssetCheckResult:
    engine, batches = _month_batches(context, warehouse)
    registry = tenant_registry.get_registry()
    found, checked = [], 0
    for keys in batches:
        book = invoices_of_months(engine, keys, ["tenant", "order_id", "invoice_number", "invoice_date", "due_date",
                                                 "payment_terms_days"])  # fmt: skip
        found.append(validate_due_dates(book, registry))
        checked += len(book)
    return _result(_concat(found), ["invoice_number", "tenant", "order_id", "invoice_date", "due_date", "expected_due_date"],
                   {"invoices_checked": dg.MetadataValue.int(checked)})  # fmt: skip


@dg.asset_check(**CHECK, description="Invoice amounts and line amounts are >= 0 (the tenant-months the "
                "run touched; whole ledger in ledger_audit_job).")  # fmt: skip
def invoice_amounts_non_negative(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine, batches = _month_batches(context, warehouse)
    found, checked = [], 0
    for keys in batches:
        book = invoices_of_months(engine, keys, ["tenant", "order_id", "invoice_number", "amount_cents"])
        lines = lines_of(engine, list(book["invoice_number"]), ["tenant", "order_id", "invoice_number", "kind", "amount_cents"])
        offenders = validate_amounts_non_negative(book, lines.drop(columns="invoice_number"))
        # Lines come back without their number from the domain function: put it back for the table.
        if len(offenders) and offenders["invoice_number"].isna().any():
            numbers = lines.drop_duplicates(["tenant", "order_id"]).set_index(["tenant", "order_id"])["invoice_number"]
            index = pd.MultiIndex.from_frame(offenders[["tenant", "order_id"]])
            offenders["invoice_number"] = offenders["invoice_number"].fillna(
                pd.Series(numbers.reindex(index).to_numpy(), index=offenders.index))
        found.append(offenders)
        checked += len(book)
    return _result(_concat(found), ["invoice_number", "tenant", "order_id", "amount_cents", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(checked)})


@dg.asset_check(**CHECK, description="Row-level lineage: every invoice line's (per-order or monthly) quantity "
                "equals its linked counted events and every line links what it must; every note links its "
                "adjustment's events (month-close notes none); every billable event of an invoiced or charged "
                "order is linked to exactly one line, charge or note (run's cohort days; whole ledger in "
                "ledger_audit_job).")  # fmt: skip
def invoice_lines_match_their_events(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, clock: ClockResource
) -> dg.AssetCheckResult:
    engine, chunks = _run_chunks(context, warehouse)
    as_of = clock.as_of_for(context.op_execution_context)
    found, checked, links = [], 0, 0
    for first, last in chunks:
        book = ledger.read_invoices(engine, first=first, last=last)
        book = book[book["issued_at"] <= as_of]  # what was known at the run's evaluation time
        offenders, linked = lineage_problems(engine, book, first, last, as_of)
        found.append(offenders)
        checked, links = checked + len(book), links + linked
    return _result(_concat(found), ["invoice_number", "note_number", "tenant", "order_id", "line_no", "kind", "quantity",
                                    "linked_events", "source", "event_id", "event_type", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(checked), "links_checked": dg.MetadataValue.int(links)})  # fmt: skip
