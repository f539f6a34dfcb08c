"""Reading the event log in commit order, so a cursor never skips a row committed late.

Concurrent receivers on Postgres can commit ids out of order: id 105 may be visible while id 104
is still in flight. Each row therefore records the transaction id that wrote it (`commit_seq`,
`txid_current()`), and a reader only takes rows whose transaction is older than the oldest one
still running (`txid_snapshot_xmin`). Those can no longer be joined by anything earlier, so a
keyset cursor over (commit_seq, id) is exact. SQLite has one writer at a time, so its ids
become visible in order and the id alone is the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select, text, tuple_
from sqlalchemy.engine import Connection

from e2a_assets.warehouse.schema import event_log


@dataclass(frozen=True)
class EventCursor:
    commit_seq: int = 0
    id: int = 0
    # Bumped when the event log was recreated under the cursor, so run keys stay unique.
    epoch: int = 0

    def to_json(self) -> dict:
        return {"commit_seq": self.commit_seq, "id": self.id, "epoch": self.epoch}

    @classmethod
    def from_json(cls, data: dict | None) -> "EventCursor":
        data = data or {}
        return cls(int(data.get("commit_seq", 0)), int(data.get("id", 0)), int(data.get("epoch", 0)))


def is_ahead_of_log(conn: Connection, cursor: EventCursor) -> bool:
    """True when the cursor points past the newest row: the event log was recreated (a restored
    or reset warehouse) and reading on would silently skip everything up to the old position."""
    if cursor.id == 0:
        return False
    newest = conn.execute(select(func.max(event_log.c.id))).scalar_one()
    return newest is None or int(newest) < cursor.id


COLUMNS = [event_log.c.id, event_log.c.commit_seq, event_log.c.tenant, event_log.c.order_id,
           event_log.c.occurred_at, event_log.c.order_created_at]


def read_after(conn: Connection, cursor: EventCursor, limit: int) -> tuple[pd.DataFrame, EventCursor]:
    """Up to `limit` accepted or ignored rows committed after `cursor`, and the cursor after them."""
    if conn.dialect.name == "postgresql":
        horizon = int(conn.execute(text("SELECT txid_snapshot_xmin(txid_current_snapshot())")).scalar_one())
        key = tuple_(event_log.c.commit_seq, event_log.c.id)
        stmt = (
            select(*COLUMNS)
            .where(key > tuple_(cursor.commit_seq, cursor.id), event_log.c.commit_seq < horizon)
            .order_by(event_log.c.commit_seq, event_log.c.id)
            .limit(limit)
        )
    else:
        stmt = select(*COLUMNS).where(event_log.c.id > cursor.id).order_by(event_log.c.id).limit(limit)
    frame = pd.read_sql(stmt, conn)
    if frame.empty:
        return frame, cursor
    last = frame.iloc[-1]
    seq = int(last["commit_seq"]) if pd.notna(last["commit_seq"]) else 0
    return frame, EventCursor(seq, int(last["id"]), cursor.epoch)


__all__ = ["EventCursor", "is_ahead_of_log", "read_after"]
