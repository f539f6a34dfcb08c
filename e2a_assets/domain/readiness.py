"""Readiness before a run (DOMAIN §6): is the platform in a state where figures can be trusted?

Pure: measurements and thresholds in, one verdict per criterion out. The checks in
`e2a_assets/checks/readiness.py` take the measurements (warehouse, event log, Dagster instance).

Criteria and why each is (or is not) blocking by default:
- warehouse reachable: nothing can be computed without it (blocks);
- dead-letter backlog: pending dead letters are signed deliveries whose events are missing from
  every figure until replayed; more than `max_pending_dead_letters` blocks;
- newest event age: no delivery received for `max_event_age_hours` usually means a receiver or
  a sender is down. Days already complete are still right, so it warns unless told to block;
- sensor lag: the age of the oldest committed event `new_events_sensor` has not seen yet. It only
  means something while the sensor is running: a stopped sensor (or one that never ran, as in a
  fresh demo whose runs are launched directly) refreshes nothing on its own, and runs read the
  event log directly, so there is no lag to speak of. Warns unless told to block, because
  blocking would also skip the very refreshes the sensor requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ERROR = "ERROR"
WARN = "WARN"

SENSOR_NEVER_RAN = "never_ran"
SENSOR_STOPPED = "stopped"
SENSOR_RUNNING = "running"


@dataclass(frozen=True)
class ReadinessThresholds:
    max_event_age_hours: float = 6.0
    max_pending_dead_letters: int = 25
    max_sensor_lag_minutes: float = 15.0
    block_on_stale_events: bool = False
    block_on_sensor_lag: bool = False


@dataclass(frozen=True)
class Verdict:
    """One readiness criterion: passed or not, how serious a failure is, and why."""

    name: str
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _age_hours(then: pd.Timestamp | None, now: pd.Timestamp) -> float | None:
    if then is None or pd.isna(then):
        return None
    return max((pd.Timestamp(now) - pd.Timestamp(then)).total_seconds() / 3600.0, 0.0)


def warehouse_verdict(error: str | None, latency_ms: float | None = None) -> Verdict:
    if error:
        return Verdict("warehouse_reachable", False, ERROR, f"warehouse unreachable: {error}")
    return Verdict("warehouse_reachable", True, ERROR, "warehouse answered",
                   {"latency_ms": float(latency_ms or 0.0)})


def event_age_verdict(newest_received_at: pd.Timestamp | None, now: pd.Timestamp,
                      thresholds: ReadinessThresholds) -> Verdict:
    severity = ERROR if thresholds.block_on_stale_events else WARN
    limit = thresholds.max_event_age_hours
    age = _age_hours(newest_received_at, now)
    if age is None:
        return Verdict("events_fresh", False, severity, "no event has been received yet",
                       {"max_event_age_hours": limit})
    meta = {"newest_event_age_hours": round(age, 3), "max_event_age_hours": limit}
    if age > limit:
        return Verdict("events_fresh", False, severity,
                       f"newest event was received {age:.1f} h ago (limit {limit:g} h): is a receiver or sender down?", meta)
    return Verdict("events_fresh", True, severity, f"newest event received {age:.2f} h ago", meta)


def dead_letter_verdict(pending: int, thresholds: ReadinessThresholds) -> Verdict:
    limit = thresholds.max_pending_dead_letters
    meta = {"pending_dead_letters": int(pending), "max_pending_dead_letters": limit}
    if pending > limit:
        return Verdict("dead_letter_backlog", False, ERROR,
                       f"{pending} dead letters pending (limit {limit}): their events are missing from every figure; "
                       "fix the cause and run `e2a replay-dead-letters`", meta)
    return Verdict("dead_letter_backlog", True, ERROR, f"{pending} dead letter(s) pending", meta)


def sensor_lag_verdict(
    sensor_state: str,
    unseen_events: int,
    oldest_unseen_received_at: pd.Timestamp | None,
    last_tick_at: pd.Timestamp | None,
    now: pd.Timestamp,
    thresholds: ReadinessThresholds,
) -> Verdict:
    """Lag of a *running* sensor: how long the oldest event it has not seen has been waiting."""
    severity = ERROR if thresholds.block_on_sensor_lag else WARN
    limit = thresholds.max_sensor_lag_minutes
    meta: dict[str, Any] = {"sensor_state": sensor_state, "unseen_events": int(unseen_events),
                            "max_sensor_lag_minutes": limit}
    if sensor_state != SENSOR_RUNNING:
        why = "has never run" if sensor_state == SENSOR_NEVER_RAN else "is stopped"
        return Verdict("sensor_lag", True, severity,
                       f"new_events_sensor {why}: nothing is refreshed automatically and runs read the event log "
                       "directly, so there is no lag to measure", {**meta, "sensor_lag_minutes": 0.0})
    lag_hours = _age_hours(oldest_unseen_received_at, now) if unseen_events else 0.0
    lag = 60.0 * (lag_hours or 0.0)
    meta["sensor_lag_minutes"] = round(lag, 2)
    tick_age = _age_hours(last_tick_at, now)
    tick_note = "never ticked" if tick_age is None else f"last ticked {60 * tick_age:.0f} min ago"
    if lag > limit:
        return Verdict("sensor_lag", False, severity,
                       f"new_events_sensor is {lag:.0f} min behind ({unseen_events} unseen events, limit {limit:g} min; "
                       f"{tick_note}): is dagster-daemon running?", meta)
    return Verdict("sensor_lag", True, severity,
                   f"new_events_sensor is {lag:.1f} min behind ({unseen_events} unseen events; {tick_note})", meta)


def unmeasured(name: str, reason: str) -> Verdict:
    """A criterion that could not be measured (e.g. the warehouse is down) fails and blocks."""
    return Verdict(name, False, ERROR, f"not measured: {reason}")
