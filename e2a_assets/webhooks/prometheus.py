"""The receiver's counters in Prometheus' text exposition format (version 0.0.4), for scraping."""

from __future__ import annotations

from typing import Any, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (name, type, help, key in the JSON metrics)
_SCALARS = (
    ("e2a_group_commit_batches_total", "counter", "Transactions committed by the group committer.", "batches"),
    ("e2a_group_commit_deliveries_total", "counter", "Deliveries committed in those transactions.", "batched_deliveries"),
    ("e2a_group_commit_failed_batches_total", "counter", "Transactions that failed (answered 503 or retried one by one).",
     "failed_batches"),
    ("e2a_group_commit_largest_batch", "gauge", "Largest transaction so far, in deliveries.", "largest_batch"),
    ("e2a_group_commit_pending", "gauge", "Deliveries waiting for a transaction now.", "pending"),
    ("e2a_tenant_registry_reloads_total", "counter", "Times the tenant registry was re-read after its files changed.",
     "registry_reloads"),
    ("e2a_tenant_registry_failed_reloads_total", "counter",
     "Registry changes that did not load (the previous registry stayed in force).", "registry_failed_reloads"),
    ("e2a_receiver_uptime_seconds", "gauge", "Seconds since this receiver process started.", "uptime_s"),
)


def wants_prometheus(accept: str | None, fmt: str | None) -> bool:
    """A Prometheus scraper (it asks for text/plain or OpenMetrics) or `?format=prometheus`."""
    if fmt:
        return fmt.lower() == "prometheus"
    accept = (accept or "").lower()
    return "openmetrics-text" in accept or accept.startswith("text/plain")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(metrics: Mapping[str, Any]) -> str:
    """The JSON metrics of `/metrics` as exposition text: one labelled counter for the answers,
    plain series for the group committer."""
    out = [
        "# HELP e2a_webhook_requests_total Webhook deliveries answered, by route source and outcome.",
        "# TYPE e2a_webhook_requests_total counter",
    ]
    outcomes = list(metrics["requests"])
    for source, counts in metrics["requests_by_source"].items():
        for outcome in outcomes:
            out.append(f'e2a_webhook_requests_total{{source="{_label(source)}",outcome="{_label(outcome)}"}} '
                       f"{int(counts.get(outcome, 0))}")
    for name, kind, text, key in _SCALARS:
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {metrics[key]}"]
    return "\n".join(out) + "\n"
