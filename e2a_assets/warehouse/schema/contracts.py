"""The one place where what the domain produces meets the tables that store it.

Each domain rule module names the columns of the frames it builds (`ORDER_COLUMNS`,
`ADJUSTMENT_COLUMNS`, ...); each table is declared once in this package. `mismatches()` lists
every difference between the two, beyond the columns that only the warehouse adds (keys,
timestamps of the writing run, review fields). The test suite requires it to be empty, so a
column added on one side and forgotten on the other fails at once, not at the first write.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, Table

from e2a_assets.domain import (
    billing,
    events,
    exception_patterns,
    exceptions,
    monthly,
    operations,
    orders,
    rate_cards,
    sla,
    statements,
)
from e2a_assets.warehouse import schema


@dataclass(frozen=True)
class Contract:
    table: Table
    produced: tuple[str, ...]  # columns of the domain's frame, in its order
    stored_only: tuple[str, ...] = ()  # columns the warehouse adds when it writes the frame
    not_stored: tuple[str, ...] = ()  # columns of the frame the table keeps under another name


CONTRACTS = (
    Contract(schema.orders, tuple(orders.ORDER_COLUMNS)),
    Contract(schema.order_sla, tuple(sla.ORDER_SLA_COLUMNS)),
    Contract(schema.sla_metrics, tuple(sla.METRIC_COLUMNS)),
    Contract(schema.exceptions, tuple(exceptions.EXCEPTION_COLUMNS)),
    Contract(schema.exception_priorities, tuple(exceptions.PRIORITY_COLUMNS)),
    # The outbox keeps a plan's as_of as `recorded_at`, the run that first requested the action.
    Contract(schema.exception_actions, tuple(exceptions.ACTION_COLUMNS), ("id", "recorded_at", "updated_at"),
             not_stored=("as_of",)),
    Contract(schema.exception_patterns, tuple(exception_patterns.PATTERN_COLUMNS)),
    Contract(schema.exception_insights, tuple(exception_patterns.INSIGHT_COLUMNS)),
    Contract(schema.completed_orders, tuple(billing.COMPLETED_COLUMNS)),
    Contract(schema.billable_orders, (*billing.BILLABLE_COLUMNS, *billing.PRICE_COLUMNS), ("as_of",)),
    Contract(schema.invoice_lines, tuple(billing.LINE_COLUMNS), ("invoice_number",)),
    Contract(schema.order_charges, tuple(monthly.CHARGE_COLUMNS)),
    Contract(schema.invoice_adjustments, tuple(statements.ADJUSTMENT_COLUMNS),
             ("cohort_day", "superseded_by", "reviewed_at", "reviewed_by", "created_run_id")),
    Contract(schema.monthly_statements, tuple(statements.STATEMENT_COLUMNS)),
    Contract(schema.rate_card_versions, tuple(rate_cards.RECORD_COLUMNS), ("first_used_at", "first_used_run_id")),
    Contract(schema.billing_report, tuple(statements.REPORT_COLUMNS)),
    Contract(schema.operations_summary, tuple(operations.SUMMARY_COLUMNS)),
)


def mismatches() -> list[str]:
    """Every column a domain frame lacks or adds against its table, and every event text field
    whose length limit differs from the event log's column; empty when they agree."""
    problems = []
    for contract in CONTRACTS:
        declared = [c.name for c in contract.table.columns]
        expected = (set(contract.produced) - set(contract.not_stored)) | set(contract.stored_only)
        for name in declared:
            if name not in expected:
                problems.append(f"{contract.table.name}.{name}: declared, but the domain does not produce it")
        for name in sorted(expected - set(declared)):
            problems.append(f"{contract.table.name}.{name}: produced by the domain, but not declared")
    for field, limit in events.FIELD_LIMITS.items():
        column = schema.event_log.c.get(field)
        length = column.type.length if column is not None and isinstance(column.type, String) else None
        if length != limit:
            problems.append(f"event_log.{field}: the domain limits it to {limit} characters, the column holds {length}")
    return problems
