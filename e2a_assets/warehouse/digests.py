"""Digests of the warehouse's derived tables and ledger: the proof that results are reproducible.

The same events and the same evaluation time (`as_of`) must give the same tables, whatever the
backend (SQLite, Postgres), however the days were cut into runs (one backfill, one run per day,
chunks inside a run) and however often they were rerun. Each table is reduced to a SHA-256 of its
rows: every row spelled canonically (UTC ISO times, floats to 9 digits, NULL as an empty field),
rows sorted, so neither the backend's types nor the physical row order matter.

Which tables: every table of the schema metadata except those listed in `EXCLUDED`, so a table
added later (credit and debit notes, lineage) is covered without anyone remembering to add it.
Which columns: all but those that say who wrote a row and when it arrived (`VOLATILE_COLUMNS`, and
any `*_run_id`): they differ from run to run by design and no rule reads them.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from sqlalchemy import Engine, MetaData, Table

from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import read_table

# Tables that are not derived from the events by the assets, with the reason.
EXCLUDED: Mapping[str, str] = {
    "event_log": "the landing log: the input being reproduced from, not a result (its receive times "
                 "and commit order are the receiver's)",
    "dead_letters": "deliveries the receiver refused: input side, with receive and replay times",
    "payments": "finance's record of money received (`e2a payments import`): an input like the event log, "
                "not derived from the events",
    "alerts": "operational: raised by sensors for failed runs and checks, keyed by run ids, at wall-clock time",
    "receiver_heartbeats": "operational: each receiver's last /readyz write, by host and process, at wall-clock time",
    "event_readers": "operational: where the new-events sensor's cursor stands, saved at wall-clock time",
}  # fmt: skip

# Surrogate ids, arrival order and wall-clock bookkeeping: they name a run or a moment of writing,
# not a business fact. Any column ending in `_run_id` is volatile too.
VOLATILE_COLUMNS = frozenset({
    "id", "commit_seq", "received_at", "recorded_at", "updated_at", "raised_at", "last_replayed_at",
})  # fmt: skip


def digested_tables(metadata: MetaData = schema.metadata) -> list[Table]:
    """Every table of the schema except the documented exclusions, by name."""
    return [t for name, t in sorted(metadata.tables.items()) if name not in EXCLUDED]


def digested_columns(table: Table) -> list[str]:
    return sorted(c.name for c in table.columns if c.name not in VOLATILE_COLUMNS and not c.name.endswith("_run_id"))


def canonical(value: object) -> str:
    """One spelling per value whatever the backend returned: UTC ISO times, 9-digit floats."""
    if value is None or value is pd.NaT or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return (value.tz_convert("UTC") if value.tzinfo else value.tz_localize("UTC")).isoformat()
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (float, np.floating)):
        return repr(round(float(value), 9))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def table_digest(engine: Engine, table: Table) -> dict:
    """`{"rows": n, "sha256": hex}` of the table's canonical, sorted rows."""
    frame = read_table(engine, table)
    columns = digested_columns(table)
    rows = sorted("\x1f".join(canonical(v) for v in row) for row in frame[columns].itertuples(index=False, name=None))
    return {"rows": len(rows), "sha256": hashlib.sha256("\x1e".join(rows).encode()).hexdigest()}


def table_digests(engine: Engine, tables: Iterable[str] | None = None) -> dict[str, dict]:
    """The digest of each named table (default: every digested table), by table name."""
    chosen = digested_tables() if tables is None else [schema.metadata.tables[name] for name in tables]
    return {table.name: table_digest(engine, table) for table in chosen}


def differences(left: Mapping[str, dict], right: Mapping[str, dict]) -> list[str]:
    """The tables whose digests disagree (or are missing on one side), sorted."""
    return sorted(name for name in set(left) | set(right) if left.get(name) != right.get(name))
