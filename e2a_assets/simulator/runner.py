"""Feeding simulated traffic into e2a: straight into the warehouse, or over HTTP like a real sender.

- `ingest_deliveries` goes through `Ingestor.ingest_many` (the same path as the receiver), one
  transaction per batch. No HTTP, no signature check (the simulator signs correctly anyway).
- `send_live` POSTs each delivery to `{base_url}/webhooks/{source}` with its exact body and headers,
  rate-limited, and retries like a webhook sender: 2xx is done; 429, 408, 5xx and connection
  errors are retried with exponential backoff (honouring a numeric `Retry-After`); any other
  4xx is final and counted as rejected.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import httpx

from e2a_assets.intake.ingestor import Delivery, Ingestor, IngestStats
from e2a_assets.simulator.traffic import SimDelivery

RETRYABLE_STATUS = frozenset({408, 429})


def _as_delivery(item: SimDelivery | Delivery) -> Delivery:
    return item.delivery() if isinstance(item, SimDelivery) else item


def _batches(items: Iterable[SimDelivery | Delivery], size: int) -> Iterator[list[SimDelivery | Delivery]]:
    batch: list[SimDelivery | Delivery] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ingest_deliveries(
    ingestor: Ingestor,
    deliveries: Iterable[SimDelivery | Delivery],
    batch_size: int = 500,
    on_progress: Callable[[int], None] | None = None,
    *,
    simulated_clock: bool = False,
) -> IngestStats:
    """Ingest deliveries in order, `batch_size` per transaction; returns the summed outcomes.

    `on_progress(n)` is called after each committed batch with the number of deliveries processed
    so far (cumulative). With `simulated_clock`, each batch's `received_at` is the latest `send_at`
    in the batch (for SimDelivery items) instead of the ingestor's clock, so a backfilled history
    looks as if it had arrived live.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    stats = IngestStats()
    done = 0
    for batch in _batches(deliveries, batch_size):
        runner = ingestor
        if simulated_clock:
            sent = [d.send_at for d in batch if isinstance(d, SimDelivery)]
            if sent:
                at = max(sent)
                runner = Ingestor(ingestor.engine, clock=lambda at=at: at)
        for result in runner.ingest_many([_as_delivery(d) for d in batch]):
            stats.add(result)
        done += len(batch)
        if on_progress is not None:
            on_progress(done)
    return stats


@dataclass
class LiveStats:
    """What a live run saw. `by_status` counts every HTTP response (retried attempts included)."""

    deliveries: int = 0  # deliveries handled
    attempts: int = 0  # HTTP requests made, retries included
    retries: int = 0  # attempts after the first one of a delivery
    delivered: int = 0  # deliveries that ended with a 2xx
    rejected: int = 0  # deliveries that ended with a non-retryable 4xx
    gave_up: int = 0  # deliveries still failing after all retries
    connection_errors: int = 0  # attempts that got no HTTP response
    by_status: dict[int, int] = field(default_factory=dict)
    final_status: dict[int, int] = field(default_factory=dict)  # last status per delivery (0 = no response)
    elapsed_seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        return self.attempts / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class ReceiverUnreachable(RuntimeError):
    """The receiver gave no HTTP answer to several deliveries in a row, retries included."""

    def __init__(self, base_url: str, stats: LiveStats, consecutive: int):
        super().__init__(f"no answer from {base_url} for {consecutive} deliveries in a row (retries included); "
                         f"{stats.delivered} of {stats.deliveries} delivered before it went away")
        self.stats = stats


class _Pacer:
    """At most `rate` request starts per second (None: no limit)."""

    def __init__(self, rate: float | None, sleep: Callable[[float], None]):
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 requests/second (or None for no limit)")
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.sleep = sleep

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = max(self.next_at, now) + self.interval


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def send_live(
    base_url: str,
    deliveries: Iterable[SimDelivery | Delivery],
    rate: float | None,
    retries: int = 5,
    on_progress: Callable[[int], None] | None = None,
    client: httpx.Client | None = None,
    *,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    max_unreachable: int | None = 3,
) -> LiveStats:
    """POST every delivery to `{base_url}/webhooks/{source}`, at most `rate` requests/second.

    Each delivery is sent with its exact body and headers. Non-2xx answers are retried up to
    `retries` times with exponential backoff (`backoff_base` × 2^n seconds, jittered, capped at
    `backoff_max`, or the server's numeric Retry-After when given), except 4xx other than 408/429,
    which are final. Connection errors and timeouts are retried the same way. Deliveries are sent
    one after another in the given order. `on_progress(n)` gets the cumulative number handled.

    A receiver that stays silent is not waited for forever: after `max_unreachable` deliveries in
    a row that got no HTTP answer at all (retries included), `ReceiverUnreachable` is raised with
    the stats so far. None keeps going whatever happens.
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")
    base = base_url.rstrip("/")
    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=timeout)
    pacer = _Pacer(rate, sleep)
    jitter = random.Random(0x5EED)  # jitter only; not part of any reproducible output
    stats = LiveStats()
    started = time.monotonic()
    unreachable = 0  # deliveries in a row that never got an HTTP answer
    try:
        for item in deliveries:
            d = _as_delivery(item)
            url = f"{base}/webhooks/{d.source}"
            headers = dict(d.headers)
            final = 0
            for attempt in range(retries + 1):
                if attempt:
                    stats.retries += 1
                pacer.wait()
                stats.attempts += 1
                delay: float | None = None
                try:
                    response = http.post(url, content=d.body, headers=headers)
                except httpx.TransportError:
                    stats.connection_errors += 1
                    final = 0
                else:
                    final = response.status_code
                    stats.by_status[final] = stats.by_status.get(final, 0) + 1
                    if 200 <= final < 300:
                        break
                    if 400 <= final < 500 and final not in RETRYABLE_STATUS:
                        break
                    delay = _retry_after(response)
                if attempt < retries:
                    backoff = min(backoff_max, backoff_base * (2**attempt)) * jitter.uniform(0.5, 1.0)
                    sleep(min(delay, backoff_max) if delay is not None else backoff)
            stats.deliveries += 1
            stats.final_status[final] = stats.final_status.get(final, 0) + 1
            if 200 <= final < 300:
                stats.delivered += 1
            elif 400 <= final < 500 and final not in RETRYABLE_STATUS:
                stats.rejected += 1
            else:
                stats.gave_up += 1
            if on_progress is not None:
                on_progress(stats.deliveries)
            unreachable = unreachable + 1 if final == 0 else 0
            if max_unreachable is not None and unreachable >= max_unreachable:
                stats.elapsed_seconds = time.monotonic() - started
                raise ReceiverUnreachable(base, stats, unreachable)
    finally:
        stats.elapsed_seconds = time.monotonic() - started
        if own_client:
            http.close()
    return stats


def sort_by_send_at(deliveries: Sequence[SimDelivery]) -> list[SimDelivery]:
    """Deliveries in send order (generate() already returns them so; for merged lists)."""
    return sorted(deliveries, key=lambda d: d.send_at)


__all__ = ["LiveStats", "ReceiverUnreachable", "ingest_deliveries", "send_live", "sort_by_send_at"]
