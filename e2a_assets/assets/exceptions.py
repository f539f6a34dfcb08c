"""Exceptions group: one tracked exception per problem, its priority, its action, and patterns."""

import dagster as dg

from e2a_assets.assets.common import FOUR_HOURLY_FRESHNESS, OPS, number, preview, warehouse_assets
from e2a_assets.assets.ranges import materialize_by_chunks
from e2a_assets.domain.exception_patterns import BY_REASON_CODE, PATTERN_LOOKBACK_DAYS, RECOMMENDATION, insights_markdown
from e2a_assets.domain.exceptions import (
    OPEN,
    PENDING,
    PRIORITY_CATEGORIES,
    SEVERITIES,
    automation_success,
    automation_success_rate,
)
from e2a_assets.resources import ClockResource, TenantRegistryResource, WarehouseResource
from e2a_assets.services.refresh.exceptions import (
    refresh_exception_actions,
    refresh_exception_insights,
    refresh_exception_patterns,
    refresh_exception_priorities,
    refresh_exceptions,
)
from e2a_assets.warehouse import schema

# Exception management runs every 4 hours.
exceptions_asset = warehouse_assets("exceptions", OPS, FOUR_HOURLY_FRESHNESS)


@exceptions_asset(schema.exceptions, deps=["webhook_events", "orders", "order_sla"])
def exceptions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """One exception per (tenant, order, reason code) for the cohort day's orders: SLA breaches,
    payload problems, carrier failures and reported issues, with their lifecycle as of the run."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    policies = tenant_registry.policy_frame()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_exceptions(engine, first, last, as_of, policies)

    def figures(frame, day):  # noqa: ANN001, ANN202
        is_open = frame["status"] == OPEN
        by_code = frame.groupby("reason_code").size()
        return {
            "dagster/row_count": number(len(frame)),
            "exceptions": number(len(frame)),
            "open": number(int(is_open.sum())),
            "resolved": number(int((~is_open).sum())),
            "holding_billing": number(int(frame["holds_billing"].sum())),
            **{f"open_{s.lower()}": number(int((is_open & (frame["severity"] == s)).sum())) for s in reversed(SEVERITIES)},
            "by_reason_code": dg.MetadataValue.json({k: int(v) for k, v in by_code.items()}),
            "preview": preview(frame[is_open], ["tenant", "order_id", "reason_code", "severity", "opened_at"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@exceptions_asset(schema.exception_priorities, deps=["exceptions"])
def exception_priorities(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """Every exception open at the evaluation time, scored (severity + age + SLA risk) and
    categorised, best first: the work queue of the exception desk."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    policies = tenant_registry.policy_frame()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_exception_priorities(engine, first, last, as_of, policies)

    def figures(frame, day):  # noqa: ANN001, ANN202
        counts = frame["category"].value_counts()
        return {
            "dagster/row_count": number(len(frame)),
            **{c: number(int(counts.get(c, 0))) for c in PRIORITY_CATEGORIES},
            "max_score": number(float(frame["score"].max()) if len(frame) else 0.0),
            "preview": preview(frame, ["rank", "tenant", "order_id", "reason_code", "severity", "age_hours", "score", "category"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@exceptions_asset(schema.exception_actions, deps=["exceptions"])
def exception_actions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """The automated-resolution outbox: one action per open exception (infer_scan,
    request_address_fix, retry_payment, carrier_escalation, manual_review), requested once, with
    its outcome once the exception resolves."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_exception_actions(engine, first, last, as_of)

    def figures(parts, day):  # noqa: ANN001, ANN202
        outbox = parts["outbox"]
        success = automation_success(outbox)
        return {
            "dagster/row_count": number(len(outbox)),
            "requested_now": number(len(parts["requested"])),
            "succeeded_now": number(len(parts["succeeded"])),
            "pending": number(int((outbox["outcome"] == PENDING).sum())),
            "automation_success_rate": number(automation_success_rate(success)),
            "automation_by_code": preview(success, rows=50),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@exceptions_asset(
    schema.exception_patterns,
    deps=[
        dg.AssetDep(
            "exceptions",
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-PATTERN_LOOKBACK_DAYS, end_offset=0),
        )
    ],
)
def exception_patterns(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Rolling 7-day exception patterns ending at the day: per reason code, severity, hour and
    weekday, the top 5 codes, week-over-week change and emerging codes."""
    engine = warehouse.get_engine()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_exception_patterns(engine, first, last)

    def figures(frame, day):  # noqa: ANN001, ANN202
        codes = frame[frame["dimension"] == BY_REASON_CODE] if len(frame) else frame
        return {
            "dagster/row_count": number(len(frame)),
            "exceptions_7d": number(int(codes["count"].sum()) if len(codes) else 0),
            "emerging_codes": number(int(codes["emerging"].sum()) if len(codes) else 0),
            "top_codes": preview(codes.sort_values("top_rank") if len(codes) else codes,
                                 ["tenant", "key", "count", "previous_count", "wow_change", "emerging"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="day", chunk_days=warehouse.chunk_days)


@exceptions_asset(schema.exception_insights, deps=["exception_patterns", "exceptions"])
def exception_insights(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Findings and recommendations per tenant from the 7-day patterns: most common code, peak
    hour and weekday, emerging codes, prevention opportunities, resolution-rate warnings."""
    engine = warehouse.get_engine()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_exception_insights(engine, first, last)

    def figures(frame, day):  # noqa: ANN001, ANN202
        return {
            "dagster/row_count": number(len(frame)),
            "recommendations": number(int((frame["kind"] == RECOMMENDATION).sum()) if len(frame) else 0),
            "report": dg.MetadataValue.md(insights_markdown(frame) if len(frame) else "_no exceptions in the window_"),
        }

    return materialize_by_chunks(context, step, figures, day_column="day", chunk_days=warehouse.chunk_days)
