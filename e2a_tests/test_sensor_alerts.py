"""Alerts: failed runs and failed checks are recorded and posted to a (local) webhook once."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from sqlalchemy import select

from e2a_assets.sensors.alerts import AlertWebhookResource, asset_check_alert_sensor, run_failure_alert_sensor
from e2a_assets.resources import WarehouseResource
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine


@pytest.fixture
def webhook():
    """A local HTTP server on 127.0.0.1 that records every POST body (answers with `status`)."""
    posts: list[dict] = []
    state = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            posts.append({"body": json.loads(body), "content_type": self.headers.get("content-type")})
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):  # keep pytest output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", posts, state
    server.shutdown()
    server.server_close()


@dg.asset
def fragile():
    raise RuntimeError("carrier API returned 502")


@dg.asset
def checked():
    return 1


@dg.asset_check(asset=checked, description="always fails")
def checked_is_fine():
    return dg.AssetCheckResult(passed=False, description="3 invoices without a number",
                               severity=dg.AssetCheckSeverity.WARN)


def alerts_rows(url):
    with make_engine(url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(schema.alerts).order_by(schema.alerts.c.id))]


def run_failure(instance, resources):
    defs = dg.Definitions(assets=[fragile], sensors=[run_failure_alert_sensor], resources=resources)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_event=failure, dagster_instance=instance,
        dagster_run=run, resources=resources,
    ).for_run_failure()
    run_failure_alert_sensor(context)
    return run


def test_run_failure_is_recorded_and_posted_once(sqlite_url, webhook):
    url, posts, _ = webhook
    resources = {"warehouse": WarehouseResource(database_url=sqlite_url),
                 "alert_webhook": AlertWebhookResource(webhook_url=url, timeout_seconds=2)}
    with dg.instance_for_test() as instance:
        run = run_failure(instance, resources)
        # The sensor seeing the same failure again (a retried tick) raises nothing new.
        failure = instance.get_records_for_run(run.run_id).records[-1].event_log_entry.dagster_event
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_event=failure, dagster_instance=instance,
            dagster_run=run, resources=resources).for_run_failure()
        run_failure_alert_sensor(context)

    assert len(posts) == 1
    body = posts[0]["body"]
    assert posts[0]["content_type"] == "application/json"
    assert body["text"].startswith(":red_circle: e2a ERROR: run failed: __ASSET_JOB")
    assert [b["type"] for b in body["blocks"]] == ["header", "section"]
    assert "carrier API returned 502" in body["blocks"][1]["text"]["text"]
    [row] = alerts_rows(sqlite_url)
    assert (row["kind"], row["severity"], row["delivery"], row["run_id"]) == ("run_failure", "ERROR", "sent", run.run_id)


def test_nothing_is_posted_when_unconfigured_and_post_failures_are_recorded(sqlite_url, webhook):
    url, posts, state = webhook
    warehouse = WarehouseResource(database_url=sqlite_url)
    with dg.instance_for_test() as instance:
        run_failure(instance, {"warehouse": warehouse, "alert_webhook": AlertWebhookResource()})
        state["status"] = 500
        run_failure(instance, {"warehouse": warehouse, "alert_webhook": AlertWebhookResource(webhook_url=url)})
        # Nothing listens on port 9: the failure is recorded, not raised.
        run_failure(instance, {"warehouse": warehouse,
                               "alert_webhook": AlertWebhookResource(webhook_url="http://127.0.0.1:9/x", timeout_seconds=1)})
    rows = alerts_rows(sqlite_url)
    assert [r["delivery"] for r in rows] == ["not_configured", "failed", "failed"]
    assert rows[1]["delivery_error"].startswith("HTTP 500")
    assert "Connect" in rows[2]["delivery_error"]
    assert len(posts) == 1  # only the configured, reachable (if failing) webhook was called


def test_failed_checks_raise_one_alert_each(sqlite_url, webhook):
    url, posts, _ = webhook
    resources = {"warehouse": WarehouseResource(database_url=sqlite_url),
                 "alert_webhook": AlertWebhookResource(webhook_url=url)}
    defs = dg.Definitions(assets=[checked], asset_checks=[checked_is_fine], sensors=[asset_check_alert_sensor],
                          resources=resources)
    with dg.instance_for_test() as instance:
        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources)
            return asset_check_alert_sensor(context).cursor

        assert defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
        cursor = tick(None)
        assert len(posts) == 1
        assert posts[0]["body"]["text"] == ":warning: e2a WARN: checked:checked_is_fine"
        assert "3 invoices without a number" in posts[0]["body"]["blocks"][1]["text"]["text"]
        assert tick(cursor) == cursor and len(posts) == 1  # nothing new

        defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
        cursor2 = tick(cursor)
        assert cursor2 != cursor and len(posts) == 2
        # Even without the cursor (lost state), an alert is raised only once.
        tick(None)
        assert len(posts) == 2
    rows = alerts_rows(sqlite_url)
    assert [(r["kind"], r["severity"], r["delivery"]) for r in rows] == [("check_failure", "WARN", "sent")] * 2
