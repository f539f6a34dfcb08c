"""Reproducibility proof (issue 11 item 5): the same events and `as_of` give the same tables.

The whole platform (every daily asset the day after the range, late returns, every daily asset
again later, the monthly statements) runs over a small simulated data set at fixed evaluation
times, through `bench/reproducibility.py`; every derived table and the ledger is hashed
(`warehouse/digests.py`). Identical across two fresh warehouses, a rerun over the same warehouse,
a single-run backfill versus one run per day, and SQLite versus Postgres. A re-executed run
evaluates at its root run's time: the `as_of` tag, else the root run's creation time.
"""

import dataclasses
import importlib.util
import io
import shutil
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from e2a_assets.definitions import build_definitions
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.domain.policies import load_registry
from e2a_assets.resources import AS_OF_TAG, REGISTRY_DIGEST_TAG, ClockResource
from e2a_assets.simulator.runner import ingest_deliveries
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import digests, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table

ROOT = Path(__file__).resolve().parents[1]
# Two tenants, three days (a first, a middle and a last day), twelve orders a day: every table has
# rows, late returns adjust issued invoices, some orders of an earlier cohort day become billable
# after orders of a later one (numbered differently by a backfill and by daily runs until invoice
# numbers went cohort day by cohort day), and each run takes seconds.
SIZES = dict(tenants=3, days=3, orders_per_day=12, seed=11)
SIZE_ARGS = ["--tenants", "3", "--days", "3", "--orders-per-day", "12", "--seed", "11"]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_reproducibility", ROOT / "bench" / "reproducibility.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


# --- what is hashed --------------------------------------------------------------------------

def test_every_table_but_the_documented_exclusions_is_hashed():
    names = {t.name for t in digests.digested_tables()}
    assert set(digests.EXCLUDED) <= set(schema.metadata.tables), "an exclusion names no table"
    assert names == set(schema.metadata.tables) - set(digests.EXCLUDED)
    # The ledger is hashed: invoices, lines, sequences, adjustments, rate card versions.
    assert {"invoices", "invoice_lines", "invoice_sequences", "invoice_adjustments", "rate_card_versions"} <= names


def test_a_table_added_later_is_hashed_without_being_listed():
    metadata = MetaData()
    for table in schema.metadata.sorted_tables:
        table.to_metadata(metadata)
    extra = Table("credit_notes_probe", metadata, Column("note_seq", Integer), Column("issued_run_id", Integer))
    chosen = {t.name for t in digests.digested_tables(metadata)}
    assert chosen == {t.name for t in digests.digested_tables()} | {"credit_notes_probe"}
    # Who wrote a row is left out by rule (`*_run_id`), the business columns are hashed.
    assert digests.digested_columns(extra) == ["note_seq"]


def test_volatile_columns_are_left_out_and_values_are_spelled_once():
    assert "issued_run_id" not in digests.digested_columns(schema.invoices)
    assert "received_at" not in digests.digested_columns(schema.webhook_events)
    assert "amount_cents" in digests.digested_columns(schema.invoice_lines)
    assert digests.canonical(pd.Timestamp("2025-08-28T02:00:00-04:00")) == "2025-08-28T06:00:00+00:00"
    assert digests.canonical(pd.Timestamp("2025-08-28T06:00:00")) == "2025-08-28T06:00:00+00:00"
    assert digests.canonical(0.1 + 0.2) == "0.3"
    assert digests.canonical(None) == digests.canonical(float("nan")) == ""
    assert digests.canonical(True) == "1"


def test_differences_names_each_disagreeing_table():
    left = {"a": {"rows": 1, "sha256": "x"}, "b": {"rows": 2, "sha256": "y"}}
    assert digests.differences(left, dict(left)) == []
    assert digests.differences(left, {"a": {"rows": 1, "sha256": "z"}}) == ["a", "b"]


# --- the proof ---------------------------------------------------------------------------------

