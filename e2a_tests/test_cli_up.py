"""`e2a up`: receiver, Dagster webserver and daemon come up together and stop together."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def test_up_serves_receiver_and_ui_feeds_traffic_and_stops_cleanly(tmp_path):
    port, ui_port = free_port(), free_port()
    env = {**os.environ, "E2A_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    log = open(tmp_path / "up.log", "wb")
    proc = subprocess.Popen(
        [str(BIN / "e2a"), "up", "--port", str(port), "--ui-port", str(ui_port), "--simulate", "--rate", "50"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        receiver = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: "Ctrl-C stops everything" in (tmp_path / "up.log").read_text(), 150), \
            (tmp_path / "up.log").read_text()
        assert httpx.get(f"{receiver}/healthz").status_code == 200
        assert httpx.get(f"{receiver}/readyz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ui_port}/server_info").status_code == 200
        # The simulator feeds signed deliveries that the receiver stores.
        assert wait_for(lambda: httpx.get(f"{receiver}/metrics").json()["requests"]["stored"] > 20, 60)
        output = (tmp_path / "up.log").read_text()
        assert f"dagster UI   http://127.0.0.1:{ui_port}" in output
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()
    # Everything it started is gone: both ports are free again.
    for p in (port, ui_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", p)) != 0


def test_serve_with_two_workers_stores_every_delivery_once_and_metrics_add_up_across_workers(tmp_path, sqlite_url):
    """Two worker processes share the port; /metrics, whichever worker answers it, counts the answers
    of both (prometheus_client's multiprocess mode, in a directory of this run removed at exit)."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from prometheus_client.multiprocess import MultiProcessCollector
    from sqlalchemy import func, select

    from e2a_assets.warehouse import schema
    from e2a_assets.warehouse.engine import make_engine
    from e2a_assets.webhooks.signing import sign

    port = free_port()
    url = sqlite_url  # migrated: an explicit DATABASE_URL is not upgraded by `e2a serve`
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "E2A_DATA_DIR": str(tmp_path), "DATABASE_URL": url, "TMPDIR": str(scratch)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([str(BIN / "e2a"), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def deliver(n: int) -> int:
        body = json.dumps({"event_id": f"w-{n % 40}", "event_type": "pick_completed", "order_id": str(n % 40),
                           "occurred_at": "2025-08-01T10:00:00Z"}).encode()
        # A new connection per delivery, so the kernel hands them to both workers.
        return httpx.post(f"{base}/webhooks/wms", content=body, timeout=30, headers={
            "X-E2A-Tenant": "demo-3pl", "X-E2A-Hmac-Sha256": sign("dev-secret-demo-3pl", body)}).status_code

    try:
        assert wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, 60)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(deliver, range(60)))
        assert codes == [200] * 60
        (metrics_dir,) = scratch.glob("e2a-receiver-metrics-*")
        per_worker = {}
        for path in metrics_dir.glob("counter_*.db"):
            samples = [s for m in MultiProcessCollector.merge([str(path)]) for s in m.samples
                       if s.name == "e2a_webhook_requests_total"]
            per_worker[path.stem] = sum(s.value for s in samples)
        assert len([n for n in per_worker.values() if n]) == 2, per_worker  # both workers answered some
        assert sum(per_worker.values()) == 60
        for _ in range(6):  # scrapes on new connections reach either worker: each sees the sum
            metrics = httpx.get(f"{base}/metrics").json()
            assert metrics["requests"]["stored"] == 40 and metrics["requests"]["duplicate"] == 20
            assert metrics["batched_deliveries"] == 60
            scrape = httpx.get(f"{base}/metrics?format=prometheus").text
            assert 'e2a_webhook_request_duration_seconds_count{outcome="stored",source="wms"} 40.0' in scrape
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    assert not list(scratch.glob("e2a-receiver-metrics-*"))  # the run's directory went with it
    with make_engine(url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.event_log)).scalar_one() == 40


def test_instance_storage_is_created_before_any_dagster_process_starts(tmp_path, monkeypatch):
    """`e2a up` creates a fresh home's SQLite storage itself, so the webserver, the daemon and their
    code servers never race to create and stamp it."""
    import sqlite3

    from e2a_assets.cli import instance as cli
    from e2a_assets.settings import Settings

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("E2A_DAGSTER_POSTGRES_URL", raising=False)
    monkeypatch.delenv("E2A_DAGSTER_YAML", raising=False)
    home = cli.prepared_dagster_home(Settings.from_env({**os.environ, "E2A_DATA_DIR": str(tmp_path)}))
    for db in (home / "history" / "runs.db", home / "schedules" / "schedules.db", home / "history" / "runs" / "index.db"):
        with sqlite3.connect(db) as conn:
            assert len(conn.execute("SELECT version_num FROM alembic_version").fetchall()) == 1, db


def test_a_child_that_dies_is_reported_with_why_from_this_start_of_its_log(tmp_path):
    from e2a_assets.cli.processes import ProcessGroup

    log = tmp_path / "webserver.log"
    log.write_text("ERROR: an error of an earlier start\n")  # logs are appended across starts
    script = ("import sys; print('\\x1b[32mstarting\\x1b[0m - INFO - Serving on :3000'); "
              "print('ERROR:    [Errno 98] address already in use'); print('INFO - Shutting down code server'); "
              "sys.exit(3)")
    group = ProcessGroup(tmp_path / "tmp", dict(os.environ))
    group.start("webserver", [sys.executable, "-c", script], log=log)
    group.children[0][1].wait(30)
    assert group.failed() == "webserver exited with code 3 (ERROR:    [Errno 98] address already in use)"

    quiet = ProcessGroup(tmp_path / "tmp", dict(os.environ))
    quiet.start("daemon", [sys.executable, "-c", "import sys; print('starting'); sys.exit('boom: no instance')"],
                log=tmp_path / "daemon.log")
    quiet.children[0][1].wait(30)
    assert quiet.failed() == "daemon exited with code 1 (boom: no instance)"
