"""indexes for daily billing reads

The daily billing report reads the held backlog (held, invoice_date) and the adjustments of its
days (adjustment_date), the monthly statement the adjustments of its month, instead of whole
tables (issue 10, ARCHITECTURE principle 6).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 23:48:41.242942
"""

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('billable_orders', schema=None) as batch_op:
        batch_op.create_index('ix_billable_orders_held', ['held', 'invoice_date'], unique=False)

    with op.batch_alter_table('invoice_adjustments', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_adjustments_date', ['adjustment_date', 'tenant'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('invoice_adjustments', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_adjustments_date')

    with op.batch_alter_table('billable_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_billable_orders_held')

