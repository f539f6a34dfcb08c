"""Row-level lineage (issue 11 item 2): which events each priced line comes from, exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from e2a_assets.domain.billing import build_billable_orders, price_orders
from e2a_assets.domain.lineage import (
    COUNTED,
    LINKED_BUT_NOT_EVENT_DERIVED,
    LINKED_TWICE,
    MISSING_LINK,
    NOTE_LINKS_DIFFER,
    QUANTITY_MISMATCH,
    STORAGE_END,
    STORAGE_START,
    TAG,
    UNKNOWN_EVENT,
    UNLINKED_EVENT,
    charge_lineage,
    line_events,
    new_links,
    note_lineage,
    validate_event_links,
    validate_line_quantities,
    validate_note_links,
)
from e2a_assets.domain.monthly import plan_monthly_invoices
from e2a_assets.domain.policies import load_registry
from e2a_tests.factories import make_events
from e2a_tests.test_domain_billing import make_orders

POLICIES_DIR = Path(__file__).resolve().parents[1] / "policies"


@pytest.fixture(scope="module")
def registry():
    return load_registry(POLICIES_DIR)


def _events(extra=()) -> pd.DataFrame:
    rows = [
        # the tag on order_created is replaced by the order_updated payload: that one carries it
        {"order_id": "1001", "event_type": "order_created", "occurred_at": "2025-08-01 10:00", "tags": "",
         "event_id": "c1"},
        {"order_id": "1001", "event_type": "order_updated", "occurred_at": "2025-08-01 10:30",
         "tags": "rush, gift_wrap", "source": "shopify", "event_id": "u1"},
        {"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "p1"},
        {"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "p1"},
        {"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:05", "event_id": "p2"},
        {"order_id": "1001", "event_type": "pack_completed", "occurred_at": "2025-08-01 12:00", "event_id": "k1"},
        {"order_id": "1001", "event_type": "label_created", "occurred_at": "2025-08-01 12:10", "event_id": "l1"},
        {"order_id": "1001", "event_type": "picked_up", "occurred_at": "2025-08-03 10:00", "event_id": "s2",
         "source": "carrier"},
        {"order_id": "1001", "event_type": "manifested", "occurred_at": "2025-08-03 09:59", "event_id": "s1"},
        {"order_id": "1001", "event_type": "return_received", "occurred_at": "2025-08-09 10:00", "event_id": "r1"},
        # 1002: cancelled after one pick, no order_created: storage starts at its earliest event
        {"order_id": "1002", "event_type": "pick_completed", "occurred_at": "2025-08-01 11:00", "event_id": "q1"},
        {"order_id": "1002", "event_type": "order_cancelled", "occurred_at": "2025-08-03 10:00", "event_id": "x1",
         "source": "shopify"},
        *extra,
    ]
    return make_events(rows)


def _orders() -> pd.DataFrame:
    return make_orders([
        {"order_id": "1001", "picked_at": "2025-08-01 11:00", "shipped_at": "2025-08-03 09:59",
         "flag_list": ("rush", "gift_wrap")},
        {"order_id": "1002", "created_at": "2025-08-01 11:00", "picked_at": "2025-08-01 11:00",
         "cancelled_at": "2025-08-03 10:00"},
    ])  # fmt: skip


def _priced(registry, events=None):
    events = _events() if events is None else events
    billable = build_billable_orders(events, _orders(), None, registry)
    totals, lines = price_orders(billable, registry)
    return events, billable, totals, lines


def test_every_line_links_the_events_that_produced_it(registry):
    events, billable, _, lines = _priced(registry)
    lineage = line_events(events, billable, lines)
    by_kind = {k: sorted(zip(g["role"], g["event_id"])) for k, g in lineage[lineage["order_id"] == "1001"].groupby("kind")}
    # the re-delivered p1 counts once
    assert by_kind["pick"] == [(COUNTED, "p1"), (COUNTED, "p2")]
    assert by_kind["pack"] == [(COUNTED, "k1")] and by_kind["label"] == [(COUNTED, "l1")]
    assert by_kind["returns"] == [(COUNTED, "r1")]
    # storage: started by order_created, ended by the earliest shipping event (manifested before picked_up)
    assert by_kind["storage"] == [(STORAGE_END, "s1"), (STORAGE_START, "c1")]
    assert by_kind["service_gift_wrap"] == [(TAG, "u1")] and by_kind["multiplier_rush"] == [(TAG, "u1")]
    cancelled = lineage[lineage["order_id"] == "1002"]
    assert sorted(zip(cancelled["kind"], cancelled["role"], cancelled["event_id"])) == [
        ("minimum_top_up", "completion", "x1"), ("pick", COUNTED, "q1"),
        ("storage", STORAGE_END, "x1"), ("storage", STORAGE_START, "q1")]  # fmt: skip
    assert set(lineage["rate_card_version"]) == {1}


def test_line_quantity_equals_its_counted_events_and_every_line_is_linked(registry):
    events, billable, _, lines = _priced(registry)
    lineage = line_events(events, billable, lines)
    numbered = lines.assign(invoice_number="INV-" + lines["order_id"])
    linked = lineage.assign(invoice_number="INV-" + lineage["order_id"])
    assert validate_line_quantities(numbered, linked).empty
    # per-event kinds: quantity == counted events
    counted = linked[linked["role"] == COUNTED].groupby(["order_id", "line_no"]).size()
    per_event = numbered[numbered["kind"].isin(["pick", "pack", "label", "returns"])].set_index(["order_id", "line_no"])
    assert (counted.reindex(per_event.index) == per_event["quantity"]).all()


def test_tampered_lineage_is_reported(registry):
    events, billable, _, lines = _priced(registry)
    numbered = lines.assign(invoice_number="INV-" + lines["order_id"])
    linked = line_events(events, billable, lines).assign(invoice_number=lambda f: "INV-" + f["order_id"])
    dropped = linked[~((linked["event_id"] == "p2") | (linked["role"] == TAG))]
    problems = validate_line_quantities(numbered, dropped)
    assert sorted(zip(problems["kind"], problems["problem"])) == [
        ("multiplier_rush", MISSING_LINK), ("pick", QUANTITY_MISMATCH), ("service_gift_wrap", MISSING_LINK)]  # fmt: skip
    row = problems[problems["kind"] == "pick"].iloc[0]
    assert (row["quantity"], row["linked_events"]) == (2, 1)


def test_event_links_unlinked_and_twice():
    expected = pd.DataFrame({"tenant": ["t"] * 2, "order_id": ["o"] * 2, "invoice_number": ["I"] * 2,
                             "source": ["wms"] * 2, "event_id": ["a", "b"], "event_type": ["pick_completed"] * 2})
    links = pd.DataFrame({"tenant": ["t"] * 3, "source": ["wms"] * 3, "event_id": ["a", "a", "c"],
                          "document_number": ["I", "I-A01", "I"]})
    problems = validate_event_links(expected, links)
    assert sorted(zip(problems["event_id"], problems["problem"])) == [("a", LINKED_TWICE), ("b", UNLINKED_EVENT)]
    assert validate_event_links(expected[:1], links[:1]).empty
    # With every counted event there is: a link to an event that does not exist is reported.
    known = expected.assign(kind="pick")
    stray = links.assign(order_id="o", event_type="pick_completed")
    problems = validate_event_links(expected, stray, known)
    assert sorted(zip(problems["event_id"], problems["problem"])) == [
        ("a", LINKED_TWICE), ("b", UNLINKED_EVENT), ("c", UNKNOWN_EVENT)]


def test_a_late_event_is_a_new_link_of_the_recalculation(registry):
    events, billable, _, lines = _priced(registry)
    issued = line_events(events, billable, lines)
    late = make_events([{"order_id": "1001", "event_type": "pick_completed", "occurred_at": "2025-08-10 10:00",
                         "event_id": "p3"}])  # fmt: skip
    more = pd.concat([events, late], ignore_index=True)
    _, billable2, _, lines2 = _priced(registry, more)
    added = new_links(line_events(more, billable2, lines2), issued)
    assert list(zip(added["kind"], added["event_id"], added["role"])) == [("pick", "p3", COUNTED)]


def test_charges_link_their_events_on_the_monthly_invoice_line_they_were_summed_into(registry):
    events, billable, totals, lines = _priced(registry)
    plans, plan_lines = plan_monthly_invoices(totals, lines, registry, pd.Timestamp("2025-08-01").date(), ["demo-3pl"])
    kinds = dict(zip(plan_lines["kind"], plan_lines["line_no"]))
    # 1001: pick 2, pack, label, storage, gift wrap, returns, rush; 1002: pick 1, storage, minimum top-up.
    assert plan_lines.set_index("kind").loc["pick", "quantity"] == 3
    links = charge_lineage(line_events(events, billable, lines), lines, plan_lines)
    got = sorted(zip(links["order_id"], links["line_no"], links["kind"], links["role"], links["event_id"]))
    assert [g for g in got if g[2] == "pick"] == [("1001", kinds["pick"], "pick", COUNTED, "p1"),
                                                  ("1001", kinds["pick"], "pick", COUNTED, "p2"),
                                                  ("1002", kinds["pick"], "pick", COUNTED, "q1")]  # fmt: skip
    assert [g[1:] for g in got if g[2] == "multiplier_rush"] == [(kinds["multiplier_rush"], "multiplier_rush", TAG, "u1")]
    # The monthly line's quantity is its counted links over every charge; the month's totals link nothing.
    monthly = plan_lines.assign(invoice_number="M-1")
    assert validate_line_quantities(monthly, links.assign(invoice_number="M-1")).empty
    assert set(links["line_no"]) <= set(plan_lines.loc[~plan_lines["kind"].isin(["volume_discount", "minimum_monthly_fee"]),
                                                       "line_no"])  # fmt: skip
    tampered = pd.concat([links, links[links["event_id"] == "q1"].assign(line_no=kinds["minimum_monthly_fee"])])
    problems = validate_line_quantities(monthly, tampered.assign(invoice_number="M-1"))
    assert list(zip(problems["kind"], problems["problem"])) == [("minimum_monthly_fee", LINKED_BUT_NOT_EVENT_DERIVED)]


def test_a_note_has_its_adjustments_links_and_month_close_notes_none():
    adjustment = pd.DataFrame({"tenant": "t", "order_id": "o", "line_no": [5], "kind": "returns", "source": "wms",
                               "event_id": "r1", "event_type": "return_received", "role": COUNTED,
                               "rate_card_version": 1, "adjustment_id": "I-A01"})  # fmt: skip
    notes = pd.DataFrame({"tenant": "t", "order_id": ["o", None], "invoice_number": ["I", None],
                          "note_number": ["T-DN-202509-0001", "T-DN-202508-0001"], "source_id": ["I-A01", "T-202508-MIN"],
                          "reason": ["RECALCULATION", "MINIMUM_TOP_UP"]})  # fmt: skip
    own = note_lineage(adjustment, notes)
    assert own[["note_number", "line_no", "kind", "event_id", "role"]].values.tolist() == [
        ["T-DN-202509-0001", 5, "returns", "r1", COUNTED]]
    by_note = own.rename(columns={"note_number": "document_number"})
    by_adjustment = adjustment.rename(columns={"adjustment_id": "document_number"})
    assert validate_note_links(notes, by_note, by_adjustment).empty
    problems = validate_note_links(notes, by_note.iloc[0:0], by_adjustment)
    assert problems[["note_number", "links", "linked_events", "problem"]].values.tolist() == [
        ["T-DN-202509-0001", 0, 1, MISSING_LINK]]
    other = by_note.assign(event_id="r2")
    assert validate_note_links(notes, other, by_adjustment)["problem"].tolist() == [NOTE_LINKS_DIFFER]
    on_totals = pd.concat([by_note, by_note.assign(document_number="T-DN-202508-0001")])
    assert validate_note_links(notes, on_totals, by_adjustment)[["note_number", "problem"]].values.tolist() == [
        ["T-DN-202508-0001", LINKED_BUT_NOT_EVENT_DERIVED]]
