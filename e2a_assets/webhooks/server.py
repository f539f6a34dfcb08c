"""Running the receiver: `serve` for `e2a serve`, `running_server` for tests and benchmarks.

One process serves one uvicorn worker, with one group-commit thread; `--workers N` runs N such
processes on one port. To take more traffic, run several receivers (processes or hosts) behind a
load balancer, all pointing DATABASE_URL at the
same Postgres: idempotency is enforced by the warehouse's unique key on (tenant, source,
event_id), so any receiver may take any delivery or its retry. SQLite suits one receiver only.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from e2a_assets.settings import Settings
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.migrate import ensure_current
from e2a_assets.webhooks.app import create_app
from e2a_assets.webhooks.limits import ReceiverLimits
from e2a_assets.webhooks.protocol import ENVIRONMENT_PROTOCOL, bounded_protocol
from e2a_assets.webhooks.registry_reload import ReloadingRegistry

logger = logging.getLogger("e2a.receiver")


def _warn_about_secrets(registry) -> None:  # noqa: ANN001
    dev = [p.tenant for p in registry.policies if p.uses_dev_secret]
    if dev:
        logger.warning(
            "tenants signing with the development secret from tenants.yaml: %s; set their webhook_secret_env "
            "variables (and E2A_STRICT_SECRETS=1 to refuse development secrets) in production", ", ".join(dev))
    missing = [p.tenant for p in registry.policies if p.webhook_secret() is None]
    if missing:
        logger.warning("tenants without a webhook secret (their deliveries get 401): %s", ", ".join(missing))


def app_from_env() -> Starlette:
    """The receiver app for one worker process (`e2a serve --workers N`): each worker reads the
    settings and opens its own connection pool."""
    settings = Settings.from_env()
    return create_app(_checked_engine(settings), ReloadingRegistry(settings.registry), limits=settings.receiver_limits,
                      metrics_dir=settings.metrics_dir)


def server_options(limits: ReceiverLimits) -> dict:
    """uvicorn's share of the limits: the bounded protocol (request head size, count and time),
    idle keep-alive and concurrent connections per worker."""
    return dict(http=bounded_protocol(limits), timeout_keep_alive=limits.keep_alive_s,
                limit_concurrency=limits.max_connections, server_header=False)


def _checked_engine(settings: Settings):  # noqa: ANN202
    """The warehouse engine, once the warehouse answers and its schema is the head revision
    (else `WarehouseBehind`: the receiver does not take deliveries it cannot store)."""
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        ensure_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          workers: int = 1) -> None:
    """Serve the receiver until stopped: in this process, or in `workers` processes sharing the port
    (each with its own group-commit thread; the warehouse's unique key keeps deliveries idempotent)."""
    # Deliveries are small and senders keep connections open; a slow client must not pin one.
    limits = settings.receiver_limits
    options = dict(host=host, port=port, log_level=log_level, lifespan="on", **server_options(limits))
    registry = settings.registry()
    _warn_about_secrets(registry)
    # Recorded by every process: hosts with different tenants.yaml show different digests here,
    # in /readyz and in the runs' `e2a/registry_digest` tag.
    logger.warning("tenant registry %s: %d tenants, digest %s", settings.tenants_file, len(registry.tenants),
                   registry.digest)
    # Reach the warehouse and check its schema revision before taking traffic: a wrong DATABASE_URL,
    # a warehouse that is down or not migrated ends here with one line, not in a traceback per worker.
    engine = _checked_engine(settings)
    if workers > 1:
        engine.dispose()
        # Worker processes are spawned: they import the protocol by name and read the same environment,
        # including the run's own, empty metrics directory (so no figures of an earlier run count).
        options["http"] = ENVIRONMENT_PROTOCOL
        with tempfile.TemporaryDirectory(prefix="e2a-receiver-metrics-") as metrics_dir:
            os.environ.update(PROMETHEUS_MULTIPROC_DIR=metrics_dir)
            uvicorn.run("e2a_assets.webhooks.server:app_from_env", factory=True, workers=workers,
                        timeout_worker_healthcheck=limits.worker_healthcheck_s, **options)
        return
    try:
        app = create_app(engine, ReloadingRegistry(settings.registry), limits=limits)
        uvicorn.Server(uvicorn.Config(app, **options)).run()
    finally:
        engine.dispose()


@contextmanager
def running_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *,
                   log_level: str = "warning", start_timeout_s: float = 10.0,
                   limits: ReceiverLimits | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn on a background thread; yields its base URL (`port=0`: a free port).
    The server enforces `limits` as `e2a serve` does (the app's own share is given to create_app)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=bound_port, log_level=log_level, lifespan="on",
                            **server_options(limits or ReceiverLimits()))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="e2a-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("receiver did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout_s)
        sock.close()