def test_rerun_and_day_by_day_runs_give_the_same_tables(tmp_path, capsys):
    """The bench script on small data: a single-run backfill, the same warehouse rerun, and one
    run per day in another fresh warehouse agree on every table (smoke test of the script too)."""
    assert bench.main(SIZE_ARGS) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "identical: yes"
    assert out[-2] == "variants: sqlite-backfill, sqlite-backfill-rerun, sqlite-daily"
    rows = {line.split()[0]: line for line in out[1:-2]}
    assert set(rows) == {t.name for t in digests.digested_tables()}
    assert all(line.endswith("  yes") for line in rows.values()), out
    # No digest is the trivial one of an empty table.
    assert all(int(line.split()[1]) > 0 for line in rows.values()), out


def test_two_fresh_warehouses_on_sqlite_and_postgres_give_the_same_tables(sqlite_url, postgres_warehouse_url, tmp_path):
    on_sqlite = bench.materialise(sqlite_url, tmp_path / "sqlite", **SIZES)[0]
    on_postgres = bench.materialise(postgres_warehouse_url, tmp_path / "postgres", **SIZES)[0]
    assert digests.differences(on_sqlite, on_postgres) == []
    assert all(d["rows"] > 0 for d in on_sqlite.values()), on_sqlite
    # Late returns were adjusted: the second run's evaluation time reached the ledger.
    assert on_sqlite["invoice_adjustments"]["rows"] > 0
    # The data set holds what once made day-by-day runs number invoices differently: in a month's
    # (invoice_date, billable time) order, an order of a later cohort day before an earlier one's.
    book = read_table(make_engine(sqlite_url), schema.invoices)
    book["month"] = book["invoice_number"].str.rsplit("-", n=1).str[0]
    inversions = 0
    for _, month in book.groupby(["tenant", "month"]):
        cohorts = list(month.sort_values(["invoice_date", "billable_at", "order_id"])["cohort_day"])
        inversions += sum(later > cohorts[i] for i in range(len(cohorts)) for later in cohorts[:i])
    assert inversions > 0


def test_the_report_says_no_and_names_the_variant_that_disagrees():
    same = {"orders": {"rows": 3, "sha256": "a" * 64}}
    out = io.StringIO()
    assert bench.report({"one": same, "two": same}, out) is True
    assert out.getvalue().splitlines()[-1] == "identical: yes"
    out = io.StringIO()
    assert bench.report({"one": same, "two": {"orders": {"rows": 3, "sha256": "b" * 64}}}, out) is False
    lines = out.getvalue().splitlines()
    assert lines[-1] == "identical: no"
    assert lines[1].endswith("no: two")


def test_the_script_refuses_bad_sizes_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--days", "0"])
    assert exc.value.code != 0
    assert "must be at least 1" in capsys.readouterr().err


# --- `as_of` survives retries and re-execution ---------------------------------------------------

SEEN: list[tuple[str, str, int, pd.Timestamp]] = []
FAILURES: list[str] = []


@dg.op
def evaluate_first(context: dg.OpExecutionContext, clock: ClockResource) -> int:
    SEEN.append(("first", context.run_id, context.retry_number, clock.as_of_for(context)))
    return 1


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
def evaluate_second(context: dg.OpExecutionContext, clock: ClockResource, upstream: int) -> int:
    SEEN.append(("second", context.run_id, context.retry_number, clock.as_of_for(context)))
    if FAILURES:
        kind = FAILURES.pop(0)
        if kind == "transient":
            raise ConnectionError("injected: the warehouse dropped the connection")
        raise dg.Failure(description="injected: a lasting failure", allow_retries=False)
    return upstream + 1


@dg.job(resource_defs={"clock": ClockResource()}, executor_def=dg.in_process_executor)
def clock_job():
    evaluate_second(evaluate_first())


def created(instance: dg.DagsterInstance, run_id: str) -> pd.Timestamp:
    return pd.Timestamp(instance.get_run_record_by_id(run_id).create_timestamp).tz_convert("UTC")


