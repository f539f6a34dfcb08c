"""The landing zone: append-only event log, dead letters, and cohort lookups over them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Column, Date, Engine, MetaData, String, Table, and_, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from e2a_assets.domain.events import ACCEPTED, DEAD_LETTER_PENDING, DEAD_LETTER_REPLAYED, CanonicalEvent
from e2a_assets.domain.intake_limits import redact_headers
from e2a_assets.domain.orders import cohort_day
from e2a_assets.warehouse.frames import normalise, read_query, utc_stamps
from e2a_assets.warehouse.schema import dead_letters, event_log, orders, webhook_events


def _insert(conn: Connection):
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    return dialect.insert(event_log)


def append_events(
    conn: Connection, events: Sequence[CanonicalEvent], received_at: dt.datetime
) -> list[bool]:
    """Insert events that are new on (tenant, source, event_id); True where a row was written.

    Runs inside the caller's transaction, so a batch is committed (or not) as a whole.
    """
    if not events:
        return []
    rows = []
    seen: set[tuple[str, str, str]] = set()
    for ev in events:
        key = (ev.tenant, ev.source, ev.event_id)
        if key in seen:
            continue
        seen.add(key)
        row = ev.row()
        row["received_at"] = received_at
        rows.append(row)
    stmt = (
        _insert(conn)
        .on_conflict_do_nothing(index_elements=["tenant", "source", "event_id"])
        .returning(event_log.c.tenant, event_log.c.source, event_log.c.event_id)
    )
    inserted = {tuple(r) for r in conn.execute(stmt, rows).all()}
    result = []
    for ev in events:
        key = (ev.tenant, ev.source, ev.event_id)
        # Only the first copy of a key inside one batch counts as the stored one.
        result.append(key in inserted)
        inserted.discard(key)
    return result


def add_dead_letter(
    conn: Connection,
    *,
    tenant: str,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    reason: str,
    received_at: dt.datetime,
) -> int:
    """Keep a signed but malformed delivery, raw body included, for inspection and replay.

    Credential-like headers (signatures, API keys, tokens, cookies, ...) are kept by name only:
    a dead letter is read by operators and must not hand out a way to sign or to log in.
    """
    result = conn.execute(
        dead_letters.insert().values(
            tenant=tenant,
            source=source,
            headers=json.dumps(redact_headers(headers), sort_keys=True),
            body=body,
            reason=reason[:2000],
            received_at=received_at,
            status=DEAD_LETTER_PENDING,
            replay_attempts=0,
        )
    )
    return int(result.inserted_primary_key[0])


def pending_dead_letters(conn: Connection, tenant: str | None = None, limit: int | None = None) -> list[Any]:
    stmt = select(dead_letters).where(dead_letters.c.status == DEAD_LETTER_PENDING).order_by(dead_letters.c.id)
    if tenant:
        stmt = stmt.where(dead_letters.c.tenant == tenant)
    if limit:
        stmt = stmt.limit(limit)
    return list(conn.execute(stmt).mappings())


def mark_dead_letter(conn: Connection, letter_id: int, *, replayed: bool, error: str | None, at: dt.datetime) -> None:
    conn.execute(
        update(dead_letters)
        .where(dead_letters.c.id == letter_id)
        .values(
            status=DEAD_LETTER_REPLAYED if replayed else DEAD_LETTER_PENDING,
            replay_attempts=dead_letters.c.replay_attempts + 1,
            last_replayed_at=at,
            last_error=error,
        )
    )


def _day_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    return lo, hi


def _cohorts(start: dt.date, end: dt.date) -> Any:
    """Per candidate order (tenant, order_id): the earliest payload `created_ts` and the earliest
    event `first_ts` - the inputs of the cohort rule. SQL only narrows the candidates through
    indexes: an order whose cohort lies in [start, end] has its payload `created_at` or its
    earliest event in the range, so every such order is among them."""
    lo, hi = _day_bounds(start, end)
    log = event_log
    accepted = log.c.status == ACCEPTED
    candidates = (
        select(log.c.tenant, log.c.order_id)
        .where(
            accepted,
            or_(
                and_(log.c.order_created_at >= lo, log.c.order_created_at < hi),
                and_(log.c.occurred_at >= lo, log.c.occurred_at < hi),
            ),
        )
        .distinct()
        .subquery("candidates")
    )
    created_ts, first_ts = func.min(log.c.order_created_at), func.min(log.c.occurred_at)
    return (
        select(log.c.tenant, log.c.order_id, created_ts.label("created_ts"), first_ts.label("first_ts"))
        .join(candidates, and_(log.c.tenant == candidates.c.tenant, log.c.order_id == candidates.c.order_id))
        .where(accepted)
        .group_by(log.c.tenant, log.c.order_id)
        .having(or_(and_(created_ts >= lo, created_ts < hi), and_(first_ts >= lo, first_ts < hi)))
        .subquery("cohorts")
    )


def _event_order() -> list[Any]:
    """Events grouped by order, in time order."""
    return [event_log.c.tenant, event_log.c.order_id, event_log.c.occurred_at, event_log.c.id]


def cohort_events(engine: Engine, start: dt.date, end: dt.date) -> pd.DataFrame:
    """All accepted events of the orders whose cohort day lies in [start, end], with `cohort_day`.

    The cohort day is decided by the domain's rule (`domain.orders.cohort_day`).
    """
    log = event_log
    cohorts = _cohorts(start, end)
    columns = [log.c[c.name] for c in webhook_events.columns if c.name != "cohort_day"]
    stmt = (
        select(*columns, cohorts.c.created_ts, cohorts.c.first_ts)
        .join(cohorts, and_(log.c.tenant == cohorts.c.tenant, log.c.order_id == cohorts.c.order_id))
        .where(log.c.status == ACCEPTED)
        .order_by(*_event_order())
    )
    frame = read_query(engine, stmt)
    created, first = frame.pop("created_ts"), frame.pop("first_ts")
    # Rows come grouped by order: the rule runs once per order, its day is repeated per event.
    starts, counts = _order_runs(frame["tenant"].to_numpy(), frame["order_id"].to_numpy())
    days = cohort_day(utc_stamps(created.iloc[starts]), utc_stamps(first.iloc[starts])).to_numpy()
    as_days = days.astype("datetime64[D]")
    inside = (as_days >= np.datetime64(start)) & (as_days <= np.datetime64(end))
    frame["cohort_day"] = np.repeat(days, counts)
    return normalise(frame[np.repeat(inside, counts)].reset_index(drop=True), webhook_events)


def cohort_orders(engine: Engine, start: dt.date, end: dt.date) -> pd.DataFrame:
    """(tenant, order_id, cohort_day) of every order whose cohort day lies in [start, end], by
    the domain's rule (`domain.orders.cohort_day`)."""
    frame = read_query(engine, select(_cohorts(start, end)))
    days = cohort_day(utc_stamps(frame["created_ts"]), utc_stamps(frame["first_ts"]))
    frame = frame[["tenant", "order_id"]].assign(cohort_day=days.to_numpy())
    inside = (days >= start) & (days <= end)
    return frame[inside.to_numpy()].reset_index(drop=True)


