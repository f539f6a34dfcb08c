"""Billing assets end to end on a real warehouse (SQLite and Postgres): exact amounts, the
immutable ledger, adjustments after late events, blocking checks, statements, documents."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import delete, select, update

from e2a_assets.assets import billing
from e2a_assets.assets import exceptions as exception_assets
from e2a_assets.assets import ingestion, orders
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.definitions import build_resources
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import envelope_delivery, settings_for, shopify_delivery, shopify_order

DAY = dt.date(2025, 8, 1)
DAY2 = dt.date(2025, 8, 2)
AS_OF = "2025-09-01T12:00:00+00:00"
DAILY = [ingestion.webhook_events, orders.orders, orders.order_sla, exception_assets.exceptions,
         billing.completed_orders, billing.billable_orders, billing.invoice_adjustments, billing.invoices,
         billing.billing_report]  # fmt: skip
CHECKS = [invoice_checks.invoice_amounts_match_events, invoice_checks.invoice_numbers_unique_and_gapless,
          invoice_checks.one_invoice_per_billable_order, invoice_checks.invoice_due_dates,
          invoice_checks.invoice_amounts_non_negative, invoice_checks.invoice_lines_match_their_events]  # fmt: skip
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def wms(tenant, kind, order, at, eid, **data):
    return envelope_delivery(tenant, kind, order, at, eid, data=data or None)


def seed_day1(engine) -> None:
    """demo-3pl: 1001 = 70, 1003 (rush) = 140, 1002 = 685 (shipped 30 days later), 1004 cancelled
    before any pick (never billed), 1005 shipped but DAMAGED_PACKAGE open (held);
    northwind-goods 2001 = 35 + 20 + 15 + 4 = 74 (its tariff)."""
    d = []
    for oid, tags in ((1001, ""), (1002, ""), (1003, "rush"), (1004, ""), (1005, "")):
        d.append(shopify_delivery("demo-3pl", "orders/create", shopify_order(oid, "2025-08-01T08:00:00Z", tags=tags), f"s-{oid}"))
    for oid, ship in ((1001, "2025-08-01T20:00:00Z"), (1003, "2025-08-01T21:00:00Z"), (1005, "2025-08-01T22:00:00Z")):
        d += [wms("demo-3pl", "pick_completed", oid, "2025-08-01T09:00:00Z", f"p-{oid}"),
              wms("demo-3pl", "pack_completed", oid, "2025-08-01T10:00:00Z", f"k-{oid}"),
              wms("demo-3pl", "label_created", oid, "2025-08-01T11:00:00Z", f"l-{oid}"),
              wms("demo-3pl", "manifested", oid, ship, f"m-{oid}")]  # fmt: skip
    # 1002: pick 10, pack 8, label 5, shipped exactly 30 days after creation.
    d += [wms("demo-3pl", "pick_completed", 1002, f"2025-08-01T09:{n:02d}:00Z", f"p-1002-{n}") for n in range(10)]
    d += [wms("demo-3pl", "pack_completed", 1002, f"2025-08-01T11:{n:02d}:00Z", f"k-1002-{n}") for n in range(8)]
    d += [wms("demo-3pl", "label_created", 1002, f"2025-08-01T12:{n:02d}:00Z", f"l-1002-{n}") for n in range(5)]
    d.append(wms("demo-3pl", "manifested", 1002, "2025-08-31T08:00:00Z", "m-1002"))
    d.append(shopify_delivery("demo-3pl", "orders/cancelled",
                              shopify_order(1004, "2025-08-01T08:00:00Z", updated_at="2025-08-01T08:30:00Z",
                                            cancelled_at="2025-08-01T08:30:00Z"), "s-1004-c"))  # fmt: skip
    d.append(wms("demo-3pl", "exception_reported", 1005, "2025-08-01T12:00:00Z", "x-1005", reason_code="DAMAGED_PACKAGE"))
    d += [shopify_delivery("northwind-goods", "orders/create", shopify_order(2001, "2025-08-01T08:00:00Z"), "s-2001"),
          wms("northwind-goods", "pick_completed", 2001, "2025-08-01T09:00:00Z", "p-2001"),
          wms("northwind-goods", "pack_completed", 2001, "2025-08-01T10:00:00Z", "k-2001"),
          wms("northwind-goods", "label_created", 2001, "2025-08-01T11:00:00Z", "l-2001"),
          wms("northwind-goods", "manifested", 2001, "2025-08-01T20:00:00Z", "m-2001")]  # fmt: skip
    Ingestor(engine).ingest_many(d)


def seed_day2(engine) -> None:
    """demo-3pl 1101 on 2025-08-02: pick, pack, label, shipped the same day = 70."""
    Ingestor(engine).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1101, "2025-08-02T08:00:00Z"), "s-1101"),
        wms("demo-3pl", "pick_completed", 1101, "2025-08-02T09:00:00Z", "p-1101"),
        wms("demo-3pl", "pack_completed", 1101, "2025-08-02T10:00:00Z", "k-1101"),
        wms("demo-3pl", "label_created", 1101, "2025-08-02T11:00:00Z", "l-1101"),
        wms("demo-3pl", "manifested", 1101, "2025-08-02T18:00:00Z", "m-1101"),
    ])  # fmt: skip


def run(url, tmp_path, *, day=DAY, as_of=AS_OF, tags=None, selection=None, raise_on_error=True):
    run_tags = {AS_OF_TAG: as_of, **(tags or {})}
    return dg.materialize(
        selection or [*DAILY, *CHECKS],
        partition_key=None if tags and RANGE_START in tags else day.isoformat(),
        resources=build_resources(settings_for(url, tmp_path)),
        tags=run_tags,
        raise_on_error=raise_on_error,
    )


def ledger_rows(engine) -> pd.DataFrame:
    return read_table(engine, schema.invoices).sort_values("invoice_number").reset_index(drop=True)


def check_results(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialised(result) -> set[str]:
    return {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}


# ---------------------------------------------------------------------------------------------


def test_invoices_have_exact_amounts_numbers_and_lines(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    result = run(warehouse_url, tmp_path)
    assert result.success
    assert all(e.passed for e in check_results(result).values()), check_results(result)
    assert len(check_results(result)) == 6

    got = ledger_rows(engine).set_index("order_id")
    assert got["amount_cents"].to_dict() == {"1001": 70, "1003": 140, "1002": 685, "2001": 74}
    assert got["invoice_number"].to_dict() == {
        "1001": "DEMO-3PL-202508-0001", "1003": "DEMO-3PL-202508-0002", "1002": "DEMO-3PL-202508-0003",
        "2001": "NORTHWIND-GOODS-202508-0001",
    }  # fmt: skip
    assert got.loc["1002", "invoice_date"] == dt.date(2025, 8, 31)
    assert got.loc["1002", "due_date"] == dt.date(2025, 9, 30)
    assert got.loc["1001", "due_date"] == dt.date(2025, 8, 31)
    assert set(got["issued_at"]) == {pd.Timestamp(AS_OF)}

    lines = read_table(engine, schema.invoice_lines)
    assert lines.groupby("invoice_number")["amount_cents"].sum().to_dict() == {
        "DEMO-3PL-202508-0001": 70, "DEMO-3PL-202508-0002": 140, "DEMO-3PL-202508-0003": 685,
        "NORTHWIND-GOODS-202508-0001": 74,
    }  # fmt: skip
    rush = lines[lines["invoice_number"] == "DEMO-3PL-202508-0002"].sort_values("line_no")
    assert list(rush["kind"]) == ["pick", "pack", "label", "storage", "multiplier_rush"]
    assert rush["amount_cents"].iloc[-1] == 70

    # Row-level lineage, written with the invoices: 1002's 10 picks are its 10 pick_completed events,
    # storage runs from its order_created to its manifested event, the rush multiplier links the payload.
    links = read_table(engine, schema.line_events)
    assert set(links["document_kind"]) == {"invoice"} and set(links["rate_card_version"]) == {1}
    big = links[links["document_number"] == "DEMO-3PL-202508-0003"]
    picks = big[big["kind"] == "pick"]
    assert sorted(picks["event_id"]) == sorted(f"p-1002-{n}" for n in range(10)) and set(picks["role"]) == {"counted"}
    assert sorted(zip(big.loc[big["kind"] == "storage", "role"], big.loc[big["kind"] == "storage", "event_id"])) == [
        ("storage_end", "m-1002"), ("storage_start", "s-1002")]
    assert links.loc[links["kind"] == "multiplier_rush", "event_id"].tolist() == ["s-1003"]
    assert len(links) == 5 + 6 + 25 + 5  # 1001: 3 counted + storage start/end; 1003: same + tag; 1002; 2001

    billable = read_table(engine, schema.billable_orders).set_index("order_id")
    assert "1004" not in billable.index  # cancelled before pick: never billed
    assert bool(billable.loc["1005", "held"]) and billable.loc["1005", "hold_reasons"] == "DAMAGED_PACKAGE"
    assert billable.loc["1005", "amount_cents"] == 70

    # What `e2a status` shows finance for August 2025, on this backend.
    from e2a_assets.cli.status import open_work

    work = open_work(engine, dt.date(2025, 8, 31), ["demo-3pl", "northwind-goods"]).set_index("tenant")
    assert work[["held_orders", "invoices_this_month", "invoiced_cents_this_month", "pending_review"]].to_dict("index") == {
        "demo-3pl": {"held_orders": 1, "invoices_this_month": 3, "invoiced_cents_this_month": 895, "pending_review": 0},
        "northwind-goods": {"held_orders": 0, "invoices_this_month": 1, "invoiced_cents_this_month": 74,
                            "pending_review": 0},
    }
    assert (work["open_exceptions"] >= 1).any()

    meta = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
    assert meta["invoices"]["issued_now"].value == 4
    assert meta["invoices"]["invoiced_cents"].value == 70 + 140 + 685 + 74
    assert meta["invoices"]["held_orders"].value == 1
    report = read_table(engine, schema.billing_report).set_index("tenant")
    assert report.loc["demo-3pl", "invoices_issued"] == 2  # 1001 and 1003 are dated 08-01
    assert report.loc["demo-3pl", "invoiced_cents"] == 210
    assert report.loc["demo-3pl", "held_orders"] == 1
    assert report.loc["demo-3pl", "hold_reasons"] == "DAMAGED_PACKAGE:1"

    doc = tmp_path / "invoices" / "demo-3pl" / "2025-08" / "DEMO-3PL-202508-0002.html"
    html = doc.read_text()
    assert "Demo 3PL Apparel" in html and "DEMO-3PL-202508-0002" in html and "$1.40" in html
    assert "2025-08-31" in html and "30 days" in html and "<script" not in html
    # A lost document is rendered again from the ledger on the next run; others stay untouched.
    other = tmp_path / "invoices" / "demo-3pl" / "2025-08" / "DEMO-3PL-202508-0001.html"
    stamp = other.stat().st_mtime_ns
    doc.unlink()
    run(warehouse_url, tmp_path, as_of="2025-09-02T12:00:00+00:00")
    assert doc.read_text() == html and other.stat().st_mtime_ns == stamp


def test_ledger_is_immutable_across_reruns_and_backfills(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    before = ledger_rows(engine)
    lines_before = read_table(engine, schema.invoice_lines).sort_values(["invoice_number", "line_no"]).reset_index(drop=True)
    seed_day2(engine)
    # Re-run the day later, then backfill both days in one run with a later evaluation time.
    result = run(warehouse_url, tmp_path, as_of="2025-09-02T12:00:00+00:00")
    assert result.success
    result = run(warehouse_url, tmp_path, as_of="2025-09-03T12:00:00+00:00",
                 tags={RANGE_START: DAY.isoformat(), RANGE_END: DAY2.isoformat()})  # fmt: skip
    assert result.success and all(e.passed for e in check_results(result).values())
    after = ledger_rows(engine)
    assert len(after) == len(before) + 1
    pd.testing.assert_frame_equal(after[after["order_id"] != "1101"].reset_index(drop=True), before)
    new = after[after["order_id"] == "1101"].iloc[0]
    assert new["invoice_number"] == "DEMO-3PL-202508-0004" and new["amount_cents"] == 70
    lines_after = read_table(engine, schema.invoice_lines).sort_values(["invoice_number", "line_no"])
    pd.testing.assert_frame_equal(lines_after[lines_after["order_id"] != "1101"].reset_index(drop=True), lines_before)
    with engine.connect() as conn:
        seq = dict(conn.execute(select(schema.invoice_sequences.c.tenant, schema.invoice_sequences.c.last_seq)).all())
    assert seq == {"demo-3pl": 4, "northwind-goods": 1}
    assert read_table(engine, schema.invoice_adjustments).empty


def test_late_return_creates_one_recalculation_adjustment(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    # A return for 1001 arrives after invoicing: 70 -> 70 + 250 = 320, delta 250 < 500.
    Ingestor(engine).ingest(wms("demo-3pl", "return_received", 1001, "2025-09-05T10:00:00Z", "r-1001-1"))
    result = run(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00")
    assert result.success and all(e.passed for e in check_results(result).values())
    adj = read_table(engine, schema.invoice_adjustments)
    assert len(adj) == 1
    row = adj.iloc[0]
    assert (row["adjustment_id"], row["invoice_number"], row["delta_cents"], row["kind"], row["status"], row["reason"]) == (
        "DEMO-3PL-202508-0001-A01", "DEMO-3PL-202508-0001", 250, "debit", "AUTO_APPLIED", "RECALCULATION")
    assert row["issued_cents"] == 70 and row["recomputed_cents"] == 320
    assert row["adjustment_date"] == dt.date(2025, 9, 6)
    # Its lineage: the late return, on the returns line of the order's pricing again.
    links = read_table(engine, schema.line_events)
    adj_links = links[links["document_kind"] == "adjustment"]
    assert list(zip(adj_links["document_number"], adj_links["kind"], adj_links["event_id"], adj_links["role"])) == [
        ("DEMO-3PL-202508-0001-A01", "returns", "r-1001-1", "counted")]
    meta = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
    assert meta["invoice_adjustments"]["adjustments_cents"].value == 250
    assert ledger_rows(engine).set_index("order_id").loc["1001", "amount_cents"] == 70  # the invoice never changes
    # The applied adjustment is a debit note on the adjustment's day, referencing the invoice (DOMAIN §8.2).
    notes = read_table(engine, schema.notes)
    assert notes[["note_number", "source_id", "invoice_number", "amount_cents", "note_date"]].values.tolist() == [
        ["DEMO-3PL-DN-202509-0001", "DEMO-3PL-202508-0001-A01", "DEMO-3PL-202508-0001", 250, dt.date(2025, 9, 6)]]

    # Re-running adds nothing.
    run(warehouse_url, tmp_path, as_of="2025-09-07T12:00:00+00:00")
    assert len(read_table(engine, schema.invoice_adjustments)) == 1
    assert len(read_table(engine, schema.notes)) == 1
    # A backfill evaluated before the adjustment existed leaves the ledger alone.
    run(warehouse_url, tmp_path, as_of="2025-09-02T12:00:00+00:00")
    assert len(read_table(engine, schema.invoice_adjustments)) == 1


def test_large_delta_waits_for_review_and_is_superseded(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    ingest = Ingestor(engine).ingest_many
    ingest([wms("demo-3pl", "return_received", 1003, "2025-09-05T10:00:00Z", f"r-1003-{n}") for n in range(5)])
    # 1003 is rush: (140/2 + 5 × 250) × 2 = 2640 -> delta 2500 > 2000: pending review.
    result = run(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00")
    assert result.success
    checks = check_results(result)
    assert checks["invoice_amounts_match_events"].passed
    assert checks["invoice_amounts_match_events"].metadata["awaiting_review"].value == 1
    adj = read_table(engine, schema.invoice_adjustments)
    assert list(zip(adj["adjustment_id"], adj["delta_cents"], adj["status"])) == [
        ("DEMO-3PL-202508-0002-A01", 2500, "PENDING_REVIEW")]

    ingest([wms("demo-3pl", "return_received", 1003, "2025-09-07T10:00:00Z", "r-1003-9")])
    run(warehouse_url, tmp_path, as_of="2025-09-08T12:00:00+00:00")
    adj = read_table(engine, schema.invoice_adjustments).sort_values("adjustment_id")
    assert list(zip(adj["adjustment_id"], adj["delta_cents"], adj["status"], adj["supersedes"])) == [
        ("DEMO-3PL-202508-0002-A01", 2500, "SUPERSEDED", ""),
        ("DEMO-3PL-202508-0002-A02", 3000, "PENDING_REVIEW", "DEMO-3PL-202508-0002-A01"),
    ]
    # The superseding adjustment links every return it asks for again; the superseded one keeps its five.
    links = read_table(engine, schema.line_events)
    returns = links[(links["document_kind"] == "adjustment") & (links["kind"] == "returns")]
    assert returns.groupby("document_number").size().to_dict() == {
        "DEMO-3PL-202508-0002-A01": 5, "DEMO-3PL-202508-0002-A02": 6}
    assert ledger.review_adjustment(engine, "DEMO-3PL-202508-0002-A01", True, "qa", dt.datetime(2025, 9, 9, tzinfo=dt.timezone.utc)) is False
    assert ledger.review_adjustment(engine, "DEMO-3PL-202508-0002-A02", True, "qa", dt.datetime(2025, 9, 9, tzinfo=dt.timezone.utc))
    # Only the approved one is a note (DOMAIN §8.2): pending and superseded ones never were.
    assert read_table(engine, schema.notes)[["note_number", "source_id", "amount_cents"]].values.tolist() == [
        ["DEMO-3PL-DN-202509-0001", "DEMO-3PL-202508-0002-A02", 3000]]
    result = run(warehouse_url, tmp_path, as_of="2025-09-10T12:00:00+00:00")
    assert result.success and all(e.passed for e in check_results(result).values())
    assert len(read_table(engine, schema.invoice_adjustments)) == 2


CORRUPTIONS = {
    "invoice_amounts_match_events": lambda c: c.execute(
        update(schema.invoices).where(schema.invoices.c.invoice_number == "DEMO-3PL-202508-0001").values(amount_cents=71)),
    "invoice_numbers_unique_and_gapless": lambda c: (
        c.execute(delete(schema.invoice_lines).where(schema.invoice_lines.c.invoice_number == "DEMO-3PL-202508-0002")),
        c.execute(delete(schema.invoices).where(schema.invoices.c.invoice_number == "DEMO-3PL-202508-0002"))),
    "one_invoice_per_billable_order": lambda c: c.execute(
        update(schema.invoices).where(schema.invoices.c.invoice_number == "DEMO-3PL-202508-0003").values(order_id="1004")),
    "invoice_due_dates": lambda c: c.execute(
        update(schema.invoices).where(schema.invoices.c.invoice_number == "DEMO-3PL-202508-0001")
        .values(due_date=dt.date(2025, 9, 1))),
    # A lineage row lost: the pick line of 1001 no longer accounts for its quantity.
    "invoice_lines_match_their_events": lambda c: c.execute(
        delete(schema.line_events).where(schema.line_events.c.document_number == "DEMO-3PL-202508-0001")
        .where(schema.line_events.c.kind == "pick")),
    "invoice_amounts_non_negative": lambda c: c.execute(
        update(schema.invoice_lines).where(schema.invoice_lines.c.invoice_number == "NORTHWIND-GOODS-202508-0001")
        .where(schema.invoice_lines.c.line_no == 1).values(amount_cents=-5)),
}  # fmt: skip


@pytest.mark.parametrize("check", sorted(CORRUPTIONS))
def test_each_check_fails_on_a_corrupted_ledger_and_blocks_the_report(warehouse_url, tmp_path, check):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    first = run(warehouse_url, tmp_path)
    assert check_results(first)[check].passed
    with engine.begin() as conn:
        CORRUPTIONS[check](conn)
    result = run(warehouse_url, tmp_path, as_of="2025-09-02T12:00:00+00:00", raise_on_error=False)
    evaluation = check_results(result)[check]
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["offending_rows"].value >= 1
    assert "DEMO-3PL-202508-000" in evaluation.metadata["offenders"].value or "NORTHWIND" in evaluation.metadata["offenders"].value
    assert "invoices" in materialised(result)
    assert "billing_report" not in materialised(result)


def test_monthly_statement_after_month_end(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    result = dg.materialize([billing.monthly_statements], partition_key="2025-08-01",
                            resources=build_resources(settings_for(warehouse_url, tmp_path)),
                            tags={AS_OF_TAG: "2025-09-01T04:30:00+00:00"})  # fmt: skip
    assert result.success
    st = read_table(engine, schema.monthly_statements).set_index("tenant")
    demo = st.loc["demo-3pl"]
    assert (demo["invoiced_orders"], demo["gross_cents"], demo["discount_cents"]) == (3, 895, 0)
    assert (demo["minimum_top_up_cents"], demo["net_due_cents"]) == (9105, 10000)
    assert st.loc["northwind-goods", "gross_cents"] == 74
    assert st.loc["northwind-goods", "net_due_cents"] == 10000
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["gross_cents"].value == 969 and meta["net_due_cents"].value == 20000


def test_run_evaluated_before_later_invoices_passes_the_checks(warehouse_url, tmp_path):
    """A backfill with an older as_of judges only what was known then: 1002 (shipped 08-31) was
    invoiced by the 09-01 run; as of 08-15 it is not billable yet, which is not a stray invoice."""
    engine = make_engine(warehouse_url)
    seed_day1(engine)
    run(warehouse_url, tmp_path)
    before = ledger_rows(engine)
    result = run(warehouse_url, tmp_path, as_of="2025-08-15T12:00:00+00:00", raise_on_error=False)
    checks = check_results(result)
    failed = {k: e.metadata["offenders"].value for k, e in checks.items() if not e.passed}
    assert len(checks) == 6 and not failed, failed
    assert result.success and "billing_report" in materialised(result)
    pd.testing.assert_frame_equal(ledger_rows(engine), before)
