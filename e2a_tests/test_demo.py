"""`e2a demo` (what `./run.sh demo` runs): simulate, materialise on the project's instance, summarise."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from e2a_assets.cli import instance as cli
from e2a_assets.cli.demo import run_demo, tenant_summary
from e2a_assets.settings import Settings
from e2a_assets.cli.status import open_work
from e2a_assets.warehouse.engine import make_engine

E2A = Path(sys.executable).with_name("e2a")


def test_demo_materialises_every_asset_on_the_instance_and_its_summary_adds_up(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("E2A_DAGSTER_POSTGRES_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings.from_env({"E2A_DATA_DIR": str(tmp_path)})
    home = cli.dagster_home(settings)
    lines: list[str] = []
    # A fixed evaluation time whose two days straddle a month end: one statements run covers both months.
    today = dt.date(2025, 9, 2)
    run_demo(settings, days=2, orders_per_day=12, seed=11, echo=lines.append,
             as_of=pd.Timestamp("2025-09-02T12:00:00Z"))

    assert lines[0] == "Simulating 3 tenants x 2 days x 12 orders/day from 2025-08-31 ..."
    assert "0 dead letters" in lines[1]
    assert lines[2] == "Materialising every asset for 2025-08-31..2025-09-01 (as of 2025-09-02T12:00:00+00:00) ..."
    assert lines[4].endswith(": monthly statements for 2025-08, 2025-09")
    # The history is on the project's instance, so `./run.sh ui` shows it afterwards.
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        runs = instance.get_runs()
        assert sorted(r.job_name for r in runs) == ["full_operations_job", "monthly_statements_job"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert instance.get_latest_materialization_event(dg.AssetKey("operations_summary")) is not None
    finally:
        instance.dispose()

    summary = tenant_summary(settings, today - dt.timedelta(days=2), today - dt.timedelta(days=1)).set_index("tenant")
    assert list(summary.index) == ["demo-3pl", "harbor-supply", "northwind-goods"]
    # One tenant in each billing mode (DOMAIN §8.3).
    assert summary["mode"].tolist() == ["per_order", "monthly", "per_order"]
    assert (summary["orders"] == 24).all()
    assert (summary["completed"] <= summary["orders"]).all()
    # Every completed order is invoiced, charged on a monthly invoice, pending until the month's
    # invoice (August's is issued after 3 days' grace, after this as_of) or held.
    pd.testing.assert_series_equal(summary["completed"], summary["invoices"] + summary["charged"] + summary["pending"]
                                   + summary["held"], check_names=False, check_dtype=False)  # fmt: skip
    per_order, monthly = summary.drop(index="harbor-supply"), summary.loc["harbor-supply"]
    assert (per_order["invoiced $"] > 0).all() and (per_order["pending"] == 0).all()
    assert (monthly["invoices"], monthly["charged"], monthly["invoiced $"]) == (0, 0, 0) and monthly["pending"] > 0

    # `e2a status` on the same data: ready, and the open work agrees with the demo's summary.
    work = open_work(make_engine(settings.database_url), today, settings.registry().tenants).set_index("tenant")
    assert list(work.index) == ["demo-3pl", "harbor-supply", "northwind-goods"]
    assert (work["held_orders"] == summary["held"]).all() and (work["open_exceptions"] == summary["open"]).all()
    assert (work["stalled_orders"] == summary["stalled"]).all()
    # This month's invoices (the demo's days may begin in the previous month).
    from e2a_assets.warehouse import schema
    from e2a_assets.warehouse.frames import read_table

    book = read_table(make_engine(settings.database_url), schema.invoices)
    this_month = book[pd.to_datetime(book["invoice_date"]) >= pd.Timestamp(today.replace(day=1))]
    expected = this_month.groupby("tenant").size().reindex(work.index, fill_value=0)
    assert work["invoices_this_month"].tolist() == expected.tolist()
    assert work["invoiced_cents_this_month"].tolist() == \
        this_month.groupby("tenant")["amount_cents"].sum().reindex(work.index, fill_value=0).tolist()
    env = {**os.environ, "E2A_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(home), "COLUMNS": "200"}
    shown = subprocess.run([str(E2A), "status"], capture_output=True, text=True, timeout=120, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "warehouse_reachable │ ok" in shown.stdout and "events_fresh        │ ok" in shown.stdout
    assert "demo-3pl" in shown.stdout and "northwind-goods" in shown.stdout
    assert "alerts in the last 24 h: 0" in shown.stdout
    as_json = subprocess.run([str(E2A), "status", "--json"], capture_output=True, text=True, timeout=120, env=env)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and report["ready"] is True and report["alerts_24h"] == 0
    assert [c["check"] for c in report["readiness"]] == ["warehouse_reachable", "events_fresh", "dead_letter_backlog",
                                                         "sensor_lag"]
    assert {row["tenant"]: row["held_orders"] for row in report["open_work"]} == work["held_orders"].to_dict()

    # An alert raised by the alert path (here: a failed check) is counted with its subject.
    from e2a_assets.resources import WarehouseResource
    from e2a_assets.sensors.alerts import AlertWebhookResource, raise_alert

    raise_alert(WarehouseResource(database_url=settings.database_url), AlertWebhookResource(webhook_url=None),
                alert_key="check-1", kind="check_failure", severity="ERROR", subject="invoices:invoice_numbering",
                message="gap in DEMO-3PL-202611", run_id=None, lines=["gap"])
    shown = subprocess.run([str(E2A), "status"], capture_output=True, text=True, timeout=120, env=env)
    assert "alerts in the last 24 h: 1 (newest: check_failure invoices:invoice_numbering at " in shown.stdout


def test_status_exits_1_with_the_failed_checks_when_the_warehouse_is_down(tmp_path):
    env = {**os.environ, "E2A_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "home"), "COLUMNS": "200",
           "DATABASE_URL": "postgresql://e2a:s3cret@127.0.0.1:9/none"}
    shown = subprocess.run([str(E2A), "status"], capture_output=True, text=True, timeout=120, env=env)
    assert shown.returncode == 1
    assert "warehouse_reachable │ FAIL" in shown.stdout and "s3cret" not in shown.stdout + shown.stderr
    assert shown.stderr.strip().splitlines() == [
        "e2a: not ready: warehouse_reachable, events_fresh, dead_letter_backlog, sensor_lag failed "
        "(scheduled runs skip their work until fixed)"]
    as_json = subprocess.run([str(E2A), "status", "--json"], capture_output=True, text=True, timeout=120, env=env)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["ready"] is False and report["open_work"] is None
    assert report["warehouse"] == "postgresql://e2a:***@127.0.0.1:9/none"
