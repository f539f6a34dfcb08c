"""Revision 0006_credit_debit_notes on a ledger made by the main before notes (commit 81ba664,
e2a_tests/fixtures/make_adjusted_ledger_warehouse.py): every applied adjustment becomes a note,
numbered in its original order, nothing else changes, and issuing continues the series."""

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
from sqlalchemy import inspect, select

from e2a_assets.domain import notes as rules
from e2a_assets.warehouse import ledger, migrate, schema
from e2a_assets.warehouse.engine import make_engine, sqlite_url
from e2a_assets.warehouse.frames import read_table

FIXTURE = Path(__file__).with_name("fixtures") / "warehouse-81ba664-adjusted.sqlite"
REVISION = "0006_credit_debit_notes"


def old_rows(url: str) -> dict[str, pd.DataFrame]:
    engine = make_engine(url)
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        out = {}
        for t in schema.metadata.sorted_tables:
            if t.name in present:
                names = {c["name"] for c in inspect(conn).get_columns(t.name)}
                cols = [c for c in t.columns if c.name in names]
                out[t.name] = pd.read_sql(select(*cols).order_by(*cols), conn)
    engine.dispose()
    return out


def test_applied_adjustments_become_notes_in_their_original_order(tmp_path):
    target = tmp_path / "warehouse.sqlite"
    shutil.copyfile(FIXTURE, target)
    url = sqlite_url(target)
    before = old_rows(url)
    assert "notes" not in before and len(before["invoice_adjustments"]) == 7
    result = migrate.upgrade(url)
    assert (result.before, result.after) == ("0003", migrate.head_revision())
    engine = make_engine(url)

    notes = read_table(engine, schema.notes).sort_values(["kind", "note_seq"])
    got = notes[["note_number", "source_id", "kind", "amount_cents", "note_date", "invoice_number", "reason"]]
    assert got.values.tolist() == [
        ["DEMO-3PL-CN-202509-0001", "DEMO-3PL-202508-0003-A01", "credit", 40, dt.date(2025, 9, 3), "DEMO-3PL-202508-0003", "RECALCULATION"],
        ["DEMO-3PL-CN-202509-0002", "DEMO-3PL-202508-0004-A01", "credit", 800, dt.date(2025, 9, 3), "DEMO-3PL-202508-0004", "RECALCULATION"],
        # Two late returns at the same time: by id. The approval is dated its review day.
        ["DEMO-3PL-DN-202509-0001", "DEMO-3PL-202508-0001-A01", "debit", 250, dt.date(2025, 9, 3), "DEMO-3PL-202508-0001", "RECALCULATION"],
        ["DEMO-3PL-DN-202509-0002", "DEMO-3PL-202508-0002-A01", "debit", 250, dt.date(2025, 9, 3), "DEMO-3PL-202508-0002", "RECALCULATION"],
        ["DEMO-3PL-DN-202509-0003", "DEMO-3PL-202508-0005-A01", "debit", 2500, dt.date(2025, 9, 4), "DEMO-3PL-202508-0005", "RECALCULATION"],
    ]  # fmt: skip
    assert (notes["currency"] == "USD").all() and notes["statement_month"].isna().all()
    # The same notes the rules of today issue (the migration restates them, frozen).
    adjustments = read_table(engine, schema.invoice_adjustments)
    today = rules.plan_note_numbers(rules.adjustment_notes(adjustments, read_table(engine, schema.invoices)), None)
    pd.testing.assert_frame_equal(
        today.set_index("source_id")[["note_number", "kind", "amount_cents", "note_date", "invoice_number"]].sort_index(),
        notes.set_index("source_id")[["note_number", "kind", "amount_cents", "note_date", "invoice_number"]].sort_index())
    assert (notes.set_index("source_id")["issued_at"].sort_index()
            == pd.to_datetime(today.set_index("source_id")["source_at"], utc=True).sort_index()).all()
    assert rules.validate_note_numbers(notes).empty
    lines = read_table(engine, schema.note_lines).set_index("note_number")["amount_cents"]
    assert lines.to_dict() == notes.set_index("note_number")["amount_cents"].to_dict()
    sequences = read_table(engine, schema.note_sequences)
    assert sorted(zip(sequences["kind"], sequences["note_month"], sequences["last_seq"])) == [
        ("credit", "202509", 2), ("debit", "202509", 3)]

    # Nothing that was there changed.
    after = old_rows(url)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name][frame.columns], frame, obj=name)

    # Issuing goes on from there: approving the adjustment still pending is debit note 0004.
    pending = "DEMO-3PL-202508-0006-A01"
    assert ledger.review_adjustment(engine, pending, True, "bo", dt.datetime(2025, 9, 5, 10, tzinfo=dt.timezone.utc))
    assert ledger.note_of(engine, pending) == "DEMO-3PL-DN-202509-0004"
    assert ledger.note_of(engine, "DEMO-3PL-202508-0007-A01") is None  # rejected: never a note
    engine.dispose()


def test_the_revision_follows_rate_cards_in_one_linear_chain():
    """Notes come after the rate card versions (0005); the chain has one head."""
    source = next(migrate.MIGRATIONS_DIR.glob(f"versions/{REVISION}.py")).read_text()
    assert f"revision = '{REVISION}'" in source
    assert [line for line in source.splitlines() if line.startswith("down_revision")] == ["down_revision = '0005'"]
    downs = [line for path in migrate.MIGRATIONS_DIR.glob("versions/*.py")
             for line in path.read_text().splitlines() if line.startswith("down_revision")]  # fmt: skip
    assert len(downs) == len(set(downs)), downs
