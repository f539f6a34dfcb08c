"""The invoice ledger outside Dagster: number allocation under concurrency, CSV export through the
CLI, and the billing schedules."""

import datetime as dt
import threading

import dagster as dg
import pandas as pd
import pytest

from e2a_assets.documents.exports import export_month_csv
from e2a_assets.documents.formatting import format_money
from e2a_assets.cli.main import main
from e2a_assets.definitions import build_definitions
from e2a_assets.domain.billing import LINE_COLUMNS
from e2a_assets.domain.lineage import LINEAGE_COLUMNS
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import insert_frame, read_table
from e2a_tests.factories import settings_for

UTC = dt.timezone.utc
AS_OF = pd.Timestamp("2025-09-01T12:00:00Z")


def priced(tenant: str, day: dt.date, order_ids, amount: int = 70) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hand-priced billable orders (one line each) for `issue_invoices`."""
    ids = [str(o) for o in order_ids]
    at = [pd.Timestamp(day, tz="UTC") + pd.Timedelta(minutes=n) for n in range(len(ids))]
    frame = pd.DataFrame({"tenant": tenant, "order_id": ids, "cohort_day": day, "invoice_date": day, "billable_at": at,
                          "billable_basis": "shipped", "amount_cents": amount, "currency": "USD",
                          "rate_card_version": 1})  # fmt: skip
    lines = pd.DataFrame({"tenant": tenant, "order_id": ids, "line_no": 1, "kind": "pick", "description": "pick",
                          "quantity": 1, "unit_cents": amount, "amount_cents": amount,
                          "rate_card_version": 1})[LINE_COLUMNS]  # fmt: skip
    return frame, lines


def test_parallel_runs_get_unique_gapless_numbers(warehouse_url):
    engine = make_engine(warehouse_url, pool_size=12)
    workers, per_worker = 8, 25
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def issue(n: int) -> None:
        day = dt.date(2025, 8, 1 + n)
        # Every worker also tries to invoice order "shared-0..4": only one invoice each may exist.
        frame, lines = priced("demo-3pl", day, [f"d{n}-{k}" for k in range(per_worker)] + [f"shared-{k}" for k in range(5)])
        try:
            barrier.wait()
            ledger.issue_invoices(engine, frame, lines, None, f"run-{n}", AS_OF)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    book = read_table(engine, schema.invoices)
    assert len(book) == workers * per_worker + 5
    assert book["invoice_number"].is_unique
    assert book.groupby(["tenant", "order_id"]).size().max() == 1
    assert sorted(book["invoice_seq"]) == list(range(1, len(book) + 1))
    assert set(book["invoice_number"]) == {f"DEMO-3PL-202508-{n:04d}" for n in range(1, len(book) + 1)}
    # Within one run, numbers follow (invoice_date, billable time, order_id).
    for run_id, part in book.groupby("issued_run_id"):
        ordered = part.sort_values("invoice_seq")
        assert list(ordered["billable_at"]) == sorted(ordered["billable_at"]), run_id
    lines = read_table(engine, schema.invoice_lines)
    assert len(lines) == len(book) and set(lines["invoice_number"]) == set(book["invoice_number"])
    with engine.connect() as conn:
        assert conn.execute(schema.invoice_sequences.select()).mappings().one()["last_seq"] == len(book)


def test_issuing_twice_skips_invoiced_orders(warehouse_url):
    engine = make_engine(warehouse_url)
    frame, lines = priced("demo-3pl", dt.date(2025, 8, 30), ["a", "b"])
    first, _ = ledger.issue_invoices(engine, frame, lines, None, "r1", AS_OF)
    again, again_lines = ledger.issue_invoices(engine, frame, lines, None, "r2", AS_OF)
    assert list(first["invoice_number"]) == ["DEMO-3PL-202508-0001", "DEMO-3PL-202508-0002"]
    assert again.empty and again_lines.empty
    # A new month starts again at 1.
    frame, lines = priced("demo-3pl", dt.date(2025, 9, 1), ["c"])
    sept, _ = ledger.issue_invoices(engine, frame, lines, None, "r3", AS_OF)
    assert list(sept["invoice_number"]) == ["DEMO-3PL-202509-0001"]


def _lineage(lines: pd.DataFrame, event_id=lambda order: f"p-{order}") -> pd.DataFrame:
    return lines.assign(source="wms", event_id=lines["order_id"].map(event_id), event_type="pick_completed",
                        role="counted")[LINEAGE_COLUMNS]  # fmt: skip


def test_lineage_is_written_with_its_invoice_in_one_transaction(warehouse_url):
    engine = make_engine(warehouse_url)
    frame, lines = priced("demo-3pl", dt.date(2025, 8, 30), ["a", "b"])
    ledger.issue_invoices(engine, frame, lines, None, "r1", AS_OF, _lineage(lines))
    links = read_table(engine, schema.line_events).sort_values("document_number")
    assert list(zip(links["document_kind"], links["document_number"], links["line_no"], links["event_id"])) == [
        ("invoice", "DEMO-3PL-202508-0001", 1, "p-a"), ("invoice", "DEMO-3PL-202508-0002", 1, "p-b")]
    assert set(links["linked_run_id"]) == {"r1"} and [pd.Timestamp(t) for t in links["linked_at"]] == [AS_OF, AS_OF]
    # Issuing again writes neither invoices nor links for orders already invoiced.
    ledger.issue_invoices(engine, frame, lines, None, "r2", AS_OF, _lineage(lines, lambda o: f"other-{o}"))
    assert len(read_table(engine, schema.line_events)) == 2
    # A link that cannot be written takes its invoice down with it: nothing of the issue remains.
    frame, lines = priced("demo-3pl", dt.date(2025, 8, 31), ["c"])
    broken = _lineage(lines).assign(event_type=None)
    with pytest.raises(Exception):
        ledger.issue_invoices(engine, frame, lines, None, "r3", AS_OF, broken)
    assert "c" not in set(read_table(engine, schema.invoices)["order_id"])
    assert len(read_table(engine, schema.invoice_lines)) == 2 and len(read_table(engine, schema.line_events)) == 2
    issued, _ = ledger.issue_invoices(engine, frame, lines, None, "r4", AS_OF, _lineage(lines))
    assert list(issued["invoice_number"]) == ["DEMO-3PL-202508-0003"]  # the counter did not move: no gap


def test_format_money():
    assert format_money(123456, "USD") == "$1,234.56"
    assert format_money(-250, "EUR") == "-€2.50"
    assert format_money(5, "XYZ") == "XYZ0.05"
    assert format_money(123456, "EUR", "de_DE") == "1.234,56\xa0€"


def test_invoices_export_cli(sqlite_url, tmp_path, monkeypatch, capsys):
    engine = make_engine(sqlite_url)
    frame, lines = priced("demo-3pl", dt.date(2025, 8, 5), ["1001", "1002"], amount=1234)
    ledger.issue_invoices(engine, frame, lines, None, "r1", AS_OF)
    with engine.begin() as conn:
        insert_frame(conn, schema.invoice_adjustments, pd.DataFrame([{
            "adjustment_id": "DEMO-3PL-202508-0001-A01", "tenant": "demo-3pl", "order_id": "1001",
            "invoice_number": "DEMO-3PL-202508-0001", "cohort_day": dt.date(2025, 8, 5), "adjustment_seq": 1,
            "created_at": AS_OF, "adjustment_date": dt.date(2025, 9, 1), "issued_cents": 1234,
            "previously_applied_cents": 0, "recomputed_cents": 1484, "delta_cents": 250, "kind": "debit",
            "reason": "RECALCULATION", "status": "AUTO_APPLIED", "applied": True, "flagged": False,
            "supersedes": "", "created_run_id": "r2", "rate_card_version": 1}]))  # fmt: skip
    ledger.issue_adjustment_notes(engine, read_table(engine, schema.invoice_adjustments), "r2")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    assert export_month_csv(engine, "demo-3pl", "2025-08").count("\n") == 3

    out = tmp_path / "aug.csv"
    main(["invoices", "export", "--tenant", "demo-3pl", "--month", "2025-08", "--output", str(out)])
    rows = pd.read_csv(out, dtype=str)
    assert list(rows["invoice_number"]) == ["DEMO-3PL-202508-0001", "DEMO-3PL-202508-0002"]
    assert list(rows["amount"]) == ["12.34", "12.34"]
    assert list(rows["total_due_cents"]) == ["1484", "1234"]
    assert list(rows["due_date"]) == ["2025-09-04", "2025-09-04"]
    assert list(rows["note_numbers"].fillna("")) == ["DEMO-3PL-DN-202509-0001", ""]

    capsys.readouterr()
    main(["invoices", "export", "--tenant", "demo-3pl", "--month", "2025-07"])
    assert capsys.readouterr().out.strip().splitlines()[0].startswith("invoice_number,")

    for args in (["--month", "2025-13"], ["--month", "August"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["invoices", "export", "--tenant", "demo-3pl", *args])
        assert exit_info.value.code != 0
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "--month" in err and "YYYY-MM" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["invoices", "export", "--tenant", "nobody", "--month", "2025-08"])
    assert exit_info.value.code == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_review_cli_approves_pending_adjustment_once(sqlite_url, tmp_path, monkeypatch, capsys):
    engine = make_engine(sqlite_url)
    frame, lines = priced("demo-3pl", dt.date(2025, 8, 5), ["1001"])
    ledger.issue_invoices(engine, frame, lines, None, "r1", AS_OF)
    with engine.begin() as conn:
        insert_frame(conn, schema.invoice_adjustments, pd.DataFrame([{
            "adjustment_id": "DEMO-3PL-202508-0001-A01", "tenant": "demo-3pl", "order_id": "1001",
            "invoice_number": "DEMO-3PL-202508-0001", "cohort_day": dt.date(2025, 8, 5), "adjustment_seq": 1,
            "created_at": AS_OF, "adjustment_date": dt.date(2025, 9, 1), "issued_cents": 70,
            "previously_applied_cents": 0, "recomputed_cents": 3070, "delta_cents": 3000, "kind": "debit",
            "reason": "RECALCULATION", "status": "PENDING_REVIEW", "applied": False, "flagged": False,
            "supersedes": "", "created_run_id": "r2", "rate_card_version": 1}]))  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    main(["invoices", "review", "DEMO-3PL-202508-0001-A01", "--approve", "--reviewer", "ana"])
    row = read_table(engine, schema.invoice_adjustments).iloc[0]
    assert (row["status"], bool(row["applied"]), row["reviewed_by"]) == ("APPROVED", True, "ana")
    # The approval issued the debit note, dated the review day (UTC), referencing the invoice.
    month = row["reviewed_at"].strftime("%Y%m")
    [note] = read_table(engine, schema.notes).to_dict("records")
    assert (note["note_number"], note["kind"], note["amount_cents"], note["invoice_number"], note["source_id"]) == (
        f"DEMO-3PL-DN-{month}-0001", "debit", 3000, "DEMO-3PL-202508-0001", "DEMO-3PL-202508-0001-A01")
    assert note["note_date"] == row["reviewed_at"].date()
    assert capsys.readouterr().out.strip() == f"DEMO-3PL-202508-0001-A01: APPROVED by ana; note DEMO-3PL-DN-{month}-0001 issued"
    doc = tmp_path / "invoices" / "demo-3pl" / f"{month[:4]}-{month[4:]}" / f"DEMO-3PL-DN-{month}-0001.html"
    assert "Debit note" in doc.read_text() and "$30.00" in doc.read_text() and "DEMO-3PL-202508-0001" in doc.read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["invoices", "review", "DEMO-3PL-202508-0001-A01", "--reject"])
    assert exit_info.value.code == 1
    assert len(read_table(engine, schema.notes)) == 1


# ---------------------------------------------------------------------------------------------
# Schedules


@pytest.fixture
def defs(sqlite_url, tmp_path):
    return build_definitions(settings_for(sqlite_url, tmp_path))


def evaluate(defs, name, when):
    """Call the schedule's function for a tick (no repository needed, nothing left behind)."""
    schedule = next(s for s in defs.schedules if s.name == name)
    context = dg.build_schedule_context(scheduled_execution_time=when,
                                        resources={"warehouse": defs.resources["warehouse"]})  # fmt: skip
    result = schedule(context)
    return schedule, [result] if isinstance(result, dg.RunRequest) else list(result or [])


