"""Credit and debit notes (DOMAIN §8.2): numbers, month-close notes and their corrections, issuing
under concurrency, the statement reconciliation and its blocking checks on a tampered ledger."""

import datetime as dt
import threading

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import delete, update

from e2a_assets.assets import billing
from e2a_assets.checks import statements as statement_checks
from e2a_assets.definitions import build_resources
from e2a_assets.domain import notes as rules
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import settings_for
from e2a_tests.test_billing_assets import run, seed_day1
from e2a_tests.test_billing_ledger import priced

AS_OF = pd.Timestamp("2025-09-01T12:00:00Z")
CLOSE = "2025-09-01T04:30:00+00:00"
CHECKS = [statement_checks.statement_reconciles_with_ledger, statement_checks.note_numbers_unique_and_gapless]


def adjustments(rows) -> pd.DataFrame:
    """(adjustment_id, invoice_number, delta, status, created_at, reviewed_at) as ledger rows."""
    frame = pd.DataFrame(rows, columns=["adjustment_id", "invoice_number", "delta_cents", "status", "created_at", "reviewed_at"])
    frame["tenant"] = "demo-3pl"
    frame["order_id"] = frame["invoice_number"].str[-4:]
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["reviewed_at"] = pd.to_datetime(frame["reviewed_at"], utc=True)
    frame["adjustment_date"] = frame["created_at"].dt.date
    return frame


def figures(discount: int, top_up: int, month: str = "202508", tenant: str = "demo-3pl") -> pd.DataFrame:
    start = dt.date(int(month[:4]), int(month[4:]), 1)
    return pd.DataFrame([{"tenant": tenant, "month": month, "month_start": start, "currency": "USD",
                          "discount_cents": discount, "minimum_top_up_cents": top_up}])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Domain


def test_adjustment_notes_kinds_dates_and_numbers():
    adj = adjustments([
        ("A-2", "DEMO-3PL-202508-0002", 300, "AUTO_APPLIED", "2025-08-20 10:00", None),
        ("A-1", "DEMO-3PL-202508-0001", -250, "APPLIED_FLAGGED", "2025-08-20 09:00", None),
        ("A-3", "DEMO-3PL-202508-0003", 2500, "APPROVED", "2025-08-21 09:00", "2025-09-02 08:00"),
        ("A-4", "DEMO-3PL-202508-0004", 4000, "PENDING_REVIEW", "2025-08-22 09:00", None),
        ("A-5", "DEMO-3PL-202508-0005", -90, "REJECTED", "2025-08-22 09:00", "2025-08-23 08:00"),
        ("A-6", "DEMO-3PL-202508-0006", 75, "AUTO_APPLIED", "2025-08-20 09:30", None),
    ])  # fmt: skip
    currencies = pd.DataFrame({"invoice_number": adj["invoice_number"], "currency": "USD"})
    candidates = rules.adjustment_notes(adj, currencies)
    assert sorted(candidates["source_id"]) == ["A-1", "A-2", "A-3", "A-6"]  # applied ones only
    planned = rules.plan_note_numbers(candidates, {("demo-3pl", "debit", "202508"): 4})
    got = planned.set_index("source_id")
    assert got.loc["A-1", "note_number"] == "DEMO-3PL-CN-202508-0001" and got.loc["A-1", "amount_cents"] == 250
    # Debits continue the August series at 5, in order of time: A-6 (09:30) before A-2 (10:00).
    assert (got.loc["A-6", "note_number"], got.loc["A-2", "note_number"]) == ("DEMO-3PL-DN-202508-0005", "DEMO-3PL-DN-202508-0006")
    # The approval is a note of its review day, in September's series.
    assert (got.loc["A-3", "note_number"], got.loc["A-3", "note_date"]) == ("DEMO-3PL-DN-202509-0001", dt.date(2025, 9, 2))
    assert rules.validate_note_numbers(planned.iloc[0:0]).empty


