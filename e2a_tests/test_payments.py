"""Payments (issue 12 item 4): the `payments` ledger, `e2a payments import` / `record` (idempotent,
all-or-nothing, refused rows reported with their row number and reason, never a traceback), and
invoice statuses open / partially paid / overdue / paid at `as_of` in the domain, the billing
report, the monthly statement and `e2a status`. Revision 0009_payments upgrades an existing ledger
without touching it."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from alembic import command
from sqlalchemy import inspect

from e2a_assets.assets import billing
from e2a_assets.cli.main import main
from e2a_assets.cli.status import open_work
from e2a_assets.definitions import build_resources
from e2a_assets.domain.payments import PAID, PARTIALLY_PAID, invoice_states, parse_amount
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.services.payments import PaymentsRefused, parsed_rows, record_payments
from e2a_assets.warehouse import ledger, migrate, schema
from e2a_assets.warehouse.engine import make_engine, sqlite_url
from e2a_assets.warehouse.frames import insert_frame, read_table
from e2a_tests.factories import settings_for
from e2a_tests.test_billing_reads import _fill

FIXTURE = Path(__file__).with_name("fixtures") / "warehouse-81ba664-adjusted.sqlite"
UTC = dt.timezone.utc
NOW = dt.datetime(2025, 10, 1, 9, tzinfo=UTC)


def _at(day: str, hour: int = 12) -> pd.Timestamp:
    return pd.Timestamp(f"{day}T{hour:02d}:00:00Z")


def seed(engine) -> None:
    """demo-3pl, August 2025: invoice 0001 (1000, due 09-09) with a debit note of 250, invoice
    0002 (2000, due 09-10) with a credit note of 500, invoice 0003 (700, due 09-11); a month-close
    minimum top-up debit note of 300 (no invoice)."""
    invoices = [
        dict(invoice_number=f"DEMO-3PL-202508-000{n}", tenant="demo-3pl", order_id=f"o{n}", cohort_day=dt.date(2025, 8, 9 + n),
             invoice_date=dt.date(2025, 8, 9 + n), due_date=dt.date(2025, 9, 8 + n), payment_terms_days=30,
             invoice_month="202508", invoice_seq=n, billable_at=_at(f"2025-08-{9 + n:02d}"), billable_basis="shipped",
             amount_cents=amount, currency="USD", issued_at=_at(f"2025-08-{9 + n:02d}", 23), issued_run_id="seed",
             status="issued", rate_card_version=1, invoice_kind="order")
        for n, amount in ((1, 1000), (2, 2000), (3, 700))
    ]  # fmt: skip
    adjustments = [
        dict(adjustment_id=f"DEMO-3PL-202508-000{n}-A01", tenant="demo-3pl", order_id=f"o{n}", invoice_number=f"DEMO-3PL-202508-000{n}",
             cohort_day=dt.date(2025, 8, 9 + n), adjustment_seq=1, created_at=_at("2025-08-20"), adjustment_date=dt.date(2025, 8, 20),
             issued_cents=amount, previously_applied_cents=0, recomputed_cents=amount + delta, delta_cents=delta,
             kind="debit" if delta > 0 else "credit", reason="RECALCULATION", status="AUTO_APPLIED", applied=True,
             flagged=False, created_run_id="seed", rate_card_version=1)
        for n, amount, delta in ((1, 1000, 250), (2, 2000, -500))
    ]  # fmt: skip
    with engine.begin() as conn:
        insert_frame(conn, schema.invoices, _fill(schema.invoices, invoices))
        insert_frame(conn, schema.invoice_adjustments, _fill(schema.invoice_adjustments, adjustments))
    ledger.issue_adjustment_notes(engine, read_table(engine, schema.invoice_adjustments), "seed")
    top_up = pd.DataFrame([{"tenant": "demo-3pl", "month": "202508", "month_start": dt.date(2025, 8, 1), "currency": "USD",
                            "discount_cents": 0, "minimum_top_up_cents": 300}])  # fmt: skip
    ledger.issue_month_close_notes(engine, top_up, "seed", _at("2025-09-01", 4))


@pytest.fixture
def engine(warehouse_url):
    engine = make_engine(warehouse_url)
    seed(engine)
    return engine


def rows(*lines) -> pd.DataFrame:
    frame = pd.DataFrame([{"row": n + 2, "number": a, "amount": b, "date": c, "reference": d}
                          for n, (a, b, c, d) in enumerate(lines)])  # fmt: skip
    return parsed_rows(frame)


def note_number(engine, kind: str, invoice: str | None) -> str:
    notes = read_table(engine, schema.notes)
    mine = notes[(notes["kind"] == kind) & (notes["invoice_number"].isna() if invoice is None else notes["invoice_number"] == invoice)]
    return str(mine["note_number"].iloc[0])


# ---------------------------------------------------------------------------------------------
# Domain


@pytest.mark.parametrize("text, cents", [("12.5", 1250), ("0.01", 1), ("1000", 100000), (" 7.00 ", 700)])
def test_amounts_are_exact_cents(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text, said", [("abc", "amount 'abc' is not a number like 125.50"), ("-5", "amount -5 must be more than 0"),
                                        ("0", "amount 0 must be more than 0"), ("1.005", "amount 1.005 has more than two decimal places"),
                                        ("NaN", "amount 'NaN' is not a number like 125.50")])  # fmt: skip
def test_bad_amounts_say_why(text, said):
    with pytest.raises(ValueError) as err:
        parse_amount(text)
    assert str(err.value) == said


def test_statuses_follow_payments_and_due_dates_at_as_of():
    inv = pd.DataFrame({
        "invoice_date": [dt.date(2025, 8, 1)] * 5, "due_date": [dt.date(2025, 8, 31)] * 5,
        "amount_cents": [1000, 1000, 1000, 1000, 1000], "adjustments_cents": [0, 0, -1000, 250, 0],
        "paid_cents": [0, 400, 0, 1000, 1250],
        "paid_at": [None, None, None, None, None],
    })  # fmt: skip
    before_due = invoice_states(inv, pd.Timestamp("2025-08-31T23:00:00Z"))
    assert before_due["state"].tolist() == ["open", "partially_paid", "paid", "partially_paid", "paid"]
    assert before_due["balance_cents"].tolist() == [1000, 600, 0, 250, -250]  # more than owed: a credit balance
    after_due = invoice_states(inv, pd.Timestamp("2025-09-01T00:00:00Z"))
    assert after_due["state"].tolist() == ["overdue", "overdue", "paid", "overdue", "paid"]
    # The finance system's own paid mark still counts from its time on.
    marked = invoice_states(inv.assign(paid_at=pd.Timestamp("2025-09-02T08:00:00Z")), pd.Timestamp("2025-09-02T09:00:00Z"))
    assert marked["state"].tolist() == [PAID] * 5


# ---------------------------------------------------------------------------------------------
# Recording


def test_partial_payments_settle_an_invoice_with_its_notes(engine):
    """0001 owes 10.00 + its 2.50 debit note: paid on the invoice and on the note, in parts."""
    debit = note_number(engine, "debit", "DEMO-3PL-202508-0001")
    done = record_payments(engine, rows(("DEMO-3PL-202508-0001", "6.00", "2025-09-01", "bank-1"),
                                        (debit, "2.50", "2025-09-02", "bank-2")), "a.csv", "test", NOW)  # fmt: skip
    assert (done.recorded, done.already_recorded, done.amount_cents) == (2, 0, 850)
    with pytest.raises(PaymentsRefused) as err:
        record_payments(engine, rows(("DEMO-3PL-202508-0001", "4.01", "2025-09-03", "bank-3")), "b.csv", "test", NOW)
    assert err.value.problems == [(2, "overpayment: DEMO-3PL-202508-0001 has 4.00 left to pay, payments up to this row make 4.01")]
    assert record_payments(engine, rows(("DEMO-3PL-202508-0001", "4.00", "2025-09-03", "bank-3")), "b.csv", "test", NOW).recorded == 1
    paid = read_table(engine, schema.payments)
    assert paid["amount_cents"].tolist() == [600, 250, 400] and set(paid["invoice_number"]) == {"DEMO-3PL-202508-0001"}


def test_refused_rows_name_their_row_and_record_nothing(engine):
    credit = note_number(engine, "credit", "DEMO-3PL-202508-0002")
    bad = rows(("DEMO-3PL-202508-0001", "5.00", "2025-09-01", "bank-1"),  # fine
               ("DEMO-3PL-202508-0009", "1.00", "2025-09-01", "bank-2"),  # unknown
               ("DEMO-3PL-202508-0003", "1.2.3", "2025-09-01", "bank-3"),  # bad amount
               ("DEMO-3PL-202508-0003", "1.00", "2025-13-01", "bank-4"),  # bad date
               (credit, "1.00", "2025-09-01", "bank-5"),  # a credit note
               ("DEMO-3PL-202508-0001", "8.00", "2025-09-02", "bank-6"),  # 5 + 8 > 12.50 owed
               ("DEMO-3PL-202508-0003", "1.00", "2025-09-01", ""))  # no reference
    with pytest.raises(PaymentsRefused) as err:
        record_payments(engine, bad, "bad.csv", "test", NOW)
    assert err.value.problems == [
        (3, "unknown document number DEMO-3PL-202508-0009"),
        (4, "amount '1.2.3' is not a number like 125.50"),
        (5, "date '2025-13-01' is not a date YYYY-MM-DD"),
        (6, f"{credit} is a credit note: it lowers its invoice; record the payment against the invoice"),
        (7, "overpayment: DEMO-3PL-202508-0001 has 12.50 left to pay, payments up to this row make 13.00"),
        (8, "reference is empty (give the bank or remittance reference)"),
    ]
    assert str(err.value) == "row 3: unknown document number DEMO-3PL-202508-0009 (and 5 more row(s)); nothing recorded"
    assert read_table(engine, schema.payments).empty


def test_the_same_file_twice_records_nothing_new(engine, tmp_path, monkeypatch, capsys):
    debit = note_number(engine, "debit", "DEMO-3PL-202508-0001")
    top_up = note_number(engine, "debit", None)
    path = tmp_path / "payments.csv"
    path.write_text("number,amount,date,reference\n"
                    f"DEMO-3PL-202508-0001,4.00,2025-09-03,bank-1\n"
                    f"{debit},2.50,2025-09-04,bank-2\n"
                    f"DEMO-3PL-202508-0002,15.00,2025-09-05,bank-3\n"
                    f"{top_up},3.00,2025-09-05,bank-4\n", encoding="utf-8")  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", str(engine.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    main(["payments", "import", str(path)])
    assert capsys.readouterr().out == "recorded 4 payment(s), 24.50 in all; 0 already recorded\n"
    main(["payments", "import", str(path)])
    assert capsys.readouterr().out == "recorded 0 payment(s), 0.00 in all; 4 already recorded\n"
    stored = read_table(engine, schema.payments).sort_values("source_row")
    assert stored[["document_number", "document_kind", "invoice_number", "document_month", "amount_cents", "source_row"]].values.tolist() == [
        ["DEMO-3PL-202508-0001", "invoice", "DEMO-3PL-202508-0001", "202508", 400, 2],
        [debit, "debit", "DEMO-3PL-202508-0001", "202509" if debit.split("-")[-2] == "202509" else "202508", 250, 3],
        ["DEMO-3PL-202508-0002", "invoice", "DEMO-3PL-202508-0002", "202508", 1500, 4],
        [top_up, "debit", None, "202508", 300, 5],
    ]  # fmt: skip
    assert set(stored["source_file"]) == {str(path.resolve())}
    # One more cent on 0001 (1000 + 250 owed, 650 paid) is fine; the top-up note is settled.
    main(["payments", "record", "--number", "DEMO-3PL-202508-0001", "--amount", "6.00", "--date", "2025-09-06", "--reference", "wire-9"])
    assert capsys.readouterr().out.startswith("recorded 1 payment(s), 6.00 in all")
    for argv, said in (
        (["payments", "record", "--number", top_up, "--amount", "0.01", "--date", "2025-09-06", "--reference", "x"],
         f"e2a: overpayment: {top_up} has 0.00 left to pay, payments up to this row make 0.01; nothing recorded"),
        (["payments", "record", "--number", "NOPE", "--amount", "1", "--date", "2025-09-06", "--reference", "x"],
         "e2a: unknown document number NOPE; nothing recorded"),
        (["payments", "import", str(tmp_path / "missing.csv")], f"e2a: {tmp_path / 'missing.csv'}: cannot read"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith(said) and len(err.strip().splitlines()) == 1, err


def test_a_file_without_the_columns_is_refused_in_one_line(tmp_path, sqlite_url, monkeypatch, capsys):
    path = tmp_path / "bank.csv"
    path.write_text("invoice,paid\nX,1\n", encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    with pytest.raises(SystemExit) as exit_info:
        main(["payments", "import", str(path)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (f"e2a: {path}: no column 'number' (the header must name number, amount, date, "
                                       "reference)\n")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Statuses in the report, the statement and `e2a status`


def test_report_statement_and_status_follow_payments(engine, warehouse_url, tmp_path):
    record_payments(engine, rows(("DEMO-3PL-202508-0001", "12.50", "2025-09-03", "bank-1"),  # paid in full (1000 + 250)
                                 ("DEMO-3PL-202508-0002", "10.00", "2025-09-04", "bank-2"),  # 1500 owed after the credit note
                                 ("DEMO-3PL-202508-0003", "7.00", "2025-10-20", "bank-3")),  # after as_of: not yet
                    "p.csv", "test", NOW)  # fmt: skip
    as_of = "2025-09-15T12:00:00+00:00"
    resources = build_resources(settings_for(warehouse_url, tmp_path))
    assert dg.materialize([billing.billing_report], partition_key="2025-08-12", resources=resources,
                          tags={AS_OF_TAG: as_of}).success  # fmt: skip
    report = read_table(engine, schema.billing_report)
    row = report[report["tenant"] == "demo-3pl"].iloc[0]
    # 0001 paid; 0002 due 09-10, 500 left: overdue; 0003 due 09-11, nothing received by as_of: overdue.
    assert row["status_breakdown"] == "open:0,partially_paid:0,overdue:2,paid:1"
    assert (row["invoices_paid"], row["invoices_overdue"], row["overdue_cents"]) == (1, 2, 500 + 700)
    early = "2025-09-08T12:00:00+00:00"  # before the due dates: 0002 is partly paid, 0003 open
    assert dg.materialize([billing.billing_report], partition_key="2025-08-12", resources=resources,
                          tags={AS_OF_TAG: early}).success  # fmt: skip
    row = read_table(engine, schema.billing_report).set_index("tenant").loc["demo-3pl"]
    assert row["status_breakdown"] == "open:1,partially_paid:1,overdue:0,paid:1"

    assert dg.materialize([billing.monthly_statements], partition_key="2025-08-01", resources=resources,
                          tags={AS_OF_TAG: as_of}).success  # fmt: skip
    st = read_table(engine, schema.monthly_statements).set_index("tenant").loc["demo-3pl"]
    # Net due = invoices 3700 + debit notes dated in August (250, 300 top-up) − credit note 500.
    notes = read_table(engine, schema.notes)
    august = notes[(notes["tenant"] == "demo-3pl") & (notes["note_month"] == "202508")]
    net = 3700 + int(august.loc[august["kind"] == "debit", "amount_cents"].sum()) - int(august.loc[august["kind"] == "credit", "amount_cents"].sum())
    assert st["net_due_cents"] == net
    assert (st["payments_cents"], st["balance_due_cents"]) == (1250 + 1000, net - 2250)
    assert (st["overdue_invoices"], st["overdue_cents"]) == (2, 1200)

    work = open_work(engine, dt.date(2025, 9, 15), ["demo-3pl"]).set_index("tenant").loc["demo-3pl"]
    assert (work["invoices_overdue"], work["invoices_partially_paid"], work["overdue_cents"]) == (2, 0, 1200)


# ---------------------------------------------------------------------------------------------
# Migration


def test_revision_0011_adds_payments_to_an_existing_ledger_untouched(tmp_path):
    target = tmp_path / "warehouse.sqlite"
    shutil.copyfile(FIXTURE, target)
    url = sqlite_url(target)
    engine = make_engine(url)
    with engine.begin() as conn:  # the ledger as the revision before this one left it
        command.upgrade(migrate._config(conn), "0008")
    ledger_tables = ["invoices", "invoice_lines", "invoice_adjustments", "notes", "note_lines"]
    before = {t: read_table(engine, schema.metadata.tables[t]).sort_values(list(schema.metadata.tables[t].columns.keys())[:2])
              .reset_index(drop=True) for t in ledger_tables}  # fmt: skip
    engine.dispose()
    result = migrate.upgrade(url)
    assert (result.before, result.after) == ("0008", migrate.head_revision())
    engine = make_engine(url)
    assert "payments" in inspect(engine).get_table_names()
    for t in ledger_tables:
        after = read_table(engine, schema.metadata.tables[t]).sort_values(list(schema.metadata.tables[t].columns.keys())[:2]).reset_index(drop=True)
        pd.testing.assert_frame_equal(after, before[t])
    statements = read_table(engine, schema.monthly_statements)
    assert (statements["payments_cents"] == 0).all() and (statements["balance_due_cents"] == statements["net_due_cents"]).all()
    # The upgraded ledger takes payments: half of its first invoice, then the rest is an open balance.
    first = read_table(engine, schema.invoices).sort_values("invoice_number").iloc[0]
    half = int(first["amount_cents"]) // 2
    done = record_payments(engine, rows((first["invoice_number"], f"{half // 100}.{half % 100:02d}", "2025-09-10", "r-1")),
                           "m.csv", "test", NOW)  # fmt: skip
    assert done.recorded == 1
    states = invoice_states(pd.DataFrame([{**first.to_dict(), "paid_cents": half}]), pd.Timestamp("2025-09-10T12:00:00Z"))
    assert states["state"].iloc[0] == PARTIALLY_PAID
