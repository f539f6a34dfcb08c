"""Reading the event log in commit order: never skip a row committed late, never wait without bound.

Concurrent receivers on Postgres can commit ids out of order: id 105 may be visible while id 104
is still in flight. Each row therefore records the transaction id that wrote it (`commit_seq`,
`txid_current()`), and a reader takes only rows older than a horizon H: the oldest transaction
that may still add rows. A keyset cursor over (commit_seq, id) below H is exact.

H is not the server-wide `txid_snapshot_xmin`: that is the oldest open transaction in *any*
database of the server, so one idle-in-transaction session elsewhere (the Dagster instance shares
the server) would stall the sensor for as long as it stays open. Instead, of the transactions
open at the reader's snapshot:

- those connected to another database are ignored: a transaction cannot write to a table of a
  database it is not connected to;
- those of this database (or of unknown database: a prepared transaction, a session whose
  activity row the reader may not see) hold H back for at most `max_wait_s` from when a reader
  first saw them (kept in the cursor as `waiting`);
- after that they are *excused*: H moves past them, and the cursor remembers their ids
  (`excused`). Whatever such a transaction writes carries its own id as `commit_seq`, so once it
  has ended, its rows behind the cursor are read by id (`commit_seq = xid`, indexed) and it is
  forgotten.

Guarantee: every committed row is read exactly once — a row is either above the cursor when its
transaction commits (read in order), or written by an excused transaction (read when that ends).
No transaction holds the cursor back longer than `max_wait_s` plus one sensor interval. SQLite
has one writer at a time, so its ids become visible in order and the id alone is the cursor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
from sqlalchemy import func, or_, select, text, tuple_
from sqlalchemy.engine import Connection

from e2a_assets.warehouse.schema import event_log

# How long an open transaction of the warehouse's own database may hold the cursor back.
DEFAULT_MAX_WAIT_S = 60.0
_XID_MASK = 0xFFFFFFFF  # pg_stat_activity shows 32-bit xids; txid_* functions 64-bit ones


@dataclass(frozen=True)
class EventCursor:
    commit_seq: int = 0
    id: int = 0
    # Bumped when the event log was recreated under the cursor, so run keys stay unique.
    epoch: int = 0
    # Postgres: open transactions the horizon waits for, (txid, first seen in Unix seconds).
    waiting: tuple[tuple[int, float], ...] = ()
    # Postgres: transactions the horizon passed while still open; their rows are read when they end.
    excused: tuple[int, ...] = ()

    def to_json(self) -> dict:
        out: dict = {"commit_seq": self.commit_seq, "id": self.id, "epoch": self.epoch}
        if self.waiting:
            out["waiting"] = [[xid, seen] for xid, seen in self.waiting]
        if self.excused:
            out["excused"] = list(self.excused)
        return out

    @classmethod
    def from_json(cls, data: dict | None) -> "EventCursor":
        data = data or {}
        return cls(int(data.get("commit_seq", 0)), int(data.get("id", 0)), int(data.get("epoch", 0)),
                   tuple((int(x), float(t)) for x, t in data.get("waiting", ())),
                   tuple(int(x) for x in data.get("excused", ())))

    def held_back_s(self, now: float) -> float:
        """How long the oldest transaction the horizon still waits for has held it back."""
        return max((now - seen for _, seen in self.waiting), default=0.0)


def is_ahead_of_log(conn: Connection, cursor: EventCursor) -> bool:
    """True when the cursor points past the newest row: the event log was recreated (a restored
    or reset warehouse) and reading on would silently skip everything up to the old position."""
    if cursor.id == 0:
        return False
    newest = conn.execute(select(func.max(event_log.c.id))).scalar_one()
    return newest is None or int(newest) < cursor.id


COLUMNS = [event_log.c.id, event_log.c.commit_seq, event_log.c.tenant, event_log.c.order_id,
           event_log.c.occurred_at, event_log.c.order_created_at]

# The reader's snapshot (xmax and open txids, 64-bit) and the 32-bit xids of transactions
# connected to other databases: those can never write here.
_OPEN_TRANSACTIONS = text("""
SELECT txid_snapshot_xmax(s) AS xmax,
       ARRAY(SELECT txid_snapshot_xip(s)) AS open_xids,
       ARRAY(SELECT backend_xid::text::bigint FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()) AS elsewhere