def test_month_close_notes_are_issued_once_and_corrected_never_rewritten():
    at = pd.Timestamp(CLOSE)
    first = rules.month_close_notes(figures(500, 300), None, at)
    assert first[["source_id", "kind", "reason", "amount_cents", "note_date", "statement_month"]].values.tolist() == [
        ["DEMO-3PL-202508-VOLUME_DISCOUNT-01", "credit", "VOLUME_DISCOUNT", 500, dt.date(2025, 8, 31), "202508"],
        ["DEMO-3PL-202508-MINIMUM_TOP_UP-01", "debit", "MINIMUM_TOP_UP", 300, dt.date(2025, 8, 31), "202508"],
    ]
    assert first["invoice_number"].isna().all()
    assert rules.month_close_notes(figures(500, 300), first, at).empty  # a rerun issues nothing
    # The discount grows by 200 and the top-up disappears: a further credit note, and a credit
    # note reversing the top-up - the issued notes stay as they are.
    more = rules.month_close_notes(figures(700, 0), first, at)
    assert more[["source_id", "kind", "amount_cents"]].values.tolist() == [
        ["DEMO-3PL-202508-VOLUME_DISCOUNT-02", "credit", 200], ["DEMO-3PL-202508-MINIMUM_TOP_UP-02", "credit", 300]]
    assert more["description"].str.endswith("(correction)").all()
    both = pd.concat([first, more], ignore_index=True)
    assert rules.month_close_notes(figures(700, 0), both, at).empty
    # A smaller discount than issued: a debit note for the difference.
    assert rules.month_close_notes(figures(650, 0), both, at)[["kind", "amount_cents"]].values.tolist() == [["debit", 50]]


def test_note_numbering_problems_are_found():
    notes = pd.DataFrame({
        "tenant": "demo-3pl", "kind": ["credit", "credit", "credit", "debit", "debit"],
        "note_date": [dt.date(2025, 8, 3)] * 5,
        "note_number": ["DEMO-3PL-CN-202508-0001", "DEMO-3PL-CN-202508-0003", "DEMO-3PL-CN-202508-0003",
                        "DEMO-3PL-DN-202508-0001", "DEMO-3PL-CN-202508-0002"],
    })  # fmt: skip
    found = rules.validate_note_numbers(notes)
    assert sorted(map(tuple, found[["note_number", "problem"]].values.tolist())) == sorted([
        ("DEMO-3PL-CN-202508-0003", rules.DUPLICATE), ("DEMO-3PL-CN-202508-0003", rules.DUPLICATE),
        ("DEMO-3PL-CN-202508-0002", rules.MALFORMED),  # a debit note numbered in the credit series
        ("DEMO-3PL-CN-202508-0002", rules.GAP),
    ])  # fmt: skip


def test_statement_reconciliation_finds_a_net_due_and_a_month_close_difference():
    invoices = pd.DataFrame({"tenant": "demo-3pl", "invoice_date": [dt.date(2025, 8, 5), dt.date(2025, 8, 30)],
                             "amount_cents": [6000, 3000]})  # fmt: skip
    issued = rules.plan_note_numbers(rules.month_close_notes(figures(0, 1000), None, pd.Timestamp(CLOSE)), None)
    statement = figures(0, 1000).assign(as_of=pd.Timestamp(CLOSE), net_due_cents=10000)
    assert rules.validate_statement_reconciliation(statement, invoices, issued).empty
    off = rules.validate_statement_reconciliation(statement.assign(net_due_cents=10001), invoices, issued)
    assert off[["net_due_cents", "ledger_cents", "problem"]].values.tolist() == [[10001, 10000, rules.NET_DUE_MISMATCH]]
    off = rules.validate_statement_reconciliation(statement, invoices, issued.iloc[0:0])
    assert sorted(off["problem"]) == [rules.MONTH_CLOSE_MISMATCH, rules.NET_DUE_MISMATCH]
    # An open month (as_of in it) has no month-close notes yet; only the net due is reconciled.
    provisional = statement.assign(as_of=pd.Timestamp("2025-08-31T12:00:00Z"), net_due_cents=9000)
    assert rules.validate_statement_reconciliation(provisional, invoices, None).empty


# ---------------------------------------------------------------------------------------------
# Ledger


