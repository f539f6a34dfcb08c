"""The only place in e2a (package and tests) that touches Dagster's private modules (`dagster._...`).

Dagster 1.13 has no public API for these needs. Each wrapper says which public API would replace
it, or that none exists yet, so a Dagster upgrade is checked here and only here
(e2a_tests/test_compat.py keeps every other module off `dagster._`). Private modules are imported
inside the functions: importing e2a costs nothing extra and an upgrade breaks only the caller.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import dagster as dg


@dataclass(frozen=True)
class SensorState:
    """What the instance stores about one sensor: stopped or not, its cursor, its last tick."""

    stopped: bool
    cursor: str | None
    last_tick_timestamp: float | None


def sensor_states(instance: dg.DagsterInstance, sensor_name: str) -> list[SensorState]:
    """The stored states of the sensors called `sensor_name` (one per code location that has it);
    none on an ephemeral instance (tests, `execute_in_process`), which stores no sensor state.

    Public replacement: none in Dagster 1.13 (the GraphQL `sensorOrError { sensorState }` query of a
    running webserver reads the same; `DagsterInstance.all_instigator_state` needs private enums).
    """
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

    if instance.schedule_storage is None:
        return []
    states = []
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name != sensor_name:
            continue
        data = state.instigator_data
        states.append(SensorState(
            stopped=state.status == InstigatorStatus.STOPPED,
            cursor=getattr(data, "cursor", None) if data is not None else None,
            last_tick_timestamp=getattr(data, "last_tick_timestamp", None) if data is not None else None,
        ))
    return states


def store_sensor_state(instance: dg.DagsterInstance, *, module_name: str, location_name: str, sensor_name: str,
                       status: str, cursor: str | None, last_tick_timestamp: float | None) -> None:
    """Record a sensor's state (status RUNNING, STOPPED or DECLARED_IN_CODE) as the daemon would,
    for a code location loaded from `module_name`. Used by tests of the readiness checks.

    Public replacement: none in Dagster 1.13 (the UI, the GraphQL `startSensor`/`stopSensor`
    mutations and the sensor daemon write this state).
    """
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin)
    from dagster._core.scheduler.instigation import (
        InstigatorState, InstigatorStatus, InstigatorType, SensorInstigatorData)
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name=module_name), location_name=location_name)
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), sensor_name)
    state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus[status],
                            SensorInstigatorData(last_tick_timestamp=last_tick_timestamp, cursor=cursor))
    if instance.get_instigator_state(state.instigator_origin_id, state.selector_id):
        instance.update_instigator_state(state)
    else:
        instance.add_instigator_state(state)


def check_execution_status(record) -> str:  # noqa: ANN001 - an AssetCheckExecutionRecord
    """The status of a stored asset check execution: PLANNED, SUCCEEDED or FAILED. Comparing names
    keeps callers off the private enum.

    Public replacement: none in Dagster 1.13 (`AssetCheckExecutionRecordStatus` is not exported;
    the GraphQL `assetCheckExecutions` query returns the same status names).
    """
    return record.status.value


def run_daemon_iterations(instance: dg.DagsterInstance, python_file: Path, attribute: str, location_name: str,
                          schedule_times: Iterable[dt.datetime], *, sensors: bool = True) -> None:
    """Evaluate a code location's schedules at each of `schedule_times` (UTC) and then its
    sensors once, exactly as `dagster-daemon` does, recording ticks and launching runs on
    `instance`. Used by tests that need real ticks on a chosen clock.

    Public replacement: none in Dagster 1.13 — `dagster-daemon run` does the same as a process,
    but on the wall clock and without a way to stop after one pass.
    """
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.sensor import execute_sensor_iteration
    from dagster._scheduler.scheduler import launch_scheduled_runs

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(python_file), attribute=attribute,
                             working_directory=str(python_file.parent)),
        location_name=location_name,
    )
    log = logging.getLogger("e2a.daemon_iterations")
    with create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as workspace:
        for when in schedule_times:
            list(launch_scheduled_runs(workspace, log, when, {}))
        if sensors:
            list(execute_sensor_iteration(workspace, log, None, None))


def forget_defs_state_storage() -> None:
    """Drop the defs-state storage Dagster 1.13 remembers from the last instance entered in this
    process. Once that (test) instance is gone, the next `Definitions` resolution fails with
    "Attempted to resolve undefined DagsterInstance weakref"; tests call this between tests.

    Public replacement: none in Dagster 1.13 (the storage is a private context variable).
    """
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
