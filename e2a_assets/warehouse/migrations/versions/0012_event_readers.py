"""Event readers (issue 13 item 6): where the new-events sensor's cursor stands, so `e2a status`
and the receiver's /metrics can tell how far it is behind the event log. A new table only; the
ledger is untouched.

Self-contained: only `down_revision` names another revision (re-chaining is a one-line change).

Revision ID: 0012_event_readers
Revises: 0010_intake_limits
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012_event_readers'
down_revision = '0010_intake_limits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_readers',
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Text(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('reader')
    )


def downgrade() -> None:
    op.drop_table('event_readers')
