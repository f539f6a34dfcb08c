"""The shape of the code location, pinned: assets, dependencies, checks, jobs, schedules, sensors.

A rename, a regrouping, a dropped dependency or a schedule moved to another job shows up as a
difference against `snapshots/definitions.json`. A deliberate change regenerates the file with
`E2A_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest e2a_tests/test_graph_snapshot.py` and the
diff is reviewed like code.
"""

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from e2a_assets.assets.common import OPS, warehouse_assets
from e2a_assets.definitions import build_definitions
from e2a_assets.settings import PROJECT_ROOT, Settings
from e2a_assets.warehouse import schema

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe_partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    """Kind, start, zone and end offset: what decides which partition keys exist."""
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return (f"{type(partitions_def).__name__}(start={partitions_def.start.date().isoformat()}, "
                f"timezone={partitions_def.timezone}, end_offset={partitions_def.end_offset})")
    return repr(partitions_def)


def describe_mapping(mapping: dg.PartitionMapping | None) -> str | None:
    if mapping is None:
        return None
    if isinstance(mapping, dg.TimeWindowPartitionMapping):
        return f"TimeWindowPartitionMapping(start_offset={mapping.start_offset}, end_offset={mapping.end_offset})"
    return type(mapping).__name__


def graph_snapshot(defs: dg.Definitions) -> dict:
    """A JSON-ready, sorted description of everything the UI shows as the code location's structure."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": describe_partitions(node.partitions_def),
            "deps": {parent.to_user_string(): describe_mapping(graph.get_partition_mapping(key, parent))
                     for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())},
        }
    checks = {check.to_user_string(): {"blocking": graph.get_check_spec(check).blocking}
              for check in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())}
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "checks": sorted(spec.key.to_user_string() for data in job.asset_layer.data
                             for spec in data.assets_def.check_specs),
            "partitions": describe_partitions(job.partitions_def),
            "description": job.description,
        }
    schedules = {s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone,
                          "default_status": s.default_status.value, "description": s.description}
                 for s in sorted(defs.schedules or [], key=lambda s: s.name)}
    sensors = {s.name: {"job": s.job_name if s.targets else None, "default_status": s.default_status.value}
               for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {"assets": assets, "checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def differences(stored: dict, current: dict, path: str = "") -> list[str]:
    """Every leaf that differs, as `dotted.path: stored -> current` (missing sides are None)."""
    if isinstance(stored, dict) and isinstance(current, dict):
        return [line for key in sorted(set(stored) | set(current))
                for line in differences(stored.get(key), current.get(key), f"{path}.{key}" if path else key)]
    return [] if stored == current else [f"{path}: {json.dumps(stored)} -> {json.dumps(current)}"]


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    data = tmp_path_factory.mktemp("snapshot")
    return build_definitions(Settings(data_dir=data, database_url=f"sqlite:///{data}/w.sqlite",
                                      policies_dir=PROJECT_ROOT / "policies",
                                      tenants_file=PROJECT_ROOT / "policies" / "tenants.yaml"))


def test_definitions_match_the_snapshot(defs):
    current = graph_snapshot(defs)
    if os.environ.get("E2A_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    stored = json.loads(SNAPSHOT.read_text())
    assert differences(stored, current) == []


def _asset(defs: dg.Definitions, name: str) -> dg.AssetsDefinition:
    """The asset as defined (before `Definitions` binds resources to it)."""
    return next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(name) in a.keys)


def _replace_asset(defs: dg.Definitions, replacement: dg.AssetsDefinition) -> dg.Definitions:
    """`defs` with one asset swapped for `replacement` (same key), everything else as it was."""
    assets = [a for a in defs.assets if not (isinstance(a, dg.AssetsDefinition) and replacement.key in a.keys)]
    return dg.Definitions(assets=[*assets, replacement], asset_checks=defs.asset_checks, jobs=defs.jobs,
                          schedules=defs.schedules, sensors=defs.sensors, resources=defs.resources)


def test_a_dropped_dependency_is_a_difference(defs):
    """sla_metrics without its `exceptions` input: the snapshot names exactly that edge."""
    original = _asset(defs, "sla_metrics")

    @warehouse_assets("orders", OPS)(schema.sla_metrics, name="sla_metrics", partitions_def=original.partitions_def,
                                     deps=["order_sla"])
    def sla_metrics_without_exceptions() -> None: ...

    changed = graph_snapshot(_replace_asset(defs, sla_metrics_without_exceptions))
    assert differences(json.loads(SNAPSHOT.read_text()), changed) == [
        'assets.sla_metrics.deps.exceptions: "TimeWindowPartitionMapping(start_offset=0, end_offset=0)" -> null',
    ]


def test_a_renamed_dependency_is_a_difference(defs):
    """completed_orders reading `orders_v2` instead of `orders`: the lost edge, the new edge and the
    unknown upstream asset it now points at."""
    renamed = _asset(defs, "completed_orders").with_attributes(
        asset_key_replacements={dg.AssetKey("orders"): dg.AssetKey("orders_v2")})

    changed = graph_snapshot(_replace_asset(defs, renamed))
    assert differences(json.loads(SNAPSHOT.read_text()), changed) == [
        'assets.completed_orders.deps.orders: "TimeWindowPartitionMapping(start_offset=0, end_offset=0)" -> null',
        'assets.completed_orders.deps.orders_v2: null -> "AllPartitionMapping"',
        'assets.orders_v2: null -> {"group": "default", "partitions": null, "deps": {}}',
    ]
