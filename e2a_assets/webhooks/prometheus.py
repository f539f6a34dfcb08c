"""The receiver's metrics (docs/webhooks.md "Metrics"), kept with `prometheus_client`.

One `ReceiverMetrics` per app: answers by source and outcome, the time to answer a delivery,
group-commit batch sizes and commit times, failed batches, deliveries waiting, registry reloads.
`/metrics` renders them in Prometheus' text format for a scraper and as the JSON operators and
tests read; both come from the same samples.

With `e2a serve --workers N` every worker writes its values to files in a multiprocess directory
(`PROMETHEUS_MULTIPROC_DIR`, a fresh directory per run made by `webhooks/server.py`) and a scrape,
whichever worker answers it, adds up all of them: counters and histograms summed over every worker
that has run (so they survive a worker restart), `pending` summed over the live workers,
`largest_batch` the largest of any. The event-log readers' lag (warehouse/event_readers.py) is read
from the warehouse at scrape time. Without a directory (one process) each app keeps its own
registry, so several apps in one process (tests) do not share figures.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from e2a_assets.warehouse.event_readers import ReaderLag

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds to answer a delivery: from a few ms (401, duplicate) to the ingest timeout (3 s, then 503).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Deliveries per group-commit transaction (max_batch is 256 by default).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def wants_prometheus(accept: str | None, fmt: str | None) -> bool:
    """A Prometheus scraper (it asks for text/plain or OpenMetrics) or `?format=prometheus`."""
    if fmt:
        return fmt.lower() == "prometheus"
    accept = (accept or "").lower()
    return "openmetrics-text" in accept or accept.startswith("text/plain")


class _Lags:
    """A collector for the lag figures read from the warehouse at scrape time."""

    def __init__(self, lags: Sequence[ReaderLag]):
        self.lags = lags

    def collect(self) -> Iterable[GaugeMetricFamily]:
        rows = GaugeMetricFamily("e2a_event_reader_lag_rows",
                                 "Committed event-log rows a reader (the new-events sensor) has not read yet.",
                                 labels=["reader"])
        seconds = GaugeMetricFamily("e2a_event_reader_lag_seconds",
                                    "Age of the oldest committed event-log row a reader has not read yet.",
                                    labels=["reader"])
        for lag in self.lags:
            rows.add_metric([lag.reader], lag.rows)
            seconds.add_metric([lag.reader], lag.seconds)
        return [rows, seconds]


class ReceiverMetrics:
    """The receiver's instruments; `multiprocess_dir` when several worker processes share a port."""

    def __init__(self, sources: Sequence[str], outcomes: Sequence[str], multiprocess_dir: str | None = None):
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.started = time.time()
        reg = self.registry
        self.requests = Counter("e2a_webhook_requests", "Webhook deliveries answered, by route source and outcome.",
                                ["source", "outcome"], registry=reg)
        self.latency = Histogram("e2a_webhook_request_duration_seconds",
                                 "Seconds from a delivery's request to its answer, by source and outcome.",
                                 ["source", "outcome"], buckets=LATENCY_BUCKETS, registry=reg)
        self.batch_size = Histogram("e2a_group_commit_batch_size", "Deliveries per group-commit transaction.",
                                    buckets=BATCH_BUCKETS, registry=reg)
        self.commit_seconds = Histogram("e2a_group_commit_duration_seconds",
                                        "Seconds one group-commit transaction took (canonicalise, insert, commit).",
                                        buckets=COMMIT_BUCKETS, registry=reg)
        self.failed_batches = Counter("e2a_group_commit_failed_batches",
                                      "Transactions that failed (answered 503 or retried one by one).", registry=reg)
        self.pending = Gauge("e2a_group_commit_pending", "Deliveries waiting for a transaction now.",
                             registry=reg, multiprocess_mode="livesum")
        self.largest = Gauge("e2a_group_commit_largest_batch", "Largest transaction so far, in deliveries.",
                             registry=reg, multiprocess_mode="max")
        self.reloads = Counter("e2a_tenant_registry_reloads",
                               "Times the tenant registry was re-read after its files changed.", registry=reg)
        self.failed_reloads = Counter("e2a_tenant_registry_failed_reloads",
                                      "Registry changes that did not load (the previous registry stayed in force).",
                                      registry=reg)
        # Children made once: the hot path does no label lookups.
        self._answered = {(s, o): (self.requests.labels(s, o), self.latency.labels(s, o))
                          for s in sources for o in outcomes}
        self._largest = 0
        self.sources, self.outcomes = tuple(sources), tuple(outcomes)

    # recording ------------------------------------------------------------------------------
    def answered(self, source: str, outcome: str, seconds: float) -> None:
        counter, histogram = self._answered[(source, outcome)]
        counter.inc()
        histogram.observe(seconds)

    def committed(self, size: int, seconds: float, pending: int) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)
        self.pending.set(pending)
        if size > self._largest:
            self._largest = size
            self.largest.set(size)

    def registry_reloaded(self, ok: bool) -> None:
        (self.reloads if ok else self.failed_reloads).inc()

    def process_exiting(self) -> None:
        """A worker's last word: its live-only gauges (`pending`) stop counting."""
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), self.multiprocess_dir)

    # reading --------------------------------------------------------------------------------
    def _source(self) -> CollectorRegistry:
        if not self.multiprocess_dir:
            return self.registry
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)
        return merged

    def render(self, lags: Sequence[ReaderLag] = ()) -> bytes:
        """The text exposition of every worker's figures, and the readers' lag."""
        out = generate_latest(self._source())
        if lags:
            extra = CollectorRegistry()
            extra.register(_Lags(lags))
            out += generate_latest(extra)
        return out

    def snapshot(self, lags: Sequence[ReaderLag] = ()) -> dict[str, Any]:
        """The JSON of `/metrics`: the same samples as `render`, added up the same way."""
        values: dict[tuple[str, tuple], float] = {}
        for family in self._source().collect():
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                values[key] = values.get(key, 0.0) + sample.value
        by_source = {s: {} for s in self.sources}
        totals = {o: 0 for o in self.outcomes}
        latency_count: dict[str, int] = {}
        for (name, labels), value in values.items():
            label = dict(labels)
            if name == "e2a_webhook_requests_total":
                by_source.setdefault(label["source"], {})[label["outcome"]] = int(value)
                totals[label["outcome"]] = totals.get(label["outcome"], 0) + int(value)
            elif name == "e2a_webhook_request_duration_seconds_count":
                latency_count[label["outcome"]] = latency_count.get(label["outcome"], 0) + int(value)

        def one(name: str) -> float:
            return values.get((name, ()), 0.0)

        return {
            "requests": totals,
            "requests_by_source": {s: {o: n for o, n in c.items() if n} for s, c in by_source.items()},
            "batches": int(one("e2a_group_commit_batch_size_count")),
            "batched_deliveries": int(one("e2a_group_commit_batch_size_sum")),
            "largest_batch": int(one("e2a_group_commit_largest_batch")),
            "failed_batches": int(one("e2a_group_commit_failed_batches_total")),
            "pending": int(one("e2a_group_commit_pending")),
            "registry_reloads": int(one("e2a_tenant_registry_reloads_total")),
            "registry_failed_reloads": int(one("e2a_tenant_registry_failed_reloads_total")),
            "uptime_s": round(time.time() - self.started, 3),
            "workers_multiprocess": bool(self.multiprocess_dir),
            "event_readers": [lag.as_dict() for lag in lags],
        }
