"""Operations group: the daily executive summary of orders, SLAs, exceptions, billing and runs."""

import datetime as dt

import dagster as dg
import pandas as pd
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import or_

from e2a_assets.assets.common import DAILY_FRESHNESS, OPS, number, preview, warehouse_assets
from e2a_assets.assets.ranges import materialize_by_chunks
from e2a_assets.domain.operations import OVERALL, build_operations_summary, summary_markdown
from e2a_assets.resources import ClockResource, TenantRegistryResource, WarehouseResource
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import read_days, read_table, replace_partition

INVOICES_TABLE = "invoices"


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def failed_runs_by_day(instance: dg.DagsterInstance, first: dt.date, last: dt.date) -> dict[dt.date, int]:
    """Failed Dagster runs created on each day (UTC), from the instance's run storage."""
    counts = {}
    day = first
    while day <= last:
        lo, hi = _day_bounds(day)
        records = instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=lo, created_before=hi)
        )
        counts[day] = len(records)
        day += dt.timedelta(days=1)
    return counts


def _exceptions_touching(engine, first: dt.date, last: dt.date) -> pd.DataFrame:  # noqa: ANN001
    """Exceptions opened or resolved in first..last, whatever the cohort day of their order."""
    lo, _ = _day_bounds(first)
    _, hi = _day_bounds(last)
    t = schema.exceptions
    return read_table(engine, t, [or_(t.c.opened_at.between(lo, hi), t.c.resolved_at.between(lo, hi))])


def _actions_requested(engine, first: dt.date, last: dt.date) -> pd.DataFrame:  # noqa: ANN001
    lo, _ = _day_bounds(first)
    _, hi = _day_bounds(last)
    t = schema.exception_actions
    return read_table(engine, t, [t.c.requested_at >= lo, t.c.requested_at < hi])


def read_invoices(engine, first: dt.date, last: dt.date) -> pd.DataFrame | None:  # noqa: ANN001
    """The billing ledger's invoices dated first..last; None while billing is not deployed."""
    table = schema.metadata.tables.get(INVOICES_TABLE)
    if table is None or not {"tenant", "order_id", "invoice_date", "amount_cents"} <= set(table.c.keys()):
        return None
    if not sa_inspect(engine).has_table(INVOICES_TABLE):
        return None
    return read_table(engine, table, [table.c.invoice_date >= first, table.c.invoice_date <= last],
                      columns=["tenant", "order_id", "invoice_date", "amount_cents"])


# The executive summary is refreshed daily.
operations_asset = warehouse_assets("operations", OPS, DAILY_FRESHNESS)


@operations_asset(schema.operations_summary, deps=["sla_metrics", "exceptions", "exception_actions", "invoices"])
def operations_summary(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """The executive summary per tenant and overall for each day: orders, SLA compliance,
    exceptions, automation, invoices and revenue, failed runs; a health status (EXCELLENT, GOOD,
    FAIR, POOR) and recommendations."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    tenants = tenant_registry.get_registry().tenants
    billing = {"included": False}  # whether the chunk's summary includes the invoice ledger

    def step(first, last):  # noqa: ANN001, ANN202
        invoices = read_invoices(engine, first, last)
        billing["included"] = invoices is not None
        frame = build_operations_summary(
            first,
            last,
            sla_metrics=read_days(engine, schema.sla_metrics, "day", first, last),
            exceptions=_exceptions_touching(engine, first, last),
            actions=_actions_requested(engine, first, last),
            invoices=invoices,
            runs_failed=failed_runs_by_day(context.instance, first, last),
            as_of=as_of,
            tenants=tenants,
        )
        replace_partition(engine, schema.operations_summary, frame, "day", first, last)
        return frame

    def figures(frame, day):  # noqa: ANN001, ANN202
        overall = frame[frame["tenant"] == OVERALL]
        newest = overall.iloc[0]
        return {
            "dagster/row_count": number(len(frame)),
            **{c: number(int(newest[c])) for c in ("orders_processed", "orders_completed", "exceptions_opened",
                                                   "exceptions_resolved", "invoices", "runs_failed")},  # fmt: skip
            "revenue": number(int(newest["revenue_cents"]) / 100),
            "fulfilment_compliance_pct": number(100 * newest["fulfilment_compliance"]),
            "delivery_compliance_pct": number(100 * newest["delivery_compliance"]),
            "automation_success_pct": number(100 * newest["automation_success_rate"]),
            "health_score": number(float(newest["health_score"])),
            "status": dg.MetadataValue.text(str(newest["status"])),
            "billing_included": dg.MetadataValue.bool(billing["included"]),
            "report": dg.MetadataValue.md(summary_markdown(frame)),
            "preview": preview(frame, ["tenant", "status", "health_score", "orders_processed", "orders_completed",
                                       "exceptions_opened", "exceptions_resolved", "runs_failed"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="day", chunk_days=warehouse.chunk_days, as_of=as_of)
