"""Versioned warehouse migrations: the schema they make, warehouses made before them, concurrent
upgrades, and every entry point refusing a warehouse that is behind."""

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, inspect, select, text
from sqlalchemy.engine import make_url

from e2a_assets.assets import ingestion
from e2a_assets.definitions import build_resources
from e2a_assets.services.lineage import lineage_problems
from e2a_assets.warehouse import ledger, migrate, schema
from e2a_assets.warehouse.engine import make_engine, sqlite_url
from e2a_tests.conftest import throwaway_database
from e2a_tests.factories import settings_for

E2A = Path(sys.executable).with_name("e2a")
FIXTURES = Path(__file__).with_name("fixtures")
TABLES = sorted(t.name for t in schema.metadata.sorted_tables)
HEAD = migrate.head_revision()
HEAD_NUMBER = int(re.match(r"\d+", HEAD).group())  # ids are numbered, some named after the number


def e2a(*args: str, database_url: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    """`e2a ARGS` in its own process (DATABASE_URL unset when None: the embedded default)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["E2A_DATA_DIR"] = str(tmp_path / "data")
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run([str(E2A), *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    """`e2a ARGS` in this process (faster than a new one): returns (exit code, stdout, stderr)."""
    from e2a_assets.cli.main import main

    def run(*args: str, database_url: str | None) -> tuple[int, str, str]:
        monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path / "data"))
        if database_url:
            monkeypatch.setenv("DATABASE_URL", database_url)
        else:
            monkeypatch.delenv("DATABASE_URL", raising=False)
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def behind_line(url: str, found: str = "none") -> str:
    shown = make_url(url).render_as_string(hide_password=True)
    if shown.startswith("postgresql://"):
        shown = "postgresql+psycopg2://" + shown[len("postgresql://"):]
    return f"the warehouse at {shown} is at schema revision {found}, this e2a needs {HEAD}: run `e2a db upgrade`"


def schema_differences(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match `schema.metadata`."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "version_table": migrate.VERSION_TABLE})
            return compare_metadata(context, schema.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def commit_seq_default(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT column_default FROM information_schema.columns "
                "WHERE table_name = 'event_log' AND column_name = 'commit_seq'")).scalar_one()
    finally:
        engine.dispose()


def every_row(url: str, like: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
    """Each e2a table's rows as the database has it (its own columns), in a stable order, for
    before/after comparison; with `like`, the tables and columns of that earlier read."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            out = {}
            for t in schema.metadata.sorted_tables:
                if t.name not in present or (like is not None and t.name not in like):
                    continue
                names = {c["name"] for c in inspect(conn).get_columns(t.name)}
                columns = [c for c in t.columns if c.name in names and (like is None or c.name in like[t.name].columns)]
                out[t.name] = pd.read_sql(select(*columns).order_by(*columns), conn)
            return out
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request, tmp_path) -> str:
    """An empty database: a SQLite file that does not exist yet, or a new Postgres database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "fresh" / "warehouse.sqlite")
        return
    with throwaway_database("e2a_migrations") as url:
        yield url


# ------------------------------------------------------------------------------ the schema


def test_upgrade_makes_exactly_the_declared_schema(empty_database):
    result = migrate.upgrade(empty_database)
    assert (result.before, result.after, result.adopted) == (None, HEAD, False)
    assert table_names(empty_database) == sorted([*TABLES, migrate.VERSION_TABLE])
    assert len(TABLES) == 30  # 27 + receiver_heartbeats (0010_intake_limits) + payments (0009_payments) + event_readers (0012_event_readers)
    assert schema_differences(empty_database) == []
    if empty_database.startswith("postgresql"):
        # The receiver's commit order (warehouse/event_cursor.py) depends on this default.
        assert commit_seq_default(empty_database) == "txid_current()"
    again = migrate.upgrade(empty_database)
    assert (again.before, again.after, again.adopted) == (HEAD, HEAD, False)


def test_the_comparison_sees_a_difference():
    """The autogenerate check can fail: a column the migrations never made is reported."""
    from sqlalchemy import Column, Integer, MetaData

    extra = MetaData()
    for table in schema.metadata.sorted_tables:
        table.to_metadata(extra)
    Table("orders", extra, Column("not_migrated", Integer), extend_existing=True)
    scratch = make_engine("sqlite://")
    migrate.upgrade(scratch)
    with scratch.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
        diffs = compare_metadata(context, extra)
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "orders", "not_migrated")]


# ------------------------------------------------------------------------------ before migrations


def restore_fixture(backend: str, tmp_path: Path, stack) -> str:  # noqa: ANN001
    """A fresh copy of the warehouse made by commit 610e9c9 (e2a_tests/fixtures/README.md)."""
    if backend == "sqlite":
        target = tmp_path / "old" / "warehouse.sqlite"
        target.parent.mkdir()
        shutil.copyfile(FIXTURES / "warehouse-610e9c9.sqlite", target)
        return sqlite_url(target)
    import psycopg2

    url = stack.enter_context(throwaway_database("e2a_fixture"))
    dump = gzip.decompress((FIXTURES / "warehouse-610e9c9.postgres.sql.gz").read_bytes()).decode()
    # `\restrict` / `\unrestrict` are psql meta-commands (pg_dump >= 15.14); the rest is plain SQL.
    sql = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_warehouse_made_by_the_previous_main_is_upgraded_without_losing_a_row(backend, tmp_path):
    from contextlib import ExitStack

    with ExitStack() as stack:
        url = restore_fixture(backend, tmp_path, stack)
        assert migrate.VERSION_TABLE not in table_names(url)
        before = every_row(url)
        counts = {name: len(frame) for name, frame in before.items()}
        assert all(counts.values()) and counts["event_log"] == 234 and counts["invoice_adjustments"] == 1

        done = e2a("db", "upgrade", database_url=url, tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr
        shown = make_engine(url).url.render_as_string(hide_password=True)
        upgraded = done.stdout.splitlines()
        assert upgraded[:2] == [
            f"warehouse {shown}: made before versioned migrations; its tables match revision 0001, stamped it",
            f"warehouse {shown}: " + (f"at revision {HEAD}, up to date" if HEAD == "0001"
                                      else f"upgraded from revision 0001 to {HEAD}"),
        ]
        after = every_row(url)  # every table and column of the head revision
        assert {name: len(after[name]) for name in before} == counts
        for name, frame in before.items():
            pd.testing.assert_frame_equal(after[name][list(frame.columns)], frame, obj=name)
        # Revision 0005: everything issued before rate cards was priced by version 1.
        for name in ("billable_orders", "invoices", "invoice_lines", "invoice_adjustments"):
            assert set(after[name]["rate_card_version"]) == {1}, name
        cards = after["rate_card_versions"]
        assert list(zip(cards["tenant"], cards["version"])) == sorted(
            (t, 1) for t in set(before["invoices"]["tenant"]))
        first_issue = before["invoices"].groupby("tenant")["issued_at"].min()
        assert [pd.Timestamp(v) for v in cards["first_used_at"]] == [pd.Timestamp(first_issue[t]) for t in cards["tenant"]]
        assert cards["fingerprint"].isna().all()  # filled from the registry on its first load
        # Revision 0006: no lineage for what was issued before; the upgrade's backfill derives it
        # (invoices, the adjustment and the debit note it became in revision 0006) and the lineage
        # rules hold on the old ledger (every line accounted for, every billable event once: the
        # return delivered after its invoice is the adjustment's, counted through its note).
        documents = len(before["invoices"]) + len(before["invoice_adjustments"]) + 1
        links = after["line_events"]
        assert upgraded[2:] == [f"warehouse {shown}: lineage backfilled for {documents} document(s), {len(links)} link(s)"]
        done = e2a("invoices", "lineage", "--backfill", database_url=url, tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "backfilled the lineage of 0 document(s) (invoices, charges, adjustments, notes): 0 link(s)"
        engine = make_engine(url)
        first, last = ledger.cohort_day_span(engine)
        problems, linked = lineage_problems(engine, ledger.read_invoices(engine), first, last, pd.Timestamp.now(tz="UTC"))
        assert problems.empty, problems
        assert len(every_row(url)["line_events"]) == len(links)
        adjusted = links[links["document_kind"] == "adjustment"]
        assert list(zip(adjusted["document_number"], adjusted["event_type"])) == [
            (before["invoice_adjustments"]["adjustment_id"].iloc[0], "return_received")]
        noted = links[links["document_kind"] == "note"]
        assert list(noted["event_type"]) == ["return_received"]
        # Every link is checked but the adjustment's, which its note stands for.
        assert linked == len(links) - 1 > len(before["invoice_lines"])
        assert migrate.current_revision(make_engine(url)) == HEAD
        assert schema_differences(url) == []
        # Revision 0006: its one applied adjustment (a late return, +250) is now a debit note.
        [note] = pd.read_sql(select(schema.notes), make_engine(url)).to_dict("records")
        assert (note["source_id"], note["kind"], note["amount_cents"], note["note_number"].split("-", 2)[2]) == (
            before["invoice_adjustments"]["adjustment_id"].item(), "debit", 250,
            "DN-" + note["note_date"].strftime("%Y%m") + "-0001")
        if backend == "postgres":
            assert commit_seq_default(url) == "txid_current()"


def test_tables_that_are_not_the_baseline_are_refused_and_left_alone(tmp_path):
    import sqlite3

    target = tmp_path / "odd.sqlite"
    shutil.copyfile(FIXTURES / "warehouse-610e9c9.sqlite", target)
    with sqlite3.connect(target) as conn:
        conn.execute("ALTER TABLE orders ADD COLUMN hand_made INTEGER")
        conn.execute("DROP TABLE alerts")
    url = sqlite_url(target)
    with pytest.raises(migrate.BaselineMismatch) as refused:
        migrate.upgrade(url)
    assert str(refused.value) == (
        f"the warehouse at {url} has e2a tables but no schema version, and they differ from revision 0001: "
        "table alerts missing, orders.hand_made unexpected; nothing was changed")
    assert migrate.VERSION_TABLE not in table_names(url) and "alerts" not in table_names(url)


# ------------------------------------------------------------------------------ concurrency


# `e2a db upgrade`, started when told: every process has imported e2a and waits at the same line.
RACER = """
import sys
from e2a_assets.cli.main import main
print("ready", flush=True)
sys.stdin.readline()
main(["db", "upgrade"])
"""


def test_six_simultaneous_upgrades_of_an_empty_warehouse_all_succeed_once(empty_database, tmp_path):
    env = {**os.environ, "DATABASE_URL": empty_database, "E2A_DATA_DIR": str(tmp_path / "data")}
    racers = [subprocess.Popen([sys.executable, "-c", RACER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(6)]
    assert [p.stdout.readline() for p in racers] == ["ready\n"] * 6
    for p in racers:
        p.stdin.write("go\n")
        p.stdin.flush()
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in racers]
    assert [code for code, _, _ in outcomes] == [0] * 6, [err for _, _, err in outcomes]
    said = sorted(out.splitlines()[-1].rsplit(": ", 1)[1] for _, out, _ in outcomes)
    assert said == sorted([f"upgraded from revision none to {HEAD}"] + [f"at revision {HEAD}, up to date"] * 5)
    assert table_names(empty_database) == sorted([*TABLES, migrate.VERSION_TABLE])
    engine = make_engine(empty_database)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).scalars().all() == [HEAD]
    engine.dispose()


# ------------------------------------------------------------------------------ refusing a warehouse behind


def test_db_current_says_behind_then_up_to_date(cli, tmp_path):
    url = sqlite_url(tmp_path / "w.sqlite")
    code, out, _ = cli("db", "current", database_url=url)
    assert code == 1
    assert out.splitlines() == [f"warehouse  {url}", "revision   none", f"head       {HEAD}",
                                "behind: run `e2a db upgrade`"]
    code, out, _ = cli("db", "upgrade", database_url=url)
    assert (code, out.splitlines()) == (0, [f"warehouse {url}: upgraded from revision none to {HEAD}"])
    code, out, _ = cli("db", "current", database_url=url)
    assert code == 0
    assert out.splitlines() == [f"warehouse  {url}", f"revision   {HEAD}", f"head       {HEAD}", "up to date"]


def test_a_warehouse_migrated_by_a_newer_e2a_is_refused(cli, sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    code, out, _ = cli("db", "current", database_url=sqlite_url)
    assert code == 1 and out.splitlines()[-1] == "ahead: migrated by a newer e2a; run that version"
    code, _, err = cli("db", "upgrade", database_url=sqlite_url)
    assert code == 1
    assert err.splitlines() == [
        f"e2a: the warehouse at {sqlite_url} is at schema revision 9999, newer than this e2a knows (its newest is "
        f"{HEAD}): run the e2a version that migrated it"]


@pytest.fixture
def unmigrated_postgres() -> str:
    with throwaway_database("e2a_unmigrated") as url:
        yield make_url(url).set(username="postgres", password="s3cret").render_as_string(hide_password=False)


def test_the_receiver_refuses_an_unmigrated_warehouse_in_one_line(unmigrated_postgres, tmp_path):
    served = e2a("serve", "--port", "1", database_url=unmigrated_postgres, tmp_path=tmp_path)
    assert served.returncode == 1
    assert served.stderr.strip().splitlines() == [f"e2a: {behind_line(unmigrated_postgres)}"]
    assert "s3cret" not in served.stderr and "***" in served.stderr
    assert table_names(unmigrated_postgres) == []  # refused, not migrated behind the operator's back


@pytest.mark.parametrize("args", [["simulate", "--days", "1", "--orders-per-day", "1"], ["replay-dead-letters"],
                                  ["invoices", "export", "--tenant", "demo-3pl", "--month", "2025-08"]])
def test_cli_commands_refuse_an_explicit_unmigrated_warehouse(cli, args, tmp_path):
    url = sqlite_url(tmp_path / "explicit.sqlite")
    code, _, err = cli(*args, database_url=url)
    assert code == 1
    assert err.strip().splitlines() == [f"e2a: {behind_line(url)}"]
    assert table_names(url) == []


def test_the_embedded_default_warehouse_is_migrated_by_the_commands_themselves(cli, tmp_path):
    default = sqlite_url(tmp_path / "data" / "warehouse.sqlite")
    code, out, err = cli("replay-dead-letters", database_url=None)
    assert (code, out.strip()) == (0, "replayed 0, still failing 0"), err
    assert migrate.current_revision(make_engine(default)) == HEAD
    assert table_names(default) == sorted([*TABLES, migrate.VERSION_TABLE])


def test_a_materialisation_on_an_unmigrated_warehouse_fails_with_the_upgrade_line(tmp_path):
    url = sqlite_url(tmp_path / "unmigrated.sqlite")
    result = dg.materialize([ingestion.webhook_events], partition_key="2025-08-01",
                            resources=build_resources(settings_for(url, tmp_path)), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    # At once, without the retries meant for a warehouse that is briefly unreachable.
    assert [e.event_type_value for e in result.all_events if e.step_key].count("STEP_UP_FOR_RETRY") == 0
    assert failure.event_specific_data.user_failure_data.description == behind_line(url)
    assert table_names(url) == []


# ------------------------------------------------------------------------------ new revisions


def test_a_new_revision_is_autogenerated_numbered_and_applies(tmp_path, monkeypatch):
    from sqlalchemy import Column, Integer

    migrations = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
    migrate._scripts.cache_clear()
    added = Table("migration_probe", schema.metadata, Column("id", Integer, primary_key=True))
    try:
        path = migrate.new_revision("add migration probe", autogenerate=True)
        assert path == migrations / "versions" / f"{HEAD_NUMBER + 1:04d}_add_migration_probe.py"
        source = path.read_text()
        assert f"down_revision = '{HEAD}'" in source and "op.create_table('migration_probe'" in source
        url = sqlite_url(tmp_path / "w.sqlite")
        assert migrate.upgrade(url).after == f"{HEAD_NUMBER + 1:04d}"
        assert "migration_probe" in table_names(url)
    finally:
        schema.metadata.remove(added)
        monkeypatch.undo()
        migrate._scripts.cache_clear()
    assert migrate.head_revision() == HEAD
