"""The code location loads, and the UI can explain every asset (the contract of STYLE.md).

The snapshot below catches accidental renames and regroupings: a deliberate change updates it.
"""

import os
import subprocess
import sys

import dagster as dg
import pytest

from e2a_assets.definitions import build_definitions
from e2a_assets.settings import PROJECT_ROOT, Settings

ASSET_GROUPS = {
    "ingestion": {"webhook_events"},
    "orders": {"orders", "order_sla", "sla_metrics", "completed_orders"},
    "exceptions": {"exceptions", "exception_priorities", "exception_actions", "exception_patterns", "exception_insights"},
    "billing": {"billable_orders", "invoices", "invoice_adjustments", "billing_report", "monthly_statements"},
    "operations": {"operations_summary"},
}
READINESS_CHECKS = {"warehouse_reachable", "events_fresh", "dead_letter_backlog", "sensor_lag"}
SENSORS = {"new_events_sensor", "run_failure_alert_sensor", "asset_check_alert_sensor"}
OWNERS = {"team:ops", "team:finance", "team:data"}
# Assets refreshed on a cadence say how fresh they should be.
WITH_FRESHNESS = {"webhook_events", "orders", "order_sla", "sla_metrics", "exceptions", "exception_priorities",
                  "exception_actions", "exception_patterns", "exception_insights", "operations_summary"}


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    data = tmp_path_factory.mktemp("defs")
    return build_definitions(Settings(data_dir=data, database_url=f"sqlite:///{data}/w.sqlite",
                                      policies_dir=PROJECT_ROOT / "policies",
                                      tenants_file=PROJECT_ROOT / "policies" / "tenants.yaml"))


