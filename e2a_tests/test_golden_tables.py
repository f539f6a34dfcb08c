"""Results never change by accident: the same events and `as_of` give the same tables.

A small simulated data set (2 per-order tenants x 4 days, seed 11, plus the same traffic for the
monthly-billed tenant, DOMAIN §8.3) goes through every daily asset twice (the
day after, then with late events) and the monthly statements, at fixed evaluation times; each derived table is reduced to a digest of its rows
(`warehouse/digests.py`: canonical text, run ids and receive times left out) and compared with the digests recorded in
`snapshots/table_digests.json`. The digests are the same on SQLite and on Postgres. A refactor of
the data path (columnar I/O, chunked backfills, narrower reads) must leave them as they are; a
deliberate change to a rule regenerates them with `E2A_UPDATE_SNAPSHOTS=1` and says why.
"""

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd

from e2a_assets.cli.demo import materialize_range
from e2a_assets.definitions import build_definitions
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.simulator.runner import ingest_deliveries
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.digests import table_digest, table_digests
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import envelope_delivery, settings_for

SNAPSHOT = Path(__file__).parent / "snapshots" / "table_digests.json"
FIRST, LAST = dt.date(2025, 8, 28), dt.date(2025, 8, 31)
# A first run issues invoices as the days close; the second, later one sees late events (returns)
# and corrects what was issued with adjustments.
EARLY_AS_OF = pd.Timestamp("2025-09-01T06:00:00Z")
AS_OF = pd.Timestamp("2025-09-12T09:00:00Z")


def digest(engine, name: str) -> dict:  # noqa: ANN001
    return table_digest(engine, schema.metadata.tables[name])


def build(url: str, tmp_path: Path, chunk_days: int | None = None) -> dict:
    settings = settings_for(url, tmp_path)
    if chunk_days is not None:
        settings = dataclasses.replace(settings, chunk_days=chunk_days)
    engine = make_engine(url)
    tenants = list(settings.registry().policies[:2])
    deliveries = generate(tenants, (LAST - FIRST).days + 1, 12, 11, FIRST)
    # The monthly tenant (DOMAIN §8.3) gets its own traffic, so the per-order tenants' stays as it was.
    monthly = [p for p in settings.registry().policies if p.billing_mode == "monthly"]
    deliveries += generate(monthly, (LAST - FIRST).days + 1, 12, 11, FIRST)
    ingest_deliveries(Ingestor(engine), deliveries)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        materialize_range(instance, defs, "full_operations_job", FIRST.isoformat(), LAST.isoformat(), EARLY_AS_OF)
        # Late returns for the first invoiced order of each tenant: the second run adjusts them.
        issued = read_table(engine, schema.invoices).sort_values("invoice_number").groupby("tenant").head(1)
        Ingestor(engine).ingest_many([
            envelope_delivery(row.tenant, "return_received", row.order_id, "2025-09-05T10:00:00Z", f"late-{row.order_id}")
            for row in issued.itertuples()])
        materialize_range(instance, defs, "full_operations_job", FIRST.isoformat(), LAST.isoformat(), AS_OF)
        materialize_range(instance, defs, "monthly_statements_job", "2025-08-01", "2025-08-01", AS_OF)
    digests = table_digests(engine)
    engine.dispose()
    return digests


def test_derived_tables_match_the_recorded_digests(warehouse_url, tmp_path):
    digests = build(warehouse_url, tmp_path)
    if os.environ.get("E2A_UPDATE_SNAPSHOTS") == "1" and warehouse_url.startswith("sqlite"):
        SNAPSHOT.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    # Every table has rows, so a digest is never the trivial one of an empty table.
    assert all(d["rows"] > 0 for d in digests.values()), digests
    assert digests == recorded


def test_runs_cut_into_chunks_give_the_same_tables(sqlite_url, tmp_path):
    """A range processed a day at a time (and in uneven chunks of 3) inside each run is exact:
    the cross-day rules (7-day patterns, late events of older cohorts, the billing report's
    ledger before the chunk) give the recorded digests."""
    recorded = json.loads(SNAPSHOT.read_text())
    assert build(sqlite_url, tmp_path, chunk_days=1) == recorded


def test_a_changed_value_changes_the_digest(sqlite_url, tmp_path):
    """The digest sees a single cent: it is not blind to the values it summarises."""
    engine = make_engine(sqlite_url)
    ingest_deliveries(Ingestor(engine), generate(list(settings_for(sqlite_url, tmp_path).registry().policies[:1]),
                                                 1, 3, 11, FIRST))
    defs = build_definitions(settings_for(sqlite_url, tmp_path))
    with dg.instance_for_test() as instance:
        materialize_range(instance, defs, "full_operations_job", FIRST.isoformat(), FIRST.isoformat(), AS_OF)
    before = digest(engine, "invoice_lines")
    with engine.begin() as conn:
        first = conn.execute(schema.invoice_lines.select().limit(1)).mappings().one()
        conn.execute(schema.invoice_lines.update()
                     .where(schema.invoice_lines.c.invoice_number == first["invoice_number"])
                     .where(schema.invoice_lines.c.line_no == first["line_no"])
                     .values(amount_cents=first["amount_cents"] + 1))
    assert digest(engine, "invoice_lines")["sha256"] != before["sha256"]
    assert digest(engine, "invoice_lines")["rows"] == before["rows"]
