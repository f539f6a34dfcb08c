"""Where the readers of the event log stand, and how far behind they are (issue 13 item 6).

The new-events sensor keeps its cursor in the Dagster instance; after each read it also saves it
here (`event_readers`), so whoever can reach the warehouse — `e2a status`, the receiver's
/metrics — can measure its lag without the Dagster instance:

- rows: committed event-log rows the reader has not read yet (`event_cursor.unread_condition`:
  above its position, or written by a transaction it passed over while still open);
- seconds: how long the oldest of them has been in the log (now − its `received_at`), 0 when none.

A reader that never saved a position stands at the start: everything in the log is its lag.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from e2a_assets.warehouse.event_cursor import EventCursor, unread_condition
from e2a_assets.warehouse.schema import event_log, event_readers

NEW_EVENTS_SENSOR = "new_events_sensor"
# The readers measured even before they saved a position.
KNOWN_READERS = (NEW_EVENTS_SENSOR,)


@dataclass(frozen=True)
class ReaderLag:
    reader: str
    rows: int  # committed rows the reader has not read yet
    seconds: float  # age of the oldest of them (0 when none)
    read_at: dt.datetime | None  # when the reader last saved its position; None: never

    def as_dict(self) -> dict:
        return {"reader": self.reader, "lag_rows": self.rows, "lag_seconds": round(self.seconds, 3),
                "read_at": None if self.read_at is None else self.read_at.isoformat()}


def save_position(conn: Connection, reader: str, cursor: EventCursor, at: dt.datetime) -> None:
    """Record where `reader` stands now (one row per reader, rewritten)."""
    row = {"reader": reader, "position": json.dumps(cursor.to_json(), sort_keys=True), "read_at": at}
    insert = (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(event_readers).values(row)
    conn.execute(insert.on_conflict_do_update(index_elements=["reader"],
                                              set_={"position": row["position"], "read_at": at}))


def _utc(value) -> pd.Timestamp | None:  # noqa: ANN001
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def unread(conn: Connection, cursor: EventCursor) -> tuple[int, pd.Timestamp | None]:
    """Committed rows a reader at `cursor` has not read: how many, and when the oldest was received."""
    rows, oldest = conn.execute(select(func.count(), func.min(event_log.c.received_at))
                                .where(unread_condition(cursor, conn.dialect.name))).one()
    return int(rows), _utc(oldest)


def lag(conn: Connection, reader: str, cursor: EventCursor, read_at: dt.datetime | None,
        now: dt.datetime) -> ReaderLag:
    """How far a reader at `cursor` is behind the newest committed row, now."""
    rows, oldest = unread(conn, cursor)
    seconds = max(0.0, (pd.Timestamp(now) - oldest).total_seconds()) if oldest is not None else 0.0
    return ReaderLag(reader, rows, seconds, read_at)


def reader_lags(engine: Engine, now: dt.datetime | None = None) -> list[ReaderLag]:
    """The lag of every reader that saved a position, and of the known ones that did not yet."""
    now = now or dt.datetime.now(dt.timezone.utc)
    with engine.connect() as conn:
        saved = {r.reader: r for r in conn.execute(select(event_readers)).all()}
        out = []
        for reader in sorted(set(saved) | set(KNOWN_READERS)):
            row = saved.get(reader)
            cursor = EventCursor.from_json(json.loads(row.position)) if row else EventCursor()
            read_at = _utc(row.read_at).to_pydatetime() if row else None
            out.append(lag(conn, reader, cursor, read_at, now))
    return out


__all__ = ["KNOWN_READERS", "NEW_EVENTS_SENSOR", "ReaderLag", "lag", "reader_lags", "save_position", "unread"]