def test_billing_schedule_targets_open_days_in_one_run(defs, sqlite_url):
    engine = make_engine(sqlite_url)
    orders = pd.DataFrame({
        "tenant": "demo-3pl", "order_id": ["1", "2", "3"],
        "cohort_day": [dt.date(2025, 8, 3), dt.date(2025, 8, 5), dt.date(2025, 7, 1)],
        "status": ["shipped", "delivered", "packed"],  # 07-01 is beyond the lookback
        "last_event_at": pd.Timestamp("2025-08-05T00:00:00Z"), "stalled": False, "event_count": 1, "flags": "",
        "as_of": pd.Timestamp("2025-08-09T00:00:00Z"),
    })  # fmt: skip
    with engine.begin() as conn:
        insert_frame(conn, schema.orders, orders)
    schedule, requests = evaluate(defs, "billing_schedule", dt.datetime(2025, 8, 10, 2, 0, tzinfo=UTC))
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.job_name == "billing_job"
    assert len(requests) == 1
    tags = requests[0].tags
    assert tags["dagster/asset_partition_range_start"] == "2025-08-03"
    assert tags["dagster/asset_partition_range_end"] == "2025-08-10"
    assert tags["e2a/as_of"] == "2025-08-10T02:00:00+00:00"
    job = defs.resolve_job_def("billing_job")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    # webhook_events is there for its blocking readiness checks.
    assert keys == {"webhook_events", "completed_orders", "billable_orders", "invoice_adjustments", "invoices",
                    "billing_report"}


