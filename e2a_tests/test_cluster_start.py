"""One schema step (issue 14 item 4): `e2a db upgrade` runs once; receivers, the code location and
Celery workers never create tables. Started all at once on a freshly upgraded Postgres warehouse
they all come up; on one whose schema is behind they refuse in one line.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect

from e2a_assets.cli.processes import ProcessGroup
from e2a_assets.settings import PROJECT_ROOT
from e2a_assets.warehouse.engine import make_engine
from e2a_tests.conftest import throwaway_database
from e2a_tests.test_migrations import behind_line

BIN = Path(sys.executable).parent
# TCP ports of this test: within the range the project's tests may open.
PORTS = range(20700, 20800)


def _free_ports(count: int) -> list[int]:
    found = []
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    pytest.fail(f"no {count} free ports in {PORTS.start}-{PORTS.stop - 1}")


def _environment(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    """A production environment: every setting explicit, nothing local to fall back to."""
    return {**os.environ, "E2A_ENV": "production", "DATABASE_URL": warehouse_url,
            "E2A_TENANTS_FILE": str(PROJECT_ROOT / "policies" / "tenants.yaml"),
            "E2A_INVOICE_DIR": str(tmp_path / "invoices"), "E2A_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(tmp_path / "dagster_home")}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_two_receivers_and_the_code_location_start_together_after_one_upgrade(tmp_path):
    with throwaway_database("e2a_test_cluster") as url:
        env = _environment(tmp_path, url)
        upgraded = subprocess.run([str(BIN / "e2a"), "db", "upgrade"], env=env, capture_output=True, text=True,
                                  timeout=180)
        assert upgraded.returncode == 0, upgraded.stderr
        assert upgraded.stdout.strip().endswith("upgraded from revision none to " + upgraded.stdout.split()[-1])
        tables = _tables(url)
        first, second, grpc = _free_ports(3)
        group = ProcessGroup(tmp_path / "tmp", env)
        try:
            for name, port in (("receiver 1", first), ("receiver 2", second)):
                group.start(name, [str(BIN / "e2a"), "serve", "--port", str(port), "--log-level", "warning"],
                            log=tmp_path / f"{port}.log")
            group.start("code location", [str(BIN / "dagster"), "api", "grpc", "-m", "e2a_assets.definitions",
                                          "-h", "127.0.0.1", "-p", str(grpc)], log=tmp_path / "grpc.log")
            deadline = time.monotonic() + 120
            ready: dict[int, dict] = {}
            while len(ready) < 2:
                assert time.monotonic() < deadline and not group.failed(), group.failed() or "receivers not ready"
                for port in (first, second):
                    try:
                        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                    except httpx.HTTPError:
                        continue
                    if answer.status_code == 200:
                        ready[port] = answer.json()
                time.sleep(0.3)
            # Both ready on Postgres, billing by the same registry.
            assert {r["warehouse"] for r in ready.values()} == {"postgresql"}
            assert len({r["registry"] for r in ready.values()}) == 1
            while subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc)],
                                 capture_output=True, timeout=60).returncode != 0:
                assert time.monotonic() < deadline and not group.failed(), group.failed() or "code location not up"
                time.sleep(0.5)
            assert group.failed() is None
        finally:
            group.stop()
        # Nobody but `e2a db upgrade` made a table.
        assert _tables(url) == tables
        for port in (first, second):
            assert "Traceback" not in (tmp_path / f"{port}.log").read_text()


def test_a_celery_worker_refuses_a_warehouse_whose_schema_is_behind(tmp_path):
    pytest.importorskip("dagster_celery")
    with throwaway_database("e2a_test_cluster") as url:
        env = _environment(tmp_path, url)
        refused = subprocess.run([str(BIN / "e2a"), "worker"], env=env, capture_output=True, text=True, timeout=180)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [f"e2a: {behind_line(url)}"]
        assert _tables(url) == set()


def test_a_worker_without_the_warehouse_setting_refuses_to_start(tmp_path):
    env = {k: v for k, v in _environment(tmp_path, "unused").items() if k != "DATABASE_URL"}
    refused = subprocess.run([str(BIN / "e2a"), "worker"], env=env, capture_output=True, text=True, timeout=180)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "e2a: a Celery worker needs explicit settings, missing: DATABASE_URL (no local fallback; see docs/deployment.md)"]
    receiver = subprocess.run([str(BIN / "e2a"), "serve", "--port", "1"], env=env, capture_output=True, text=True,
                              timeout=180)
    assert receiver.returncode == 1
    assert receiver.stderr.strip().splitlines() == [
        "e2a: E2A_ENV=production needs explicit settings, missing: DATABASE_URL (no local fallback; see docs/deployment.md)"]
    assert not (tmp_path / "data").exists()
