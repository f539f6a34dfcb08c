"""Baseline: the warehouse schema as `create_all` made it before versioned migrations (21 tables).

Warehouses created before migrations existed are stamped with this revision by `e2a db upgrade`
after their tables are checked against it (e2a_assets/warehouse/migrate.py).

Revision ID: 0001
Revises:
Create Date: 2026-11-30 22:22:43.176940
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('alert_key', sa.String(length=400), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=256), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivery', sa.String(length=16), nullable=False),
    sa.Column('delivery_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alert_key', name='uq_alerts_key')
    )
    op.create_index('ix_alerts_raised', 'alerts', ['raised_at'])

    op.create_table('billable_orders',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('billable_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('billable_basis', sa.String(length=16), nullable=False),
    sa.Column('invoice_date', sa.Date(), nullable=False),
    sa.Column('billable', sa.Boolean(), nullable=False),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('hold_reasons', sa.String(length=256), nullable=False),
    sa.Column('picks', sa.Integer(), nullable=False),
    sa.Column('packs', sa.Integer(), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('kitting', sa.Integer(), nullable=False),
    sa.Column('returns', sa.Integer(), nullable=False),
    sa.Column('storage_days', sa.Integer(), nullable=False),
    sa.Column('flags', sa.String(length=256), nullable=False),
    sa.Column('flag_rush', sa.Boolean(), nullable=False),
    sa.Column('flag_oversized', sa.Boolean(), nullable=False),
    sa.Column('flag_hazmat', sa.Boolean(), nullable=False),
    sa.Column('flag_fragile', sa.Boolean(), nullable=False),
    sa.Column('flag_gift_wrap', sa.Boolean(), nullable=False),
    sa.Column('flag_photo', sa.Boolean(), nullable=False),
    sa.Column('flag_quality_check', sa.Boolean(), nullable=False),
    sa.Column('flag_custom_packaging', sa.Boolean(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('operations_cents', sa.BigInteger(), nullable=False),
    sa.Column('storage_cents', sa.BigInteger(), nullable=False),
    sa.Column('services_cents', sa.BigInteger(), nullable=False),
    sa.Column('returns_cents', sa.BigInteger(), nullable=False),
    sa.Column('subtotal_cents', sa.BigInteger(), nullable=False),
    sa.Column('minimum_top_up_cents', sa.BigInteger(), nullable=False),
    sa.Column('multiplier_cents', sa.BigInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'order_id', name='uq_billable_orders_order')
    )
    op.create_index('ix_billable_orders_day', 'billable_orders', ['cohort_day', 'tenant'])

    op.create_table('billing_report',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('invoices_issued', sa.Integer(), nullable=False),
    sa.Column('invoiced_cents', sa.BigInteger(), nullable=False),
    sa.Column('held_orders', sa.Integer(), nullable=False),
    sa.Column('held_cents', sa.BigInteger(), nullable=False),
    sa.Column('hold_reasons', sa.String(length=512), nullable=False),
    sa.Column('adjustments_auto_applied', sa.Integer(), nullable=False),
    sa.Column('adjustments_applied_flagged', sa.Integer(), nullable=False),
    sa.Column('adjustments_pending_review', sa.Integer(), nullable=False),
    sa.Column('revenue_impact_cents', sa.BigInteger(), nullable=False),
    sa.Column('pending_review_cents', sa.BigInteger(), nullable=False),
    sa.Column('invoices_open', sa.Integer(), nullable=False),
    sa.Column('invoices_overdue', sa.Integer(), nullable=False),
    sa.Column('invoices_paid', sa.Integer(), nullable=False),
    sa.Column('status_breakdown', sa.String(length=128), nullable=False),
    sa.Column('overdue_cents', sa.BigInteger(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'day', name='uq_billing_report_day')
    )
    op.create_table('completed_orders',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('order_name', sa.String(length=128), nullable=True),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('completion', sa.String(length=16), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('picked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('flags', sa.String(length=256), nullable=False),
    sa.Column('flag_rush', sa.Boolean(), nullable=False),
    sa.Column('flag_oversized', sa.Boolean(), nullable=False),
    sa.Column('flag_hazmat', sa.Boolean(), nullable=False),
    sa.Column('flag_fragile', sa.Boolean(), nullable=False),
    sa.Column('flag_gift_wrap', sa.Boolean(), nullable=False),
    sa.Column('flag_photo', sa.Boolean(), nullable=False),
    sa.Column('flag_quality_check', sa.Boolean(), nullable=False),
    sa.Column('flag_custom_packaging', sa.Boolean(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'order_id', name='uq_completed_orders_order')
    )
    op.create_index('ix_completed_orders_day', 'completed_orders', ['cohort_day', 'tenant'])

    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('headers', sa.Text(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('replay_attempts', sa.Integer(), nullable=False),
    sa.Column('last_replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_dead_letters_status', 'dead_letters', ['status', 'tenant'])

    op.create_table('event_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=True),
    sa.Column('order_id', sa.String(length=128), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('order_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('order_name', sa.String(length=128), nullable=True),
    sa.Column('financial_status', sa.String(length=32), nullable=True),
    sa.Column('total_price_cents', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=8), nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('shipping_code', sa.String(length=32), nullable=True),
    sa.Column('ship_zip', sa.String(length=32), nullable=True),
    sa.Column('ship_country', sa.String(length=64), nullable=True),
    sa.Column('address_valid', sa.Boolean(), nullable=True),
    sa.Column('line_count', sa.Integer(), nullable=True),
    sa.Column('item_quantity', sa.Integer(), nullable=True),
    sa.Column('inventory_shortage', sa.Boolean(), nullable=False),
    sa.Column('zero_available', sa.Boolean(), nullable=False),
    sa.Column('reason_code', sa.String(length=64), nullable=True),
    sa.Column('carrier', sa.String(length=64), nullable=True),
    sa.Column('topic', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('commit_seq', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant', 'source', 'event_id', name='uq_event_log_key')
    )
    op.create_index('ix_event_log_commit_seq', 'event_log', ['commit_seq', 'id'])
    op.create_index('ix_event_log_created', 'event_log', ['order_created_at'])
    op.create_index('ix_event_log_occurred', 'event_log', ['occurred_at'])
    op.create_index('ix_event_log_order', 'event_log', ['tenant', 'order_id'])
    # Every row records the transaction that wrote it, so readers can tell which rows can no longer
    # be joined by an earlier-numbered row still in flight (warehouse/event_cursor.py).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE event_log ALTER COLUMN commit_seq SET DEFAULT txid_current()")

    op.create_table('exception_actions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('action_key', sa.String(length=400), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('automatable', sa.Boolean(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('action_key', name='uq_exception_actions_key')
    )
    op.create_index('ix_exception_actions_day', 'exception_actions', ['cohort_day', 'tenant'])

    op.create_table('exception_insights',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False)
    )
    op.create_index('ix_exception_insights_day', 'exception_insights', ['day', 'tenant'])

    op.create_table('exception_patterns',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('dimension', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('distinct_orders', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('mean_resolution_hours', sa.Float(), nullable=True),
    sa.Column('previous_count', sa.Integer(), nullable=False),
    sa.Column('wow_change', sa.Float(), nullable=True),
    sa.Column('emerging', sa.Boolean(), nullable=False),
    sa.Column('top_rank', sa.Integer(), nullable=True)
    )
    op.create_index('ix_exception_patterns_day', 'exception_patterns', ['day', 'tenant'])

    op.create_table('exception_priorities',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=64), nullable=True),
    sa.Column('holds_billing', sa.Boolean(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('age_hours', sa.Float(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False)
    )
    op.create_index('ix_exception_priorities_day', 'exception_priorities', ['cohort_day', 'tenant'])

    op.create_table('exceptions',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=64), nullable=True),
    sa.Column('holds_billing', sa.Boolean(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'order_id', 'reason_code', name='uq_exceptions_code')
    )
    op.create_index('ix_exceptions_day', 'exceptions', ['cohort_day', 'tenant'])

    op.create_table('invoice_adjustments',
    sa.Column('adjustment_id', sa.String(length=128), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('invoice_number', sa.String(length=96), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('adjustment_seq', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('adjustment_date', sa.Date(), nullable=False),
    sa.Column('issued_cents', sa.BigInteger(), nullable=False),
    sa.Column('previously_applied_cents', sa.BigInteger(), nullable=False),
    sa.Column('recomputed_cents', sa.BigInteger(), nullable=False),
    sa.Column('delta_cents', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('supersedes', sa.String(length=512), nullable=False),
    sa.Column('superseded_by', sa.String(length=128), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=128), nullable=True),
    sa.Column('created_run_id', sa.String(length=64), nullable=False),
    sa.UniqueConstraint('adjustment_id', name='uq_invoice_adjustments_id')
    )
    op.create_index('ix_invoice_adjustments_day', 'invoice_adjustments', ['cohort_day', 'tenant'])
    op.create_index('ix_invoice_adjustments_invoice', 'invoice_adjustments', ['tenant', 'invoice_number'])

    op.create_table('invoice_lines',
    sa.Column('invoice_number', sa.String(length=96), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('unit_cents', sa.BigInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.UniqueConstraint('invoice_number', 'line_no', name='uq_invoice_lines_line')
    )
    op.create_table('invoice_sequences',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('invoice_month', sa.String(length=6), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('tenant', 'invoice_month', name='pk_invoice_sequences')
    )
    op.create_table('invoices',
    sa.Column('invoice_number', sa.String(length=96), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('invoice_date', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('payment_terms_days', sa.Integer(), nullable=False),
    sa.Column('invoice_month', sa.String(length=6), nullable=False),
    sa.Column('invoice_seq', sa.Integer(), nullable=False),
    sa.Column('billable_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('billable_basis', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_run_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint('invoice_number', name='uq_invoices_number'),
    sa.UniqueConstraint('tenant', 'invoice_month', 'invoice_seq', name='uq_invoices_seq'),
    sa.UniqueConstraint('tenant', 'order_id', name='uq_invoices_order')
    )
    op.create_index('ix_invoices_date', 'invoices', ['invoice_date', 'tenant'])
    op.create_index('ix_invoices_day', 'invoices', ['cohort_day', 'tenant'])

    op.create_table('monthly_statements',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=6), nullable=False),
    sa.Column('month_start', sa.Date(), nullable=False),
    sa.Column('month_end', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('invoiced_orders', sa.Integer(), nullable=False),
    sa.Column('gross_cents', sa.BigInteger(), nullable=False),
    sa.Column('discount_rate', sa.Float(), nullable=False),
    sa.Column('discount_cents', sa.BigInteger(), nullable=False),
    sa.Column('minimum_fee_cents', sa.BigInteger(), nullable=False),
    sa.Column('minimum_top_up_cents', sa.BigInteger(), nullable=False),
    sa.Column('adjustments_count', sa.Integer(), nullable=False),
    sa.Column('adjustments_cents', sa.BigInteger(), nullable=False),
    sa.Column('pending_review_cents', sa.BigInteger(), nullable=False),
    sa.Column('net_due_cents', sa.BigInteger(), nullable=False),
    sa.Column('overdue_invoices', sa.Integer(), nullable=False),
    sa.Column('overdue_cents', sa.BigInteger(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'month', name='uq_monthly_statements_month')
    )
    op.create_table('operations_summary',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('orders_processed', sa.Integer(), nullable=False),
    sa.Column('orders_completed', sa.Integer(), nullable=False),
    sa.Column('stalled', sa.Integer(), nullable=False),
    sa.Column('exceptions_opened', sa.Integer(), nullable=False),
    sa.Column('exceptions_resolved', sa.Integer(), nullable=False),
    sa.Column('automation_attempts', sa.Integer(), nullable=False),
    sa.Column('automation_succeeded', sa.Integer(), nullable=False),
    sa.Column('invoices', sa.Integer(), nullable=False),
    sa.Column('revenue_cents', sa.BigInteger(), nullable=False),
    sa.Column('runs_failed', sa.Integer(), nullable=False),
    sa.Column('completion_rate', sa.Float(), nullable=True),
    sa.Column('fulfilment_compliance', sa.Float(), nullable=True),
    sa.Column('delivery_compliance', sa.Float(), nullable=True),
    sa.Column('exception_response_compliance', sa.Float(), nullable=True),
    sa.Column('stalled_share', sa.Float(), nullable=True),
    sa.Column('automation_success_rate', sa.Float(), nullable=True),
    sa.Column('healthy_indicators', sa.Integer(), nullable=False),
    sa.Column('indicators', sa.Integer(), nullable=False),
    sa.Column('health_score', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('recommendations', sa.Text(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'day', name='uq_operations_summary_day')
    )
    op.create_table('order_sla',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('clock', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('running', sa.Boolean(), nullable=False),
    sa.Column('limit_minutes', sa.Float(), nullable=False),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actual_minutes', sa.Float(), nullable=False),
    sa.Column('breached', sa.Boolean(), nullable=False),
    sa.Column('delay_minutes', sa.Float(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'order_id', 'clock', name='uq_order_sla_clock')
    )
    op.create_index('ix_order_sla_day', 'order_sla', ['cohort_day', 'tenant'])

    op.create_table('orders',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=128), nullable=False),
    sa.Column('order_name', sa.String(length=128), nullable=True),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('picked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('packed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivery_failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivery_failed_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stalled', sa.Boolean(), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('financial_status', sa.String(length=32), nullable=True),
    sa.Column('total_price_cents', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=8), nullable=True),
    sa.Column('shipping_code', sa.String(length=32), nullable=True),
    sa.Column('ship_zip', sa.String(length=32), nullable=True),
    sa.Column('address_valid', sa.Boolean(), nullable=True),
    sa.Column('flags', sa.String(length=256), nullable=False),
    sa.Column('flag_rush', sa.Boolean(), nullable=False),
    sa.Column('flag_oversized', sa.Boolean(), nullable=False),
    sa.Column('flag_hazmat', sa.Boolean(), nullable=False),
    sa.Column('flag_fragile', sa.Boolean(), nullable=False),
    sa.Column('flag_gift_wrap', sa.Boolean(), nullable=False),
    sa.Column('flag_photo', sa.Boolean(), nullable=False),
    sa.Column('flag_quality_check', sa.Boolean(), nullable=False),
    sa.Column('flag_custom_packaging', sa.Boolean(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'order_id', name='uq_orders_order')
    )
    op.create_index('ix_orders_day', 'orders', ['cohort_day', 'tenant'])

    op.create_table('sla_metrics',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('stalled', sa.Integer(), nullable=False),
    sa.Column('pick_compliance', sa.Float(), nullable=False),
    sa.Column('pick_p50_minutes', sa.Float(), nullable=True),
    sa.Column('pick_p95_minutes', sa.Float(), nullable=True),
    sa.Column('pick_breached', sa.Integer(), nullable=False),
    sa.Column('pack_compliance', sa.Float(), nullable=False),
    sa.Column('pack_p50_minutes', sa.Float(), nullable=True),
    sa.Column('pack_p95_minutes', sa.Float(), nullable=True),
    sa.Column('pack_breached', sa.Integer(), nullable=False),
    sa.Column('ship_compliance', sa.Float(), nullable=False),
    sa.Column('ship_p50_minutes', sa.Float(), nullable=True),
    sa.Column('ship_p95_minutes', sa.Float(), nullable=True),
    sa.Column('ship_breached', sa.Integer(), nullable=False),
    sa.Column('delivery_compliance', sa.Float(), nullable=False),
    sa.Column('delivery_p50_minutes', sa.Float(), nullable=True),
    sa.Column('delivery_p95_minutes', sa.Float(), nullable=True),
    sa.Column('delivery_breached', sa.Integer(), nullable=False),
    sa.Column('exception_response_compliance', sa.Float(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint('tenant', 'day', name='uq_sla_metrics_day')
    )
    op.create_table('webhook_events',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=True),
    sa.Column('order_id', sa.String(length=128), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('order_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('order_name', sa.String(length=128), nullable=True),
    sa.Column('financial_status', sa.String(length=32), nullable=True),
    sa.Column('total_price_cents', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=8), nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('shipping_code', sa.String(length=32), nullable=True),
    sa.Column('ship_zip', sa.String(length=32), nullable=True),
    sa.Column('ship_country', sa.String(length=64), nullable=True),
    sa.Column('address_valid', sa.Boolean(), nullable=True),
    sa.Column('line_count', sa.Integer(), nullable=True),
    sa.Column('item_quantity', sa.Integer(), nullable=True),
    sa.Column('inventory_shortage', sa.Boolean(), nullable=False),
    sa.Column('zero_available', sa.Boolean(), nullable=False),
    sa.Column('reason_code', sa.String(length=64), nullable=True),
    sa.Column('carrier', sa.String(length=64), nullable=True),
    sa.Column('cohort_day', sa.Date(), nullable=False)
    )
    op.create_index('ix_webhook_events_day', 'webhook_events', ['cohort_day', 'tenant'])


def downgrade() -> None:
    op.drop_table('webhook_events')
    op.drop_table('sla_metrics')
    op.drop_table('orders')
    op.drop_table('order_sla')
    op.drop_table('operations_summary')
    op.drop_table('monthly_statements')
    op.drop_table('invoices')
    op.drop_table('invoice_sequences')
    op.drop_table('invoice_lines')
    op.drop_table('invoice_adjustments')
    op.drop_table('exceptions')
    op.drop_table('exception_priorities')
    op.drop_table('exception_patterns')
    op.drop_table('exception_insights')
    op.drop_table('exception_actions')
    op.drop_table('event_log')
    op.drop_table('dead_letters')
    op.drop_table('completed_orders')
    op.drop_table('billing_report')
    op.drop_table('billable_orders')
    op.drop_table('alerts')