def test_parallel_issuing_gives_unique_gapless_note_numbers(warehouse_url):
    engine = make_engine(warehouse_url, pool_size=12)
    frame, lines = priced("demo-3pl", dt.date(2025, 8, 1), [f"{n:04d}" for n in range(1, 41)])
    ledger.issue_invoices(engine, frame, lines, None, "r0", AS_OF)
    workers = 8
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def issue(n: int) -> None:
        # Each worker: 4 adjustments of its own (2 credits, 2 debits), 2 shared with every other
        # worker, and the month close of the same tenant-month.
        own = [(f"W{n}-{k}", f"DEMO-3PL-202508-{4 * n + k + 1:04d}", (-1) ** k * (10 + k), "AUTO_APPLIED",
                f"2025-08-{10 + k:02d} 10:00", None) for k in range(4)]  # fmt: skip
        shared = [(f"S-{k}", f"DEMO-3PL-202508-{33 + k:04d}", -5 - k, "AUTO_APPLIED", "2025-08-20 10:00", None)
                  for k in range(2)]  # fmt: skip
        try:
            barrier.wait()
            ledger.issue_adjustment_notes(engine, adjustments(own + shared), f"run-{n}")
            ledger.issue_month_close_notes(engine, figures(0, 1234), f"run-{n}", pd.Timestamp(CLOSE))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    notes = read_table(engine, schema.notes)
    assert len(notes) == workers * 4 + 2 + 1
    assert notes["note_number"].is_unique and notes["source_id"].is_unique
    credits, debits = notes[notes["kind"] == "credit"], notes[notes["kind"] == "debit"]
    assert sorted(credits["note_seq"]) == list(range(1, workers * 2 + 2 + 1))
    assert sorted(debits["note_seq"]) == list(range(1, workers * 2 + 1 + 1))
    assert set(credits["note_number"]) == {f"DEMO-3PL-CN-202508-{s:04d}" for s in range(1, len(credits) + 1)}
    assert rules.validate_note_numbers(notes).empty
    assert notes.loc[notes["reason"] == "MINIMUM_TOP_UP", "amount_cents"].tolist() == [1234]
    lines = read_table(engine, schema.note_lines)
    assert len(lines) == len(notes) and (lines.set_index("note_number")["amount_cents"]
                                         == notes.set_index("note_number")["amount_cents"]).all()
    sequences = read_table(engine, schema.note_sequences).set_index("kind")
    assert (sequences.loc["credit", "last_seq"], sequences.loc["debit", "last_seq"]) == (len(credits), len(debits))


def test_a_changed_month_figure_gets_a_correcting_note(sqlite_url):
    engine = make_engine(sqlite_url)
    first = ledger.issue_month_close_notes(engine, figures(0, 9105), "r1", pd.Timestamp(CLOSE))
    assert first["note_number"].tolist() == ["DEMO-3PL-DN-202508-0001"]
    assert ledger.issue_month_close_notes(engine, figures(0, 9105), "r2", pd.Timestamp(CLOSE)).empty
    # A late invoice raised August's gross by 400: the top-up shrinks, a credit note says so.
    fixed = ledger.issue_month_close_notes(engine, figures(0, 8705), "r3", pd.Timestamp("2025-09-03T04:30:00Z"))
    assert fixed[["note_number", "kind", "reason", "amount_cents", "note_date"]].values.tolist() == [
        ["DEMO-3PL-CN-202508-0001", "credit", "MINIMUM_TOP_UP", 400, dt.date(2025, 8, 31)]]
    stored = read_table(engine, schema.notes).sort_values("note_number")
    assert stored["amount_cents"].tolist() == [400, 9105]  # the first note is untouched


# ---------------------------------------------------------------------------------------------
# Assets and checks


def statements_run(url, tmp_path, as_of=CLOSE):
    return dg.materialize([billing.monthly_statements, *CHECKS], partition_key="2025-08-01",
                          resources=build_resources(settings_for(url, tmp_path)), tags={AS_OF_TAG: as_of},
                          raise_on_error=False)  # fmt: skip


def checks_alone(url, tmp_path):
    """The two checks without the asset (as an audit would launch them): every month with a statement."""
    job = dg.define_asset_job("statement_checks", selection=dg.AssetSelection.checks(*(k for c in CHECKS for k in c.check_keys)))
    defs = dg.Definitions(assets=[billing.monthly_statements], asset_checks=CHECKS, jobs=[job],
                          resources=build_resources(settings_for(url, tmp_path)))  # fmt: skip
    return defs.resolve_job_def("statement_checks").execute_in_process(tags={AS_OF_TAG: CLOSE}, raise_on_error=False)


