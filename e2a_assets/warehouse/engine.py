"""Connecting to the warehouse: a SQLite file by default, Postgres when a URL says so."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from e2a_assets.warehouse.schema.landing import receiver_heartbeats

# SQLite `PRAGMA synchronous` levels e2a accepts. FULL (the default) fsyncs the WAL at every commit,
# so an acknowledged delivery survives a power cut; NORMAL only survives a crash of the process.
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
DEFAULT_SQLITE_SYNCHRONOUS = "FULL"
BUSY_TIMEOUT_MS = 30000


def normalise_url(url: str) -> str:
    """Accept `postgres://` and bare `postgresql://` (psycopg2 is the installed driver)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str, *, pool_size: int = 5, sqlite_synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS) -> Engine:
    """Engine for the warehouse URL. It only connects: the schema is made and changed by the
    migrations (`e2a db upgrade`, warehouse/migrate.py).

    Commits are durable on both backends: SQLite fsyncs at every commit (`sqlite_synchronous`,
    FULL unless an operator relaxes it, `E2A_SQLITE_SYNCHRONOUS`), and Postgres sessions run with
    `synchronous_commit=on` whatever the server's default.
    """
    if sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, not {sqlite_synchronous!r}")
    synchronous = sqlite_synchronous.upper()
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            # WAL lets readers (Dagster runs) and the writer (receiver) work at the same time.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                               connect_args={"options": "-c synchronous_commit=on"})
    return engine


def ping(engine: Engine) -> None:
    """Raise if the warehouse cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def receiver_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def probe_write(engine: Engine, timeout_s: float = 2.0, receiver: str | None = None) -> None:
    """Raise unless the warehouse takes a write within `timeout_s`: this receiver's heartbeat row
    is rewritten in a short transaction (a held write lock, a full disk, a read-only server fail it).
    """
    row = {"receiver": receiver or receiver_name(), "beat_at": dt.datetime.now(dt.timezone.utc)}
    ms = max(1, int(timeout_s * 1000))
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            previous = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
            conn.exec_driver_sql(f"PRAGMA busy_timeout={min(ms, previous) if previous else ms}")
            conn.commit()
            try:
                stmt = sqlite.insert(receiver_heartbeats).values(row)
                with conn.begin():
                    conn.execute(stmt.on_conflict_do_update(index_elements=["receiver"], set_={"beat_at": row["beat_at"]}))
            finally:
                conn.rollback()
                conn.exec_driver_sql(f"PRAGMA busy_timeout={previous}")
                conn.commit()
            return
        stmt = postgresql.insert(receiver_heartbeats).values(row)
        with conn.begin():
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
            conn.execute(stmt.on_conflict_do_update(index_elements=["receiver"], set_={"beat_at": row["beat_at"]}))
