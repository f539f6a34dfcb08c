"""The Dagster UI shows e2a: `dagster-webserver` on a small demo instance, read by headless Chromium.

Needs Debian's `chromium` (installed here with apt-get when missing and running as root; skipped
otherwise). `E2A_UPDATE_SCREENSHOT=1` also refreshes docs/asset-graph.png.
"""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from e2a_assets.settings import PROJECT_ROOT, Settings

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = PROJECT_ROOT / "docs" / "asset-graph.png"
GROUPS = ("ingestion", "orders", "exceptions", "operations")
ASSETS = ("webhook_events", "orders", "sla_metrics", "exception_actions", "operations_summary")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed (apt-get install -y chromium needs root)")
    done = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0 or not Path(CHROMIUM).exists():
        pytest.skip(f"could not install chromium: {done.stderr.strip()[-300:]}")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    """In the child: default SIGINT/SIGTERM (a background shell ignores them, DAGSTER-NOTES §11)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(process: subprocess.Popen) -> None:
    """SIGINT to the webserver's process group, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    pgid = os.getpgid(process.pid)
    os.killpg(pgid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=5)


def _demo_instance(tmp: Path, env: dict[str, str]) -> None:
    """Two days of simulator traffic for two tenants, every daily asset materialised in one run."""
    from e2a_assets.definitions import build_definitions
    from e2a_assets.cli.demo import materialize_range
    from e2a_assets.intake.ingestor import Ingestor
    from e2a_assets.simulator.runner import ingest_deliveries
    from e2a_assets.simulator.traffic import generate
    from e2a_assets.cli.db import prepared_warehouse

    settings = Settings.from_env(env)
    today = dt.datetime.now(dt.timezone.utc).date()
    first, last = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    deliveries = generate(list(settings.registry().policies[:2]), 2, 8, 7, first)
    ingest_deliveries(Ingestor(prepared_warehouse(settings)), deliveries)  # the default warehouse, migrated
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        materialize_range(instance, build_definitions(settings), "full_operations_job", first.isoformat(),
                          last.isoformat(), pd.Timestamp.now(tz="UTC").floor("min"))
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def webserver(tmp_path_factory, chromium):
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    # What the UI's "Join the Dagster community" dialog records once dismissed (dagster._core.nux):
    # without it the dialog covers the page on 127.0.0.1.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    (tmp / "tmpdir").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "E2A_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "E2A_DATA_DIR": str(tmp / "data"),
        "TMPDIR": str(tmp / "tmpdir"),
    }
    _demo_instance(tmp, env)
    port = _free_port()
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    log = open(tmp / "webserver.log", "wb")
    process = subprocess.Popen(
        [str(webserver_bin), "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=_default_signals, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not start:\n{(tmp / 'webserver.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield {"base": base, "tmp": tmp, "chromium": chromium}
    finally:
        _stop(process)
        log.close()


def _chromium(server, *args: str, budget_ms: int = 12000) -> subprocess.CompletedProcess:
    profile = server["tmp"] / f"chromium-profile-{time.monotonic_ns()}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]
    return subprocess.run([server["chromium"], *flags, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(server["tmp"] / "tmpdir")})


def test_asset_graph_shows_e2a_groups_and_assets(webserver):
    # The global lineage shows one box per group (collapsed) and their lineage.
    url = f"{webserver['base']}/asset-groups"
    dom = _chromium(webserver, "--window-size=1600,1000", "--dump-dom", url).stdout
    missing = [name for name in GROUPS if name not in dom]
    assert not missing, f"groups not on the asset graph: {missing}"
    # The catalog lists every asset by name.
    catalog = _chromium(webserver, "--window-size=1600,2000", "--dump-dom", f"{webserver['base']}/assets").stdout
    missing = [name for name in ASSETS if name not in catalog]
    assert not missing, f"assets not in the catalog: {missing}"
    if os.environ.get("E2A_UPDATE_SCREENSHOT") == "1":
        shot = webserver["tmp"] / "asset-graph.png"
        _chromium(webserver, "--window-size=1600,1000", "--hide-scrollbars", f"--screenshot={shot}", url,
                  budget_ms=20000)
        assert shot.exists() and shot.stat().st_size > 10_000
        shutil.copyfile(shot, SCREENSHOT)


def test_an_asset_page_shows_its_metadata(webserver):
    dom = _chromium(webserver, "--dump-dom", f"{webserver['base']}/assets/operations_summary").stdout
    # Description, numeric metadata, column schema, upstream lineage and owner (shown without "team:").
    for text in ("The executive summary per tenant", "health_score", "fulfilment_compliance_pct",
                 "exception_response_compliance", "sla_metrics", "exception_actions", "Owners"):
        assert text in dom, f"{text!r} not on the operations_summary page"