def cohort_orders_table() -> Table:
    """A temporary table of `cohort_orders`, for `cohort_events_query` to join in the database."""
    return Table("tmp_cohort_orders", MetaData(), Column("tenant", String(64), nullable=False),
                 Column("order_id", String(128), nullable=False), Column("cohort_day", Date, nullable=False),
                 prefixes=["TEMPORARY"])  # fmt: skip


def cohort_events_query(orders: Table) -> Any:
    """The `webhook_events` rows of the orders in `orders` (a `cohort_orders_table`): every
    accepted event of each, with the order's cohort day, in the order `cohort_events` gives."""
    log = event_log
    columns = [log.c[c.name] if c.name != "cohort_day" else orders.c.cohort_day for c in webhook_events.columns]
    return (
        select(*columns)
        .join(orders, and_(log.c.tenant == orders.c.tenant, log.c.order_id == orders.c.order_id))
        .where(log.c.status == ACCEPTED)
        .order_by(*_event_order())
    )


def _order_runs(tenant: np.ndarray, order_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each order's run of rows starts and how long it is, in rows sorted by order."""
    if not len(tenant):
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, (tenant[1:] != tenant[:-1]) | (order_id[1:] != order_id[:-1])])
    return starts, np.diff(np.r_[starts, len(tenant)])


def cohort_days_of_orders(conn: Connection, keys: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """Current cohort day of each (tenant, order_id), and the day its row sits in now.

    The second matters when an `order_created` arrives late with an earlier `created_at`: the
    order moves to another cohort, and the partition that still holds it must be refreshed too.
    `stored_day` is that partition (from the `orders` table), or None when not materialised yet.
    """
    keys = list(dict.fromkeys(keys))
    out = []
    log = event_log
    for offset in range(0, len(keys), 500):
        chunk = keys[offset : offset + 500]
        wanted = tuple_(log.c.tenant, log.c.order_id).in_(chunk)
        stmt = (
            select(
                log.c.tenant,
                log.c.order_id,
                func.min(log.c.order_created_at).label("created_ts"),
                func.min(log.c.occurred_at).label("first_ts"),
            )
            .where(log.c.status == ACCEPTED, wanted)
            .group_by(log.c.tenant, log.c.order_id)
        )
        found = pd.read_sql(stmt, conn)
        stored = pd.read_sql(
            select(orders.c.tenant, orders.c.order_id, orders.c.cohort_day.label("stored_day")).where(
                tuple_(orders.c.tenant, orders.c.order_id).in_(chunk)
            ),
            conn,
        )
        out.append(found.merge(stored, on=["tenant", "order_id"], how="left"))
    columns = ["tenant", "order_id", "cohort_day", "stored_day"]
    if not out:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(out, ignore_index=True)
    frame["cohort_day"] = cohort_day(frame["created_ts"], frame["first_ts"]).to_numpy()
    frame["stored_day"] = pd.to_datetime(frame["stored_day"]).dt.date.astype(object).where(frame["stored_day"].notna(), None)
    return frame[columns]


__all__ = [
    "append_events",
    "add_dead_letter",
    "pending_dead_letters",
    "mark_dead_letter",
    "cohort_events",
    "cohort_days_of_orders",
]
