"""Connecting to the warehouse: a SQLite file by default, Postgres when a URL says so."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """Accept `postgres://` and bare `postgresql://` (psycopg2 is the installed driver)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Engine for the warehouse URL. It only connects: the schema is made and changed by the
    migrations (`e2a db upgrade`, warehouse/migrate.py)."""
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
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)
    return engine


def ping(engine: Engine) -> None:
    """Raise if the warehouse cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
