"""row-level lineage: line_events

Issue 11 item 2: `line_events` links every invoice line (and adjustment, and later every credit
or debit note line) to the events that produced it and the rate card version that priced it.
New documents write their rows in the transaction that issues them.

Invoices issued before this revision get no rows here: which events an issuing run saw is not
recorded (an event delivered late, after the issue, may have an earlier `occurred_at`), so SQL
cannot derive it reliably. `e2a invoices lineage --backfill` derives it from the events with the
domain rules and writes it once (docs/billing.md, "Lineage").

Revision ID: 0007
Revises: 0006_credit_debit_notes
Create Date: 2026-12-01 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006_credit_debit_notes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('line_events',
    sa.Column('document_kind', sa.String(length=16), nullable=False),
    sa.Column('document_number', sa.String(length=128), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('rate_card_version', sa.Integer(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('linked_run_id', sa.String(length=64), nullable=False),
    sa.UniqueConstraint('document_kind', 'document_number', 'line_no', 'tenant', 'source', 'event_id', 'role',
                        name='uq_line_events_link')
    )
    with op.batch_alter_table('line_events', schema=None) as batch_op:
        batch_op.create_index('ix_line_events_event', ['tenant', 'source', 'event_id'], unique=False)
        batch_op.create_index('ix_line_events_order', ['tenant', 'order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('line_events', schema=None) as batch_op:
        batch_op.drop_index('ix_line_events_order')
        batch_op.drop_index('ix_line_events_event')
    op.drop_table('line_events')