FROM (SELECT txid_current_snapshot() AS s) AS snapshot
""")


def horizon(conn: Connection, cursor: EventCursor, max_wait_s: float,
            now: float) -> tuple[int, EventCursor, list[int]]:
    """(H, the cursor with updated `waiting`/`excused`, excused transactions that have ended):
    rows with commit_seq < H may be read in order now; the ended ones' rows are read by id."""
    row = conn.execute(_OPEN_TRANSACTIONS).one()
    open_all = {int(x) for x in row.open_xids or ()}
    elsewhere = {int(x) for x in row.elsewhere or ()}
    prior = set(cursor.excused)
    finished = sorted(prior - open_all)
    excused = prior & open_all
    seen = dict(cursor.waiting)
    waiting: list[tuple[int, float]] = []
    blockers = [int(row.xmax)]
    for xid in sorted(open_all):
        if xid in excused or (xid & _XID_MASK) in elsewhere:
            continue
        first = seen.get(xid, now)
        if now - first >= max_wait_s:
            excused.add(xid)
        else:
            waiting.append((xid, first))
            blockers.append(xid)
    cursor = EventCursor(cursor.commit_seq, cursor.id, cursor.epoch, tuple(waiting), tuple(sorted(excused)))
    return min(blockers), cursor, finished


def read_after(conn: Connection, cursor: EventCursor, limit: int, *, max_wait_s: float = DEFAULT_MAX_WAIT_S,
               clock: Callable[[], float] = time.time) -> tuple[pd.DataFrame, EventCursor]:
    """Up to `limit` accepted or ignored rows committed after `cursor`, and the cursor after them.

    On Postgres the page also holds the rows of excused transactions that have ended since the
    last read (they lie behind the cursor), beyond the `limit` rows read in order.
    """
    if conn.dialect.name != "postgresql":
        stmt = select(*COLUMNS).where(event_log.c.id > cursor.id).order_by(event_log.c.id).limit(limit)
        frame = pd.read_sql(stmt, conn)
        if frame.empty:
            return frame, cursor
        return frame, EventCursor(0, int(frame.iloc[-1]["id"]), cursor.epoch)

    h, cursor, finished = horizon(conn, cursor, max_wait_s, clock())
    key = tuple_(event_log.c.commit_seq, event_log.c.id)
    position = tuple_(cursor.commit_seq, cursor.id)
    frames = []
    if finished:
        # Ended before this read's snapshot, so all their rows are visible now; those above the
        # cursor are read in order below, those behind it here.
        late = select(*COLUMNS).where(event_log.c.commit_seq.in_(finished), key <= position).order_by(event_log.c.id)
        frames.append(pd.read_sql(late, conn))
    stmt = (select(*COLUMNS).where(key > position, event_log.c.commit_seq < h)
            .order_by(event_log.c.commit_seq, event_log.c.id).limit(limit))
    page = pd.read_sql(stmt, conn)
    frames.append(page)
    if not page.empty:
        last = page.iloc[-1]
        cursor = EventCursor(int(last["commit_seq"]), int(last["id"]), cursor.epoch, cursor.waiting, cursor.excused)
    frame = pd.concat([f for f in frames if not f.empty] or [page], ignore_index=True)
    return frame, cursor


def unread_condition(cursor: EventCursor, dialect: str):  # noqa: ANN201
    """SQL condition of the committed rows a reader at `cursor` has not read yet."""
    if dialect != "postgresql":
        return event_log.c.id > cursor.id
    after = tuple_(event_log.c.commit_seq, event_log.c.id) > tuple_(cursor.commit_seq, cursor.id)
    if not cursor.excused:
        return after
    return or_(after, event_log.c.commit_seq.in_(cursor.excused))


__all__ = ["DEFAULT_MAX_WAIT_S", "EventCursor", "horizon", "is_ahead_of_log", "read_after", "unread_condition"]
