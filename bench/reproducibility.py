"""Reproducibility proof: the same events and `as_of` give the same derived tables and ledger.

    .venv/bin/python bench/reproducibility.py --tenants 2 --days 14 --orders-per-day 200
    .venv/bin/python bench/reproducibility.py --database-url postgresql://postgres@127.0.0.1/e2a_repro

Generates a reproducible data set with the simulator and materialises the whole platform for it
three times, each into a fresh warehouse, at fixed evaluation times: every daily asset over the
range the day after it (invoices issued), late returns, every daily asset again later (adjustments
of issued invoices), then the monthly statements. Once as a single-run backfill of the range, then
the same warehouse rerun (same runs, same `as_of`), once as one run per day in order, and once on
the other backend when --database-url names a Postgres database (its tables must be empty or
absent; the script upgrades it). Each derived table and the ledger is hashed
(`e2a_assets/warehouse/digests.py`); prints each table's row count and whether every variant
agrees, then `identical: yes|no` (exit status 1 on no).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2a_assets.cli.demo import materialize_range  # noqa: E402
from e2a_assets.definitions import build_definitions  # noqa: E402
from e2a_assets.intake.ingestor import Delivery, Ingestor  # noqa: E402
from e2a_assets.settings import Settings  # noqa: E402
from e2a_assets.simulator.runner import ingest_deliveries  # noqa: E402
from e2a_assets.simulator.traffic import generate  # noqa: E402
from e2a_assets.warehouse import schema  # noqa: E402
from e2a_assets.warehouse.digests import differences, table_digests  # noqa: E402
from e2a_assets.domain.monthly import MONTHLY_ORDER_PREFIX  # noqa: E402
from e2a_assets.warehouse.engine import make_engine, sqlite_url  # noqa: E402
from e2a_assets.warehouse.frames import read_table  # noqa: E402
from e2a_assets.warehouse.migrate import upgrade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIRST = dt.date(2025, 8, 28)
MODES = ("backfill", "daily")


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(data_dir=Path(data_dir), database_url=url, policies_dir=ROOT / "policies",
                    tenants_file=ROOT / "policies" / "tenants.yaml")  # fmt: skip


def evaluation_times(last: dt.date) -> tuple[pd.Timestamp, str, pd.Timestamp]:
    """The first run's `as_of` (06:00 the day after the range), the late returns' time and the
    second run's `as_of` (12 days after the range: late events seen, invoices adjusted)."""
    day_after = pd.Timestamp(last + dt.timedelta(days=1), tz="UTC")
    return (day_after + pd.Timedelta(hours=6), (day_after + pd.Timedelta(days=4, hours=10)).isoformat(),
            day_after + pd.Timedelta(days=11, hours=9))  # fmt: skip


def late_returns(engine, occurred_at: str) -> list[Delivery]:  # noqa: ANN001
    """A `return_received` for the first invoiced order of each tenant, after it was invoiced."""
    book = read_table(engine, schema.invoices)
    # Per-order invoices only: a monthly invoice's order_id names the month, not an order.
    issued = book[~book["order_id"].str.startswith(MONTHLY_ORDER_PREFIX)].sort_values("invoice_number").groupby("tenant").head(1)
    return [
        Delivery(row.tenant, "wms", {}, json.dumps({
            "event_id": f"late-{row.order_id}", "event_type": "return_received", "order_id": str(row.order_id),
            "occurred_at": occurred_at.replace("+00:00", "Z")}).encode())
        for row in issued.itertuples()
    ]  # fmt: skip


def run_range(instance, defs, job: str, first: dt.date, last: dt.date, as_of: pd.Timestamp, mode: str) -> int:  # noqa: ANN001
    """One run over the range (`backfill`), or one run per partition in order (`daily`)."""
    if mode == "backfill":
        materialize_range(instance, defs, job, first.isoformat(), last.isoformat(), as_of)
        return 1
    keys = defs.resolve_job_def(job).partitions_def.get_partition_keys()
    chosen = [key for key in keys if first.isoformat() <= key <= last.isoformat()]
    for key in chosen:
        materialize_range(instance, defs, job, key, key, as_of)
    return len(chosen)


