"""Backfill benchmark: a 90-day single-run backfill through Dagster against the same calls made directly.

    .venv/bin/python bench/backfill.py --tenants 2 --days 90 --orders-per-day 300
    .venv/bin/python bench/backfill.py --days 3 --orders-per-day 20       # quick

The same simulated events are written (bench/_bench.py `load_events`) into two fresh warehouses.

- Dagster: one run over all days (the tags of a single-run backfill, as of the day after the
  last day) of every daily asset of the order, exception and billing paths as their jobs define
  them (the union of `order_processing_job`, `exception_management_job` and `billing_job`), with
  the asset checks those jobs run, in a child process; per-step times from the run's event log.
- Direct: the same domain/service/warehouse calls the asset bodies make - the same reads, rules
  and partition writes, the invoice ledger and documents - in one Python loop over the same
  assets and days, no Dagster, no checks, no metadata.

Afterwards the derived tables of both warehouses are compared (a digest of every row, run ids
and write times left out): they must be identical, or the direct loop is not doing the same work
and the script fails. Prints both, per asset, and `dagster/direct = X.XX (target <= 1.50)`.
A temporary SQLite warehouse by default; `--database-url` names a Postgres server (connect as an
administrator): throwaway databases `e2a_bench_<random>` are created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Callable

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import (  # noqa: E402
    Parser,
    bench_tenants,
    load_events,
    positive_int,
    run_job,
    scratch_warehouse,
    settings_for,
    table_digests,
)

START = dt.date(2025, 3, 1)
JOBS = ("order_processing_job", "exception_management_job", "billing_job")
TARGET = 1.5


def dagster_selection() -> list[str]:
    """The daily asset keys of JOBS, as jobs.py selects them from the cadence table."""
    import dagster as dg

    from e2a_assets.definitions import ASSET_MODULES
    from e2a_assets.domain.cadence import CADENCES
    from e2a_assets.jobs import selected_keys

    assets = dg.load_assets_from_modules(ASSET_MODULES)
    keys = {k.to_user_string() for c in CADENCES if c.job in JOBS for k in selected_keys(c, assets)}
    return sorted(keys)


def direct_steps(engine, settings, first: dt.date, last: dt.date, as_of: pd.Timestamp) -> dict[str, Callable[[], None]]:  # noqa: ANN001
    """name -> the asset body's reads, rules and writes over first..last, in dependency order."""
    from e2a_assets.assets.exceptions import _pattern_window
    from e2a_assets.documents.invoices import lines_for, missing_documents, write_invoice_documents
    from e2a_assets.domain.billing import PRICE_COLUMNS, build_completed_orders, price_orders
    from e2a_assets.domain.exception_patterns import build_insights, build_patterns, in_pattern_window
    from e2a_assets.domain.exceptions import build_exceptions, plan_actions, prioritize
    from e2a_assets.domain.orders import build_orders
    from e2a_assets.domain.sla import build_order_sla, build_sla_metrics
    from e2a_assets.domain.statements import build_billing_report, compute_adjustments
    from e2a_assets.intake.landing import cohort_events
    from e2a_assets.services import billing_reads as reads
    from e2a_assets.services.billing import recompute_billable, reprice_invoiced
    from e2a_assets.warehouse import ledger, schema
    from e2a_assets.warehouse.frames import read_days
    from e2a_assets.warehouse.frames import replace_partition as replace
    from e2a_assets.warehouse.outbox import sync_actions

    registry = settings.registry()
    policies = registry.policy_frame()
    run_id = "direct-loop"
    invoice_dir = str(settings.invoice_dir)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]

    def rd(table, column="cohort_day"):  # noqa: ANN001, ANN202
        return read_days(engine, table, column, first, last)

    def webhook_events():  # noqa: ANN202
        replace(engine, schema.webhook_events, cohort_events(engine, first, last), "cohort_day", first, last)

    def orders():  # noqa: ANN202
        events = rd(schema.webhook_events)
        replace(engine, schema.orders, build_orders(events[events["occurred_at"] <= as_of], as_of, policies),
                "cohort_day", first, last)

    def order_sla():  # noqa: ANN202
        replace(engine, schema.order_sla, build_order_sla(rd(schema.orders), as_of, policies), "cohort_day", first, last)

    def exceptions():  # noqa: ANN202
        frame = build_exceptions(rd(schema.webhook_events), rd(schema.orders), rd(schema.order_sla), as_of, policies)
        replace(engine, schema.exceptions, frame, "cohort_day", first, last)

    def sla_metrics():  # noqa: ANN202
        frame = build_sla_metrics(rd(schema.orders), rd(schema.order_sla), rd(schema.exceptions), as_of=as_of,
                                  policies=policies)
        replace(engine, schema.sla_metrics, frame, "day", first, last)

    def completed_orders():  # noqa: ANN202
        replace(engine, schema.completed_orders, build_completed_orders(rd(schema.orders), as_of),
                "cohort_day", first, last)

    def exception_priorities():  # noqa: ANN202
        replace(engine, schema.exception_priorities, prioritize(rd(schema.exceptions), as_of, policies),
                "cohort_day", first, last)

    def exception_actions():  # noqa: ANN202
        sync_actions(engine, plan_actions(rd(schema.exceptions)), first, last, as_of)
        rd(schema.exception_actions)  # the asset reads the outbox back for its figures

    def exception_patterns():  # noqa: ANN202
        window = _pattern_window(engine, first, last)
        frame = pd.concat([build_patterns(window, day) for day in days], ignore_index=True)
        replace(engine, schema.exception_patterns, frame, "day", first, last)

    def exception_insights():  # noqa: ANN202
        patterns = rd(schema.exception_patterns, "day")
        window = _pattern_window(engine, first, last)
        parts = [build_insights(patterns[patterns["day"] == day], window[in_pattern_window(window["opened_at"], day).to_numpy()])
                 for day in days]  # fmt: skip
        replace(engine, schema.exception_insights, pd.concat(parts, ignore_index=True), "day", first, last)

    def billable_orders():  # noqa: ANN202
        billable, totals, _ = recompute_billable(engine, first, last, as_of, registry, orders_table=schema.completed_orders)
        frame = billable.merge(totals[["tenant", "order_id", *PRICE_COLUMNS]], how="left", on=["tenant", "order_id"])
        frame["as_of"] = as_of
        replace(engine, schema.billable_orders, frame, "cohort_day", first, last)

    def invoice_adjustments():  # noqa: ANN202
        issued = ledger.read_invoices(engine, first=first, last=last)
        recomputed = reprice_invoiced(rd(schema.billable_orders), issued, registry)
        existing = ledger.read_adjustments_for(engine, issued)
        later = set(issued.loc[issued["issued_at"] > as_of, "invoice_number"])
        later |= set(existing.loc[existing["created_at"] > as_of, "invoice_number"])
        damaged = set(ledger.inconsistent_invoices(engine, issued)["invoice_number"])
        candidates = issued[~issued["invoice_number"].isin(later | damaged)]
        new = compute_adjustments(candidates, recomputed, existing, registry, as_of)
        ledger.record_adjustments(engine, new, issued[["tenant", "invoice_number", "cohort_day"]], run_id)

    def invoices():  # noqa: ANN202
        stored = rd(schema.billable_orders)
        ready = stored[stored["billable"] & (stored["billable_at"] <= as_of)]
        totals, lines = price_orders(ready.drop(columns=[*PRICE_COLUMNS, "as_of"]), registry)
        candidates = totals.merge(ready[["tenant", "order_id", "billable_basis"]], on=["tenant", "order_id"])
        issued, issued_lines = ledger.issue_invoices(engine, candidates, lines, registry, run_id, as_of)
        write_invoice_documents(invoice_dir, issued, issued_lines, registry)
        book = ledger.read_invoices(engine, first=first, last=last)
        missing = book[missing_documents(invoice_dir, book).to_numpy()]
        if len(missing):
            write_invoice_documents(invoice_dir, missing, lines_for(engine, list(missing["invoice_number"])), registry)

    def billing_report():  # noqa: ANN202
        book = reads.invoices_dated(engine, first, last)
        held = reads.held_backlog(engine, last)
        adjustments = reads.adjustments_for_report(engine, first, last, book)
        earlier = reads.ledger_states(engine, as_of, before=first)
        parts = [build_billing_report(book, held, adjustments, as_of, day, earlier) for day in days]
        frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
        replace(engine, schema.billing_report, frame, "day", first, last)

    return {f.__name__: f for f in (webhook_events, orders, order_sla, exceptions, sla_metrics, completed_orders,
                                    exception_priorities, exception_actions, exception_patterns, exception_insights,
                                    billable_orders, invoice_adjustments, invoices, billing_report)}


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog=Path(__file__).name, description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--tenants", type=positive_int, default=2, help="tenants of policies/tenants.yaml (default 2)")
    parser.add_argument("--days", type=positive_int, default=90, help="days of the backfill (default 90)")
    parser.add_argument("--orders-per-day", type=positive_int, default=300, help="per tenant (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="Postgres admin URL (default: temporary SQLite warehouses)")
    args = parser.parse_args(argv)

    from e2a_assets.warehouse.engine import make_engine

    first, last = START, START + dt.timedelta(days=args.days - 1)
    as_of = pd.Timestamp(last + dt.timedelta(days=1), tz="UTC")
    selection = dagster_selection()
    with scratch_warehouse(args.database_url) as (url_a, work_a), scratch_warehouse(args.database_url) as (url_b, work_b):
        tenants = bench_tenants(work_a, url_a, args.tenants)
        bench_tenants(work_b, url_b, args.tenants)
        loaded = load_events(url_a, tenants, first, args.days, args.orders_per_day, args.seed)
        load_events(url_b, tenants, first, args.days, args.orders_per_day, args.seed)

        run = run_job(url_a, work_a, "bench_backfill_job", first, last, as_of, selection=selection)

        engine = make_engine(url_b)
        direct: dict[str, float] = {}
        t0, c0 = time.perf_counter(), time.process_time()
        for name, step in direct_steps(engine, settings_for(url_b, work_b), first, last, as_of).items():
            t1 = time.perf_counter()
            step()
            direct[name] = time.perf_counter() - t1
        direct_total, direct_cpu = time.perf_counter() - t0, time.process_time() - c0

        digests = table_digests(make_engine(url_a), make_engine(url_b), list(direct))
        different = [name for name, (a, b) in digests.items() if a != b]
        compared = sum(int(a.rsplit(":", 1)[1]) for a, _ in digests.values())
        engine.dispose()
        backend = url_a.split(":", 1)[0]
    if different:
        raise SystemExit(f"error: the direct loop wrote different rows than the Dagster run in: {', '.join(different)}")

    checks = {k: v for k, v in run.steps.items() if k not in direct}
    width = max(len(k) for k in run.steps) + 2
    print(f"backfill   {args.tenants} tenants x {args.days} days x {args.orders_per_day} orders/day: "
          f"{loaded.events:,} events ({backend})")
    print(f"derived tables identical in both warehouses ({len(digests)} tables, {compared:,} rows)")
    print(f"{'asset':{width}} {'dagster':>9} {'direct':>9} {'ratio':>6}")
    for name, seconds in direct.items():
        d = run.steps.get(name, 0.0)
        print(f"{name:{width}} {d:9.2f} {seconds:9.2f} {d / seconds if seconds else float('nan'):6.2f}")
    print(f"{'asset steps':{width}} {sum(run.steps[k] for k in direct if k in run.steps):9.2f} {direct_total:9.2f}")
    print(f"{'checks (%d steps)' % len(checks):{width}} {sum(checks.values()):9.2f}")
    overhead = run.seconds - sum(run.steps.values())
    print(f"{'run overhead':{width}} {overhead:9.2f}")
    print(f"{'total':{width}} {run.seconds:9.2f} {direct_total:9.2f}   peak RSS {run.peak_rss_mb:.0f} MB (Dagster run)")
    print(f"CPU time: dagster {run.cpu_seconds:.2f} s, direct {direct_cpu:.2f} s, ratio {run.cpu_seconds / direct_cpu:.2f} "
          "(less moved by other load than the wall times)")
    print(f"dagster/direct = {run.seconds / direct_total:.2f} (target <= {TARGET:.2f})")


if __name__ == "__main__":
    main()
