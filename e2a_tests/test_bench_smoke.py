"""The benchmarks in bench/ still run: each at a tiny size prints its ratio line, bad arguments
give one line and exit 2. (The figures themselves are recorded in docs/internals.md.)"""

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from e2a_tests.conftest import DEFAULT_ADMIN_URL

BENCH = Path(__file__).resolve().parents[1] / "bench"

RUNS = {
    "pipeline.py": (["--days", "1", "--orders-per-day", "15"],
                    r"^total/floor = \d+\.\d\d \(target <= 3\.00\)  peak RSS = \d+ MB \(target < 2048\)$"),
    "history.py": (["--tenants", "1", "--days", "2", "--early-day", "1", "--orders-per-day", "15", "--quiet"],
                   r"^day2/day1 = \d+\.\d\d \(target <= 1\.20\)$"),
    "backfill.py": (["--tenants", "1", "--days", "2", "--orders-per-day", "15"],
                    r"^dagster/direct = \d+\.\d\d \(target <= 1\.50\)$"),
}


def bench(script: str, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    """Run the script's main(args) in this process (its Dagster runs still go to child processes):
    (exit code, stdout, stderr)."""
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    capsys.readouterr()
    try:
        module.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("script", sorted(RUNS))
def test_bench_prints_its_ratio_line(script, capsys):
    args, ratio_line = RUNS[script]
    code, out, err = bench(script, capsys, *args)
    assert code == 0, err[-2000:]
    assert re.search(ratio_line, out, re.MULTILINE), out
    if script == "backfill.py":
        assert re.search(r"^derived tables identical in both warehouses \(\d+ tables, [\d,]+ rows\)$", out,
                         re.MULTILINE), out


@pytest.mark.parametrize("script", sorted(RUNS))
def test_bench_rejects_bad_arguments_in_one_line(script, capsys):
    code, out, err = bench(script, capsys, "--days", "0")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [f"{script}: error: argument --days: must be >= 1, got 0"]
    assert bench(script, capsys, "--help")[0] == 0


def test_history_needs_the_early_day_before_the_last(capsys):
    code, _, err = bench("history.py", capsys, "--days", "5", "--early-day", "5")
    assert code == 2
    assert err.strip().splitlines() == ["history.py: error: --early-day (5) must be before --days (5)"]


def test_pipeline_on_postgres(capsys):
    import psycopg2

    admin_url = os.environ.get("E2A_TEST_POSTGRES_ADMIN_URL", DEFAULT_ADMIN_URL)
    try:
        psycopg2.connect(admin_url, connect_timeout=3).close()
    except psycopg2.Error:
        if os.environ.get("E2A_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Postgres unreachable at {admin_url} (E2A_REQUIRE_POSTGRES=1)")
        pytest.skip("Postgres unreachable")
    code, out, err = bench("pipeline.py", capsys, "--days", "1", "--orders-per-day", "15", "--database-url", admin_url)
    assert code == 0, err[-2000:]
    assert "(postgresql)" in out
    assert re.search(RUNS["pipeline.py"][1], out, re.MULTILINE), out


def test_ingest_bench_prints_ratios_and_a_balanced_run(capsys):
    code, out, err = bench("ingest.py", capsys, "--requests", "60", "--concurrency", "4,8", "--backends", "sqlite",
                           "--duplicates", "0.25")
    assert code == 0, err[-2000:]
    rows = re.findall(r"^receiver, SQLite +(\d+) +\d+ +[\d.]+ +[\d.]+ +\d\.\d\d +\d+ +\d\.\d\d", out, re.MULTILINE)
    assert rows == ["4", "8"], out
    # 60 sent, 25 % re-deliveries of the 45 unique events, nothing refused
    assert out.count("balance: sent 60 = stored 45 + duplicate 15 + ignored 0 + dead-lettered 0 + rejected 0 ; "
                     "warehouse rows 45 new -> balanced") == 2, out
