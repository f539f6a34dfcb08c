"""Pipeline benchmark: events/s through ingestion and the order/SLA/exception rules, peak memory.

    .venv/bin/python bench/pipeline.py --tenants 2 --days 14 --orders-per-day 2000
    .venv/bin/python bench/pipeline.py --database-url postgresql://postgres@127.0.0.1/e2a_bench

Generates a reproducible data set with the simulator, ingests it into a fresh warehouse (a temp
SQLite file unless --database-url is given), then runs the day-partition path of the order
assets (cohort read -> orders -> order_sla -> exceptions -> sla_metrics) over all days in one
range, like a single-run backfill. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2a_assets.domain.exceptions import build_exceptions  # noqa: E402
from e2a_assets.domain.orders import build_orders  # noqa: E402
from e2a_assets.domain.policies import load_registry  # noqa: E402
from e2a_assets.domain.sla import build_order_sla, build_sla_metrics  # noqa: E402
from e2a_assets.intake.ingestor import Ingestor  # noqa: E402
from e2a_assets.simulator.runner import ingest_deliveries  # noqa: E402
from e2a_assets.simulator.traffic import generate  # noqa: E402
from e2a_assets.warehouse.engine import make_engine, sqlite_url  # noqa: E402
from e2a_assets.warehouse.migrate import upgrade  # noqa: E402
from e2a_assets.intake.landing import cohort_events  # noqa: E402
from e2a_assets.warehouse import schema  # noqa: E402
from e2a_assets.warehouse.frames import read_days, replace_partition  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--orders-per-day", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="warehouse URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    registry = load_registry(ROOT / "policies")
    tenants = list(registry.policies[: args.tenants])
    start = dt.date(2025, 8, 1)
    end = start + dt.timedelta(days=args.days - 1)

    t0 = time.perf_counter()
    deliveries = generate(tenants, args.days, args.orders_per_day, args.seed, start)
    t_gen = time.perf_counter() - t0

    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or sqlite_url(Path(tmp.name) / "bench.sqlite")
    engine = make_engine(url)
    upgrade(engine)
    t0 = time.perf_counter()
    stats = ingest_deliveries(Ingestor(engine), deliveries, batch_size=1000)
    t_ingest = time.perf_counter() - t0

    as_of = pd.Timestamp(end + dt.timedelta(days=3), tz="UTC")
    policies = registry.policy_frame()
    timings = {}
    t0 = time.perf_counter()
    events = cohort_events(engine, start, end)
    timings["cohort read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    orders = build_orders(events, as_of, policies)
    timings["orders"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sla = build_order_sla(orders, as_of, policies)
    timings["order_sla"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    exceptions = build_exceptions(events, orders, sla, as_of, policies)
    timings["exceptions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = build_sla_metrics(orders, sla, exceptions, as_of=as_of, policies=policies)
    timings["sla_metrics"] = time.perf_counter() - t0
    compute = sum(v for k, v in timings.items() if k != "cohort read")
    # What the assets do around the rules: replace the partitions, then read them back (next asset).
    t0 = time.perf_counter()
    replace_partition(engine, schema.orders, orders, "cohort_day", start, end)
    replace_partition(engine, schema.order_sla, sla, "cohort_day", start, end)
    replace_partition(engine, schema.exceptions, exceptions, "cohort_day", start, end)
    replace_partition(engine, schema.sla_metrics, metrics, "day", start, end)
    timings["write outputs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for table in (schema.orders, schema.order_sla, schema.exceptions):
        read_days(engine, table, "cohort_day", start, end)
    timings["read outputs"] = time.perf_counter() - t0

    n = len(events)
    print(f"data set        {args.tenants} tenants x {args.days} days x {args.orders_per_day} orders/day "
          f"= {len(orders):,} orders, {n:,} events ({len(deliveries):,} deliveries)")
    print(f"warehouse       {engine.dialect.name}")
    print(f"generate        {t_gen:8.2f} s   {len(deliveries) / t_gen:12,.0f} deliveries/s")
    print(f"ingest          {t_ingest:8.2f} s   {stats.total / t_ingest:12,.0f} deliveries/s "
          f"({stats.stored:,} stored, {stats.duplicate:,} duplicates)")
    for name, seconds in timings.items():
        print(f"{name:15} {seconds:8.2f} s   {n / max(seconds, 1e-9):12,.0f} events/s")
    print(f"rules total     {compute:8.2f} s   {n / max(compute, 1e-9):12,.0f} events/s  "
          f"({len(exceptions):,} exceptions)")
    print(f"peak memory     {peak_rss_mb():8.0f} MB (max RSS of this process)")


if __name__ == "__main__":
    main()
