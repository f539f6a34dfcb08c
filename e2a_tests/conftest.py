"""Shared fixtures: a warehouse URL on SQLite (per test) and on a throwaway Postgres database,
both at the head schema revision.

Migrations run once per test session (per xdist worker): into a template SQLite file that each
test gets a copy of, and into the session's Postgres database, whose tables are emptied
(TRUNCATE) for each test that asks for `warehouse_url` or `postgres_warehouse_url`.

`postgres_url` creates `e2a_test_<random>` (prefix: E2A_TEST_DB_PREFIX) on the server named by E2A_TEST_POSTGRES_ADMIN_URL
(default postgresql://postgres@127.0.0.1:5432/postgres) once per test session (per xdist worker)
and drops it at the end. When the server is unreachable the tests that ask for it are skipped,
unless E2A_REQUIRE_POSTGRES=1, in which case they fail.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import make_url

from e2a_assets.warehouse.engine import sqlite_url as _sqlite_url
from e2a_assets.warehouse.migrate import upgrade

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Names of the databases tests create start with this (E2A_TEST_DB_PREFIX: several people or CI
# jobs sharing one server keep apart).
TEST_DB_PREFIX = os.environ.get("E2A_TEST_DB_PREFIX") or "e2a_test"


def _admin_dsn(url: str) -> str:
    """A libpq DSN (psycopg2 does not understand `postgresql+psycopg2://`)."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite warehouse at the head revision, made once per session (per xdist worker)."""
    path = tmp_path_factory.mktemp("template") / "warehouse.sqlite"
    upgrade(_sqlite_url(path))
    with sqlite3.connect(path) as conn:  # everything into the main file, so a plain copy is complete
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A fresh SQLite warehouse file for one test: a copy of the migrated template."""
    target = tmp_path / "warehouse.sqlite"
    shutil.copyfile(migrated_sqlite_template, target)
    return _sqlite_url(target)


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
    """URL of a throwaway Postgres warehouse database at the head revision, shared by the session
    (per xdist worker) and dropped afterwards; tests that need empty tables use
    `postgres_warehouse_url` (or `warehouse_url`)."""
    with throwaway_database(TEST_DB_PREFIX) as url:
        upgrade(url)
        yield url


def empty_tables(url: str) -> None:
    """Delete every row of every warehouse table and restart their ids; the schema and its
    revision stay. One TRUNCATE: much faster than dropping and creating the tables."""
    from sqlalchemy import text

    from e2a_assets.warehouse import schema
    from e2a_assets.warehouse.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            names = ", ".join(table.name for table in schema.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    finally:
        engine.dispose()


@pytest.fixture
def postgres_warehouse_url(postgres_url: str) -> str:
    """The session's Postgres warehouse with empty tables (it is shared by the tests of one worker)."""
    empty_tables(postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request) -> str:
    """The same test on an empty SQLite warehouse and on the session's Postgres one, emptied first."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_warehouse_url")


@pytest.fixture(autouse=True)
def _no_leftover_dagster_state_storage():
    """Dagster 1.13 keeps the last entered instance's defs-state storage in a context variable.
    Once that (test) instance is gone, the next `Definitions` resolution in the same process fails
    with "Attempted to resolve undefined DagsterInstance weakref"; clear it between tests."""
    yield
    from e2a_assets.compat import forget_defs_state_storage

    forget_defs_state_storage()
