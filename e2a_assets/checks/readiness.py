"""`system_readiness`: blocking checks on `webhook_events`, the first asset of the order-processing,
exception-management, billing and full-operations runs (the summary job runs ungated, see
docs/operations.md).

A failed ERROR check stops the run's downstream steps (orders, SLA, exceptions, billing,
summary) with its reason in the UI, instead of producing figures from an incomplete warehouse.
The evaluation rules and thresholds are in `e2a_assets/domain/readiness.py`.
"""

import json
import time

import dagster as dg
import pandas as pd
from sqlalchemy import func, select

from e2a_assets import compat
from e2a_assets.domain import readiness as rules
from e2a_assets.domain.events import DEAD_LETTER_PENDING
from e2a_assets.resources import WarehouseResource
from e2a_assets.warehouse.event_cursor import EventCursor
from e2a_assets.warehouse.event_readers import NEW_EVENTS_SENSOR, unread
from e2a_assets.warehouse.schema import dead_letters, event_log

SENSOR_NAME = NEW_EVENTS_SENSOR
CHECKED_ASSET = dg.AssetKey("webhook_events")
CHECKS = ("warehouse_reachable", "events_fresh", "dead_letter_backlog", "sensor_lag")
_DESCRIPTIONS = {
    "warehouse_reachable": "The warehouse answers a trivial query.",
    "events_fresh": "A delivery was received within the last `max_event_age_hours` (warns; blocks if configured).",
    "dead_letter_backlog": "At most `max_pending_dead_letters` dead letters wait for a replay.",
    "sensor_lag": "A running new_events_sensor has seen every event older than `max_sensor_lag_minutes` "
                  "(warns; blocks if configured). A stopped sensor has no lag.",
}


class ReadinessConfig(dg.Config):
    """Thresholds of the readiness checks; change them in the launchpad for one run."""

    max_event_age_hours: float = rules.ReadinessThresholds.max_event_age_hours
    max_pending_dead_letters: int = rules.ReadinessThresholds.max_pending_dead_letters
    max_sensor_lag_minutes: float = rules.ReadinessThresholds.max_sensor_lag_minutes
    block_on_stale_events: bool = rules.ReadinessThresholds.block_on_stale_events
    block_on_sensor_lag: bool = rules.ReadinessThresholds.block_on_sensor_lag

    def thresholds(self) -> rules.ReadinessThresholds:
        return rules.ReadinessThresholds(**self.model_dump())


def new_events_sensor_state(instance: dg.DagsterInstance) -> tuple[str, EventCursor, pd.Timestamp | None]:
    """(never_ran | stopped | running, its cursor, its last tick) from the instance's sensor state."""
    states = compat.sensor_states(instance, SENSOR_NAME)
    if not states:  # never ticked, or an ephemeral instance (tests, execute_in_process)
        return rules.SENSOR_NEVER_RAN, EventCursor(), None
    # The sensor is declared RUNNING in code; only an explicit stop in the UI makes it STOPPED.
    running = [s for s in states if not s.stopped]
    state = running[0] if running else states[0]
    cursor = EventCursor.from_json(json.loads(state.cursor) if state.cursor else None)
    last_tick = state.last_tick_timestamp
    tick_at = pd.Timestamp(last_tick, unit="s", tz="UTC") if last_tick else None
    if not running:
        return rules.SENSOR_STOPPED, cursor, tick_at
    return rules.SENSOR_RUNNING, cursor, tick_at


def _utc(value) -> pd.Timestamp | None:  # noqa: ANN001
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def evaluate_readiness(
    warehouse: WarehouseResource,
    instance: dg.DagsterInstance,
    thresholds: rules.ReadinessThresholds,
    now: pd.Timestamp | None = None,
) -> list[rules.Verdict]:
    """Measure and judge every criterion, in CHECKS order. Wall-clock time: readiness is about now,
    not about the run's evaluation time."""
    now = now or pd.Timestamp.now(tz="UTC")
    state, cursor, last_tick = new_events_sensor_state(instance)
    started = time.monotonic()
    try:
        with warehouse.get_engine().connect() as conn:
            conn.execute(select(1))
            latency_ms = 1000 * (time.monotonic() - started)
            newest = _utc(conn.execute(select(func.max(event_log.c.received_at))).scalar())
            pending = conn.execute(
                select(func.count()).select_from(dead_letters).where(dead_letters.c.status == DEAD_LETTER_PENDING)
            ).scalar_one()
            count, oldest = unread(conn, cursor) if state == rules.SENSOR_RUNNING else (0, None)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the warehouse is the verdict
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return [rules.warehouse_verdict(reason)] + [rules.unmeasured(n, "the warehouse is unreachable") for n in CHECKS[1:]]
    return [
        rules.warehouse_verdict(None, latency_ms),
        rules.event_age_verdict(newest, now, thresholds),
        rules.dead_letter_verdict(int(pending), thresholds),
        rules.sensor_lag_verdict(state, count, _utc(oldest), last_tick, now, thresholds),
    ]


def _severity(verdict: rules.Verdict) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if verdict.severity == rules.ERROR else dg.AssetCheckSeverity.WARN


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(name, asset=CHECKED_ASSET, blocking=True, description=_DESCRIPTIONS[name]) for name in CHECKS],
    name="system_readiness",
    description="Readiness before the day's work: warehouse, event freshness, dead letters, sensor lag.",
)
def system_readiness(context: dg.AssetCheckExecutionContext, config: ReadinessConfig, warehouse: WarehouseResource):
    for verdict in evaluate_readiness(warehouse, context.instance, config.thresholds()):
        yield dg.AssetCheckResult(
            asset_key=CHECKED_ASSET,
            check_name=verdict.name,
            passed=verdict.passed,
            severity=_severity(verdict),
            description=verdict.description,
            metadata={"reason": dg.MetadataValue.text(verdict.description), **verdict.metadata},
        )
