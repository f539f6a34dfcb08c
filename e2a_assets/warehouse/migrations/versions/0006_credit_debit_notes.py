"""Credit and debit notes (DOMAIN §8.2): tables `notes`, `note_lines`, `note_sequences`; the
monthly statement's note columns; every adjustment already applied becomes a note.

Applied adjustments (AUTO_APPLIED, APPLIED_FLAGGED, APPROVED, delta != 0) are issued as notes the
way `domain/notes.py::adjustment_notes` and `plan_note_numbers` issue them today - credit when the
delta is negative, debit when positive; dated the adjustment date, or the review day (UTC) of an
approved one; numbered per (tenant, kind, month of the note date) in their original order
(note date, created_at - the review time for an approved one -, adjustment_id); issued_at = that
time, issued_run_id = this revision. The rules are restated here on purpose: a migration is
frozen history and must keep making the same notes whatever the domain module becomes later
(e2a_tests/test_notes_migration.py compares the two). Month-close notes are not made here: the
next statement run of a closed month issues them.

Self-contained: only `down_revision` names another revision (re-chaining is a one-line change).

Revision ID: 0006_credit_debit_notes
Revises: 0005
Create Date: 2026-12-01 01:10:00
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0006_credit_debit_notes'
down_revision = '0005'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
APPLIED = ('AUTO_APPLIED', 'APPLIED_FLAGGED', 'APPROVED')
RUN_ID = 'migration:0006_credit_debit_notes'


def _tables():
    meta = sa.MetaData()
    adjustments = sa.Table(
        'invoice_adjustments', meta,
        sa.Column('adjustment_id', sa.String(128)), sa.Column('tenant', sa.String(64)),
        sa.Column('order_id', sa.String(128)), sa.Column('invoice_number', sa.String(96)),
        sa.Column('created_at', TS), sa.Column('adjustment_date', sa.Date()),
        sa.Column('delta_cents', sa.BigInteger()), sa.Column('status', sa.String(16)),
        sa.Column('reviewed_at', TS),
    )
    invoices = sa.Table('invoices', meta, sa.Column('invoice_number', sa.String(96)), sa.Column('currency', sa.String(8)))
    return adjustments, invoices


def _utc(value, sqlite: bool):
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    value = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    return value.replace(tzinfo=None) if sqlite else value


def _notes_of_applied_adjustments(bind) -> tuple[list[dict], list[dict], list[dict]]:
    adjustments, invoices = _tables()
    sqlite = bind.dialect.name == 'sqlite'
    rows = bind.execute(
        sa.select(adjustments, invoices.c.currency)
        .select_from(adjustments.outerjoin(invoices, invoices.c.invoice_number == adjustments.c.invoice_number))
        .where(adjustments.c.status.in_(APPLIED), adjustments.c.delta_cents != 0)
    ).mappings().all()
    found = []
    for r in rows:
        created = _utc(r['created_at'], False)
        at = _utc(r['reviewed_at'], False) or created if r['status'] == 'APPROVED' else created
        day = at.date() if r['status'] == 'APPROVED' else r['adjustment_date']
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
        found.append((day, at, r['adjustment_id'], r))
    found.sort(key=lambda item: (item[0], item[1], item[2]))
    notes, lines, last = [], [], {}
    for day, at, adjustment_id, r in found:
        kind = 'credit' if r['delta_cents'] < 0 else 'debit'
        month = day.strftime('%Y%m')
        key = (r['tenant'], kind, month)
        last[key] = last.get(key, 0) + 1
        number = f"{r['tenant'].upper()}-{'CN' if kind == 'credit' else 'DN'}-{month}-{last[key]:04d}"
        amount = abs(int(r['delta_cents']))
        notes.append({
            'note_number': number, 'tenant': r['tenant'], 'kind': kind, 'note_month': month,
            'note_seq': last[key], 'note_date': day, 'reason': 'RECALCULATION', 'source_id': adjustment_id,
            'invoice_number': r['invoice_number'], 'order_id': r['order_id'], 'statement_month': None,
            'amount_cents': amount, 'currency': r['currency'] or 'USD', 'issued_at': _utc(at, sqlite),
            'issued_run_id': RUN_ID,
        })
        lines.append({
            'note_number': number, 'tenant': r['tenant'], 'line_no': 1, 'kind': 'RECALCULATION',
            'description': f"Recalculation of invoice {r['invoice_number']}", 'quantity': 1,
            'unit_cents': amount, 'amount_cents': amount,
        })
    sequences = [{'tenant': t, 'kind': k, 'note_month': m, 'last_seq': s, 'updated_at': None}
                 for (t, k, m), s in sorted(last.items())]
    return notes, lines, sequences


def upgrade() -> None:
    notes = op.create_table('notes',
    sa.Column('note_number', sa.String(length=96), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('note_month', sa.String(length=6), nullable=False),
    sa.Column('note_seq', sa.Integer(), nullable=False),
    sa.Column('note_date', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=False),
    sa.Column('invoice_number', sa.String(length=96), nullable=True),
    sa.Column('order_id', sa.String(length=128), nullable=True),
    sa.Column('statement_month', sa.String(length=6), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('issued_at', TS, nullable=False),
    sa.Column('issued_run_id', sa.String(length=64), nullable=False),
    sa.UniqueConstraint('note_number', name='uq_notes_number'),
    sa.UniqueConstraint('source_id', name='uq_notes_source'),
    sa.UniqueConstraint('tenant', 'kind', 'note_month', 'note_seq', name='uq_notes_seq')
    )
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.create_index('ix_notes_date', ['note_date', 'tenant'], unique=False)
        batch_op.create_index('ix_notes_invoice', ['tenant', 'invoice_number'], unique=False)

    note_lines = op.create_table('note_lines',
    sa.Column('note_number', sa.String(length=96), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_cents', sa.BigInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.UniqueConstraint('note_number', 'line_no', name='uq_note_lines_line')
    )
    note_sequences = op.create_table('note_sequences',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('note_month', sa.String(length=6), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('updated_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('tenant', 'kind', 'note_month', name='pk_note_sequences')
    )
    # monthly_statements is derived (re-materialised per month): existing rows get zeros / not
    # closed until their month is re-run.
    with op.batch_alter_table('monthly_statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed', sa.Boolean(), nullable=False, server_default=sa.false()))
        for name, kind in (('credit_notes_count', sa.Integer()), ('credit_notes_cents', sa.BigInteger()),
                           ('debit_notes_count', sa.Integer()), ('debit_notes_cents', sa.BigInteger())):
            batch_op.add_column(sa.Column(name, kind, nullable=False, server_default='0'))

    made, lines, sequences = _notes_of_applied_adjustments(op.get_bind())
    if made:
        op.bulk_insert(notes, made)
        op.bulk_insert(note_lines, lines)
        op.bulk_insert(note_sequences, sequences)


def downgrade() -> None:
    with op.batch_alter_table('monthly_statements', schema=None) as batch_op:
        for name in ('debit_notes_cents', 'debit_notes_count', 'credit_notes_cents', 'credit_notes_count', 'closed'):
            batch_op.drop_column(name)
    op.drop_table('note_sequences')
    op.drop_table('note_lines')
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_index('ix_notes_invoice')
        batch_op.drop_index('ix_notes_date')
    op.drop_table('notes')