def launch(instance: dg.DagsterInstance, tags: dict | None = None) -> dg.JobExecutionResult:
    """A run of the job as the daemon launches one (outputs kept in the instance's storage, so a
    re-execution can reuse them)."""
    with dg.execute_job(dg.reconstructable(clock_job), instance=instance, tags=tags or {}, raise_on_error=False) as result:
        return result


def reexecute(instance: dg.DagsterInstance, parent_run_id: str, tags: dict | None = None) -> dg.JobExecutionResult:
    """Re-execution from failure as `dagster job execute --from-failure` / the UI do it: a new run
    whose parent and root are recorded; here without copying the parent's tags."""
    with dg.execute_job(dg.reconstructable(clock_job), instance=instance, tags=tags or {},
                        reexecution_options=dg.ReexecutionOptions.from_failure(parent_run_id, instance)) as result:  # fmt: skip
        return result


@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "tagged"])
def test_a_reexecuted_run_evaluates_at_its_root_runs_time(tagged):
    SEEN.clear()
    # The step fails once for a passing reason (retried inside the run), then for a lasting one.
    FAILURES[:] = ["transient", "lasting"]
    pinned = pd.Timestamp("2025-08-15T09:30:00Z")
    with dg.instance_for_test() as instance:
        tags = {AS_OF_TAG: pinned.isoformat()} if tagged else {}
        first = launch(instance, tags)
        assert not first.success
        root_time = pinned if tagged else created(instance, first.run_id)
        # Every try of the root run saw its evaluation time: the step retry keeps it.
        assert [(s[0], s[2]) for s in SEEN] == [("first", 0), ("second", 0), ("second", 1)]
        assert {s[3] for s in SEEN} == {root_time}

        time.sleep(1.1)  # the re-execution is created later than the root run
        SEEN.clear()
        second = reexecute(instance, first.run_id)
        assert second.success
        rerun = instance.get_run_by_id(second.run_id)
        assert rerun.root_run_id == first.run_id and rerun.parent_run_id == first.run_id
        assert AS_OF_TAG not in rerun.tags  # Dagster did not copy the tag ...
        assert created(instance, second.run_id) > created(instance, first.run_id) + pd.Timedelta(seconds=1)
        # ... and yet the re-executed step (only it: the first step's output is reused) saw the
        # root run's time, not the new run's.
        assert SEEN == [("second", second.run_id, 0, root_time)]

        # A re-execution of the re-execution still goes back to the root.
        time.sleep(1.1)
        SEEN.clear()
        with dg.execute_job(dg.reconstructable(clock_job), instance=instance,
                            reexecution_options=dg.ReexecutionOptions(parent_run_id=second.run_id)) as third:  # fmt: skip
            assert third.success
            assert instance.get_run_by_id(third.run_id).root_run_id == first.run_id
            assert {s[3] for s in SEEN} == {root_time} and {s[1] for s in SEEN} == {third.run_id}


def test_the_reexecutions_own_tag_wins_and_a_fresh_run_uses_its_creation_time():
    SEEN.clear()
    FAILURES[:] = []
    with dg.instance_for_test() as instance:
        fresh = launch(instance)
        assert {s[3] for s in SEEN} == {created(instance, fresh.run_id)}
        # A parent's tag copied on re-execution (the daemon's run retry copies the parent's tags)
        # names the same time; an explicit tag on the new run is the operator's choice.
        SEEN.clear()
        FAILURES[:] = ["lasting"]
        failed = launch(instance, {AS_OF_TAG: "2025-08-15T09:30:00+00:00"})
        assert not failed.success
        SEEN.clear()
        chosen = "2025-08-20T00:00:00+00:00"
        assert reexecute(instance, failed.run_id, tags={AS_OF_TAG: chosen}).success
        assert {s[3] for s in SEEN} == {pd.Timestamp(chosen)}


