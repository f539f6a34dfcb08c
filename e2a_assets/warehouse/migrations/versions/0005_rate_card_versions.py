"""Rate card versions (DOMAIN §8.1, issue 11 item 1): every invoice, invoice line, adjustment and
priced billable order records the `rate_card_version` that priced it, and `rate_card_versions`
keeps each version that priced an issued invoice, as it was then.

Everything issued before this revision was priced by the only tariff there was: version 1. The
rows get 1 (the column is then NOT NULL), and each tenant with invoices gets its version 1 in
`rate_card_versions` (first used by its first invoice); what that version says is not known to a
migration (the registry is not read here), so `definition` and `fingerprint` stay empty until
the first registry load fills them with the registry's version 1 (warehouse/rate_cards.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PRICED = ('billable_orders', 'invoices', 'invoice_lines', 'invoice_adjustments')


def upgrade() -> None:
    op.create_table('rate_card_versions',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=True),
    sa.Column('definition', sa.Text(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('first_used_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_used_run_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('tenant', 'version', name='pk_rate_card_versions')
    )
    for table in PRICED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('rate_card_version', sa.Integer(), nullable=True))
        op.execute(f'UPDATE {table} SET rate_card_version = 1')
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('rate_card_version', existing_type=sa.Integer(), nullable=False)
    op.execute('INSERT INTO rate_card_versions (tenant, version, first_used_at) '
               'SELECT tenant, 1, MIN(issued_at) FROM invoices GROUP BY tenant')


def downgrade() -> None:
    for table in reversed(PRICED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('rate_card_version')
    op.drop_table('rate_card_versions')