def test_billing_schedule_on_an_empty_warehouse_covers_yesterday(defs):
    _, requests = evaluate(defs, "billing_schedule", dt.datetime(2025, 8, 10, 2, 0, tzinfo=UTC))
    assert requests[0].tags["dagster/asset_partition_range_start"] == "2025-08-09"


def test_monthly_statements_schedule_runs_after_month_end(defs):
    schedule, requests = evaluate(defs, "monthly_statements_schedule", dt.datetime(2025, 9, 1, 4, 30, tzinfo=UTC))
    assert schedule.cron_schedule == "30 4 1-8 * *"
    assert schedule.job_name == "monthly_statements_job"
    assert [r.partition_key for r in requests] == ["2025-08-01"]
    assert requests[0].tags["e2a/as_of"] == "2025-09-01T04:30:00+00:00"
    # The 4th: August again, after the 3 days' grace of the monthly tenants (DOMAIN §8.3).
    _, requests = evaluate(defs, "monthly_statements_schedule", dt.datetime(2025, 9, 4, 4, 30, tzinfo=UTC))
    assert [r.partition_key for r in requests] == ["2025-08-01"]
    assert requests[0].tags["e2a/as_of"] == "2025-09-04T04:30:00+00:00"


def test_definitions_load_with_billing(defs):
    defs.resolve_all_job_defs()  # building every job validates selections and partitions
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"completed_orders", "billable_orders", "invoices", "invoice_adjustments", "monthly_statements",
            "billing_report"} <= keys  # fmt: skip
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == dg.AssetKey("invoices")}
    assert checks == {"invoice_amounts_match_events", "invoice_numbers_unique_and_gapless",
                      "one_invoice_per_billable_order", "invoice_due_dates", "invoice_amounts_non_negative",
                      "invoice_lines_match_their_events"}  # fmt: skip
    assert "invoice_documents" in defs.resources


