"""The signed webhook receiver (DOMAIN §1.2): authenticate, bound, group-commit, answer honestly.

Per request, in this order: body size from `Content-Length` (413 before reading anything), tenant
from the route's header (401), raw body read with a hard 1 MiB cap (413 as soon as it passes),
signature over the raw bytes in constant time against the tenant's active secrets — e2a, Shopify
or Standard Webhooks with its ±5-minute timestamp window (401) — then the delivery joins a group
commit. The tenant registry is re-read when its files change (`registry_reload`), so a secret
rotation needs no restart. Parsing, validation, dedupe and dead letters belong to
`Ingestor.ingest_many`; this module only maps its outcome to a status code. Nothing is answered
2xx before its transaction has committed.

Group commit: concurrent requests put their delivery on an asyncio queue; one worker thread takes
up to `max_batch` of them per transaction (waiting `batch_window_ms` for company when the queue
is nearly empty) and each request awaits its own future. A failed transaction answers 503 to every
request in it, so the senders retry and dedupe makes the retry safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from e2a_assets.domain.events import IGNORED
from e2a_assets.domain.intake_limits import TimeWindow
from e2a_assets.domain.policies import TenantPolicy, TenantRegistry
from e2a_assets.intake.ingestor import (
    DEAD_LETTER,
    DUPLICATE,
    STORE_FAILURES,
    STORED,
    Delivery,
    IngestResult,
    Ingestor,
    describe_error,
)
from e2a_assets.warehouse import event_readers
from e2a_assets.warehouse.engine import probe_write
from e2a_assets.warehouse.event_readers import ReaderLag
from e2a_assets.webhooks import prometheus
from e2a_assets.webhooks.limits import ReceiverLimits
from e2a_assets.webhooks.registry_reload import ReloadingRegistry, StaticRegistry
from e2a_assets.webhooks.signing import E2A_TENANT_HEADER, SHOPIFY_DOMAIN_HEADER, shopify_header, signature_problem

log = logging.getLogger("e2a.webhooks")

SOURCES = ("shopify", "wms", "carrier")

# Outcomes counted on /metrics (one per answer the receiver can give).
UNAUTHORIZED = "unauthorized"
TOO_LARGE = "too_large"
UNAVAILABLE = "unavailable"
BAD_REQUEST = "bad_request"
TIMED_OUT = "timed_out"  # the sender did not finish its body within the body deadline (408)
DISCONNECTED = "disconnected"  # the sender hung up before its body was complete (it will retry)
ERROR = "error"
OUTCOMES = (STORED, DUPLICATE, IGNORED, DEAD_LETTER, UNAUTHORIZED, TOO_LARGE, BAD_REQUEST, TIMED_OUT, DISCONNECTED,
            UNAVAILABLE, ERROR)

# Failures that mean "storage is not there right now": the whole batch is answered 503 at once.
# A database error caused by a delivery's own values is not one of them: the ingestor turns it into
# a dead letter (intake/ingestor.py, `ingest_alone`), so no retry of a bad delivery is answered 503.
STORAGE_DOWN = STORE_FAILURES
_UNAUTHORIZED_BODY = {"error": "unauthorized", "detail": "missing or invalid signature, or unknown tenant"}


_describe = describe_error


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no commit within the ingest timeout"))


class GroupCommitter:
    """Collects concurrent deliveries and commits them together on one worker thread."""

    def __init__(self, ingestor: Ingestor, metrics: prometheus.ReceiverMetrics, *, batch_window_ms: float = 2,
                 max_batch: int = 256, max_pending: int | None = None):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.ingestor = ingestor
        self.metrics = metrics
        self.window = max(0.0, batch_window_ms / 1000.0)
        self.max_batch = max_batch
        self.max_pending = max_pending or max(1024, 32 * max_batch)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2a-group-commit")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="e2a-group-commit")

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        if self._task is None:
            return
        assert self._queue is not None
        self._queue.put_nowait(None)
        try:
            await self._task
        finally:
            self._task = None
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def full(self) -> bool:
        return self.pending >= self.max_pending

    async def submit(self, delivery: Delivery, timeout_s: float | None = None) -> IngestResult:
        """Commit one delivery with whatever else is waiting; raises the batch's storage error.

        After `timeout_s` the caller gets `TimeoutError` (the commit may still happen later,
        which is harmless: the sender's retry is a duplicate).
        """
        if self._task is None or self._task.done():
            self.start()  # also works when the server did not run the lifespan
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._queue.put_nowait((delivery, future))
        # A timer rather than asyncio.wait_for: no extra task per request on the hot path.
        timer = loop.call_later(timeout_s, _expire, future) if timeout_s else None
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()

    def _drain(self, batch: list) -> bool:
        """Move queued items into `batch`; False when the stop marker was met."""
        assert self._queue is not None
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return True
            if item is None:
                return False
            batch.append(item)
        return True

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        running = True
        while running:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            running = self._drain(batch)
            if running and self.window and len(batch) < self.max_batch and len(batch) <= 1:
                # A lone request: give concurrent senders a moment to share its transaction.
                await asyncio.sleep(self.window)
                running = self._drain(batch)
            deliveries = [d for d, _ in batch]
            began = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._commit, deliveries)
            except BaseException as exc:  # noqa: BLE001 - the executor itself failed
                results = [exc] * len(batch)
            self.metrics.committed(len(batch), time.perf_counter() - began, self._queue.qsize())
            for (_, future), result in zip(batch, results):
                if future.done():  # the request gave up (client gone or timed out)
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        # Anything left after the stop marker would never be answered: fail it as unavailable.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(sa_exc.DisconnectionError("receiver shutting down"))

    def _commit(self, deliveries: Sequence[Delivery]) -> list[IngestResult | BaseException]:
        """Runs on the worker thread: one transaction for the batch."""
        try:
            return self.ingestor.ingest_many(deliveries)
        except STORAGE_DOWN as exc:
            self.metrics.failed_batches.inc()
            log.warning("warehouse unavailable, %d deliveries answered 503 (%s)", len(deliveries), _describe(exc))
            return [exc] * len(deliveries)
        except Exception as exc:  # noqa: BLE001
            # One poisonous delivery must not fail its neighbours: retry them one by one; a delivery
            # whose values the warehouse refuses becomes a dead letter (422), not a 503 forever.
            if len(deliveries) > 1:
                self.metrics.failed_batches.inc()
                log.warning("batch of %d failed (%s); retrying deliveries one by one", len(deliveries), _describe(exc))
            out: list[IngestResult | BaseException] = []
            for delivery in deliveries:
                try:
                    out.append(self.ingestor.ingest_alone(delivery))
                except Exception as single:  # noqa: BLE001
                    out.append(single)
            return out


class ReceiverApp(Starlette):
    """The Starlette app, with webhook POSTs dispatched straight to their handler.

    Profiled under load, Starlette's middleware stack (server-error and exception middleware,
    exception wrapper) and router cost as much event-loop time per delivery as the handler itself
    (docs/internals.md "Receiver throughput"), and they add nothing here: each handler catches
    every exception itself (500) and its path is an exact match. Everything else (probes, metrics,
    lifespan, other methods on the webhook paths: 405) goes through Starlette as usual. Middleware
    added to this app therefore does not see webhook POSTs: put request limits in the server's
    configuration or in the handler.
    """

    webhook_handlers: dict[str, Callable[[Request], Any]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.webhook_handlers.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _json(status: int, body: dict[str, Any], *, close: bool = False, headers: dict[str, str] | None = None) -> JSONResponse:
    extra = dict(headers or {})
    if close:
        # The body was not (fully) read: the connection cannot be reused.
        extra["Connection"] = "close"
    return JSONResponse(body, status_code=status, headers=extra)


def create_app(
    engine: Engine,
    registry: TenantRegistry | ReloadingRegistry,
    *,
    limits: ReceiverLimits | None = None,
    max_body_bytes: int | None = None,
    batch_window_ms: float = 2,
    max_batch: int = 256,
    ingest_timeout_s: float | None = None,
    ready_timeout_s: float | None = None,
    window: TimeWindow | None = None,
    clock: Callable[[], float] = time.time,
    metrics_dir: str | None = None,
) -> Starlette:
    """The receiver as an ASGI app: POST /webhooks/{shopify,wms,carrier}, GET /healthz, /readyz, /metrics.

    `limits` (webhooks/limits.py) bound the body (size, read time), the wait for a commit (then 503
    with Retry-After; a late commit is harmless because the retry is deduplicated), the /readyz
    write probe and the accepted timestamps; a keyword given here overrides its limit.
    `registry` is a fixed registry or a `ReloadingRegistry` (what `e2a serve` passes); `clock`
    (Unix seconds) decides secret expiry and the Standard Webhooks timestamp window.
    `metrics_dir`: the multiprocess directory of `e2a serve --workers N` (webhooks/prometheus.py).
    """
    limits = limits or ReceiverLimits()
    max_body_bytes = max_body_bytes or limits.max_body_bytes
    ingest_timeout_s = ingest_timeout_s or limits.ingest_timeout_s
    ready_timeout_s = ready_timeout_s or limits.ready_timeout_s
    body_timeout_s = limits.body_timeout_s
    registries = registry if isinstance(registry, ReloadingRegistry) else StaticRegistry(registry)
    ingestor = Ingestor(engine, window=window or limits.window)
    metrics = prometheus.ReceiverMetrics(SOURCES, OUTCOMES, multiprocess_dir=metrics_dir)
    registries.on_reload = metrics.registry_reloaded
    committer = GroupCommitter(ingestor, metrics, batch_window_ms=batch_window_ms, max_batch=max_batch)
    perf_counter = time.perf_counter

    def count(source: str, outcome: str, began: float) -> None:
        """Every answer to a delivery is counted once, with its time since the request began."""
        metrics.answered(source, outcome, perf_counter() - began)

    def tenant_of(source: str, request: Request) -> TenantPolicy | None:
        current = registries.current()
        if source == "shopify":
            domain = shopify_header(request.headers, SHOPIFY_DOMAIN_HEADER)
            return current.by_shop_domain(domain) if domain else None
        name = (request.headers.get(E2A_TENANT_HEADER) or "").strip()
        return current.get(name) if name else None

    async def read_body(request: Request) -> bytes | None:
        """The raw body, or None as soon as it grows past the limit."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def too_large(source: str, began: float) -> JSONResponse:
        count(source, TOO_LARGE, began)
        return _json(413, {"error": "payload too large", "max_bytes": max_body_bytes}, close=True)

    async def receive(request: Request, source: str, began: float) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                declared_size = int(declared)
            except ValueError:
                count(source, BAD_REQUEST, began)
                return _json(400, {"error": "invalid Content-Length"}, close=True)
            if declared_size > max_body_bytes:
                return too_large(source, began)

        policy = tenant_of(source, request)
        now = clock()
        secrets = policy.webhook_secrets(dt.datetime.fromtimestamp(now, dt.timezone.utc)) if policy else ()
        if policy is None or not secrets:
            count(source, UNAUTHORIZED, began)
            log.info("401 %s: %s", source, "unknown tenant" if policy is None else f"no active secret for {policy.tenant}")
            return _json(401, _UNAUTHORIZED_BODY, close=True)

        try:
            async with asyncio.timeout(body_timeout_s):
                body = await read_body(request)
        except TimeoutError:
            count(source, TIMED_OUT, began)
            log.info("408 %s/%s: body not complete within %.0f s", policy.tenant, source, body_timeout_s)
            return _json(408, {"error": "body not received in time"}, close=True)
        except ClientDisconnect:
            # Nothing was stored and nobody is listening: count it, no traceback, no dead letter.
            count(source, DISCONNECTED, began)
            log.info("%s/%s: sender disconnected before the body was complete", policy.tenant, source)
            return _json(400, {"error": "incomplete body"}, close=True)
        if body is None:
            return too_large(source, began)
        problem = signature_problem(source, secrets, request.headers, body, now=now,
                                    require_timestamp=policy.webhook_require_timestamp)
        if problem is not None:
            count(source, UNAUTHORIZED, began)
            log.info("401 %s: %s (tenant %s)", source, problem, policy.tenant)
            return _json(401, _UNAUTHORIZED_BODY)

        if committer.full():
            count(source, UNAVAILABLE, began)
            log.warning("503 %s: %d deliveries already waiting for the warehouse", source, committer.pending)
            return _json(503, {"error": "receiver busy", "retry": True}, headers={"Retry-After": "1"})

        # Credential-like headers are redacted when a dead letter keeps them (intake/landing.py).
        delivery = Delivery(tenant=policy.tenant, source=source, headers=dict(request.headers.items()), body=body)
        try:
            result = await committer.submit(delivery, ingest_timeout_s)
        except STORAGE_DOWN as exc:
            count(source, UNAVAILABLE, began)
            if isinstance(exc, TimeoutError):
                log.warning("503 %s/%s: no commit within %.1f s", policy.tenant, source, ingest_timeout_s)
            return _json(503, {"error": "storage unavailable", "retry": True}, headers={"Retry-After": "5"})

        count(source, result.outcome, began)
        if result.outcome == DEAD_LETTER:
            return _json(422, {"status": DEAD_LETTER, "error": "malformed delivery", "reason": result.reason,
                               "dead_letter_id": result.dead_letter_id})
        return _json(result.http_status, {"status": result.outcome, "event_id": result.event_id})

    def endpoint(source: str):
        async def handle(request: Request) -> JSONResponse:
            began = perf_counter()
            try:
                return await receive(request, source, began)
            except Exception:  # noqa: BLE001 - a genuine bug: log it, never show internals
                count(source, ERROR, began)
                log.exception("500 %s: unexpected error while receiving a webhook", source)
                return _json(500, {"error": "internal error"}, close=True)

        handle.__name__ = f"receive_{source}"
        return handle

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> JSONResponse:
        """Ready when the warehouse takes a write now (this receiver's heartbeat row), not only a read."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, probe_write, engine, ready_timeout_s), ready_timeout_s + 1)
        except (asyncio.TimeoutError, TimeoutError):
            return JSONResponse({"status": "unavailable", "warehouse": "timeout"}, status_code=503)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            return JSONResponse({"status": "unavailable", "warehouse": type(exc).__name__}, status_code=503)
        # The registry's digest: a balancer or monitor can see every receiver bills by the same one.
        return JSONResponse({"status": "ready", "warehouse": engine.dialect.name, "registry": registries.current().digest})

    async def scrape(request: Request) -> Response:
        """JSON by default; Prometheus text for a scraper (Accept: text/plain) or ?format=prometheus.
        Every worker's figures, added up (webhooks/prometheus.py)."""
        lags = await reader_lags()
        if prometheus.wants_prometheus(request.headers.get("accept"), request.query_params.get("format")):
            return Response(metrics.render(lags), media_type=prometheus.CONTENT_TYPE)
        return JSONResponse(metrics.snapshot(lags))

    async def reader_lags() -> list[ReaderLag]:
        """The event-log readers' lag, or none when the warehouse does not answer in time (the
        scrape still shows the receiver's own figures; /readyz tells about the warehouse)."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(None, event_readers.reader_lags, engine), ready_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure: no lag figures in this scrape
            log.warning("/metrics without the event readers' lag: %s", _describe(exc))
            return []

    async def server_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("500: unhandled %s", type(exc).__name__)
        return _json(500, {"error": "internal error"})

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        committer.start()
        try:
            yield
        finally:
            await committer.stop()
            metrics.process_exiting()

    routes = [Route(f"/webhooks/{s}", endpoint(s), methods=["POST"]) for s in SOURCES]
    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", scrape, methods=["GET"]),
    ]
    app = ReceiverApp(routes=routes, lifespan=lifespan, exception_handlers={Exception: server_error})
    app.webhook_handlers = {route.path: route.endpoint for route in routes if route.path.startswith("/webhooks/")}
    app.state.committer = committer
    app.state.metrics = metrics
    return app
