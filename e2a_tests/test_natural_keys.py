"""Revision 0003: the natural keys of the derived tables, and the copies it removes first."""

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from e2a_assets.warehouse import migrate, schema
from e2a_assets.warehouse.engine import make_engine, sqlite_url
from e2a_tests.conftest import throwaway_database

EVENT = ("INSERT INTO webhook_events (tenant, source, event_id, occurred_at, received_at, inventory_shortage, "
         "zero_available, cohort_day) VALUES ('demo-3pl', 'wms', :event_id, :at, :at, false, false, :day)")
PATTERN = ("INSERT INTO exception_patterns (tenant, day, dimension, key, count, distinct_orders, resolved, "
           "previous_count, emerging) VALUES ('demo-3pl', :day, 'reason_code', 'PICK_DELAY', 3, 3, 1, 0, false)")


def _at_0001(url: str) -> str:
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), "0001")
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def at_0001(request, tmp_path) -> str:
    """A warehouse at revision 0001 (no natural keys yet)."""
    if request.param == "sqlite":
        yield _at_0001(sqlite_url(tmp_path / "w.sqlite"))
        return
    with throwaway_database("e2a_keys") as url:
        yield _at_0001(url)


def count(engine, table) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_the_upgrade_keeps_one_row_per_key_and_the_keys_refuse_a_copy(at_0001):
    engine = make_engine(at_0001)
    at, day = dt.datetime(2025, 8, 1, 9, tzinfo=dt.timezone.utc), dt.date(2025, 8, 1)
    with engine.begin() as conn:
        # What two overlapping refreshes left: every row twice.
        for _ in range(2):
            conn.execute(text(EVENT), [{"event_id": "e-1", "at": at, "day": day},
                                       {"event_id": "e-2", "at": at, "day": day}])
            conn.execute(text(PATTERN), {"day": day})
    assert (count(engine, schema.webhook_events), count(engine, schema.exception_patterns)) == (4, 2)

    result = migrate.upgrade(engine)
    assert (result.before, result.after) == ("0001", migrate.head_revision())
    assert (count(engine, schema.webhook_events), count(engine, schema.exception_patterns)) == (2, 1)
    with engine.connect() as conn:
        assert conn.execute(select(schema.webhook_events.c.event_id).order_by("event_id")).scalars().all() == \
            ["e-1", "e-2"]
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text(EVENT), {"event_id": "e-1", "at": at, "day": day})
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text(PATTERN), {"day": day})
    assert (count(engine, schema.webhook_events), count(engine, schema.exception_patterns)) == (2, 1)
    engine.dispose()
