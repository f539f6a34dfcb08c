"""Ingestion group: the canonical, deduplicated events of each cohort day."""

import dagster as dg

from e2a_assets.assets.common import DATA, HOURLY_FRESHNESS, number, preview, warehouse_assets
from e2a_assets.domain.events import SOURCES
from e2a_assets.intake.landing import cohort_events
from e2a_assets.partitions import partition_days
from e2a_assets.resources import WarehouseResource
from e2a_assets.warehouse.frames import replace_partition
from e2a_assets.warehouse.schema import webhook_events as webhook_events_table

# Refreshed by the hourly order processing and by new_events_sensor.
ingestion_asset = warehouse_assets("ingestion", DATA, HOURLY_FRESHNESS)


@ingestion_asset(webhook_events_table)
def webhook_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Canonical, deduplicated events of the orders created on the partition's day (cohort day),
    taken from the append-only event log that the webhook receiver fills."""
    first, last = partition_days(context)
    engine = warehouse.get_engine()
    events = cohort_events(engine, first, last)
    written = replace_partition(engine, webhook_events_table, events, "cohort_day", first, last)
    by_source = events.groupby("source").size() if len(events) else {}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": number(written),
            "events": number(written),
            "orders": number(events[["tenant", "order_id"]].drop_duplicates().shape[0]),
            "tenants": number(events["tenant"].nunique()),
            **{f"events_{src}": number(int(by_source.get(src, 0))) for src in SOURCES},
            "preview": preview(events, ["tenant", "order_id", "event_type", "occurred_at", "source"]),
        }
    )
