"""What the benchmarks share: a scratch warehouse, the fast loader, Dagster runs in a child process.

- `scratch_warehouse(database_url)`: a temporary SQLite file, or, given a Postgres URL, a throwaway
  database `e2a_bench_<random>` created on that server (the URL's database is only used to connect
  as an administrator) and dropped afterwards.
- `load_events(...)`: simulator traffic written straight into `event_log` - the same generator and
  the same canonicalisation (`domain.events.canonicalize`) and dedupe key as the receiver, but one
  bulk `insert_frame` per batch instead of HTTP + per-batch transactions. Long ranges are
  generated in chunks of days per tenant so the generator's memory stays bounded.
- `run_job(...)`: one run of a job over a range of partitions with a fixed `as_of`, executed in a
  child process (`python bench/_bench.py run ...`) against a Dagster instance kept in a directory,
  so the parent's generator memory does not count: returns the wall time, the per-step times
  from the run's event log and the child's peak RSS (`RUSAGE_CHILDREN` after it exits).

`python bench/_bench.py run` is an internal entry point of the benchmarks, not a user command.
"""

from __future__ import annotations

import argparse
import dataclasses
import contextlib
import datetime as dt
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from e2a_assets.domain.events import MalformedEvent, canonicalize  # noqa: E402
from e2a_assets.settings import Settings  # noqa: E402
from e2a_assets.warehouse import schema  # noqa: E402
from e2a_assets.warehouse.engine import make_engine, sqlite_url  # noqa: E402
from e2a_assets.warehouse.frames import insert_frame  # noqa: E402
from e2a_assets.warehouse.migrate import upgrade  # noqa: E402

