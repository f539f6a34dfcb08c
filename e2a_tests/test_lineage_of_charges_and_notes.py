"""Row-level lineage of the documents beyond per-order invoice lines (issue 11 item 2): the
per-order charges of a `monthly` tenant (on the lines of its monthly invoice), credit/debit notes
(their own links, counted once by the check), the month's totals that link no event, `e2a
invoices explain` for a monthly invoice and every note kind, and `e2a db upgrade` writing the
lineage of a ledger issued before it (SQLite and Postgres)."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import delete

from e2a_assets.assets import billing
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.cli.main import main
from e2a_assets.definitions import build_resources
from e2a_assets.domain.cadence import CADENCES
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.jobs import build_jobs
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.services.lineage import lineage_problems
from e2a_assets.warehouse import ledger, migrate, schema
from e2a_assets.warehouse.engine import make_engine, sqlite_url
from e2a_assets.warehouse.frames import insert_frame, read_table
from e2a_tests.test_billing_assets import wms
from e2a_tests.test_monthly_billing import daily, issued_august, settings, statements, write_tenants, TENANTS

CHECK = "invoice_lines_match_their_events"
MONTHLY = "HARBOR-SUPPLY-202508-0001"
FIXTURE = Path(__file__).with_name("fixtures") / "warehouse-81ba664-adjusted.sqlite"
COLS = ["document_kind", "document_number", "order_id", "line_no", "kind", "event_id", "role", "rate_card_version"]


def links(engine, kind: str) -> list[list]:
    frame = read_table(engine, schema.line_events, [schema.line_events.c.document_kind == kind])
    return frame.sort_values(["document_number", "order_id", "line_no", "role", "event_id"])[COLS].values.tolist()


def audited(url: str, tmp_path: Path, as_of: str) -> dg.AssetCheckEvaluation:
    """The lineage check over the whole ledger (ledger_audit_job), with the monthly tenant's registry."""
    audit = next(c for c in CADENCES if c.job == "ledger_audit_job")
    checks = [invoice_checks.invoice_numbers_unique_and_gapless, invoice_checks.invoice_due_dates,
              invoice_checks.invoice_amounts_non_negative, invoice_checks.invoice_lines_match_their_events]  # fmt: skip
    defs = dg.Definitions(assets=[billing.invoices], asset_checks=checks,
                          jobs=build_jobs([billing.invoices], [audit]), resources=build_resources(settings(url, tmp_path)))  # fmt: skip
    result = defs.resolve_job_def("ledger_audit_job").execute_in_process(tags={AS_OF_TAG: as_of}, raise_on_error=False)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}[CHECK]


def test_charges_link_their_events_on_the_monthly_invoice_lines(warehouse_url, tmp_path):
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    # Lines 1 pick, 2 pack, 3 label, 4 storage, 5 multiplier_rush (3002's tag), 6 discount, 7 minimum fee.
    expected = []
    for oid in ("3001", "3002"):
        expected += [["charge", MONTHLY, oid, 1, "pick", f"p-{oid}", "counted", 1],
                     ["charge", MONTHLY, oid, 2, "pack", f"k-{oid}", "counted", 1],
                     ["charge", MONTHLY, oid, 3, "label", f"l-{oid}", "counted", 1],
                     ["charge", MONTHLY, oid, 4, "storage", f"m-{oid}", "storage_end", 1],
                     ["charge", MONTHLY, oid, 4, "storage", f"s-{oid}", "storage_start", 1]]  # fmt: skip
    expected.insert(10, ["charge", MONTHLY, "3002", 5, "multiplier_rush", "s-3002", "tag", 1])
    assert links(engine, "charge") == expected
    # The volume discount and minimum fee lines link nothing: they come from the month's totals.
    clean = audited(warehouse_url, tmp_path, "2025-09-05T00:00:00+00:00")
    assert clean.passed, clean.metadata["offenders"].value
    # demo-3pl's invoice of 1001 (5 links) and the 11 charge links.
    assert clean.metadata["links_checked"].value == 16


