"""Row-level lineage on a real warehouse: `e2a invoices explain`, the backfill of invoices issued
before revision 0007, and the lineage check on a tampered ledger (SQLite and Postgres)."""

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import delete, update

from e2a_assets.assets import billing
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.cli.main import main
from e2a_assets.definitions import build_resources
from e2a_assets.domain.cadence import CADENCES
from e2a_assets.jobs import build_jobs
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import insert_frame, read_table
from e2a_tests.factories import settings_for
from e2a_tests.test_billing_assets import check_results, run, seed_day1, wms

CHECK = "invoice_lines_match_their_events"
KEY = ["document_kind", "document_number", "line_no", "source", "event_id", "role"]


def links_of(engine) -> pd.DataFrame:
    cols = [*KEY, "tenant", "order_id", "kind", "event_type", "rate_card_version"]
    return read_table(engine, schema.line_events)[cols].sort_values(KEY).reset_index(drop=True)


@pytest.fixture
def issued(warehouse_url, tmp_path, monkeypatch):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    assert run(warehouse_url, tmp_path).success
    monkeypatch.setenv("DATABASE_URL", warehouse_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    return engine


def test_explain_prints_each_line_with_its_deliveries_and_the_adjustments(issued, warehouse_url, tmp_path, capsys):
    Ingestor(issued).ingest(wms("demo-3pl", "return_received", 1003, "2025-09-05T10:00:00Z", "r-1003-1"))
    assert run(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00").success
    capsys.readouterr()
    main(["invoices", "explain", "DEMO-3PL-202508-0002"])
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "invoice DEMO-3PL-202508-0002  tenant demo-3pl  order 1003"
    assert "amount $1.40  rate card version 1" in text
    pick = next(n for n, line in enumerate(lines) if line.startswith("  line 1  pick"))
    assert "1 x $0.30 = $0.30  (rate card v1)" in lines[pick]
    assert lines[pick + 1].split() [:2] == ["counted", "received"] and lines[pick + 1].split()[-3:] == [
        "wms", "pick_completed", "p-1003"]
    storage = next(n for n, line in enumerate(lines) if line.startswith("  line 4  storage"))
    assert lines[storage + 1].split()[-3:] == ["shopify", "order_created", "s-1003"]
    assert lines[storage + 2].split()[-3:] == ["wms", "manifested", "m-1003"]
    rush = next(n for n, line in enumerate(lines) if line.startswith("  line 5  multiplier_rush"))
    assert lines[rush + 1].split()[0] == "tag" and lines[rush + 1].endswith("s-1003")
    # The late return: rush (70 + 250) x 2 = 640, +500 applied and flagged, linked to its event.
    adjustment = next(n for n, line in enumerate(lines) if line.startswith("  adjustment "))
    assert "DEMO-3PL-202508-0002-A01  debit $5.00  APPLIED_FLAGGED" in lines[adjustment]
    # Applied, so issued as a debit note (DOMAIN §8.2); the note explains itself the same way.
    assert lines[adjustment + 1].startswith("    issued as note DEMO-3PL-DN-")
    note_number = lines[adjustment + 1].split()[-1]
    assert lines[adjustment + 2] == "    adds to line 5 returns: 1 event(s)"  # of the order priced again
    assert lines[adjustment + 3].split()[-3:] == ["wms", "return_received", "r-1003-1"]
    main(["invoices", "explain", note_number])
    note = capsys.readouterr().out.splitlines()
    assert note[0] == f"debit note {note_number}  tenant demo-3pl  for invoice DEMO-3PL-202508-0002  order 1003"
    assert "amount $5.00  reason RECALCULATION" in note[1]
    assert note[3] == "  from adjustment DEMO-3PL-202508-0002-A01:"
    assert note[4] == "    adds to line 5 returns: 1 event(s)"
    assert note[5].split()[-3:] == ["wms", "return_received", "r-1003-1"]
    with pytest.raises(SystemExit) as exit_info:
        main(["invoices", "explain", "DEMO-3PL-209901-0001"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "e2a: DEMO-3PL-209901-0001: no invoice or note with that number"


def test_backfill_derives_what_issuing_wrote(issued, warehouse_url, tmp_path, capsys):
    written = links_of(issued)
    # A ledger from before revision 0007: invoices without lineage; the check says so.
    with issued.begin() as conn:
        conn.execute(delete(schema.line_events))
    result = run(warehouse_url, tmp_path, as_of="2025-09-02T12:00:00+00:00", raise_on_error=False)
    evaluation = check_results(result)[CHECK]
    assert not evaluation.passed and evaluation.metadata["offending_invoices"].value == 4
    assert "no_lineage" in evaluation.metadata["offenders"].value
    capsys.readouterr()
    main(["invoices", "lineage"])
    assert capsys.readouterr().out.strip() == "4 document(s) without lineage: run `e2a invoices lineage --backfill`"
    main(["invoices", "lineage", "--backfill"])
    assert capsys.readouterr().out.strip() == f"backfilled the lineage of 4 document(s) (invoices, charges, adjustments, notes): {len(written)} link(s)"
    pd.testing.assert_frame_equal(links_of(issued), written)
    main(["invoices", "lineage", "--backfill"])  # once per invoice
    assert capsys.readouterr().out.strip() == "backfilled the lineage of 0 document(s) (invoices, charges, adjustments, notes): 0 link(s)"
    result = run(warehouse_url, tmp_path, as_of="2025-09-03T12:00:00+00:00")
    assert check_results(result)[CHECK].passed


TAMPERING = {
    # a pick linked to a second line: one event billed twice
    "event_linked_twice": lambda c: insert_frame(c, schema.line_events, read_table(
        c, schema.line_events, [schema.line_events.c.event_id == "p-1002-0"]).assign(kind="pack", line_no=2)),
    # a label's link removed: its line has one event fewer than its quantity and the event is unlinked
    "unlinked_event": lambda c: c.execute(
        delete(schema.line_events).where(schema.line_events.c.event_id == "l-1001")),
    # a link pointing at an event that does not exist
    "unknown_event": lambda c: c.execute(
        update(schema.line_events).where(schema.line_events.c.event_id == "k-2001").values(event_id="k-9999")),
    # the multiplier's tag link removed
    "missing_link": lambda c: c.execute(
        delete(schema.line_events).where(schema.line_events.c.kind == "multiplier_rush")),
}  # fmt: skip


@pytest.mark.parametrize("problem", sorted(TAMPERING))
def test_the_lineage_check_fails_on_tampered_lineage(issued, warehouse_url, tmp_path, problem):
    with issued.begin() as conn:
        TAMPERING[problem](conn)
    result = run(warehouse_url, tmp_path, as_of="2025-09-02T12:00:00+00:00", raise_on_error=False)
    evaluation = check_results(result)[CHECK]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert problem in evaluation.metadata["offenders"].value
    assert "billing_report" not in {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}


def test_ledger_audit_job_checks_the_lineage_of_every_day(issued, warehouse_url, tmp_path):
    audit = next(c for c in CADENCES if c.job == "ledger_audit_job")
    assert f"invoices:{CHECK}" in audit.checks
    resources = build_resources(settings_for(warehouse_url, tmp_path))
    checks = [invoice_checks.invoice_numbers_unique_and_gapless, invoice_checks.invoice_due_dates,
              invoice_checks.invoice_amounts_non_negative, invoice_checks.invoice_lines_match_their_events]  # fmt: skip
    defs = dg.Definitions(assets=[billing.invoices], asset_checks=checks, jobs=build_jobs([billing.invoices], [audit]),
                          resources=resources)  # fmt: skip

    def audited():
        result = defs.resolve_job_def("ledger_audit_job").execute_in_process(
            tags={AS_OF_TAG: "2025-09-02T12:00:00+00:00"}, raise_on_error=False)
        return {e.check_name: e for e in result.get_asset_check_evaluations()}[CHECK]

    clean = audited()
    assert clean.passed and clean.metadata["invoices_checked"].value == 4 and clean.metadata["links_checked"].value == 41
    with issued.begin() as conn:
        TAMPERING["unlinked_event"](conn)
    tampered = audited()
    assert not tampered.passed and "DEMO-3PL-202508-0001" in tampered.metadata["offenders"].value