@pytest.fixture(scope="module")
def specs(defs):
    return {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def test_the_code_location_loads(defs):
    dg.Definitions.validate_loadable(defs)
    # The module-level `defs` (what `dagster dev -m e2a_assets.definitions` loads) too.
    from e2a_assets import definitions

    loaded = definitions.defs()
    dg.Definitions.validate_loadable(loaded)
    assert {j.name for j in loaded.resolve_all_job_defs()} - {"__ASSET_JOB"} == {
        "order_processing_job", "exception_management_job", "billing_job", "full_operations_job",
        "operations_summary_job", "monthly_statements_job", "ledger_audit_job"}
    assert {s.name for s in loaded.schedules} == {
        "order_processing_schedule", "exception_management_schedule", "billing_schedule",
        "operations_summary_schedule", "monthly_statements_schedule"}
    assert {s.name for s in loaded.sensors} == {
        "new_events_sensor", "run_failure_alert_sensor", "asset_check_alert_sensor"}


def test_asset_keys_and_groups_snapshot(specs):
    groups: dict[str, set[str]] = {}
    for name, spec in specs.items():
        groups.setdefault(spec.group_name, set()).add(name)
    assert groups == ASSET_GROUPS


def test_every_asset_retries_transient_warehouse_failures(defs):
    """A dropped warehouse connection costs a backed-off retry of the step, not a failed run."""
    without = sorted(key.to_user_string() for asset in defs.resolve_all_asset_specs()
                     for key in [asset.key]
                     if (policy := defs.resolve_assets_def(key).op.retry_policy) is None
                     or policy.max_retries < 1 or policy.backoff != dg.Backoff.EXPONENTIAL)
    assert without == []


def test_every_asset_explains_itself(specs):
    problems = []
    for name, spec in sorted(specs.items()):
        if not (spec.description or "").strip():
            problems.append(f"{name}: no description")
        if not spec.owners or not set(spec.owners) <= OWNERS:
            problems.append(f"{name}: owners {spec.owners!r} (expected some of {sorted(OWNERS)})")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
        schema = spec.metadata.get("dagster/column_schema")
        if not isinstance(schema, dg.TableSchema) or not schema.columns:
            problems.append(f"{name}: no dagster/column_schema")
        if name in WITH_FRESHNESS and spec.freshness_policy is None:
            problems.append(f"{name}: no freshness policy")
    assert problems == []


def test_readiness_checks_are_blocking_checks_on_webhook_events(defs):
    graph = defs.resolve_asset_graph()
    readiness = {k for k in graph.asset_check_keys if k.name in READINESS_CHECKS}
    assert {k.name for k in readiness} == READINESS_CHECKS
    assert {k.asset_key.to_user_string() for k in readiness} == {"webhook_events"}
    assert all(graph.get_check_spec(k).blocking for k in readiness)


def test_names_follow_the_conventions(defs):
    jobs = {j.name for j in defs.resolve_all_job_defs()} - {"__ASSET_JOB"}
    schedules = {s.name for s in defs.schedules or []}
    sensors = {s.name for s in defs.sensors or []}
    assert jobs and all(name.endswith("_job") for name in jobs), jobs
    assert all(name.endswith("_schedule") for name in schedules), schedules
    assert all(name.endswith("_sensor") for name in sensors), sensors
    assert SENSORS <= sensors


def test_importing_the_code_location_reads_nothing(tmp_path):
    """No file or database I/O on import: a missing tenant registry, an unreachable warehouse and
    a data directory that does not exist only matter once Dagster loads the definitions."""
    data_dir = tmp_path / "not-created"
    env = {**os.environ, "E2A_TENANTS_FILE": "/nonexistent", "E2A_DATA_DIR": str(data_dir),
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}

    def python(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                              cwd=PROJECT_ROOT)

    imported = python("import e2a_assets.definitions")
    assert imported.returncode == 0, imported.stderr
    assert imported.stderr == ""  # not even a warning (Dagster's beta notices are handled where they arise)
    assert not data_dir.exists()

    loaded = python("from e2a_assets.definitions import defs; defs()")
    assert loaded.returncode == 1
    assert loaded.stderr.strip().splitlines()[-1] == \
        "e2a_assets.domain.policies.PolicyError: /nonexistent: cannot read (No such file or directory)"


def test_connection_strings_from_the_environment_are_bound_by_name(tmp_path, monkeypatch):
    """DATABASE_URL and E2A_ALERT_WEBHOOK_URL are bound as EnvVar: the UI shows the variable's
    name, and a run process without the variable fails on it instead of using a local default."""
    from e2a_assets.definitions import build_resources
    from e2a_assets.resources import WarehouseResource

    url = f"sqlite:///{tmp_path}/w.sqlite"
    settings = Settings.from_env({"DATABASE_URL": url, "E2A_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
                                  "E2A_DATA_DIR": str(tmp_path)})
    resources = build_resources(settings)
    assert isinstance(resources["warehouse"].database_url, dg.EnvVar)
    assert resources["warehouse"].database_url == "DATABASE_URL"
    assert isinstance(resources["alert_webhook"].webhook_url, dg.EnvVar)
    assert resources["alert_webhook"].webhook_url == "E2A_ALERT_WEBHOOK_URL"
    # Settings given directly (tests, the demo) keep their values.
    direct = build_resources(Settings.from_env({"E2A_DATA_DIR": str(tmp_path)}))
    assert direct["warehouse"].database_url == f"sqlite:///{tmp_path.resolve()}/warehouse.sqlite"
    assert not isinstance(direct["warehouse"].database_url, dg.EnvVar)
    assert direct["alert_webhook"].webhook_url is None

    @dg.asset
    def warehouse_url(warehouse: WarehouseResource) -> str:
        return warehouse.database_url

    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError, match='environment variable "DATABASE_URL"'):
        dg.materialize([warehouse_url], resources={"warehouse": resources["warehouse"]})
    monkeypatch.setenv("DATABASE_URL", url)
    result = dg.materialize([warehouse_url], resources={"warehouse": resources["warehouse"]})
    assert result.output_for_node("warehouse_url") == url
