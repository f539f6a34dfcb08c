"""Payments (issue 12 item 4, domain/payments.py): the append-only `payments` ledger, and the
derived figures that follow payments: `monthly_statements.payments_cents` and `balance_due_cents`,
`billing_report.invoices_partially_paid`. No ledger row is touched; existing derived rows get 0
payments (no payment existed before this revision) and balance due = net due, and are replaced by
the next run of their partition.

Self-contained: only `down_revision` names another revision (re-chaining is a one-line change).

Revision ID: 0009_payments
Revises: 0008
Create Date: 2026-12-01 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_payments'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payments',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('document_number', sa.String(length=96), nullable=False),
    sa.Column('document_kind', sa.String(length=8), nullable=False),
    sa.Column('invoice_number', sa.String(length=96), nullable=True),
    sa.Column('document_month', sa.String(length=6), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('payment_date', sa.Date(), nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=False),
    sa.Column('source_file', sa.String(length=512), nullable=False),
    sa.Column('source_row', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.UniqueConstraint('document_number', 'reference', 'amount_cents', 'payment_date', name='uq_payments_payment')
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_invoice', ['tenant', 'invoice_number'], unique=False)
        batch_op.create_index('ix_payments_month', ['document_month', 'tenant'], unique=False)
    with op.batch_alter_table('monthly_statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payments_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('balance_due_cents', sa.BigInteger(), nullable=True))
    op.execute("UPDATE monthly_statements SET payments_cents = 0, balance_due_cents = net_due_cents")
    with op.batch_alter_table('monthly_statements', schema=None) as batch_op:
        batch_op.alter_column('payments_cents', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('balance_due_cents', existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table('billing_report', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invoices_partially_paid', sa.Integer(), nullable=True))
    op.execute("UPDATE billing_report SET invoices_partially_paid = 0")
    with op.batch_alter_table('billing_report', schema=None) as batch_op:
        batch_op.alter_column('invoices_partially_paid', existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('billing_report', schema=None) as batch_op:
        batch_op.drop_column('invoices_partially_paid')
    with op.batch_alter_table('monthly_statements', schema=None) as batch_op:
        batch_op.drop_column('balance_due_cents')
        batch_op.drop_column('payments_cents')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_month')
        batch_op.drop_index('ix_payments_invoice')
    op.drop_table('payments')
