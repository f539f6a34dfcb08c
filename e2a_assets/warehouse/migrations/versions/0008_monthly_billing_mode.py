"""Monthly billing mode (DOMAIN §8.3): `invoices.invoice_kind` (every existing invoice bills one
order: `order`) and the `order_charges` ledger of the per-order charges on monthly invoices.

Self-contained: only `down_revision` names another revision (re-chaining is a one-line change).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invoice_kind', sa.String(length=16), nullable=True))
    op.execute("UPDATE invoices SET invoice_kind = 'order'")
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.alter_column('invoice_kind', existing_type=sa.String(length=16), nullable=False)
    op.create_table('order_charges',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('invoice_number', sa.String(length=96), nullable=False),
    sa.Column('billing_month', sa.String(length=6), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('invoice_date', sa.Date(), nullable=False),
    sa.Column('billable_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('billable_basis', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('rate_card_version', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'order_id', name='uq_order_charges_order')
    )
    with op.batch_alter_table('order_charges', schema=None) as batch_op:
        batch_op.create_index('ix_order_charges_day', ['cohort_day', 'tenant'], unique=False)
        batch_op.create_index('ix_order_charges_invoice', ['tenant', 'invoice_number'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('order_charges', schema=None) as batch_op:
        batch_op.drop_index('ix_order_charges_invoice')
        batch_op.drop_index('ix_order_charges_day')
    op.drop_table('order_charges')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('invoice_kind')
