"""Natural keys of derived tables: a unique key on webhook_events, exception_priorities,
exception_patterns and exception_insights, so a partition can never hold a row twice.

Before the partition lock (warehouse/partition_lock.py), two runs refreshing the same days at once
could both insert a partition on Postgres. Such copies are removed first, one row per key kept: the
tables are derived from the event log, and re-materialising the days gives the exact rows again.
`exception_insights.subject` becomes NOT NULL (every insight kind names one), so the key also holds
on Postgres, where NULLs are distinct.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:51:36.221032
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

KEYS = {
    'webhook_events': ('tenant', 'source', 'event_id'),
    'exception_priorities': ('tenant', 'order_id', 'reason_code'),
    'exception_patterns': ('tenant', 'day', 'dimension', 'key'),
    'exception_insights': ('tenant', 'day', 'kind', 'subject'),
}


def _drop_duplicates(table: str, key: tuple[str, ...]) -> None:
    """Keep one row per key (the tables have no id: Postgres' ctid, SQLite's rowid tell copies apart)."""
    if op.get_bind().dialect.name == 'postgresql':
        same = ' AND '.join(f'a."{c}" = b."{c}"' for c in key)
        op.execute(f'DELETE FROM {table} a USING {table} b WHERE a.ctid > b.ctid AND {same}')
    else:
        columns = ', '.join(f'"{c}"' for c in key)
        op.execute(f'DELETE FROM {table} WHERE rowid NOT IN (SELECT min(rowid) FROM {table} GROUP BY {columns})')


def upgrade() -> None:
    for table, key in KEYS.items():
        _drop_duplicates(table, key)

    with op.batch_alter_table('exception_insights', schema=None) as batch_op:
        batch_op.alter_column('subject',
               existing_type=sa.VARCHAR(length=64),
               nullable=False)
        batch_op.create_unique_constraint('uq_exception_insights_subject', ['tenant', 'day', 'kind', 'subject'])

    with op.batch_alter_table('exception_patterns', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_exception_patterns_key', ['tenant', 'day', 'dimension', 'key'])

    with op.batch_alter_table('exception_priorities', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_exception_priorities_code', ['tenant', 'order_id', 'reason_code'])

    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_webhook_events_event', ['tenant', 'source', 'event_id'])


def downgrade() -> None:
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_webhook_events_event', type_='unique')

    with op.batch_alter_table('exception_priorities', schema=None) as batch_op:
        batch_op.drop_constraint('uq_exception_priorities_code', type_='unique')

    with op.batch_alter_table('exception_patterns', schema=None) as batch_op:
        batch_op.drop_constraint('uq_exception_patterns_key', type_='unique')

    with op.batch_alter_table('exception_insights', schema=None) as batch_op:
        batch_op.drop_constraint('uq_exception_insights_subject', type_='unique')
        batch_op.alter_column('subject',
               existing_type=sa.VARCHAR(length=64),
               nullable=True)
