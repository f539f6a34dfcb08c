"""Per-partition figures: a run over many days gives each day its own metadata (issue 10 item 5).

The UI plots metadata over partitions; a single-run backfill used to stamp the whole range's
totals on every day. These tests read what the instance recorded for each partition.
"""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from e2a_assets.assets.ranges import split_by_day
from e2a_assets.cli.demo import materialize_range
from e2a_assets.definitions import build_definitions
from e2a_assets.partitions import day_chunks, month_chunks
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.simulator.runner import ingest_deliveries
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import settings_for

FIRST, LAST = dt.date(2025, 8, 25), dt.date(2025, 8, 31)
AS_OF = pd.Timestamp("2025-09-03T09:00:00Z")


def test_day_chunks_cover_the_range_once_in_order():
    first, last = dt.date(2025, 1, 30), dt.date(2025, 2, 9)
    chunks = list(day_chunks(first, last, 4))
    assert chunks == [(dt.date(2025, 1, 30), dt.date(2025, 2, 2)), (dt.date(2025, 2, 3), dt.date(2025, 2, 6)),
                      (dt.date(2025, 2, 7), dt.date(2025, 2, 9))]
    assert list(day_chunks(first, first, 7)) == [(first, first)]
    assert list(month_chunks(dt.date(2025, 1, 1), dt.date(2025, 3, 31))) == [
        (dt.date(2025, 1, 1), dt.date(2025, 1, 31)), (dt.date(2025, 2, 1), dt.date(2025, 2, 28)),
        (dt.date(2025, 3, 1), dt.date(2025, 3, 31))]
    with pytest.raises(ValueError):
        list(day_chunks(first, last, 0))


def test_split_by_day_gives_every_day_its_rows_and_empty_days_an_empty_frame():
    frame = pd.DataFrame({"day": [dt.date(2025, 1, 1), dt.date(2025, 1, 3), dt.date(2025, 1, 1)], "n": [1, 2, 3]})
    days = [dt.date(2025, 1, n) for n in (1, 2, 3)]
    parts = split_by_day(frame, "day", days)
    assert list(parts[days[0]]["n"]) == [1, 3] and list(parts[days[2]]["n"]) == [2]
    assert parts[days[1]].empty and list(parts[days[1]].columns) == ["day", "n"]
    named = split_by_day({"a": frame, "b": frame.rename(columns={"day": "d"})}, {"a": "day", "b": "d"}, days)
    assert list(named[days[2]]["b"]["n"]) == [2]


def _latest(instance: dg.DagsterInstance, asset: str, day: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset), partition=day) \
        if "partition" in instance.get_latest_materialization_event.__code__.co_varnames else None
    if event is None:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]), limit=1).records
        event = records[0].event_log_entry
    return event.asset_materialization.metadata


def test_a_range_run_records_each_days_own_figures(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    settings = settings_for(sqlite_url, tmp_path)
    tenants = list(settings.registry().policies[:2])
    # Volume grows day by day, so equal figures on two days would mean range totals, not days.
    for n in range((LAST - FIRST).days + 1):
        day = FIRST + dt.timedelta(days=n)
        ingest_deliveries(Ingestor(engine), generate(tenants, 1, 4 + 3 * n, 20 + n, day))
    defs = build_definitions(settings)  # chunk_days 7: one chunk, figures split by day
    with dg.instance_for_test() as instance:
        materialize_range(instance, defs, "full_operations_job", FIRST.isoformat(), LAST.isoformat(), AS_OF)
        orders = read_table(engine, schema.orders)
        per_day = orders.groupby(pd.to_datetime(orders["cohort_day"]).dt.date).size()
        metrics = read_table(engine, schema.sla_metrics)
        seen = []
        for n in range((LAST - FIRST).days + 1):
            day = FIRST + dt.timedelta(days=n)
            meta = _latest(instance, "orders", day.isoformat())
            assert meta["orders"].value == per_day.get(day, 0), day
            assert meta["dagster/row_count"].value == per_day.get(day, 0)
            assert meta["first_day"].value == FIRST.isoformat() and meta["as_of"].value == AS_OF.isoformat()
            seen.append(meta["orders"].value)
            sla = _latest(instance, "sla_metrics", day.isoformat())
            rows = metrics[pd.to_datetime(metrics["day"]).dt.date == day]
            assert sla["orders"].value == int(rows["orders"].sum())
            # Floats are rounded for display.
            pct = sla["ship_compliance_pct"].value
            assert pct == round(pct, 2)
            summary = _latest(instance, "operations_summary", day.isoformat())
            assert summary["orders_processed"].value == int(rows["orders"].sum())
        assert len(set(seen)) > 1, seen
        assert sum(seen) == len(orders)
