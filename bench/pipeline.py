"""Pipeline benchmark: the order-processing assets through Dagster against the scan-and-parse floor.

    .venv/bin/python bench/pipeline.py --tenants 2 --days 14 --orders-per-day 3000
    .venv/bin/python bench/pipeline.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Generates a reproducible data set with the simulator and writes it straight into a fresh
warehouse's event log (bench/_bench.py `load_events`: same generator and canonicalisation as the
receiver, no HTTP). Then:

- the floor: read every landing row and JSON-parse its payload (the least any pipeline must do);
- `order_processing_job` (the hourly schedule's assets: webhook_events, orders, order_sla,
  exceptions, sla_metrics, completed_orders, with their checks) in ONE single-run range run over
  all days, through Dagster in a child process, as of three days after the last day; each step's
  time comes from the run's event log, peak RSS is the child's.

Prints a table and `total/floor = X.XX (target <= 3.00)  peak RSS = N MB (target < 2048)`.
A temporary SQLite warehouse by default; `--database-url` names a Postgres server (connect as an
administrator): a throwaway database `e2a_bench_<random>` is created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import Parser, bench_tenants, load_events, positive_int, run_job, scan_and_parse, scratch_warehouse  # noqa: E402

START = dt.date(2025, 8, 1)
JOB = "order_processing_job"
FLOOR_TARGET = 3.0
RSS_TARGET_MB = 2048


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog=Path(__file__).name, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--tenants", type=positive_int, default=2, help="tenants of policies/tenants.yaml (default 2)")
    parser.add_argument("--days", type=positive_int, default=14, help="cohort days (default 14)")
    parser.add_argument("--orders-per-day", type=positive_int, default=1000, help="per tenant (default 1000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="Postgres admin URL (default: a temporary SQLite warehouse)")
    parser.add_argument("--chunk-days", type=positive_int, help="days per chunk inside the run (default: E2A_CHUNK_DAYS's default)")
    args = parser.parse_args(argv)

    first = START
    last = first + dt.timedelta(days=args.days - 1)
    as_of = pd.Timestamp(last + dt.timedelta(days=3), tz="UTC")
    with scratch_warehouse(args.database_url) as (url, work):
        tenants = bench_tenants(work, url, args.tenants)
        loaded = load_events(url, tenants, first, args.days, args.orders_per_day, args.seed,
                             chunk_days=args.days)
        rows, floor, floor_cpu = scan_and_parse(url)
        run = run_job(url, work, JOB, first, last, as_of, chunk_days=args.chunk_days)
        backend = url.split(":", 1)[0]

    total = run.seconds
    print(f"data set   {args.tenants} tenants x {args.days} days x {args.orders_per_day} orders/day: "
          f"{loaded.deliveries:,} deliveries -> {loaded.events:,} events ({backend})")
    print(f"generate   {loaded.generate_seconds:8.2f} s    load {loaded.load_seconds:8.2f} s  (not part of the ratio)")
    print(f"{'step':28} {'seconds':>9} {'/floor':>7}")
    print(f"{'floor: scan + parse':28} {floor:9.2f} {1:7.2f}   {rows:,} landing rows")
    for step, seconds in run.steps.items():
        print(f"{step:28} {seconds:9.2f} {seconds / floor:7.2f}")
    overhead = total - sum(run.steps.values())
    print(f"{'(run overhead)':28} {overhead:9.2f} {overhead / floor:7.2f}")
    print(f"{'total ' + JOB:28} {total:9.2f} {total / floor:7.2f}")
    print(f"CPU time: floor {floor_cpu:.2f} s, run {run.cpu_seconds:.2f} s, run/floor = {run.cpu_seconds / floor_cpu:.2f} "
          "(less moved by other load than the wall times; on Postgres the server's CPU is not in it)")
    print(f"total/floor = {total / floor:.2f} (target <= {FLOOR_TARGET:.2f})  "
          f"peak RSS = {run.peak_rss_mb:.0f} MB (target < {RSS_TARGET_MB})")


if __name__ == "__main__":
    main()
