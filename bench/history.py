"""History benchmark: does one daily refresh cost the same at day 365 as at day 30?

    .venv/bin/python bench/history.py                       # 3 tenants x 365 days x 1,000 orders/day
    .venv/bin/python bench/history.py --days 60 --orders-per-day 100 --early-day 30   # quick

Builds the history straight into a fresh warehouse (bench/_bench.py `load_events`: the simulator's
traffic, canonicalised like the receiver does, bulk-written to the event log, generated in chunks
of days), in two phases:

1. days 1..EARLY (default 30) of events; days 1..EARLY-1 materialised by `full_operations_job`
   (every daily asset) in single-run backfills of --backfill-days days, each as of the day after
   its last day; then ONE refresh of every daily asset for the partition of day EARLY, as of
   01:00 UTC the next day - timed;
2. the events of days EARLY+1..DAYS; days EARLY+1..DAYS-1 backfilled the same way; then ONE
   refresh for the partition of day DAYS - timed.

Each refresh is a `full_operations_job` run of that one partition (the assets of the hourly,
4-hourly and daily schedules, with their checks), in a child process; the per-step times come
from the run's event log. Prints both, per step, and `dayN/dayEARLY = X.XX (target <= 1.20)`.
Events of orders still in flight at the end of phase 1 that would arrive after it are not
generated (the event log holds what a live system would hold at day EARLY).
A temporary SQLite warehouse by default; `--database-url` names a Postgres server (connect as an
administrator): a throwaway database `e2a_bench_<random>` is created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import Loaded, Parser, bench_tenants, load_events, positive_int, run_job, scratch_warehouse  # noqa: E402

START = dt.date(2025, 1, 1)
JOB = "full_operations_job"
TARGET = 1.2


def _day(n: int) -> dt.date:
    """Day n of the history, 1-based."""
    return START + dt.timedelta(days=n - 1)


def _refresh_as_of(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(1, 0)), tz="UTC")


def _backfill(url: str, work: Path, first: int, last: int, size: int, echo) -> float:  # noqa: ANN001
    """Days first..last (1-based) in runs of `size` days, each as of the day after its last day."""
    seconds, day = 0.0, first
    while day <= last:
        end = min(day + size - 1, last)
        run = run_job(url, work, JOB, _day(day), _day(end), pd.Timestamp(_day(end + 1), tz="UTC"))
        echo(f"  backfilled days {day}..{end} in {run.seconds:.1f} s (peak RSS {run.peak_rss_mb:.0f} MB)")
        seconds += run.seconds
        day = end + 1
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog=Path(__file__).name, description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--tenants", type=positive_int, default=3, help="tenants of policies/tenants.yaml (default 3)")
    parser.add_argument("--days", type=positive_int, default=365, help="days of history (default 365)")
    parser.add_argument("--orders-per-day", type=positive_int, default=1000, help="per tenant (default 1000)")
    parser.add_argument("--early-day", type=positive_int, default=30, help="the early refresh's day (default 30)")
    parser.add_argument("--backfill-days", type=positive_int, default=30,
                        help="days per single-run backfill while building the history (default 30)")
    parser.add_argument("--chunk-days", type=positive_int, default=30, help="days simulated at a time (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="Postgres admin URL (default: a temporary SQLite warehouse)")
    parser.add_argument("--quiet", action="store_true", help="only the result lines")
    args = parser.parse_args(argv)
    if args.early_day >= args.days:
        parser.error(f"--early-day ({args.early_day}) must be before --days ({args.days})")
    echo = (lambda _line: None) if args.quiet else (lambda line: print(line, flush=True))

    with scratch_warehouse(args.database_url) as (url, work):
        tenants = bench_tenants(work, url, args.tenants)
        loaded = Loaded()
        refreshes = {}
        t_build = 0.0
        for first, last in ((1, args.early_day), (args.early_day + 1, args.days)):
            t0 = time.perf_counter()
            part = load_events(url, tenants, _day(first), last - first + 1, args.orders_per_day,
                               args.seed + first, chunk_days=args.chunk_days, end=_day(last + 1))
            for field in ("deliveries", "events", "generate_seconds", "load_seconds"):
                setattr(loaded, field, getattr(loaded, field) + getattr(part, field))
            echo(f"days {first}..{last}: {part.events:,} events loaded in {time.perf_counter() - t0:.1f} s")
            if last > first:
                t_build += _backfill(url, work, first, last - 1, args.backfill_days, echo)
            refreshes[last] = run_job(url, work, JOB, _day(last), _day(last), _refresh_as_of(_day(last)))
            echo(f"  refresh of day {last}: {refreshes[last].seconds:.2f} s")
        backend = url.split(":", 1)[0]

    early, late = refreshes[args.early_day], refreshes[args.days]
    print(f"history    {args.tenants} tenants x {args.days} days x {args.orders_per_day} orders/day: "
          f"{loaded.events:,} events ({backend}); backfills {t_build:.0f} s")
    steps = sorted(set(early.steps) | set(late.steps), key=lambda s: -late.steps.get(s, 0))
    width = max(len(s) for s in [*steps, JOB]) + 8
    print(f"{'step':{width}} {'day ' + str(args.early_day):>9} {'day ' + str(args.days):>9} {'ratio':>6}")
    for step in steps:
        a, b = early.steps.get(step, 0.0), late.steps.get(step, 0.0)
        print(f"{step:{width}} {a:9.2f} {b:9.2f} {b / a if a else float('nan'):6.2f}")
    overhead = [r.seconds - sum(r.steps.values()) for r in (early, late)]
    print(f"{'(run overhead)':{width}} {overhead[0]:9.2f} {overhead[1]:9.2f}")
    print(f"{'total ' + JOB:{width}} {early.seconds:9.2f} {late.seconds:9.2f}   "
          f"peak RSS {max(early.peak_rss_mb, late.peak_rss_mb):.0f} MB")
    print(f"CPU time of the run: day {args.early_day} {early.cpu_seconds:.2f} s, day {args.days} {late.cpu_seconds:.2f} s, "
          f"ratio {late.cpu_seconds / early.cpu_seconds:.2f} (less moved by other load than the wall times)")
    print(f"day{args.days}/day{args.early_day} = {late.seconds / early.seconds:.2f} (target <= {TARGET:.2f})")


if __name__ == "__main__":
    main()
