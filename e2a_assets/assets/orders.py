"""Orders group: orders and their fulfilment progress, per-order SLA clocks, daily SLA metrics."""

import dagster as dg

from e2a_assets.assets.common import HOURLY_FRESHNESS, OPS, number, preview, warehouse_assets
from e2a_assets.assets.ranges import materialize_by_chunks
from e2a_assets.domain.orders import STATUSES
from e2a_assets.domain.sla import CLOCKS
from e2a_assets.resources import ClockResource, TenantRegistryResource, WarehouseResource
from e2a_assets.services.refresh.orders import refresh_order_sla, refresh_orders, refresh_sla_metrics
from e2a_assets.warehouse import schema

# Order processing runs hourly (and on new events).
orders_asset = warehouse_assets("orders", OPS, HOURLY_FRESHNESS)


@orders_asset(schema.orders, deps=["webhook_events"])
def orders(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """One row per order of the cohort day: milestones, status, flags and whether it is stalled,
    as of the run's evaluation time."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    policies = tenant_registry.policy_frame()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_orders(engine, first, last, as_of, policies)

    def figures(frame, day):  # noqa: ANN001, ANN202
        status = frame["status"].value_counts()
        return {
            "dagster/row_count": number(len(frame)),
            "orders": number(len(frame)),
            "stalled": number(int(frame["stalled"].sum())),
            **{f"status_{s}": number(int(status.get(s, 0))) for s in reversed(STATUSES)},
            "preview": preview(frame, ["tenant", "order_id", "order_name", "status", "created_at", "shipped_at", "stalled", "flags"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


@orders_asset(schema.order_sla, deps=["orders"])
def order_sla(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """Per order and SLA clock (pick, pack, ship, delivery): actual minutes, limit, breached and
    delay; a clock still running is measured up to the evaluation time."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    policies = tenant_registry.policy_frame()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_order_sla(engine, first, last, as_of, policies)

    def figures(frame, day):  # noqa: ANN001, ANN202
        breached = frame[frame["breached"]].groupby("clock").size() if len(frame) else {}
        return {
            "dagster/row_count": number(len(frame)),
            "clocks": number(len(frame)),
            "running": number(int(frame["running"].sum())),
            **{f"{c}_breached": number(int(breached.get(c, 0))) for c in CLOCKS},
            "preview": preview(frame[frame["breached"]], ["tenant", "order_id", "clock", "actual_minutes", "limit_minutes", "delay_minutes"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days, as_of=as_of)


def _mean(frame, column):  # noqa: ANN001
    """Orders-weighted mean of a per-tenant-day figure, for the day's headline metadata."""
    if frame.empty:
        return float("nan")
    return float((frame[column] * frame["orders"]).sum() / max(frame["orders"].sum(), 1))


@orders_asset(schema.sla_metrics, deps=["order_sla", "exceptions"])
def sla_metrics(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    tenant_registry: TenantRegistryResource,
    clock: ClockResource,
) -> dg.MaterializeResult:
    """Daily SLA figures per tenant: compliance and p50/p95 of each clock, stalled orders and the
    4-hour exception response compliance."""
    as_of = clock.as_of_for(context)
    engine = warehouse.get_engine()
    policies = tenant_registry.policy_frame()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_sla_metrics(engine, first, last, as_of, policies)

    def figures(frame, day):  # noqa: ANN001, ANN202
        return {
            "dagster/row_count": number(len(frame)),
            "orders": number(int(frame["orders"].sum()) if len(frame) else 0),
            "completed": number(int(frame["completed"].sum()) if len(frame) else 0),
            "stalled": number(int(frame["stalled"].sum()) if len(frame) else 0),
            **{f"{c}_compliance_pct": number(100 * _mean(frame, f"{c}_compliance")) for c in CLOCKS},
            "exception_response_compliance_pct": number(100 * _mean(frame, "exception_response_compliance")),
            "preview": preview(frame, ["tenant", "day", "orders", "completed", "pick_compliance", "pack_compliance", "ship_compliance", "delivery_compliance", "stalled"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="day", chunk_days=warehouse.chunk_days, as_of=as_of)