def test_month_close_is_idempotent_and_the_statement_reconciles(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    first = statements_run(warehouse_url, tmp_path)
    assert first.success
    assert all(e.passed for e in first.get_asset_check_evaluations()) and len(first.get_asset_check_evaluations()) == 2
    notes = read_table(engine, schema.notes).sort_values("note_number")
    # demo-3pl: gross 895 (70 + 685 + 140), no discount, top-up 9105; northwind-goods: 74 -> 9926.
    assert notes[["note_number", "reason", "amount_cents", "note_date", "statement_month"]].values.tolist() == [
        ["DEMO-3PL-DN-202508-0001", "MINIMUM_TOP_UP", 9105, dt.date(2025, 8, 31), "202508"],
        ["NORTHWIND-GOODS-DN-202508-0001", "MINIMUM_TOP_UP", 9926, dt.date(2025, 8, 31), "202508"],
    ]
    st = read_table(engine, schema.monthly_statements).set_index("tenant")
    assert st.loc["demo-3pl", ["gross_cents", "debit_notes_cents", "credit_notes_cents", "net_due_cents"]].tolist() == \
        [895, 9105, 0, 10000]
    # The client's document of the top-up, next to August's invoices.
    doc = (tmp_path / "invoices" / "demo-3pl" / "2025-08" / "DEMO-3PL-DN-202508-0001.html").read_text()
    assert "Debit note" in doc and "$91.05" in doc and "Statement 2025-08" in doc and "2025-08-31" in doc
    assert bool(st.loc["demo-3pl", "closed"])
    again = statements_run(warehouse_url, tmp_path, as_of="2025-09-02T04:30:00+00:00")
    assert again.success
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert meta["month_close_notes_issued"].value == 0
    pd.testing.assert_frame_equal(read_table(engine, schema.notes).sort_values("note_number"), notes)
    # Re-evaluated at 04:00, after the month end but before the close run issued the top-up: the
    # net due leaves out what the client did not hold yet, the checks still pass.
    early = statements_run(warehouse_url, tmp_path, as_of="2025-09-01T04:00:00+00:00")
    assert early.success and all(e.passed for e in early.get_asset_check_evaluations())
    assert read_table(engine, schema.monthly_statements).set_index("tenant").loc["demo-3pl", "net_due_cents"] == 895
    assert len(read_table(engine, schema.notes)) == 2


def test_a_provisional_statement_issues_no_note(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    seed_day1(engine)
    run(sqlite_url, tmp_path)
    result = statements_run(sqlite_url, tmp_path, as_of="2025-08-31T23:00:00+00:00")
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert read_table(engine, schema.notes).empty
    demo = read_table(engine, schema.monthly_statements).set_index("tenant").loc["demo-3pl"]
    assert (bool(demo["closed"]), demo["minimum_top_up_cents"], demo["net_due_cents"]) == (False, 9105, 895)


@pytest.mark.parametrize("tamper", ["amount", "deleted"])
def test_the_checks_fail_on_a_tampered_ledger(warehouse_url, tmp_path, tamper):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    assert statements_run(warehouse_url, tmp_path).success
    n = schema.notes.c
    with engine.begin() as conn:
        if tamper == "amount":
            conn.execute(update(schema.notes).where(n.note_number == "DEMO-3PL-DN-202508-0001").values(amount_cents=9000))
        else:
            conn.execute(delete(schema.notes).where(n.note_number == "DEMO-3PL-DN-202508-0001"))
    if tamper == "deleted":  # a later note keeps the series going, so the missing number is a gap
        ledger.issue_month_close_notes(engine, figures(0, 1), "later", pd.Timestamp(CLOSE))
    result = checks_alone(warehouse_url, tmp_path)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    reconcile = evaluations["statement_reconciles_with_ledger"]
    assert not reconcile.passed and reconcile.severity == dg.AssetCheckSeverity.ERROR
    assert "demo-3pl" in reconcile.metadata["offenders"].value and "net_due_mismatch" in reconcile.metadata["offenders"].value
    assert "month_close_mismatch" in reconcile.metadata["offenders"].value
    numbering = evaluations["note_numbers_unique_and_gapless"]
    if tamper == "deleted":
        assert not numbering.passed and "DEMO-3PL-DN-202508-0001" in numbering.metadata["offenders"].value
    else:
        assert numbering.passed


def test_a_late_return_and_an_approval_are_on_septembers_statement(sqlite_url, tmp_path):
    """August closes with its top-up; the +250 late return (auto-applied 09-06) and the approval of
    a pending +2500 on 09-08 are debit notes of September, which reconciles to the cent."""
    from e2a_assets.intake.ingestor import Ingestor
    from e2a_tests.test_billing_assets import wms

    engine = make_engine(sqlite_url)
    seed_day1(engine)
    run(sqlite_url, tmp_path)
    assert statements_run(sqlite_url, tmp_path).success
    Ingestor(engine).ingest(wms("demo-3pl", "return_received", 1001, "2025-09-05T10:00:00Z", "r-1001-1"))
    run(sqlite_url, tmp_path, as_of="2025-09-06T12:00:00+00:00")
    # Five returns on 1003 (rush): (140/2 + 5 x 250) x 2 = 2640, delta 2500 > 2000 -> pending review.
    Ingestor(engine).ingest_many([wms("demo-3pl", "return_received", 1003, "2025-09-06T13:00:00Z", f"r-1003-{n}")
                                  for n in range(5)])  # fmt: skip
    run(sqlite_url, tmp_path, as_of="2025-09-07T12:00:00+00:00")
    pending = read_table(engine, schema.invoice_adjustments).set_index("status").loc["PENDING_REVIEW"]
    assert ledger.note_of(engine, pending["adjustment_id"]) is None  # not a note until approved
    ledger.review_adjustment(engine, pending["adjustment_id"], True, "ana", dt.datetime(2025, 9, 8, 9, tzinfo=dt.timezone.utc))
    assert ledger.note_of(engine, pending["adjustment_id"]) == "DEMO-3PL-DN-202509-0002"
    # The late return's note got its document from the billing run of its invoice's day.
    doc = (tmp_path / "invoices" / "demo-3pl" / "2025-09" / "DEMO-3PL-DN-202509-0001.html").read_text()
    assert "Invoice DEMO-3PL-202508-0001" in doc and "$2.50" in doc

    september = dg.materialize([billing.monthly_statements, *CHECKS], partition_key="2025-09-01",
                               resources=build_resources(settings_for(sqlite_url, tmp_path)),
                               tags={AS_OF_TAG: "2025-10-01T04:30:00+00:00"})  # fmt: skip
    assert september.success and all(e.passed for e in september.get_asset_check_evaluations())
    st = read_table(engine, schema.monthly_statements).set_index(["tenant", "month"]).loc[("demo-3pl", "202509")]
    debit = 250 + 2500
    assert pending["delta_cents"] == 2500
    # No invoices in September: the adjustments' notes plus the minimum top-up (10000 - 0).
    assert (st["gross_cents"], st["adjustments_count"], st["adjustments_cents"]) == (0, 2, debit)
    assert (st["debit_notes_cents"], st["credit_notes_cents"], st["net_due_cents"]) == (debit + 10000, 0, debit + 10000)
    september_notes = ledger.read_notes(engine, dt.date(2025, 9, 1), dt.date(2025, 9, 30), tenant="demo-3pl")
    assert september_notes[["note_number", "reason", "amount_cents", "note_date"]].values.tolist() == [
        ["DEMO-3PL-DN-202509-0001", "RECALCULATION", 250, dt.date(2025, 9, 6)],
        ["DEMO-3PL-DN-202509-0002", "RECALCULATION", 2500, dt.date(2025, 9, 8)],
        ["DEMO-3PL-DN-202509-0003", "MINIMUM_TOP_UP", 10000, dt.date(2025, 9, 30)],
    ]
    # August, re-run after all this, still shows what the client already holds.
    assert statements_run(sqlite_url, tmp_path, as_of="2025-10-01T04:30:00+00:00").success
    august = read_table(engine, schema.monthly_statements).set_index(["tenant", "month"]).loc[("demo-3pl", "202508")]
    assert (august["net_due_cents"], august["adjustments_cents"]) == (10000, 0)
