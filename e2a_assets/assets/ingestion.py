"""Ingestion group: the canonical, deduplicated events of each cohort day."""

import dagster as dg

from e2a_assets.assets.common import DATA, HOURLY_FRESHNESS, number, preview, warehouse_assets
from e2a_assets.domain.events import SOURCES
from e2a_assets.assets.ranges import materialize_by_chunks
from e2a_assets.resources import WarehouseResource
from e2a_assets.services.refresh.orders import refresh_webhook_events
from e2a_assets.warehouse.schema import webhook_events as webhook_events_table

# Refreshed by the hourly order processing and by new_events_sensor.
ingestion_asset = warehouse_assets("ingestion", DATA, HOURLY_FRESHNESS)


@ingestion_asset(webhook_events_table)
def webhook_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Canonical, deduplicated events of the orders created on the partition's day (cohort day),
    taken from the append-only event log that the webhook receiver fills."""
    engine = warehouse.get_engine()

    def step(first, last):  # noqa: ANN001, ANN202
        return refresh_webhook_events(engine, first, last)

    def figures(events, day):  # noqa: ANN001, ANN202
        by_source = events.groupby("source").size() if len(events) else {}
        return {
            "dagster/row_count": number(len(events)),
            "events": number(len(events)),
            "orders": number(events[["tenant", "order_id"]].drop_duplicates().shape[0]),
            "tenants": number(events["tenant"].nunique()),
            **{f"events_{src}": number(int(by_source.get(src, 0))) for src in SOURCES},
            "preview": preview(events, ["tenant", "order_id", "event_type", "occurred_at", "source"]),
        }

    return materialize_by_chunks(context, step, figures, day_column="cohort_day", chunk_days=warehouse.chunk_days)
