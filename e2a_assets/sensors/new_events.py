"""`new_events_sensor`: refresh exactly the cohort days that newly committed events touch."""

import json
import time

import dagster as dg
import pandas as pd

from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG, daily_partitions
from e2a_assets.resources import AS_OF_TAG, WarehouseResource
from e2a_assets.warehouse.event_cursor import EventCursor, is_ahead_of_log, read_after
from e2a_assets.warehouse.event_readers import NEW_EVENTS_SENSOR, save_position
from e2a_assets.intake.landing import cohort_days_of_orders

PAGE_SIZE = 5000
# Sensor evaluations time out at 60 s; stop paging well before that and continue next tick.
TIME_BUDGET_SECONDS = 20.0
REFRESH_JOB = "order_processing_job"


def touched_days(conn, page: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    """(day, max event id) for every cohort day the page's orders belong to, or just left."""
    keys = page.dropna(subset=["order_id"])[["tenant", "order_id"]].drop_duplicates()
    if keys.empty:
        return pd.DataFrame(columns=["day", "max_id"])
    cohorts = cohort_days_of_orders(conn, keys.itertuples(index=False, name=None))
    last_id = page.groupby(["tenant", "order_id"], as_index=False)["id"].max()
    cohorts = cohorts.merge(last_id, on=["tenant", "order_id"])
    days = pd.concat(
        [cohorts[["cohort_day", "id"]].rename(columns={"cohort_day": "day"}),
         cohorts[["stored_day", "id"]].rename(columns={"stored_day": "day"})]
    ).dropna(subset=["day"])
    return days.groupby("day", as_index=False)["id"].max().rename(columns={"id": "max_id"})


def contiguous_blocks(latest: dict) -> list[list[tuple]]:
    """Touched days grouped into runs of consecutive days: [(day, max_id), ...] per block."""
    blocks: list[list[tuple]] = []
    for day, max_id in sorted(latest.items()):
        if blocks and (day - blocks[-1][-1][0]).days == 1:
            blocks[-1].append((day, max_id))
        else:
            blocks.append([(day, max_id)])
    return blocks


def _run_request(block: list[tuple], as_of: str, epoch: str) -> dg.RunRequest:
    """One run per block: a single day as its partition, consecutive days as one single-run range
    (the assets' backfill policy), keyed by the newest event seen for the block."""
    first, last = block[0][0].isoformat(), block[-1][0].isoformat()
    newest = max(max_id for _, max_id in block)
    tags = {AS_OF_TAG: as_of, "e2a/trigger": "new_events_sensor"}
    if first == last:
        return dg.RunRequest(run_key=f"{first}@{newest}{epoch}", partition_key=first, tags=tags)
    return dg.RunRequest(
        run_key=f"{first}..{last}@{newest}{epoch}",
        tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last},
    )


@dg.sensor(
    job_name=REFRESH_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the event log; requests a refresh of every cohort day that new events touch.",
)
def new_events_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
    """Cursor over the event log in commit order (exact under concurrent receivers); one run per
    block of consecutive touched days, keyed by the newest event seen for it so later events
    refresh it again."""
    cursor = EventCursor.from_json(json.loads(context.cursor) if context.cursor else None)
    started = time.monotonic()
    engine = warehouse.get_engine()
    latest: dict = {}
    scanned = 0
    with engine.connect() as conn:
        if is_ahead_of_log(conn, cursor):
            context.log.warning(
                f"the event log ends before the sensor's cursor (id {cursor.id}): it was recreated; reading it again "
                "from the start")
            cursor = EventCursor(epoch=cursor.epoch + 1)
        while time.monotonic() - started < TIME_BUDGET_SECONDS:
            page, cursor = read_after(conn, cursor, PAGE_SIZE, max_wait_s=warehouse.cursor_max_wait_seconds)
            if page.empty:
                break
            scanned += len(page)
            for row in touched_days(conn, page).itertuples(index=False):
                latest[row.day] = max(latest.get(row.day, 0), int(row.max_id))
            if len(page) < PAGE_SIZE:
                break
    with engine.begin() as conn:
        # Where it stands, for `e2a status` and the receiver's /metrics (cursor lag).
        save_position(conn, NEW_EVENTS_SENSOR, cursor, pd.Timestamp.now(tz="UTC").to_pydatetime())
    valid = set(daily_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    as_of = pd.Timestamp.now(tz="UTC").floor("s").isoformat()
    epoch = f"/{cursor.epoch}" if cursor.epoch else ""
    requests = [
        _run_request(block, as_of, epoch)
        for block in contiguous_blocks({d: m for d, m in latest.items() if d.isoformat() in valid})
    ]
    skipped = sorted(d.isoformat() for d in latest if d.isoformat() not in valid)
    if skipped:
        context.log.warning(f"events for days outside the partition range were not refreshed: {skipped[:10]}")
    context.log.info(f"scanned {scanned} new events; {len(latest)} day(s) to refresh in {len(requests)} run(s)")
    if cursor.waiting or cursor.excused:
        # Cursor lag caused by open transactions (Postgres): bounded by cursor_max_wait_seconds.
        context.log.info(f"horizon held back {cursor.held_back_s(time.time()):.0f} s by {len(cursor.waiting)} open "
                         f"transaction(s); {len(cursor.excused)} passed over, read when they end")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor.to_json()))
