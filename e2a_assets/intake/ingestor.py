"""The ingestion core: one path from a delivery to the event log, for receiver, simulator and replay.

Validate and canonicalise (DOMAIN §1.1), dedupe on (tenant, source, event_id), commit; a signed
delivery that cannot be understood becomes a dead letter with its reason. Nothing here checks
signatures: callers hand in deliveries whose sender is already authenticated.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from e2a_assets.domain.events import IGNORED, CanonicalEvent, MalformedEvent, canonicalize
from e2a_assets.domain.intake_limits import DEFAULT_WINDOW, TimeWindow
from e2a_assets.intake import landing

STORED = "stored"
DUPLICATE = "duplicate"
DEAD_LETTER = "dead_letter"

# What the receiver answers for each outcome (DOMAIN §1.2).
HTTP_STATUS = {STORED: 200, DUPLICATE: 200, IGNORED: 202, DEAD_LETTER: 422}

# The warehouse is not there or not working: the delivery is fine, the sender must retry (503).
STORE_FAILURES = (
    sa_exc.OperationalError,  # also SQLite's "database is locked"
    sa_exc.InterfaceError,
    sa_exc.InternalError,
    sa_exc.ProgrammingError,  # a schema that does not match: an operator's problem, not the sender's
    sa_exc.NotSupportedError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # connection pool exhausted
    TimeoutError,
    ConnectionError,
)
# The delivery's own values were refused (a number wider than its column, text the driver cannot
# encode): retrying cannot help, so it is a malformed delivery (422 and a dead letter).
DATA_FAILURES = (sa_exc.DataError, sa_exc.IntegrityError, sa_exc.StatementError, ValueError, TypeError,
                 OverflowError, UnicodeError)


def describe_error(exc: BaseException) -> str:
    """Exception class and the first line of the driver's message: no SQL, no parameters."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first[:200]}"


def is_data_failure(exc: BaseException) -> bool:
    return isinstance(exc, DATA_FAILURES) and not isinstance(exc, STORE_FAILURES)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Delivery:
    """One authenticated webhook delivery: the tenant, the route's source, headers and raw body."""

    tenant: str
    source: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # stored | duplicate | ignored | dead_letter
    event_id: str | None = None
    event_type: str | None = None
    order_id: str | None = None
    reason: str | None = None
    dead_letter_id: int | None = None

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.outcome]


@dataclass
class IngestStats:
    stored: int = 0
    duplicate: int = 0
    ignored: int = 0
    dead_letter: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, result: IngestResult) -> None:
        setattr(self, result.outcome, getattr(self, result.outcome) + 1)
        if result.outcome == STORED and result.event_type:
            self.by_type[result.event_type] = self.by_type.get(result.event_type, 0) + 1

    @property
    def total(self) -> int:
        return self.stored + self.duplicate + self.ignored + self.dead_letter


class Ingestor:
    """Commits deliveries to the warehouse; `ingest_many` writes a whole batch in one transaction."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utc_now, window: TimeWindow = DEFAULT_WINDOW):
        self.engine = engine
        self.clock = clock
        self.window = window

    def ingest(self, delivery: Delivery) -> IngestResult:
        return self.ingest_many([delivery])[0]

    def ingest_many(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        """Canonicalise, dedupe and commit a batch; returns one result per delivery, in order.

        Storage errors propagate (nothing of the batch is committed), so a caller can answer 503
        and the sender retries.
        """
        received_at = self.clock()
        parsed: list[CanonicalEvent | MalformedEvent] = []
        for d in deliveries:
            try:
                parsed.append(canonicalize(d.tenant, d.source, d.headers, d.body, received_at=received_at,
                                           window=self.window))
            except MalformedEvent as exc:
                parsed.append(exc)
        events = [p for p in parsed if isinstance(p, CanonicalEvent)]
        results: list[IngestResult] = []
        with self.engine.begin() as conn:
            written = iter(landing.append_events(conn, events, received_at))
            for delivery, item in zip(deliveries, parsed):
                if isinstance(item, MalformedEvent):
                    letter_id = landing.add_dead_letter(
                        conn,
                        tenant=delivery.tenant,
                        source=delivery.source,
                        headers=dict(delivery.headers),
                        body=delivery.body,
                        reason=item.reason,
                        received_at=received_at,
                    )
                    results.append(IngestResult(DEAD_LETTER, reason=item.reason, dead_letter_id=letter_id))
                    continue
                is_new = next(written)
                if item.status == IGNORED:
                    outcome = IGNORED
                else:
                    outcome = STORED if is_new else DUPLICATE
                results.append(IngestResult(outcome, item.event_id, item.event_type, item.order_id))
        return results

    def ingest_alone(self, delivery: Delivery) -> IngestResult:
        """`ingest` for a delivery that failed inside a batch: when the warehouse refuses its values
        (a data error, not an outage) it becomes a dead letter instead of failing forever."""
        try:
            return self.ingest_many([delivery])[0]
        except Exception as exc:  # noqa: BLE001 - classified below; anything else propagates
            if not is_data_failure(exc):
                raise
            reason = f"not storable ({describe_error(exc)})"
        with self.engine.begin() as conn:
            letter_id = landing.add_dead_letter(conn, tenant=delivery.tenant, source=delivery.source,
                                                headers=dict(delivery.headers), body=delivery.body, reason=reason,
                                                received_at=self.clock())
        return IngestResult(DEAD_LETTER, reason=reason, dead_letter_id=letter_id)


@dataclass
class ReplayReport:
    replayed: int = 0
    still_failing: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)


def replay_dead_letters(engine: Engine, tenant: str | None = None, limit: int | None = None,
                        clock: Callable[[], dt.datetime] = utc_now) -> ReplayReport:
    """Run pending dead letters through the live path again (same validation and dedupe).

    A letter that now canonicalises is committed (or found to be a duplicate) and marked
    `replayed`; one that still fails stays `pending` with its latest error.
    """
    report = ReplayReport()
    with engine.connect() as conn:
        letters = landing.pending_dead_letters(conn, tenant, limit)
    for letter in letters:
        headers = json.loads(letter["headers"])
        try:
            event = canonicalize(letter["tenant"], letter["source"], headers, bytes(letter["body"]))
        except MalformedEvent as exc:
            with engine.begin() as conn:
                landing.mark_dead_letter(conn, letter["id"], replayed=False, error=exc.reason, at=clock())
            report.still_failing += 1
            report.failures.append((letter["id"], exc.reason))
            continue
        with engine.begin() as conn:
            landing.append_events(conn, [event], clock())
            landing.mark_dead_letter(conn, letter["id"], replayed=True, error=None, at=clock())
        report.replayed += 1
    return report
