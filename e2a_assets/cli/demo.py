"""`e2a demo`: every registry tenant (both billing modes) with realistic traffic, every asset
materialised, a summary per tenant."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import click
import dagster as dg
import pandas as pd
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from e2a_assets.cli.db import prepared_warehouse
from e2a_assets.services.rate_cards import verify_rate_cards
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.settings import Settings
from e2a_assets.simulator.runner import ingest_deliveries
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_days



def materialize_range(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    first: str,
    last: str,
    as_of: pd.Timestamp,
    extra_tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of a partitioned job over a range of partitions, recorded in `instance`."""
    job = defs.resolve_job_def(job_name)
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last, AS_OF_TAG: as_of.isoformat(), **(extra_tags or {})}
    # Step-level DEBUG lines belong in the UI's run view, not on the demo's terminal.
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = job.execute_in_process(instance=instance, tags=tags, run_config=run_config, raise_on_error=False)
    if not result.success:
        failures = [
            f"{e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[-1]}"
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and getattr(e.event_specific_data, "error", None)
        ]
        raise click.ClickException(f"{job_name} failed for {first}..{last}: {'; '.join(failures) or 'see the run in the UI'}")
    return result


def tenant_summary(settings: Settings, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Per tenant over the demo's days: billing mode, orders, completed and stalled, SLA compliance,
    exceptions, and billing (per-order invoices issued, orders charged on a monthly invoice or
    pending until it is issued, completed orders held by an open blocking exception, $ invoiced
    or charged)."""
    engine = make_engine(settings.database_url)
    orders = read_days(engine, schema.orders, "cohort_day", first, last)
    metrics = read_days(engine, schema.sla_metrics, "day", first, last)
    exceptions = read_days(engine, schema.exceptions, "cohort_day", first, last)
    if orders.empty:
        return pd.DataFrame()
    summary = orders.groupby("tenant").agg(orders=("order_id", "size"), stalled=("stalled", "sum"))
    # Completed = reached a billable state (completed_orders): each is invoiced, charged, pending or held.
    completed = read_days(engine, schema.completed_orders, "cohort_day", first, last)
    summary.insert(1, "completed", completed.groupby("tenant").size())
    weights = metrics.assign(w=metrics["orders"].clip(lower=1))
    for clock in ("pick", "delivery"):
        col = f"{clock}_compliance"
        summary[f"{clock} SLA %"] = (
            weights.assign(x=weights[col] * weights["w"]).groupby("tenant")["x"].sum()
            / weights.groupby("tenant")["w"].sum()
            * 100
        ).round(1)
    summary["exceptions"] = exceptions.groupby("tenant").size()
    summary["open"] = exceptions[exceptions["status"] == "OPEN"].groupby("tenant").size()
    # Per-order invoices; a `monthly` tenant's orders are charged on its monthly invoice (DOMAIN
    # §8.3) once the month's grace period is over, and wait for it ("pending") until then.
    invoices = read_days(engine, schema.invoices, "cohort_day", first, last)
    invoices = invoices[invoices["invoice_kind"] != schema.MONTHLY_INVOICE]
    charges = read_days(engine, schema.order_charges, "cohort_day", first, last)
    billable = read_days(engine, schema.billable_orders, "cohort_day", first, last)
    monthly = settings.registry().monthly_tenants()
    summary.insert(0, "mode", ["monthly" if t in monthly else "per_order" for t in summary.index])
    summary["invoices"] = invoices.groupby("tenant").size()
    summary["charged"] = charges.groupby("tenant").size()
    done = set(zip(charges["tenant"], charges["order_id"])) | set(zip(invoices["tenant"], invoices["order_id"]))
    settled = pd.Series([k in done for k in zip(billable["tenant"], billable["order_id"])], index=billable.index, dtype=bool)
    waiting = billable[billable["billable"].astype(bool) & billable["tenant"].isin(monthly) & ~settled]
    summary["pending"] = waiting.groupby("tenant").size()
    summary["held"] = billable[billable["held"].astype(bool)].groupby("tenant").size()
    summary["invoiced $"] = ((invoices.groupby("tenant")["amount_cents"].sum()
                              .add(charges.groupby("tenant")["amount_cents"].sum(), fill_value=0)) / 100).round(2)
    return summary.fillna(0).reset_index()


def print_summary(frame: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == "tenant" else "right")
    def cell(column: str, value) -> str:  # noqa: ANN001
        if isinstance(value, str):
            return value
        if column.endswith("$"):
            return f"{value:,.2f}"
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"

    for row in frame.itertuples(index=False):
        table.add_row(*[cell(str(c), v) for c, v in zip(frame.columns, row)])
    Console(width=max(140, Console().width)).print(table)


def run_demo(settings: Settings, *, days: int, orders_per_day: int, seed: int, echo: Callable[[str], None],
             as_of: pd.Timestamp | None = None) -> None:
    """Simulate the `days` days before `as_of` (default: now), materialise them as of `as_of`, summarise."""
    from e2a_assets.definitions import build_definitions

    as_of = (as_of if as_of is not None else pd.Timestamp.now(tz="UTC")).floor("min")
    today = as_of.date()
    first = today - dt.timedelta(days=days)
    last = today - dt.timedelta(days=1)
    registry = settings.registry()
    tenants = list(registry.policies)  # every tenant: both billing modes (DOMAIN §8.3)

    engine = prepared_warehouse(settings)
    verify_rate_cards(engine, registry)  # a changed rate card version is refused before any run, in one line
    echo(f"Simulating {len(tenants)} tenants x {days} days x {orders_per_day} orders/day from {first} ...")
    deliveries = generate(tenants, days, orders_per_day, seed, first)
    with Progress() as progress:
        task = progress.add_task("ingesting", total=len(deliveries))
        stats = ingest_deliveries(
            Ingestor(engine), deliveries, on_progress=lambda done: progress.update(task, completed=done)
        )
    echo(f"  {stats.stored} events stored, {stats.duplicate} duplicates, {stats.dead_letter} dead letters")
    if stats.duplicate and stats.stored == 0:
        echo("  (the same traffic as an earlier demo: the event log keeps each event once; the assets below "
             "are re-evaluated as of now)")

    echo(f"Materialising every asset for {first}..{last} (as of {as_of.isoformat()}) ...")
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    result = materialize_range(instance, defs, "full_operations_job", first.isoformat(), last.isoformat(), as_of)
    echo(f"  run {result.run_id}: {len(result.get_asset_materialization_events())} materialisations")
    months = sorted({first.replace(day=1), last.replace(day=1)})
    statements = materialize_range(instance, defs, "monthly_statements_job", months[0].isoformat(),
                                   months[-1].isoformat(), as_of)
    echo(f"  run {statements.run_id}: monthly statements for {', '.join(m.strftime('%Y-%m') for m in months)}")
    print_summary(tenant_summary(settings, first, last), f"e2a demo, {first} .. {last}")