def test_a_late_return_on_a_charge_is_linked_once_through_its_note(warehouse_url, tmp_path, monkeypatch, capsys):
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    Ingestor(engine).ingest_many([wms("harbor-supply", "return_received", 3001, "2025-09-05T10:00:00Z", "r-3001")])
    result = daily(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00")
    assert result.success
    adjustment, note = "HARBOR-SUPPLY-202508-0001-3001-A01", "HARBOR-SUPPLY-DN-202509-0001"
    # The adjustment links the late event; its note has its own copy (line 5 of 3001's pricing: returns).
    assert links(engine, "adjustment") == [["adjustment", adjustment, "3001", 5, "returns", "r-3001", "counted", 1]]
    assert links(engine, "note") == [["note", note, "3001", 5, "returns", "r-3001", "counted", 1]]
    # Both rows exist, yet the event counts once: the check reads the note's links, not the adjustment's too.
    clean = audited(warehouse_url, tmp_path, "2025-09-06T12:00:00+00:00")
    assert clean.passed, clean.metadata["offenders"].value
    assert clean.metadata["links_checked"].value == 17  # 16 + the note's one

    monkeypatch.setenv("DATABASE_URL", warehouse_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("E2A_TENANTS_FILE", str(write_tenants(tmp_path, TENANTS)))
    capsys.readouterr()
    main(["invoices", "explain", MONTHLY])
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"monthly invoice {MONTHLY}  tenant harbor-supply  order MONTHLY-202508"
    assert text[2] == "  amount $100.00  rate card version 1"
    assert text[3].startswith("  line 1  pick") and text[4] == "      from 2 charge(s), 2 counted event(s)"
    discount = text.index(next(t for t in text if t.startswith("  line 6  volume_discount")))
    assert text[discount + 1] == "      not event-derived: from the month's totals"
    assert text[discount + 3] == "      not event-derived: from the month's totals"  # line 7, minimum fee
    charges = text.index("  2 charge(s):")
    assert text[charges + 1].startswith("    charge order 3001  $0.70  (rate card v1)  billable by shipped at 2025-08-01 20:00:00")
    assert text[charges + 2] == "      adds to line 1 pick: 1 event(s)"
    assert text[charges + 3].split()[-3:] == ["wms", "pick_completed", "p-3001"]
    assert text[charges + 8] == "      adds to line 4 storage: 2 event(s)"
    assert [t.split()[0] for t in text[charges + 9 : charges + 11]] == ["storage_start", "storage_end"]
    rush = text.index("      adds to line 5 multiplier_rush: 1 event(s)")
    assert text[rush + 1].split()[0] == "tag" and text[rush + 1].endswith("s-3002")
    adj = text.index(next(t for t in text if t.startswith(f"  adjustment {adjustment}")))
    assert text[adj].startswith(f"  adjustment {adjustment}  order 3001  debit $2.50  AUTO_APPLIED")
    assert text[adj + 1 : adj + 3] == [f"    issued as note {note}", "    adds to line 5 returns: 1 event(s)"]
    assert text[adj + 3].split()[-3:] == ["wms", "return_received", "r-3001"]

    main(["invoices", "explain", note])
    text = capsys.readouterr().out.splitlines()
    assert text[0] == f"debit note {note}  tenant harbor-supply  for invoice {MONTHLY}  order 3001"
    assert text[3:5] == [f"  from adjustment {adjustment}:", "    adds to line 5 returns: 1 event(s)"]
    assert text[5].split()[-3:] == ["wms", "return_received", "r-3001"]


def test_month_close_notes_say_they_link_no_event(warehouse_url, tmp_path, monkeypatch, capsys):
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    # demo-3pl (per order): one order of 70 in August; the minimum monthly fee top-up is a debit note.
    notes = ledger.read_notes(engine)
    assert notes[["note_number", "reason", "amount_cents"]].values.tolist() == [
        ["DEMO-3PL-DN-202508-0001", "MINIMUM_TOP_UP", 9930]]
    assert links(engine, "note") == []
    monkeypatch.setenv("DATABASE_URL", warehouse_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    capsys.readouterr()
    main(["invoices", "explain", "DEMO-3PL-DN-202508-0001"])
    text = capsys.readouterr().out.splitlines()
    assert text[0] == "debit note DEMO-3PL-DN-202508-0001  tenant demo-3pl  for statement month 202508"
    assert text[-1] == "  not event-derived: from the month's totals (no events), see the monthly statement demo-3pl 202508"


TAMPERING = {
    # 3002's pick link lost: line 1 (pick, quantity 2) has one event, and p-3002 is linked nowhere.
    "charge_link_deleted": (lambda c: c.execute(delete(schema.line_events).where(schema.line_events.c.event_id == "p-3002")),
                            {"quantity_mismatch", "unlinked_event"}),
    # A link on the volume discount line (line 6), which comes from the month's totals.
    "totals_line_linked": (lambda c: insert_frame(c, schema.line_events, read_table(
        c, schema.line_events, [schema.line_events.c.event_id == "p-3001"]).assign(line_no=6, kind="volume_discount")),
                           {"linked_but_not_event_derived", "event_linked_twice"}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_the_check_fails_on_tampered_charge_lineage(warehouse_url, tmp_path, case):
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    change, problems = TAMPERING[case]
    with engine.begin() as conn:
        change(conn)
    evaluation = audited(warehouse_url, tmp_path, "2025-09-05T00:00:00+00:00")
    shown = evaluation.metadata["offenders"].value
    assert not evaluation.passed and all(p in shown for p in problems), shown
    assert MONTHLY in shown


def test_a_note_without_its_links_fails_the_check(warehouse_url, tmp_path):
    engine, result = issued_august(warehouse_url, tmp_path)
    Ingestor(engine).ingest_many([wms("harbor-supply", "return_received", 3001, "2025-09-05T10:00:00Z", "r-3001")])
    assert daily(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00").success
    with engine.begin() as conn:
        conn.execute(delete(schema.line_events).where(schema.line_events.c.document_kind == "note"))
    evaluation = audited(warehouse_url, tmp_path, "2025-09-06T12:00:00+00:00")
    shown = evaluation.metadata["offenders"].value
    # The adjustment's own links do not stand in for its note's: the note lacks them.
    assert not evaluation.passed and evaluation.metadata["offending_rows"].value == 1, shown
    assert "| HARBOR-SUPPLY-202508-0001 | HARBOR-SUPPLY-DN-202509-0001 | harbor-supply |       3001 |" in shown
    assert shown.rstrip().endswith("missing_link |")


def test_db_upgrade_backfills_the_lineage_of_an_old_ledger(tmp_path, monkeypatch, capsys):
    """A ledger made by main at 81ba664 (revision 0003, before lineage): `e2a db upgrade` migrates
    it and links its 30 invoices, the 2 adjustments with late events and their 2 notes, once."""
    target = tmp_path / "warehouse.sqlite"
    shutil.copyfile(FIXTURE, target)
    url = sqlite_url(target)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    main(["db", "upgrade"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"upgraded from revision 0003 to {migrate.head_revision()}")
    assert out[1] == f"warehouse {url}: lineage backfilled for 34 document(s), 161 link(s)"
    engine = make_engine(url)
    frame = read_table(engine, schema.line_events)
    counts = frame.groupby("document_kind").agg(documents=("document_number", "nunique"), links=("event_id", "size"))
    assert counts.to_dict("index") == {"adjustment": {"documents": 2, "links": 2}, "invoice": {"documents": 30, "links": 157},
                                       "note": {"documents": 2, "links": 2}}  # fmt: skip
    # Each note carries its adjustment's late return.
    notes = frame[frame["document_kind"] == "note"].merge(
        read_table(engine, schema.notes)[["note_number", "source_id"]], left_on="document_number", right_on="note_number")
    adjustments = frame[frame["document_kind"] == "adjustment"]
    assert sorted(zip(notes["source_id"], notes["event_id"])) == sorted(zip(adjustments["document_number"], adjustments["event_id"]))
    # The whole ledger now passes the lineage rules.
    book = ledger.read_invoices(engine)
    offenders, checked = lineage_problems(engine, book, book["cohort_day"].min(), book["cohort_day"].max(),
                                          pd.Timestamp("2025-12-31T00:00:00Z"))  # fmt: skip
    assert offenders.empty and checked == 159
    main(["db", "upgrade"])  # idempotent
    assert capsys.readouterr().out.splitlines()[1] == f"warehouse {url}: lineage backfilled for 0 document(s), 0 link(s)"
    main(["invoices", "lineage"])
    assert capsys.readouterr().out.strip() == "0 document(s) without lineage"
