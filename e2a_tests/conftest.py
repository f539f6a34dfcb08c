"""Shared fixtures: a warehouse URL on SQLite (per test) and on a throwaway Postgres database.

`postgres_url` creates `e2a_test_<random>` on the server named by E2A_TEST_POSTGRES_ADMIN_URL
(default postgresql://postgres@127.0.0.1:5432/postgres) once per test session (per xdist worker)
and drops it at the end. When the server is unreachable the tests that ask for it are skipped,
unless E2A_REQUIRE_POSTGRES=1, in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import make_url

from e2a_assets.warehouse.engine import sqlite_url as _sqlite_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_dsn(url: str) -> str:
    """A libpq DSN (psycopg2 does not understand `postgresql+psycopg2://`)."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite warehouse file for one test (the schema is created by `make_engine`)."""
    return _sqlite_url(tmp_path / "warehouse.sqlite")


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create `<prefix>_<random>` on the admin server, yield its URL, drop it afterwards.

    Skips the test when the server is unreachable, or fails it with E2A_REQUIRE_POSTGRES=1.
    """
    import psycopg2
    from psycopg2 import sql

    admin_url = os.environ.get("E2A_TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL)
    try:
        admin = psycopg2.connect(_admin_dsn(admin_url), connect_timeout=3)
    except psycopg2.Error as exc:
        reason = f"Postgres unreachable at {make_url(admin_url).render_as_string(hide_password=True)}: " \
                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        if os.environ.get("E2A_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (E2A_REQUIRE_POSTGRES=1)")
        pytest.skip(f"{reason}; set E2A_REQUIRE_POSTGRES=1 to make this a failure")
    admin.autocommit = True
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(_admin_dsn(admin_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            # FORCE (Postgres 13+) ends sessions that a test left open.
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty throwaway Postgres warehouse database, shared by the session (per xdist
    worker) and dropped afterwards; tests that need empty tables use `warehouse_url`."""
    with throwaway_database("e2a_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request) -> str:
    """The same test on a SQLite warehouse and on the session's Postgres database, emptied first
    (the Postgres database is shared by the tests of one worker)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    from e2a_assets.warehouse import schema
    from e2a_assets.warehouse.engine import make_engine

    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    schema.metadata.drop_all(engine)
    schema.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def _no_leftover_dagster_state_storage():
    """Dagster 1.13 keeps the last entered instance's defs-state storage in a context variable.
    Once that (test) instance is gone, the next `Definitions` resolution in the same process fails
    with "Attempted to resolve undefined DagsterInstance weakref"; clear it between tests."""
    yield
    from e2a_assets.compat import forget_defs_state_storage

    forget_defs_state_storage()
