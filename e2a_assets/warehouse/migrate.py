"""Versioned warehouse schema: apply the Alembic migrations shipped in `warehouse/migrations/`,
and refuse to work on a warehouse whose schema is not the one this code was written for.

The revision is kept in a version table of its own (`e2a_schema_version`), so a warehouse that
shares its database with Dagster's storage never mixes it up with Dagster's `alembic_version`.
"""

from __future__ import annotations

import fcntl
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.pool import StaticPool

from e2a_assets.warehouse.engine import make_engine

# Alembic is imported where it is used: the CLI imports this module for its errors, and every
# command would otherwise start 0.3 s later.
if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

VERSION_TABLE = "e2a_schema_version"
# The revision that creates the schema warehouses had before migrations existed.
BASELINE = "0001"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Postgres advisory locks are per database; this fixed key guards the upgrade of one warehouse.
_PG_LOCK_KEY = 0x6532615F736368  # "e2a_sch"
# Warehouses (by URL) found at the head revision by this process: the check runs once per process.
_CURRENT: set[str] = set()


class MigrationError(RuntimeError):
    """The warehouse's schema cannot be used or upgraded as it is; the message is one line."""


class WarehouseBehind(MigrationError):
    """The warehouse is at an older revision than the code needs."""


class WarehouseAhead(MigrationError):
    """The warehouse was migrated by a newer e2a than this one."""


class BaselineMismatch(MigrationError):
    """Tables made before migrations existed that are not the baseline revision's tables."""


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None  # the revision found (None: no version table)
    after: str
    adopted: bool  # a warehouse made before migrations existed was stamped as the baseline


def shown_url(engine: Engine) -> str:
    """The warehouse's URL for messages, password hidden."""
    return engine.url.render_as_string(hide_password=True)


def _config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built here: no alembic.ini is needed at run time."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")  # versions/0002_what_changes.py
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this code needs."""
    return _scripts().get_current_head()


def known_revision(revision: str) -> bool:
    """Whether this code has the revision (False: the warehouse was migrated by a newer e2a)."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The warehouse's revision; None when it has no version table (empty, or made before migrations)."""
    with engine.connect() as conn:
        return _revision(conn)


def _refusal(engine: Engine, found: str | None, needed: str) -> MigrationError:
    if found is not None and not known_revision(found):
        return WarehouseAhead(
            f"the warehouse at {shown_url(engine)} is at schema revision {found}, newer than this e2a knows "
            f"(its newest is {needed}): run the e2a version that migrated it")
    return WarehouseBehind(
        f"the warehouse at {shown_url(engine)} is at schema revision {found or 'none'}, this e2a needs "
        f"{needed}: run `e2a db upgrade`")


def ensure_current(engine: Engine) -> None:
    """Raise `WarehouseBehind` (or `WarehouseAhead`) unless the warehouse is at the head revision.
    A warehouse found current is not asked again by this process."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _CURRENT:
        return
    found, needed = current_revision(engine), head_revision()
    if found != needed:
        raise _refusal(engine, found, needed)
    _CURRENT.add(key)


@contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other upgrade of this warehouse runs beside: the others
    wait, then find the work done. Postgres: a transaction-level advisory lock (released on commit,
    also by a process that dies). SQLite: an exclusive lock on a file beside the database, taken
    before connecting, so racing processes never meet inside a half-created schema."""
    database = engine.url.database
    lock_file = None
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        lock_file = open(f"{database}-migrate.lock", "a")  # noqa: SIM115 - closed below
        fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            elif engine.dialect.name == "sqlite":
                # The driver would run DDL outside any transaction: open one, so a migration that
                # fails half-way leaves nothing behind, and writers wait until it is done.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
    finally:
        if lock_file is not None:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()


@lru_cache(maxsize=1)
def _baseline_columns() -> dict[str, frozenset[str]]:
    """Table -> column names of the baseline revision, read from the migration itself (applied to a
    scratch in-memory SQLite), so the check stays right whatever later revisions change."""
    from alembic import command

    scratch = create_engine("sqlite://", poolclass=StaticPool)
    try:
        with scratch.connect() as conn:
            command.upgrade(_config(conn), BASELINE)
            inspector = inspect(conn)
            return {table: frozenset(c["name"] for c in inspector.get_columns(table))
                    for table in inspector.get_table_names() if table != VERSION_TABLE}
    finally:
        scratch.dispose()


def _adopt_if_made_before_migrations(engine: Engine, conn: Connection) -> bool:
    """Stamp the baseline on a warehouse whose tables were created before migrations existed, after
    checking they are the baseline's tables; never touches a row. False when there is nothing to adopt."""
    from alembic import command

    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    if not existing:  # an empty database: nothing to adopt, no need to know the baseline
        return False
    expected = _baseline_columns()
    present = existing & set(expected)
    if not present:
        return False
    problems = [f"table {table} missing" for table in sorted(set(expected) - present)]
    for table in sorted(present):
        columns = {c["name"] for c in inspector.get_columns(table)}
        problems += [f"{table}.{name} missing" for name in sorted(expected[table] - columns)]
        problems += [f"{table}.{name} unexpected" for name in sorted(columns - expected[table])]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BaselineMismatch(
            f"the warehouse at {shown_url(engine)} has e2a tables but no schema version, and they differ from "
            f"revision {BASELINE}: {', '.join(problems[:5])}{more}; nothing was changed")
    command.stamp(_config(conn), BASELINE)
    return True


def upgrade(url_or_engine: str | Engine) -> UpgradeResult:
    """Bring the warehouse to the head revision; safe to run from several processes at once.

    A warehouse made before migrations existed (its tables, no version table) is checked against
    the baseline revision and stamped with it first."""
    from alembic import command

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with _upgrade_lock(engine) as conn:
            before = _revision(conn)
            if before is not None and not known_revision(before):
                raise _refusal(engine, before, head_revision())
            adopted = before is None and _adopt_if_made_before_migrations(engine, conn)
            command.upgrade(_config(conn), "head")
            after = _revision(conn)
            conn.commit()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
    _CURRENT.add(engine.url.render_as_string(hide_password=False))
    return UpgradeResult(before, after, adopted)


def new_revision(message: str, autogenerate: bool) -> Path:
    """Write the next revision file (`versions/<NNNN>_<message>.py`); with `autogenerate`, filled in
    from the difference between `schema.metadata` and a scratch warehouse at the head revision."""
    import tempfile

    from alembic import command

    head = head_revision()
    # Ids are numbered (`0003`), some with a name after the number (`0005_rate_cards`).
    number = re.match(r"\d+", head or "")
    rev_id = f"{int(number.group()) + 1:04d}" if number else None
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = make_engine(f"sqlite:///{scratch_dir}/scratch.sqlite")
        try:
            upgrade(scratch)
            with scratch.connect() as conn:
                script = command.revision(_config(conn), message=message, autogenerate=autogenerate, rev_id=rev_id)
        finally:
            scratch.dispose()
    _scripts.cache_clear()
    return Path(script.path)
