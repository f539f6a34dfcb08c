"""Receiver heartbeats (issue 13): `/readyz` rewrites its receiver's row to prove the warehouse
takes a write. A new table only; the ledger is untouched.

Self-contained: only `down_revision` names another revision (re-chaining is a one-line change).

Revision ID: 0010_intake_limits
Revises: 0009_payments
Create Date: 2026-12-01 04:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_intake_limits'
down_revision = '0009_payments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('receiver_heartbeats',
    sa.Column('receiver', sa.String(length=128), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('receiver')
    )


def downgrade() -> None:
    op.drop_table('receiver_heartbeats')
