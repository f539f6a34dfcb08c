"""Alerts: failed runs and failed asset checks, recorded in the warehouse `alerts` table and, when
E2A_ALERT_WEBHOOK_URL is set, posted as a Slack-compatible message (`{"text", "blocks"}`).

Posting never raises: a webhook that is down is recorded on the alert (`delivery = failed`,
`delivery_error`), and the sensor carries on. Each alert is raised once (unique `alert_key`).
"""

import datetime as dt
import json
from typing import Any

import dagster as dg
import httpx
import pandas as pd
from sqlalchemy import update

from e2a_assets import compat
from e2a_assets.resources import WarehouseResource
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.frames import insert_new

# Check executions looked at per check and tick; far more than a check runs in 30 s.
CHECK_HISTORY = 20
# A check execution still "planned" after this long belongs to a run that died: stop waiting.
PLANNED_PATIENCE = dt.timedelta(hours=1)
MAX_TEXT = 2800  # Slack section text is limited to 3,000 characters


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts are posted (Slack incoming webhook or compatible); unset: record only."""

    webhook_url: str | None = None
    timeout_seconds: float = 5.0

    def deliver(self, payload: dict[str, Any]) -> tuple[str, str | None]:
        """(`sent` | `failed` | `not_configured`, error). Never raises."""
        if not self.webhook_url:
            return "not_configured", None
        try:
            response = httpx.post(self.webhook_url, json=payload, timeout=self.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - an alert must never fail the sensor
            return "failed", f"{type(exc).__name__}: {exc}"[:500]
        if response.status_code >= 300:
            return "failed", f"HTTP {response.status_code}: {response.text[:200]}"
        return "sent", None


def slack_payload(title: str, severity: str, lines: list[str]) -> dict[str, Any]:
    """A Slack-compatible message: plain `text` for notifications, `blocks` for the layout."""
    icon = ":red_circle:" if severity == "ERROR" else ":warning:"
    body = "\n".join(lines)[:MAX_TEXT]
    return {
        "text": f"{icon} e2a {severity}: {title}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"e2a {severity}: {title}"[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body or title}},
        ],
    }


def raise_alert(
    warehouse: WarehouseResource,
    webhook: AlertWebhookResource,
    *,
    alert_key: str,
    kind: str,
    severity: str,
    subject: str,
    message: str,
    run_id: str | None,
    lines: list[str],
) -> str | None:
    """Record the alert once and deliver it; returns the delivery state, None if already raised."""
    engine = warehouse.get_engine()
    row = {
        "alert_key": alert_key, "kind": kind, "severity": severity, "subject": subject[:256],
        "run_id": run_id, "message": message, "raised_at": dt.datetime.now(dt.timezone.utc),
        "delivery": "pending", "delivery_error": None,
    }
    with engine.begin() as conn:
        if not insert_new(conn, schema.alerts, pd.DataFrame([row]), ["alert_key"]):
            return None
    delivery, error = webhook.deliver(slack_payload(subject if kind != "run_failure" else f"run failed: {subject}",
                                                    severity, lines))
    with engine.begin() as conn:
        conn.execute(update(schema.alerts).where(schema.alerts.c.alert_key == alert_key)
                     .values(delivery=delivery, delivery_error=error))
    return delivery


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed e2a run as an alert and posts it to the alert webhook when configured.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, warehouse: WarehouseResource, alert_webhook: AlertWebhookResource
) -> None:
    run = context.dagster_run
    error = context.failure_event.message or "run failed"
    tags = run.tags
    partition = tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags else None
    )
    step_errors = [
        f"• `{e.step_key}`: {root_cause(e.event_specific_data.error)}"
        for e in context.get_step_failure_events()
        if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    ]
    lines = [f"*Job* `{run.job_name}`  *Run* `{run.run_id}`"]
    if partition:
        lines.append(f"*Partitions* {partition}")
    lines += [error, *step_errors[:10]]
    delivery = raise_alert(
        warehouse, alert_webhook, alert_key=f"run:{run.run_id}", kind="run_failure", severity="ERROR",
        subject=run.job_name, message="\n".join([error, *step_errors]), run_id=run.run_id, lines=lines,
    )
    context.log.info(f"run {run.run_id} failed: alert {delivery or 'already raised'}")


def root_cause(error: Any) -> str:
    """The innermost error's message (Dagster wraps user errors in its own)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = (error.message or "").strip().splitlines()
    return lines[-1] if lines else error.cls_name or "error"


def _severity(evaluation: Any) -> str:
    severity = getattr(evaluation, "severity", None)
    return "WARN" if severity is not None and severity.value == "WARN" else "ERROR"


@dg.sensor(
    name="asset_check_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Raises an alert for every failed asset check evaluation (readiness, invoice validation, ...).",
)
def asset_check_alert_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, alert_webhook: AlertWebhookResource
) -> dg.SensorResult:
    """Cursor: per check, the newest finished execution already looked at."""
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    storage = context.instance.event_log_storage
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    raised = 0
    for check_key in sorted(context.repository_def.asset_graph.asset_check_keys, key=str):
        name = check_key.to_user_string()
        seen = cursor.get(name, 0)
        records = [r for r in storage.get_asset_check_execution_history(check_key, limit=CHECK_HISTORY) if r.id > seen]
        waiting = [r.id for r in records if compat.check_execution_status(r) == "PLANNED"
                   and now - r.create_timestamp < PLANNED_PATIENCE.total_seconds()]
        for record in sorted(records, key=lambda r: r.id):
            if compat.check_execution_status(record) != "FAILED" or record.event is None:
                continue
            evaluation = record.event.dagster_event.event_specific_data
            description = getattr(evaluation, "description", None) or ""
            meta = getattr(evaluation, "metadata", {}) or {}
            reason = description or (meta["reason"].value if "reason" in meta else "check failed")
            severity = _severity(evaluation)
            lines = [f"*Check* `{name}`  *Run* `{record.run_id}`"]
            if record.partition:
                lines.append(f"*Partition* {record.partition}")
            lines.append(reason)
            if raise_alert(warehouse, alert_webhook, alert_key=f"check:{record.id}", kind="check_failure",
                           severity=severity, subject=name, message=reason, run_id=record.run_id, lines=lines):
                raised += 1
        finished = [r.id for r in records if r.id not in waiting]
        if finished:
            cursor[name] = (min(waiting) - 1) if waiting else max(finished)
    context.log.info(f"{raised} new check failure alert(s)")
    return dg.SensorResult(cursor=json.dumps(cursor, sort_keys=True))