def test_an_approval_whose_invoice_is_missing_is_refused_in_one_line(sqlite_url, tmp_path, monkeypatch, capsys):
    """No note can reference an invoice the ledger does not have: the approval is rolled back."""
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        insert_frame(conn, schema.invoice_adjustments, pd.DataFrame([{
            "adjustment_id": "DEMO-3PL-202508-0009-A01", "tenant": "demo-3pl", "order_id": "1009",
            "invoice_number": "DEMO-3PL-202508-0009", "cohort_day": dt.date(2025, 8, 5), "adjustment_seq": 1,
            "created_at": AS_OF, "adjustment_date": dt.date(2025, 9, 1), "issued_cents": 70,
            "previously_applied_cents": 0, "recomputed_cents": 3070, "delta_cents": 3000, "kind": "debit",
            "reason": "RECALCULATION", "status": "PENDING_REVIEW", "applied": False, "flagged": False,
            "supersedes": "", "created_run_id": "r2", "rate_card_version": 1}]))  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["invoices", "review", "DEMO-3PL-202508-0009-A01", "--approve"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "e2a: DEMO-3PL-202508-0009-A01: invoice DEMO-3PL-202508-0009 is not in the ledger; no note can reference it"]
    assert read_table(engine, schema.invoice_adjustments).iloc[0]["status"] == "PENDING_REVIEW"
    assert read_table(engine, schema.notes).empty