# The platform itself: a run of every daily asset whose billing steps fail for a lasting reason,
# re-executed from failure once the reason is fixed.

def platform_job(database_url: str, data_dir: str) -> dg.JobDefinition:
    """`full_operations_job` of the definitions for this warehouse and data folder (its policies
    are a copy under the data folder, so the test can break and mend them); rebuilt by Dagster
    for each run and re-execution through `build_reconstructable_job`."""
    settings = bench.settings_for(database_url, Path(data_dir))
    settings = dataclasses.replace(settings, policies_dir=Path(data_dir) / "policies",
                                   tenants_file=Path(data_dir) / "policies" / "tenants.yaml")  # fmt: skip
    return build_definitions(settings).resolve_job_def("full_operations_job")


def materialised_as_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """The `as_of` each asset of the run recorded on its materialisations, by asset."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    seen: dict[str, set] = {}
    for record in records:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        if "as_of" in materialization.metadata:
            seen.setdefault(materialization.asset_key.to_user_string(), set()).add(materialization.metadata["as_of"].value)
    return {key: values.pop() for key, values in seen.items() if len(values) == 1} | \
        {key: f"several: {sorted(values)}" for key, values in seen.items() if len(values) > 1}


def test_a_platform_run_reexecuted_from_failure_keeps_its_evaluation_time(sqlite_url, tmp_path):
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    tenants_file = tmp_path / "policies" / "tenants.yaml"
    registry = bench.settings_for(sqlite_url, tmp_path).registry()
    engine = make_engine(sqlite_url)
    ingest_deliveries(Ingestor(engine), generate(list(registry.policies[:1]), 1, 6, 11, bench.FIRST))
    day = bench.FIRST.isoformat()
    range_tags = {"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": day}
    job = dg.build_reconstructable_job("e2a_tests.test_reproducibility", "platform_job",
                                       reconstructable_args=(sqlite_url, str(tmp_path)))  # fmt: skip
    with dg.instance_for_test() as instance:
        # Invoices issued at a pinned time price the first tenant with rate card version 1.
        with dg.execute_job(job, instance=instance, tags={**range_tags, AS_OF_TAG: "2025-08-29T06:00:00+00:00"}) as issued:
            assert issued.success
        # Version 1 changed after it priced an invoice: the billing steps refuse, without retries.
        original = tenants_file.read_text()
        tenant = registry.policies[0].tenant
        tenants_file.write_text(original.replace(f"  {tenant}:\n", f"  {tenant}:\n    tariff:\n      pick_cents: 999\n", 1))
        # Launched the way a reloaded code location launches it: with the edited registry's digest.
        edited = {REGISTRY_DIGEST_TAG: load_registry(tmp_path / "policies", tenants_file).digest}
        with dg.execute_job(job, instance=instance, tags={**range_tags, **edited}, raise_on_error=False) as failed:
            assert not failed.success
            failed_steps = {e.step_key for e in failed.all_events if e.is_step_failure}
        root_time = created(instance, failed.run_id).isoformat()
        before = materialised_as_of(instance, failed.run_id)
        assert before and set(before.values()) == {root_time}  # what succeeded ran at the run's creation time
        assert "billable_orders" in failed_steps  # pricing refused, so nothing downstream was invoiced

        # Mended a moment later; re-executed from failure without the tag Dagster does not copy.
        tenants_file.write_text(original)
        time.sleep(1.1)
        with dg.execute_job(job, instance=instance, tags=range_tags,
                            reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, instance)) as again:  # fmt: skip
            assert again.success
            assert created(instance, again.run_id) > created(instance, failed.run_id)
            after = materialised_as_of(instance, again.run_id)
        # Only the failed steps and those after them ran again, at the failed run's time.
        assert after and not set(after) & set(before)
        assert {"billable_orders", "invoices"} <= set(after), after
        assert set(after.values()) == {root_time}
    engine.dispose()