def materialise(url: str, data_dir: Path, *, tenants: int = 2, days: int = 4, orders_per_day: int = 12,
                seed: int = 11, first: dt.date = FIRST, mode: str = "backfill", reruns: int = 0) -> list[dict]:
    """Ingest the simulated events into the (migrated, empty) warehouse at `url` and run the
    platform over them; the digests after the runs, then after each rerun of the whole sequence."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    settings = settings_for(url, data_dir)
    engine = make_engine(url)
    last = first + dt.timedelta(days=days - 1)
    early, returned_at, as_of = evaluation_times(last)
    months = (first.replace(day=1), last.replace(day=1))
    ingest_deliveries(Ingestor(engine), generate(list(settings.registry().policies[:tenants]), days, orders_per_day, seed, first))
    defs = build_definitions(settings)
    results = []
    try:
        with dg.instance_for_test() as instance:
            for attempt in range(reruns + 1):
                run_range(instance, defs, "full_operations_job", first, last, early, mode)
                if attempt == 0:
                    Ingestor(engine).ingest_many(late_returns(engine, returned_at))
                run_range(instance, defs, "full_operations_job", first, last, as_of, mode)
                run_range(instance, defs, "monthly_statements_job", *months, as_of, mode)
                results.append(table_digests(engine))
    finally:
        engine.dispose()
    return results


def report(variants: dict[str, dict], out=None) -> bool:  # noqa: ANN001
    """Each table's rows and agreement across the variants; True when every table agrees."""
    out = out or sys.stdout
    names = sorted(set().union(*variants.values()))
    reference = next(iter(variants.values()))
    disagree = set()
    for label, digests in variants.items():
        disagree |= set(differences(reference, digests))
    print(f"{'table':<24} {'rows':>8}  {'sha256 (first variant)':<18}  agree", file=out)
    for name in names:
        entry = reference.get(name, {"rows": 0, "sha256": "-"})
        verdict = "no: " + ", ".join(label for label, d in variants.items() if d.get(name) != entry) if name in disagree else "yes"
        print(f"{name:<24} {entry['rows']:>8}  {entry['sha256'][:16]:<18}  {verdict}", file=out)
    print(f"variants: {', '.join(variants)}", file=out)
    identical = not disagree
    print(f"identical: {'yes' if identical else 'no'}", file=out)
    return identical


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--orders-per-day", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", help="an empty Postgres warehouse to compare with SQLite (upgraded first)")
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.days < 1 or args.orders_per_day < 1:
        parser.error("--tenants, --days and --orders-per-day must be at least 1")
    sizes = dict(tenants=args.tenants, days=args.days, orders_per_day=args.orders_per_day, seed=args.seed)
    variants: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="e2a-repro-") as tmp:
        for label, mode, reruns in (("backfill", "backfill", 1), ("daily", "daily", 0)):
            folder = Path(tmp) / label
            folder.mkdir()
            url = sqlite_url(folder / "warehouse.sqlite")
            upgrade(url)
            t0 = time.perf_counter()
            digests = materialise(url, folder, mode=mode, reruns=reruns, **sizes)
            print(f"sqlite {label}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            variants[f"sqlite-{label}"] = digests[0]
            if reruns:
                variants[f"sqlite-{label}-rerun"] = digests[-1]
        if args.database_url:
            upgrade(args.database_url)
            folder = Path(tmp) / "postgres"
            folder.mkdir()
            t0 = time.perf_counter()
            variants["postgres-backfill"] = materialise(args.database_url, folder, **sizes)[0]
            print(f"postgres backfill: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0 if report(variants) else 1


if __name__ == "__main__":
    sys.exit(main())
