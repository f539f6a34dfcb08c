"""Backfill benchmark: a 90-day single-run backfill through Dagster against the same calls made directly.

    .venv/bin/python bench/backfill.py --tenants 2 --days 90 --orders-per-day 300
    .venv/bin/python bench/backfill.py --days 3 --orders-per-day 20       # quick

The same simulated events are written (bench/_bench.py `load_events`) into two fresh warehouses.

- Dagster: one run over all days (the tags of a single-run backfill, as of the day after the
  last day) of every daily asset of the order, exception and billing paths as their jobs define
  them (the union of `order_processing_job`, `exception_management_job` and `billing_job`), with
  the asset checks those jobs run, in a child process; per-step times from the run's event log.
- Direct: the functions of `e2a_assets.services.refresh` that the assets run for each chunk of
  days (the same reads, rules and partition writes, the invoice ledger and documents), called in
  one Python loop over the same assets and chunks, no Dagster, no checks, no per-day metadata.

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
    """name -> the asset's work over first..last, in dependency order: the very functions of
    `e2a_assets.services.refresh` that the asset hands to `materialize_by_chunks`, over the same
    chunks of days (E2A_CHUNK_DAYS), with the same arguments - only Dagster, the per-day figures
    and the checks are left out."""
    from e2a_assets.partitions import day_chunks
    from e2a_assets.services.rate_cards import verify_rate_cards
    from e2a_assets.services.refresh import billing as b
    from e2a_assets.services.refresh import exceptions as e
    from e2a_assets.services.refresh import orders as o

    registry = settings.registry()
    policies = registry.policy_frame()
    run_id = "direct-loop"
    folder = str(settings.invoice_dir)
    issuer = settings.issuer()

    steps = {
        "webhook_events": lambda lo, hi: o.refresh_webhook_events(engine, lo, hi),
        "orders": lambda lo, hi: o.refresh_orders(engine, lo, hi, as_of, policies),
        "order_sla": lambda lo, hi: o.refresh_order_sla(engine, lo, hi, as_of, policies),
        "exceptions": lambda lo, hi: e.refresh_exceptions(engine, lo, hi, as_of, policies),
        "sla_metrics": lambda lo, hi: o.refresh_sla_metrics(engine, lo, hi, as_of, policies),
        "completed_orders": lambda lo, hi: o.refresh_completed_orders(engine, lo, hi, as_of),
        "exception_priorities": lambda lo, hi: e.refresh_exception_priorities(engine, lo, hi, as_of, policies),
        "exception_actions": lambda lo, hi: e.refresh_exception_actions(engine, lo, hi, as_of),
        "exception_patterns": lambda lo, hi: e.refresh_exception_patterns(engine, lo, hi),
        "exception_insights": lambda lo, hi: e.refresh_exception_insights(engine, lo, hi),
        "billable_orders": lambda lo, hi: b.refresh_billable_orders(engine, lo, hi, as_of, registry),
        "invoice_adjustments": lambda lo, hi: b.record_invoice_adjustments(engine, lo, hi, as_of, registry, run_id),
        "invoices": lambda lo, hi: b.issue_invoices(engine, lo, hi, as_of, registry, run_id, folder, issuer),
        "billing_report": lambda lo, hi: b.refresh_billing_report(engine, lo, hi, as_of),
    }

    # The billing assets take their registry through `billing_registry`, which first verifies the
    # rate card versions recorded on the ledger, once per asset.
    verified = {"billable_orders", "invoice_adjustments", "invoices"}

    def over_chunks(name, step):  # noqa: ANN001, ANN202
        def run() -> None:
            if name in verified:
                verify_rate_cards(engine, registry)
            for lo, hi in day_chunks(first, last, settings.chunk_days):
                step(lo, hi)
        return run

    return {name: over_chunks(name, step) for name, step in steps.items()}


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