# The longest story of a simulated order (late return + refund) lasts under three weeks.
TAIL_DAYS = 21
LOAD_BATCH = 50_000
KEY = ["tenant", "source", "event_id"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog: error: ...` and exit 2, no usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ValueError into one line + exit 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


# Tenants the benchmarks add after the project's own (policies/tenants.yaml has two): default
# policies, their own zone, a development secret.
EXTRA_TIMEZONES = ("Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney")


def write_tenants(work: Path, count: int) -> None:
    """`work/tenants.yaml`: the project's tenants, plus `bench-tenant-<n>` up to `count` tenants."""
    import yaml

    registry = yaml.safe_load((ROOT / "policies" / "tenants.yaml").read_text())
    for n in range(len(registry["tenants"]) + 1, count + 1):
        registry["tenants"][f"bench-tenant-{n}"] = {
            "display_name": f"Bench tenant {n}",
            "shop_domain": f"bench-tenant-{n}.myshopify.com",
            "timezone": EXTRA_TIMEZONES[n % len(EXTRA_TIMEZONES)],
            "webhook_secret_dev": f"dev-secret-bench-tenant-{n}",
        }
    (work / "tenants.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))


def settings_for(database_url: str, work: Path, chunk_days: int | None = None) -> Settings:
    """Settings of a benchmark warehouse: data under `work/data`, the project's policies,
    `work/tenants.yaml` when `write_tenants` made one, and the days per chunk (E2A_CHUNK_DAYS)."""
    tenants = work / "tenants.yaml"
    settings = Settings(data_dir=work / "data", database_url=database_url, policies_dir=ROOT / "policies",
                        tenants_file=tenants if tenants.exists() else ROOT / "policies" / "tenants.yaml")
    return settings if chunk_days is None else dataclasses.replace(settings, chunk_days=chunk_days)


def bench_tenants(work: Path, database_url: str, count: int) -> list:
    """The first `count` tenant policies, extra bench tenants written as needed."""
    write_tenants(work, count)
    return list(settings_for(database_url, work).registry().policies[:count])


@contextlib.contextmanager
def scratch_warehouse(database_url: str | None) -> Iterator[tuple[str, Path]]:
    """(warehouse URL at the head revision, scratch directory); everything is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="e2a-bench-") as tmp:
        work = Path(tmp)
        if not database_url:
            url = sqlite_url(work / "warehouse.sqlite")
            upgrade(make_engine(url))
            yield url, work
            return
        import psycopg2
        from psycopg2 import sql
        from sqlalchemy.engine import make_url

        admin_url = make_url(database_url).set(drivername="postgresql")
        try:
            admin = psycopg2.connect(admin_url.render_as_string(hide_password=False), connect_timeout=5)
        except psycopg2.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SystemExit(f"error: cannot connect to {admin_url.render_as_string(hide_password=True)}: {first}")
        admin.autocommit = True
        name = f"e2a_bench_{uuid.uuid4().hex[:12]}"
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = admin_url.set(database=name).render_as_string(hide_password=False)
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            yield url, work
        finally:
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.close()


@dataclass
class Loaded:
    deliveries: int = 0
    events: int = 0
    dead_letters: int = 0
    generate_seconds: float = 0.0
    load_seconds: float = 0.0


def _event_frame(deliveries: Sequence, keep_before: dt.datetime | None) -> tuple[pd.DataFrame, int]:
    rows, bad = [], 0
    for d in deliveries:
        try:
            event = canonicalize(d.tenant, d.source, d.headers, d.body)
        except MalformedEvent:
            bad += 1  # the receiver keeps these as dead letters; no asset reads them
            continue
        row = event.row()
        row["received_at"] = d.send_at
        rows.append(row)
    frame = pd.DataFrame(rows).drop_duplicates(KEY, keep="first")
    if keep_before is not None and len(frame):
        # Only the orders that started before the chunk's end: later ones belong to the next chunk.
        started = frame[["occurred_at", "order_created_at"]].min(axis=1)
        first = started.groupby([frame["tenant"], frame["order_id"]]).transform("min")
        frame = frame[first < pd.Timestamp(keep_before)]
    return frame, bad


def load_events(url: str, tenants: Sequence, start: dt.date, days: int, orders_per_day: int, seed: int,
                chunk_days: int = 30, end: dt.date | None = None) -> Loaded:
    """Simulate `days` days from `start` for each tenant and bulk-write the accepted/ignored events.

    A range longer than `chunk_days` is generated chunk by chunk (each chunk simulated with
    TAIL_DAYS more so its orders finish their story, cut at `end`, default the range's end), with
    a seed per chunk; one chunk is exactly `generate(..., seed, start)` per tenant.
    """
    from e2a_assets.simulator.traffic import generate

    engine = make_engine(url)
    stats = Loaded()
    end = end or start + dt.timedelta(days=days)
    try:
        for policy in tenants:
            offset = 0
            while offset < days:
                size = min(chunk_days, days - offset)
                chunk_start = start + dt.timedelta(days=offset)
                chunk_end = chunk_start + dt.timedelta(days=size)
                simulated = size if size == days else min(size + TAIL_DAYS, (end - chunk_start).days)
                t0 = time.perf_counter()
                chunk_seed = seed if size == days else seed * 100_003 + offset
                deliveries = generate([policy], simulated, orders_per_day, chunk_seed, chunk_start)
                t1 = time.perf_counter()
                keep = None if simulated == size else dt.datetime.combine(chunk_end, dt.time(), dt.timezone.utc)
                frame, bad = _event_frame(deliveries, keep)
                stats.deliveries += len(deliveries)
                del deliveries
                for lo in range(0, len(frame), LOAD_BATCH):
                    with engine.begin() as conn:
                        stats.events += insert_frame(conn, schema.event_log, frame.iloc[lo:lo + LOAD_BATCH])
                stats.dead_letters += bad
                stats.generate_seconds += t1 - t0
                stats.load_seconds += time.perf_counter() - t1
                offset += size
    finally:
        engine.dispose()
    return stats


def scan_and_parse(url: str) -> tuple[int, float, float]:
    """The floor of any pipeline: read every landing row and JSON-parse its payload.
    (rows, wall seconds, CPU seconds of this process)"""
    engine = make_engine(url)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = 0
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("SELECT * FROM event_log")
        payload = [d[0] for d in cursor.description].index("payload")
        while batch := cursor.fetchmany(10_000):
            for row in batch:
                json.loads(row[payload])
            rows += len(batch)
        cursor.close()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.dispose()
    return rows, seconds, cpu


# Who wrote a row and when differ from run to run (as in e2a_tests/test_golden_tables.py).
VOLATILE = {"id", "commit_seq", "received_at", "recorded_at", "updated_at", "issued_run_id", "created_run_id",
            "raised_at", "last_replayed_at"}
# Tables the invoice ledger writes besides `invoices`.
LEDGER_TABLES = ("invoice_lines", "invoice_sequences")


def _digest(engine, table) -> str:  # noqa: ANN001
    from e2a_assets.warehouse.frames import read_table

    frame = read_table(engine, table)
    columns = sorted(c.name for c in table.columns if c.name not in VOLATILE)

    def text(value) -> str:  # noqa: ANN001
        if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, pd.Timestamp):
            return value.tz_convert("UTC").isoformat()
        if isinstance(value, float):
            return repr(round(value, 9))
        return str(value)

    rows = sorted("\x1f".join(text(v) for v in row) for row in frame[columns].itertuples(index=False))
    return hashlib.sha256("\x1e".join(rows).encode()).hexdigest() + f":{len(rows)}"


def table_digests(engine_a, engine_b, names: Sequence[str]) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """name -> (digest in a, digest in b) of each named table and the ledger's side tables."""
    tables = [schema.metadata.tables[n] for n in [*names, *LEDGER_TABLES] if n in schema.metadata.tables]
    return {t.name: (_digest(engine_a, t), _digest(engine_b, t)) for t in tables}


# --------------------------------------------------------------------------------------------
# Dagster runs in a child process


@dataclass
class RunFigures:
    seconds: float  # wall time of execute_in_process, measured in the child
    steps: dict[str, float]  # step key -> seconds (start to success/failure)
    peak_rss_mb: float  # of the child process
    # CPU time (user + system) of the child during execute_in_process: on a shared machine it
    # moves far less with other load than the wall time (on Postgres the server's share is not in it).
    cpu_seconds: float


def run_job(url: str, work: Path, job: str, first: dt.date, last: dt.date, as_of: pd.Timestamp,
            selection: Sequence[str] = (), chunk_days: int | None = None) -> RunFigures:
    """Run `job` (or, with `selection`, an ad-hoc job of those asset keys) over first..last in a
    child process against the Dagster instance in `work/dagster`; raise SystemExit if it fails."""
    out = work / f"run-{uuid.uuid4().hex[:8]}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "run", "--url", url, "--work", str(work), "--job", job,
               "--first", first.isoformat(), "--last", last.isoformat(), "--as-of", as_of.isoformat(), "--out", str(out)]
    for key in selection:
        command += ["--asset", key]
    if chunk_days is not None:
        command += ["--chunk-days", str(chunk_days)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise SystemExit(f"error: {job} over {first}..{last} failed: {tail[0]}")
    figures = json.loads(out.read_text())
    out.unlink()
    # The child reports its own ru_maxrss when it is done: RUSAGE_CHILDREN in this process would be
    # the largest of all children so far, not this run's.
    return RunFigures(figures["seconds"], figures["steps"], figures["peak_rss_mb"], figures["cpu_seconds"])


def _peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM of its address space. (`ru_maxrss` is no good in a
    child: Linux carries over the high-water mark of the parent it was forked from at exec, so
    it reported the generator's memory, not the run's.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: argparse.Namespace) -> None:
    import dagster as dg

    from e2a_assets.definitions import build_definitions
    from e2a_assets.partitions import RANGE_END_TAG, RANGE_START_TAG
    from e2a_assets.resources import AS_OF_TAG

    work = Path(args.work)
    defs = build_definitions(settings_for(args.url, work, args.chunk_days))
    job_name = args.job
    if args.asset:
        adhoc = dg.define_asset_job(job_name, selection=dg.AssetSelection.assets(*[dg.AssetKey(a) for a in args.asset]))
        defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[adhoc]))
    job = defs.resolve_job_def(job_name)
    home = work / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    tags = {RANGE_START_TAG: args.first, RANGE_END_TAG: args.last, AS_OF_TAG: args.as_of}
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        t0, c0 = time.perf_counter(), time.process_time()
        result = job.execute_in_process(instance=instance, tags=tags, run_config=run_config, raise_on_error=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if not result.success:
            failures = [f"{e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[-1]}"
                        for e in result.all_events
                        if e.is_step_failure and getattr(e.event_specific_data, "error", None)]
            print(f"run failed: {'; '.join(failures) or result.run_id}", file=sys.stderr)
            raise SystemExit(1)
        starts, steps = {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
                steps[event.step_key] = entry.timestamp - starts[event.step_key]
    peak = _peak_rss_mb()
    Path(args.out).write_text(json.dumps({"seconds": seconds, "steps": steps, "peak_rss_mb": peak, "cpu_seconds": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description="internal: run one e2a job in this process (used by bench/*.py)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    for name in ("--url", "--work", "--job", "--first", "--last", "--as-of", "--out"):
        run.add_argument(name, required=True)
    run.add_argument("--asset", action="append", default=[])
    run.add_argument("--chunk-days", type=int, default=None)
    args = parser.parse_args()
    _child(args)


if __name__ == "__main__":
    main()
