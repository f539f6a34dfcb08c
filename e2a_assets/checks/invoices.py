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

from e2a_assets.domain.invoice_validation import (
    AMOUNT_MISMATCH,
    UNBILLABLE_ORDER,
    validate_amounts_non_negative,
    validate_due_dates,
    validate_invoice_amounts,
    validate_invoice_coverage,
    validate_invoice_numbers,
)
from e2a_assets.domain.statements import PENDING_REVIEW
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.resources import ClockResource, TenantRegistryResource, WarehouseResource
from e2a_assets.services.billing import recompute_billable
from e2a_assets.services.ledger_scope import invoices_of_months, lines_of, touched_months
from e2a_assets.warehouse import ledger

SHOWN_ROWS = 50
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


def _run_ledger(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, clock: ClockResource):
    """(engine, as_of, days, invoices) for a check judging the run's cohort days; without a
    partition, the days the ledger covers (None for an empty ledger)."""
    engine = warehouse.get_engine()
    as_of = clock.as_of_for(context.op_execution_context)
    days = run_days(context)
    book = ledger.read_invoices(engine, first=days[0] if days else None, last=days[1] if days else None)
    if days is None and len(book):
        days = (min(book["cohort_day"]), max(book["cohort_day"]))
    return engine, as_of, days, book


def _result(offenders: pd.DataFrame, columns: list[str], extra: dict | None = None) -> dg.AssetCheckResult:
    shown = offenders[[c for c in columns if c in offenders.columns]].head(SHOWN_ROWS)
    table = shown.to_markdown(index=False) if len(shown) else "_none_"
    if len(offenders) > SHOWN_ROWS:
        table += f"\n\n_first {SHOWN_ROWS} of {len(offenders)}_"
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
    engine, as_of, days, book = _run_ledger(context, warehouse, clock)
    # Only what was known at the run's evaluation time: later invoices/adjustments are not judged.
    book = book[book["issued_at"] <= as_of]
    adjustments = ledger.read_adjustments_for(engine, book)
    adjustments = adjustments[adjustments["created_at"] <= as_of]
    if book.empty:
        return _result(book.assign(problem=None), ["invoice_number"], {"invoices_checked": dg.MetadataValue.int(0)})
    _, recomputed, _ = recompute_billable(engine, days[0], days[1], as_of, tenant_registry.get_registry())
    offenders = validate_invoice_amounts(book, adjustments, recomputed)
    # A difference exactly covered by adjustments awaiting review is known and visible in the
    # report; it is not a ledger error (it becomes one if a stale adjustment gets approved).
    pending = adjustments[adjustments["status"] == PENDING_REVIEW].groupby("invoice_number")["delta_cents"].sum()
    awaiting = offenders["invoice_number"].map(pending).eq(offenders["difference_cents"]) & offenders["problem"].eq(AMOUNT_MISMATCH)
    offenders = pd.concat([offenders[~awaiting], ledger.inconsistent_invoices(engine, book)], ignore_index=True)
    return _result(
        offenders,
        ["invoice_number", "tenant", "order_id", "issued_cents", "applied_cents", "recomputed_cents", "difference_cents",
         "lines_cents", "problem"],
        {"invoices_checked": dg.MetadataValue.int(len(book)),
         "awaiting_review": dg.MetadataValue.int(int(awaiting.sum()))},
    )  # fmt: skip


def _scope(context: dg.AssetCheckExecutionContext, engine) -> list[tuple[str, str]] | None:
    """The (tenant, invoice_month) pairs of the run's invoices; None (whole ledger) without a partition."""
    days = run_days(context)
    if days is None:
        return None
    return touched_months(ledger.read_invoices(engine, first=days[0], last=days[1]))


@dg.asset_check(**CHECK, description="Invoice numbers are well-formed, unique and gapless per tenant "
                "and month (the tenant-months the run touched; whole ledger in ledger_audit_job).")  # fmt: skip
def invoice_numbers_unique_and_gapless(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    book = invoices_of_months(engine, _scope(context, engine), ["tenant", "order_id", "invoice_number", "invoice_date"])
    offenders = validate_invoice_numbers(book)
    return _result(offenders, ["invoice_number", "tenant", "order_id", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(len(book))})  # fmt: skip


@dg.asset_check(**CHECK, description="Exactly one invoice per billable, not-held order and none for "
                "orders that are not billable (run's cohort days).")  # fmt: skip
def one_invoice_per_billable_order(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.AssetCheckResult:
    engine, as_of, days, book = _run_ledger(context, warehouse, clock)
    if days is None:
        return _result(book.assign(problem=None), ["invoice_number"])
    billable, _, _ = recompute_billable(engine, days[0], days[1], as_of, tenant_registry.get_registry())
    # An order that became billable after the run's evaluation time is not due an invoice yet.
    billable = billable[billable["billable_at"] <= as_of]
    offenders = validate_invoice_coverage(book, billable)
    # An invoice issued after the run's evaluation time (a backfill with an older as_of) cannot be
    # judged "unbillable" by what was known then; it still counts as the order's invoice.
    later = set(book.loc[book["issued_at"] > as_of, "invoice_number"])
    offenders = offenders[~(offenders["problem"].eq(UNBILLABLE_ORDER) & offenders["invoice_number"].isin(later))]
    return _result(offenders, ["invoice_number", "tenant", "order_id", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(len(book)),
                    "billable_orders": dg.MetadataValue.int(int(billable["billable"].sum()) if len(billable) else 0)})  # fmt: skip


@dg.asset_check(**CHECK, description="due_date = invoice_date + payment terms (the tenant-months the run "
                "touched; whole ledger in ledger_audit_job).")  # fmt: skip
def invoice_due_dates(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, tenant_registry: TenantRegistryResource
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    book = invoices_of_months(engine, _scope(context, engine),
                              ["tenant", "order_id", "invoice_number", "invoice_date", "due_date", "payment_terms_days"])  # fmt: skip
    offenders = validate_due_dates(book, tenant_registry.get_registry())
    return _result(offenders, ["invoice_number", "tenant", "order_id", "invoice_date", "due_date", "expected_due_date"],
                   {"invoices_checked": dg.MetadataValue.int(len(book))})  # fmt: skip


@dg.asset_check(**CHECK, description="Invoice amounts and line amounts are >= 0 (the tenant-months the "
                "run touched; whole ledger in ledger_audit_job).")  # fmt: skip
def invoice_amounts_non_negative(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    keys = _scope(context, engine)
    book = invoices_of_months(engine, keys, ["tenant", "order_id", "invoice_number", "amount_cents"])
    lines = lines_of(engine, None if keys is None else list(book["invoice_number"]),
                     ["tenant", "order_id", "invoice_number", "kind", "amount_cents"])
    offenders = validate_amounts_non_negative(book, lines.drop(columns="invoice_number"))
    # Lines come back without their number from the domain function: put it back for the table.
    if len(offenders) and offenders["invoice_number"].isna().any():
        numbers = lines.drop_duplicates(["tenant", "order_id"]).set_index(["tenant", "order_id"])["invoice_number"]
        keys = pd.MultiIndex.from_frame(offenders[["tenant", "order_id"]])
        offenders["invoice_number"] = offenders["invoice_number"].fillna(pd.Series(numbers.reindex(keys).to_numpy(), index=offenders.index))
    return _result(offenders, ["invoice_number", "tenant", "order_id", "amount_cents", "problem"],
                   {"invoices_checked": dg.MetadataValue.int(len(book))})  # fmt: skip
