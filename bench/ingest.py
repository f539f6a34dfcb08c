"""Webhook ingestion benchmark: receiver on SQLite and Postgres against a bare Starlette endpoint.

    .venv/bin/python bench/ingest.py --requests 5000 --concurrency 32,128 [--workers 1] [--sqlite-synchronous FULL]

Each server runs in its own process (uvicorn, `--workers` worker processes for the bare endpoint
and the receiver alike) on a free loopback port; the load comes
from this process over keep-alive HTTP/1.1 connections (a lean asyncio client, so the client is
not the bottleneck it would be with httpx). Bodies are ~2 KB signed WMS envelopes, every event
unique unless --duplicates is given. The bare endpoint reads the body and answers a small JSON,
which is the framework ceiling the receiver's group commit is measured against. Postgres uses a
throwaway database (`<--db-prefix>_<random>`, dropped afterwards) and is skipped when unreachable.

Besides req/s (the throughput ratio to the bare endpoint, "of bare") it prints the server
processes' CPU time per request and its ratio to the bare endpoint's ("cpu of bare"): on a
machine shared with other work, wall-clock rates swing by 2x between runs, CPU per request far
less; with a saturated core the two ratios agree. Postgres' own CPU is not in it.

Per receiver run it prints a balance line from the answers: sent = stored + duplicate + ignored +
dead-lettered + rejected (any other status), and checks that the warehouse holds exactly the
stored events. Exit status 1 on any 5xx, an unbalanced run, or a warehouse that disagrees.
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
DB_PREFIX = os.environ.get("E2A_TEST_DB_PREFIX") or "e2a_bench"


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


def _receiver_app(database_url: str, batch_window_ms: float, max_batch: int, synchronous: str | None = None):
    from e2a_assets.domain.policies import TenantRegistry, default_policy
    from e2a_assets.warehouse.engine import DEFAULT_SQLITE_SYNCHRONOUS, make_engine
    from e2a_assets.warehouse.migrate import upgrade
    from e2a_assets.webhooks.app import create_app

    registry = TenantRegistry((default_policy(TENANT, webhook_secret_dev=SECRET),))
    engine = make_engine(database_url, sqlite_synchronous=synchronous or DEFAULT_SQLITE_SYNCHRONOUS)
    upgrade(engine)  # a scratch warehouse (safe when several workers start at once)
    return create_app(engine, registry, batch_window_ms=batch_window_ms, max_batch=max_batch)


def app_factory():
    """The app of one worker process (`--workers N`): its settings come in the environment."""
    kind = os.environ["E2A_BENCH_KIND"]
    if kind == "bare":
        return _bare_app()
    return _receiver_app(os.environ["E2A_BENCH_DATABASE_URL"], float(os.environ["E2A_BENCH_WINDOW_MS"]),
                         int(os.environ["E2A_BENCH_MAX_BATCH"]), os.environ.get("E2A_BENCH_SYNCHRONOUS") or None)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    os.environ.update({"E2A_BENCH_KIND": args.serve, "E2A_BENCH_DATABASE_URL": args.database_url or "",
                       "E2A_BENCH_WINDOW_MS": str(args.batch_window_ms), "E2A_BENCH_MAX_BATCH": str(args.max_batch),
                       "E2A_BENCH_SYNCHRONOUS": args.sqlite_synchronous or ""})
    options = dict(host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="on")
    if args.serve != "bare":
        from e2a_assets.webhooks.limits import ReceiverLimits
        from e2a_assets.webhooks.protocol import ENVIRONMENT_PROTOCOL
        from e2a_assets.webhooks.server import server_options

        # The receiver as `e2a serve` runs it: bounded request heads, keep-alive and concurrency.
        options.update(server_options(ReceiverLimits()))
        if args.workers > 1:
            options["http"] = ENVIRONMENT_PROTOCOL
    if args.workers > 1:
        uvicorn.run("ingest:app_factory", factory=True, workers=args.workers, app_dir=str(Path(__file__).parent),
                    **options)
    else:
        uvicorn.run(app_factory(), **options)


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


DUPLICATE = 1000  # pseudo status: a 200 whose body says "duplicate"


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
                body = await reader.readexactly(length) if length else b""
                latencies.append(time.perf_counter() - t0)
                status = int(head[9:12])
                if status == 200 and b'"duplicate"' in body:
                    status = DUPLICATE
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
    concurrency: int = 0
    cpu_us: float = 0.0  # server CPU time per request (the steadier figure on a shared machine)
    stored: int | None = None
    expected: int | None = None
    mean_batch: float | None = None

    def balance(self) -> tuple[str, bool]:
        """sent = stored + duplicate + ignored + dead-lettered + rejected, from the answers."""
        s = dict(self.statuses)
        stored, dup, ignored, dead = s.pop(200, 0), s.pop(DUPLICATE, 0), s.pop(202, 0), s.pop(422, 0)
        rejected = sum(s.values())
        sent = stored + dup + ignored + dead + rejected
        ok = sent == self.sent and (self.stored is None or self.stored == self.stored_before + stored)
        line = (f"balance: sent {self.sent} = stored {stored} + duplicate {dup} + ignored {ignored} + dead-lettered "
                f"{dead} + rejected {rejected} {dict(s) if s else ''}"
                f"{'' if self.stored is None else f'; warehouse rows {self.stored - self.stored_before} new'}"
                f" -> {'balanced' if ok else 'NOT BALANCED'}")
        return line, ok

    sent: int = 0
    stored_before: int = 0


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
           "--workers", str(args.workers)]
    if args.sqlite_synchronous:
        cmd += ["--sqlite-synchronous", args.sqlite_synchronous]
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server process and its worker children so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _stored(database_url: str) -> int:
    from sqlalchemy import func, select

    from e2a_assets.warehouse.engine import make_engine
    from e2a_assets.warehouse.schema import event_log

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(event_log)).scalar_one())
    finally:
        engine.dispose()


def measure(name: str, kind: str, args: argparse.Namespace, concurrency: int, database_url: str | None = None) -> Figure:
    port = _free_port()
    proc = _start_server(kind, port, args, database_url)
    try:
        warmup, _ = _requests(min(500, args.requests), 0.0, args.body_bytes, port)
        _run_load(port, warmup, concurrency)
        before = _stored(database_url) if database_url else 0
        requests, unique = _requests(args.requests, args.duplicates, args.body_bytes, port)
        cpu_before = _cpu_seconds(proc.pid)
        latencies, statuses, elapsed = _run_load(port, requests, concurrency)
        cpu = _cpu_seconds(proc.pid) - cpu_before
        batches = _metrics(port) if kind == "receiver" and args.workers == 1 else None
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
        concurrency=concurrency,
        cpu_us=1e6 * cpu / len(requests),
        sent=len(requests),
        stored_before=before,
    )
    if batches:
        figure.mean_batch = batches["batched_deliveries"] / max(1, batches["batches"])
    if database_url:
        figure.stored = _stored(database_url)
        figure.expected = before + unique
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
    name = f"{DB_PREFIX}_{uuid.uuid4().hex[:10]}"
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
    parser.add_argument("--concurrency", default="32,128", help="comma list of connection counts")
    parser.add_argument("--workers", type=int, default=1, help="server processes, for the bare endpoint and the receiver")
    parser.add_argument("--sqlite-synchronous", choices=["NORMAL", "FULL", "EXTRA"],
                        help="override the warehouse's SQLite synchronous pragma (durability) for the run")
    parser.add_argument("--body-bytes", type=int, default=2048)
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of re-deliveries, 0..0.9")
    parser.add_argument("--batch-window-ms", type=float, default=2)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    parser.add_argument("--serve", choices=["bare", "receiver"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args)
        return 0
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not 0 <= args.duplicates <= 0.9 or args.requests < 1 or not levels or min(levels) < 1 or args.workers < 1:
        parser.error("need --requests >= 1, --concurrency of numbers >= 1, --workers >= 1, 0 <= --duplicates <= 0.9")

    print(f"{args.requests} requests per target, connections {levels}, {args.workers} worker(s), ~{args.body_bytes} B "
          f"bodies, {args.duplicates:.0%} duplicates, window {args.batch_window_ms} ms, max batch {args.max_batch}, "
          f"SQLite synchronous {args.sqlite_synchronous or 'as configured'}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    figures: list[Figure] = []
    ceilings: dict[int, Figure] = {}
    with tempfile.TemporaryDirectory(prefix="e2a-bench-") as tmp:
        url, cleanup = _postgres_database() if "postgres" in backends else (None, "not asked for")
        if "postgres" in backends and url is None:
            print(f"Postgres skipped: unreachable at {ADMIN_URL} ({cleanup})")
        try:
            for concurrency in levels:
                bare = measure("bare starlette (ceiling)", "bare", args, concurrency)
                ceilings[concurrency] = bare
                figures.append(bare)
                if "sqlite" in backends:
                    from e2a_assets.warehouse.engine import sqlite_url

                    path = Path(tmp) / f"warehouse-{concurrency}.sqlite"
                    figures.append(measure("receiver, SQLite", "receiver", args, concurrency, sqlite_url(path)))
                if url is not None:
                    figures.append(measure("receiver, Postgres", "receiver", args, concurrency, url))
        finally:
            if url is not None:
                cleanup()

    print(f"\n{'target':26} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'of bare':>8} "
          f"{'cpu us/req':>10} {'cpu of bare':>11}  batch")
    failed = False
    for f in figures:
        batch = "" if f.mean_batch is None else f"{f.mean_batch:5.0f}"
        bare = ceilings[f.concurrency]
        print(f"{f.name:26} {f.concurrency:5} {f.rps:8.0f} {f.p50_ms:7.2f} {f.p99_ms:7.2f} "
              f"{f.rps / bare.rps:8.2f} {f.cpu_us:10.0f} {bare.cpu_us / max(f.cpu_us, 1e-9):11.2f}  {batch}")
        if f.stored is not None:
            line, ok = f.balance()
            print(f"{'':33}{line}")
            failed |= not ok
        failed |= any(500 <= code < 600 for code in f.statuses)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
