"""End to end: signed webhooks over HTTP -> event log -> sensor tick -> runs -> orders and SLA metrics."""

import datetime as dt
import json

import dagster as dg
import httpx
import pandas as pd

from e2a_assets.definitions import build_definitions
from e2a_assets.sensors.new_events import new_events_sensor
from e2a_assets.simulator.runner import send_live
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_assets.webhooks.app import create_app
from e2a_assets.webhooks.server import running_server
from e2a_assets.webhooks.signing import sign
from e2a_tests.factories import requested_days, settings_for

START = dt.date(2025, 8, 4)


def tick(defs, instance, cursor):
    """One sensor evaluation, then the runs it requested, as the daemon would launch them."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"warehouse": defs.resources["warehouse"]})
    result = new_events_sensor(context)
    job = defs.resolve_job_def("order_processing_job")
    for request in result.run_requests:
        run = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
        assert run.success
    return result, result.cursor


def test_signed_webhooks_flow_to_orders_and_sla_metrics(sqlite_url, tmp_path):
    settings = settings_for(sqlite_url, tmp_path)
    registry = settings.registry()
    engine = make_engine(sqlite_url)
    defs = build_definitions(settings)
    deliveries = generate([registry["demo-3pl"]], 2, 6, seed=11, start=START)

    with running_server(create_app(engine, registry)) as url, dg.instance_for_test() as instance:
        stats = send_live(url, deliveries, rate=None)
        assert stats.gave_up == 0 and stats.rejected == 0

        first, cursor = tick(defs, instance, None)
        days = requested_days(first.run_requests)
        assert days == ["2025-08-04", "2025-08-05"]

        orders = read_table(engine, schema.orders)
        assert len(orders) == 12  # 6 orders a day, each exactly once
        assert orders["cohort_day"].astype(str).isin(days).all()
        metrics = read_table(engine, schema.sla_metrics)
        assert sorted(metrics["day"].astype(str)) == days
        assert metrics["orders"].sum() == 12

        # A nothing-new tick requests nothing.
        quiet, cursor = tick(defs, instance, cursor)
        assert quiet.run_requests == []

        # One more signed carrier scan for an order of 08-04 refreshes only that day.
        open_status = ~orders["status"].isin(["delivered", "returned", "cancelled"])
        target = orders[(orders["cohort_day"].astype(str) == "2025-08-04") & open_status]
        order_id = target["order_id"].iloc[0]
        body = json.dumps({"event_id": "late-delivery-1", "event_type": "delivered", "order_id": order_id,
                           "occurred_at": "2025-08-07T09:00:00Z"}).encode()
        response = httpx.post(f"{url}/webhooks/carrier", content=body, headers={
            "X-E2A-Tenant": "demo-3pl", "X-E2A-Hmac-Sha256": sign(registry["demo-3pl"].webhook_secret(), body),
            "Content-Type": "application/json"})
        assert response.status_code == 200

        later, _ = tick(defs, instance, cursor)
        assert requested_days(later.run_requests) == ["2025-08-04"]
        updated = read_table(engine, schema.orders).set_index("order_id")
        assert updated.loc[order_id, "status"] == "delivered"
        assert updated.loc[order_id, "delivered_at"] == pd.Timestamp("2025-08-07T09:00:00Z")
