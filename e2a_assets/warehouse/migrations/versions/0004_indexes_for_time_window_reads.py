"""indexes for time-window reads

The 7-day exception patterns and insights read the exceptions opened in their window, the daily
operations summary those opened or resolved on its day and the actions requested on it: by time,
not by cohort day. Without these indexes each of those daily reads scanned the whole table, so a
daily refresh got slower with every day of history (issue 10, item 3).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 01:55:00
"""

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.create_index('ix_exceptions_opened', ['opened_at'], unique=False)
        batch_op.create_index('ix_exceptions_resolved', ['resolved_at'], unique=False)

    with op.batch_alter_table('exception_actions', schema=None) as batch_op:
        batch_op.create_index('ix_exception_actions_requested', ['requested_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('exception_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_exception_actions_requested')

    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.drop_index('ix_exceptions_resolved')
        batch_op.drop_index('ix_exceptions_opened')
