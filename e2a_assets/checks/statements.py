"""Statement reconciliation (DOMAIN §8.2) as blocking asset checks on `monthly_statements`.

Both run right after `monthly_statements` in the same run and judge the months of the run (its
monthly partition or range; every month with a statement when launched without one) against the
ledger itself, not against the figures the asset computed:

- `statement_reconciles_with_ledger`: each statement's net due = Σ invoices dated in the month (by
  its as_of day) + Σ debit notes − Σ credit notes dated in the month (issued by its as_of); for a
  closed month, its discount and minimum top-up equal the month-close notes issued for them;
- `monthly_invoices_hold_their_charges` (DOMAIN §8.3): each monthly invoice dated in those months
  has per-order lines adding up to Σ of its charges, and every billable, not held order its run
  priced by the issue time (dated up to the month end, invoiced nowhere) is charged;
- `note_numbers_unique_and_gapless`: the notes dated in those months have well-formed, unique,
  gapless numbers per tenant, kind and month.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from e2a_assets.checks.invoices import run_days
from e2a_assets.checks.offenders import offenders_markdown
from e2a_assets.domain.notes import month_end, validate_note_numbers, validate_statement_reconciliation
from e2a_assets.domain.monthly import monthly_statement_figures, validate_monthly_invoices
from e2a_assets.resources import TenantRegistryResource, WarehouseResource
from e2a_assets.services.ledger_scope import lines_of
from e2a_assets.services import billing_reads as reads
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.schema import MONTHLY_INVOICE
from e2a_assets.warehouse.frames import read_table

CHECK = dict(asset="monthly_statements", blocking=True)


def _months(context: dg.AssetCheckExecutionContext, engine) -> tuple[dt.date, dt.date] | None:
    """First day of the run's first month and last day of its last month; without a partition,
    the months that have statements (None when there are none)."""
    days = run_days(context)
    if days is None:
        st = read_table(engine, schema.monthly_statements, columns=["month_start"])
        if st.empty:
            return None
        days = (min(st["month_start"]), max(st["month_start"]))
    return days[0].replace(day=1), month_end(days[1])


def _result(offenders: pd.DataFrame, columns: list[str], checked: int) -> dg.AssetCheckResult:
    table = offenders_markdown(offenders, columns)
    return dg.AssetCheckResult(
        passed=offenders.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"offending_rows": dg.MetadataValue.int(len(offenders)), "rows_checked": dg.MetadataValue.int(checked),
                  "offenders": dg.MetadataValue.md(table)},
    )  # fmt: skip


@dg.asset_check(**CHECK, description="Net due = invoices + debit notes − credit notes of the month in the "
                "ledger, and a closed month's discount / top-up equal its month-close notes (run's months).")  # fmt: skip
def statement_reconciles_with_ledger(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                                     tenant_registry: TenantRegistryResource) -> dg.AssetCheckResult:  # fmt: skip
    engine = warehouse.get_engine()
    window = _months(context, engine)
    if window is None:
        return _result(pd.DataFrame(), [], 0)
    first, last = window
    statements = read_table(engine, schema.monthly_statements,
                            [schema.monthly_statements.c.month_start >= first, schema.monthly_statements.c.month_start <= last])  # fmt: skip
    book = reads.invoices_dated(engine, first, last)
    monthly = _monthly_invoices(engine, book)
    offenders = validate_statement_reconciliation(
        statements, book, ledger.read_notes(engine, first, last),
        monthly_statement_figures(monthly["invoices"], monthly["lines"], monthly["charges"]),
        tenant_registry.get_registry().monthly_tenants())  # fmt: skip
    return _result(offenders, ["tenant", "month", "net_due_cents", "ledger_cents", "discount_cents", "noted_discount_cents",
                               "minimum_top_up_cents", "noted_top_up_cents", "problem"], len(statements))  # fmt: skip


@dg.asset_check(**CHECK, description="Credit and debit note numbers are well-formed, unique and gapless per "
                "tenant, kind and month (notes dated in the run's months).")  # fmt: skip
def note_numbers_unique_and_gapless(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    window = _months(context, engine)
    notes = ledger.read_notes(engine, *window) if window else ledger.read_notes(engine)
    return _result(validate_note_numbers(notes), ["tenant", "note_number", "problem"], len(notes))


def _monthly_invoices(engine, book: pd.DataFrame) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    """The monthly invoices of `book`, their lines and their charges."""
    invoices = book[book["invoice_kind"] == MONTHLY_INVOICE]
    numbers = list(invoices["invoice_number"])
    return {"invoices": invoices, "lines": lines_of(engine, numbers, ["invoice_number", "kind", "amount_cents"]),
            "charges": ledger.read_charges(engine, numbers=numbers)}


@dg.asset_check(**CHECK, description="Monthly invoices (DOMAIN §8.3): per-order lines = Σ charges, and every "
                "billable order due on one is charged exactly once (invoices dated in the run's months).")  # fmt: skip
def monthly_invoices_hold_their_charges(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    window = _months(context, engine)
    if window is None:
        return _result(pd.DataFrame(), [], 0)
    monthly = _monthly_invoices(engine, reads.invoices_dated(engine, *window))
    due = []
    for row in monthly["invoices"].itertuples(index=False):
        # Orders the run that issued it saw billable (priced no later than the issue) but left uncharged.
        missed = reads.uncharged_orders(engine, [row.tenant], row.invoice_date, row.issued_at)
        missed = missed[missed["as_of"] <= row.issued_at]
        due.append(missed[["tenant", "order_id"]].assign(invoice_number=row.invoice_number))
    due = pd.concat(due, ignore_index=True) if due else None
    offenders = validate_monthly_invoices(monthly["invoices"], monthly["lines"], monthly["charges"], due)
    return _result(offenders, ["tenant", "invoice_number", "order_id", "charged_cents", "lines_cents", "problem"],
                   len(monthly["invoices"]))  # fmt: skip
