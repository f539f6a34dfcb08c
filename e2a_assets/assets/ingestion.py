"""Ingestion group: the canonical, deduplicated events of each cohort day."""

import datetime as dt

import dagster as dg

from e2a_assets.assets.common import WAREHOUSE_RETRY, number, preview, single_run_asset, table_metadata
from e2a_assets.partitions import daily_partitions, partition_days
from e2a_assets.resources import WarehouseResource
from e2a_assets.warehouse.frames import replace_partition
from e2a_assets.intake.landing import cohort_events
from e2a_assets.warehouse.schema import webhook_events as webhook_events_table


@single_run_asset(
    group_name="ingestion",
    partitions_def=daily_partitions,
    kinds={"sql", "pandas"},
    retry_policy=WAREHOUSE_RETRY,
    owners=["team:data"],
    metadata=table_metadata(webhook_events_table),
    # Refreshed by the hourly order processing and by new_events_sensor.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=2), warn_window=dt.timedelta(minutes=75)),
)
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
            **{f"events_{src}": number(int(by_source.get(src, 0))) for src in ("shopify", "wms", "carrier")},
            "preview": preview(events, ["tenant", "order_id", "event_type", "occurred_at", "source"]),
        }
    )
