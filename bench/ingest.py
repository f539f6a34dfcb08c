"""Webhook ingestion benchmark: receiver on SQLite and Postgres against a bare Starlette endpoint.

    .venv/bin/python bench/ingest.py --requests 5000 --concurrency 32

Each server runs in its own process (uvicorn, one worker) on a free loopback port; the load comes
from this process over keep-alive HTTP/1.1 connections (a lean asyncio client, so the client is
not the bottleneck it would be with httpx). Bodies are ~2 KB signed WMS envelopes, every event
unique unless --duplicates is given. The bare endpoint reads the body and answers a small JSON,
which is the framework ceiling the receiver's group commit is measured against. Postgres uses a
throwaway database (`e2a_bench_<random>`, dropped afterwards) and is skipped when unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SECRET = "bench-secret"
TENANT = "bench"
ADMIN_URL = os.environ.get("E2A_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --------------------------------------------------------------------------------------------
# servers (run in a child process: `bench/ingest.py --serve KIND --port P [--database-url U]`)


def _bare_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def webhook(request):
        body = await request.body()
        return JSONResponse({"status": "stored", "bytes": len(body)})

    async def healthz(_request):
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/webhooks/wms", webhook, methods=["POST"]), Route("/healthz", healthz)])


def _receiver_app(database_url: str, batch_window_ms: float, max_batch: int, sqlite_synchronous: str):
    from e2a_assets.domain.policies import TenantRegistry, default_policy
    from e2a_assets.warehouse.engine import make_engine
    from e2a_assets.warehouse.migrate import upgrade
    from e2a_assets.webhooks.app import create_app

    registry = TenantRegistry((default_policy(TENANT, webhook_secret_dev=SECRET),))
    engine = make_engine(database_url, sqlite_synchronous=sqlite_synchronous)
    upgrade(engine)  # a scratch warehouse (safe when several workers start at once)
    return create_app(engine, registry, batch_window_ms=batch_window_ms, max_batch=max_batch)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    if args.serve == "bare":
        uvicorn.run(_bare_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")
        return
    from e2a_assets.webhooks.limits import ReceiverLimits
    from e2a_assets.webhooks.server import server_options

    # The receiver as `e2a serve` runs it: bounded request heads, keep-alive and concurrency.
    app = _receiver_app(args.database_url, args.batch_window_ms, args.max_batch, args.sqlite_synchronous)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on",
                **server_options(ReceiverLimits()))


# --------------------------------------------------------------------------------------------
# load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests(n: int, duplicates: float, body_bytes: int, port: int) -> tuple[list[bytes], int]:
    """Raw HTTP/1.1 requests (pre-built, so the client spends no time on them) and the unique count."""
    from e2a_assets.webhooks.signing import sign

    run = uuid.uuid4().hex[:8]
    unique = max(1, round(n * (1 - duplicates)))
    rng = random.Random(7)
    bodies = []
    for i in range(unique):
        doc = {"event_id": f"bench-{run}-{i}", "event_type": "pick_completed", "order_id": str(10_000 + i),
               "occurred_at": "2025-08-01T10:00:00Z", "data": {"pad": ""}}
        pad = max(0, body_bytes - len(json.dumps(doc)))
        doc["data"]["pad"] = "x" * pad
        bodies.append(json.dumps(doc).encode())
    order = list(range(unique)) + [rng.randrange(unique) for _ in range(n - unique)]
    rng.shuffle(order)
    out = []
    for i in order:
        body = bodies[i]
        head = (
            f"POST /webhooks/wms HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"X-E2A-Tenant: {TENANT}\r\nX-E2A-Hmac-Sha256: {sign(SECRET, body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out, unique


async def _load(port: int, requests: list[bytes], concurrency: int) -> tuple[list[float], dict[int, int], float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in queue:  # shared iterator: each connection takes the next request
                t0 = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
                if b"connection: close" in head.lower():
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def _run_load(port: int, requests: list[bytes], concurrency: int):
    try:
        import uvloop

        return uvloop.run(_load(port, requests, concurrency))
    except ImportError:
        return asyncio.run(_load(port, requests, concurrency))


@dataclass
class Figure:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    stored: int | None = None
    expected: int | None = None
    mean_batch: float | None = None


def _metrics(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def _start_server(kind: str, port: int, args: argparse.Namespace, database_url: str | None) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--port", str(port),
           "--batch-window-ms", str(args.batch_window_ms), "--max-batch", str(args.max_batch),
           "--sqlite-synchronous", args.sqlite_synchronous]
    if database_url:
        cmd += ["--database-url", database_url]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"{kind} server did not start")


def measure(name: str, kind: str, args: argparse.Namespace, database_url: str | None = None) -> Figure:
    port = _free_port()
    proc = _start_server(kind, port, args, database_url)
    try:
        warmup, _ = _requests(min(500, args.requests), 0.0, args.body_bytes, port)
        _run_load(port, warmup, args.concurrency)
        requests, unique = _requests(args.requests, args.duplicates, args.body_bytes, port)
        latencies, statuses, elapsed = _run_load(port, requests, args.concurrency)
        batches = _metrics(port) if kind == "receiver" else None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    latencies.sort()
    figure = Figure(
        name,
        rps=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        statuses=statuses,
    )
    if batches:
        figure.mean_batch = batches["batched_deliveries"] / max(1, batches["batches"])
    if database_url:
        from sqlalchemy import func, select

        from e2a_assets.warehouse.engine import make_engine
        from e2a_assets.warehouse.schema import event_log

        engine = make_engine(database_url)
        with engine.connect() as conn:
            figure.stored = int(conn.execute(select(func.count()).select_from(event_log)).scalar_one())
        engine.dispose()
        figure.expected = unique + min(500, args.requests)  # warm-up events are unique too
    return figure


def _postgres_database() -> tuple[str | None, Callable[[], None] | str]:
    """A throwaway database URL and its cleanup, or (None, reason)."""
    try:
        import psycopg2
        from psycopg2 import sql

        admin = psycopg2.connect(ADMIN_URL, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    admin.autocommit = True
    name = f"{os.environ.get('E2A_BENCH_DB_PREFIX', 'e2a_bench')}_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()

    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--body-bytes", type=int, default=2048)
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of re-deliveries, 0..0.9")
    parser.add_argument("--batch-window-ms", type=float, default=2)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL", "EXTRA"],
                        help="SQLite durability (FULL: fsync per commit, the receiver's default)")
    parser.add_argument("--serve", choices=["bare", "receiver"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args)
        return 0
    if not 0 <= args.duplicates <= 0.9 or args.requests < 1 or args.concurrency < 1:
        parser.error("need --requests >= 1, --concurrency >= 1, 0 <= --duplicates <= 0.9")

    print(f"{args.requests} requests, {args.concurrency} connections, ~{args.body_bytes} B bodies, "
          f"{args.duplicates:.0%} duplicates, window {args.batch_window_ms} ms, max batch {args.max_batch}, "
          f"SQLite synchronous={args.sqlite_synchronous}")
    figures = [measure("bare starlette (ceiling)", "bare", args)]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="e2a-bench-") as tmp:
            from e2a_assets.warehouse.engine import sqlite_url

            figures.append(measure("receiver, SQLite", "receiver", args, sqlite_url(Path(tmp) / "warehouse.sqlite")))
    if "postgres" in backends:
        url, cleanup = _postgres_database()
        if url is None:
            print(f"Postgres skipped: unreachable at {ADMIN_URL} ({cleanup})")
        else:
            try:
                figures.append(measure("receiver, Postgres", "receiver", args, url))
            finally:
                cleanup()

    ceiling = figures[0].rps
    print(f"\n{'target':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'of bare':>8}  statuses / stored")
    failed = False
    for f in figures:
        stored = "" if f.stored is None else f"  stored {f.stored}/{f.expected}, mean batch {f.mean_batch:.0f}"
        print(f"{f.name:28} {f.rps:9.0f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} {f.rps / ceiling:8.0%}  {f.statuses}{stored}")
        failed |= any(code >= 500 for code in f.statuses) or (f.stored is not None and f.stored != f.expected)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
