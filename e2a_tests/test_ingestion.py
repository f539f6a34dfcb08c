"""The ingestion core: canonical mapping, dedupe, dead letters and their replay."""

import json

import pytest
from sqlalchemy import func, select, update

from e2a_assets.domain.events import SHOPIFY_TOPICS, MalformedEvent, canonicalize
from e2a_assets.intake.ingestor import Delivery, Ingestor, replay_dead_letters
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_tests.factories import envelope_delivery, shopify_delivery, shopify_order


@pytest.fixture
def engine(sqlite_url):
    return make_engine(sqlite_url)


def count(engine, table, *where):
    stmt = select(func.count()).select_from(table)
    for clause in where:
        stmt = stmt.where(clause)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


@pytest.mark.parametrize("topic, event_type", sorted(SHOPIFY_TOPICS.items()))
def test_shopify_topics_map_to_canonical_types(topic, event_type):
    resource = shopify_order(42, "2025-08-01T10:00:00-04:00")
    if topic == "refunds/create":
        resource = {"id": 9, "order_id": 42, "created_at": "2025-08-02T10:00:00Z"}
    event = canonicalize("demo-3pl", "shopify", {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": "wh-1"},
                         json.dumps(resource).encode())
    assert (event.event_type, event.order_id, event.event_id, event.status) == (event_type, "42", "wh-1", "accepted")


def test_shopify_fields_extracted_for_rules():
    resource = shopify_order(42, "2025-08-01T10:00:00-04:00", tags="Rush , fragile", total_price="19.99",
                             line_items=[{"sku": "A", "quantity": 2, "price": "5", "inventory_shortage": True,
                                          "available_quantity": 0}, {"sku": "B", "quantity": 1, "price": "9.99"}],
                             shipping_address={"zip": "00000", "country": "US"})
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Event-Id": "e1", "X-Shopify-Webhook-Id": "w1",
               "X-Shopify-Triggered-At": "2025-08-01T14:00:05Z"}
    event = canonicalize("demo-3pl", "shopify", headers, json.dumps(resource).encode())
    assert event.event_id == "e1"  # the event id wins over the webhook id
    assert event.occurred_at.isoformat() == "2025-08-01T14:00:05+00:00"
    assert event.order_created_at.isoformat() == "2025-08-01T14:00:00+00:00"  # -04:00 converted to UTC
    assert event.total_price_cents == 1999
    assert (event.line_count, event.item_quantity) == (2, 3)
    assert event.inventory_shortage and event.zero_available
    assert event.address_valid is False and event.ship_zip == "00000"
    assert event.tags == "Rush , fragile"


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"event_type": "pick_completed", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z"}), "event_id"),
        (json.dumps({"event_id": "e", "event_type": "pick_completed", "occurred_at": "2025-08-01T10:00:00Z"}), "order_id"),
        (json.dumps({"event_id": "e", "event_type": "pick_completed", "order_id": "1", "occurred_at": "2025-08-01 10:00"}), "no UTC offset"),
        (json.dumps({"event_id": "e", "event_type": "pick_completed", "order_id": "1", "occurred_at": "yesterday"}), "invalid timestamp"),
        (json.dumps({"event_id": "x" * 129, "event_type": "pick_completed", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z"}), "longer than 128"),
        (json.dumps({"event_id": "e", "event_type": "exception_reported", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z"}), "reason_code"),
    ],
)
def test_malformed_deliveries_become_dead_letters_with_reason(engine, body, reason):
    body = body if isinstance(body, bytes) else body.encode()
    with pytest.raises(MalformedEvent, match=reason):
        canonicalize("demo-3pl", "wms", {}, body)
    result = Ingestor(engine).ingest(Delivery("demo-3pl", "wms", {"X-E2A-Tenant": "demo-3pl"}, body))
    assert (result.outcome, result.http_status) == ("dead_letter", 422)
    with engine.connect() as conn:
        letter = conn.execute(select(schema.dead_letters)).mappings().one()
    assert reason in letter["reason"] and bytes(letter["body"]) == body and letter["status"] == "pending"
    assert count(engine, schema.event_log) == 0


def test_duplicates_are_stored_once_within_and_across_batches(engine):
    ingestor = Ingestor(engine)
    pick = envelope_delivery("demo-3pl", "pick_completed", 1, "2025-08-01T10:00:00Z", "w-1")
    results = ingestor.ingest_many([pick, pick, envelope_delivery("demo-3pl", "pack_completed", 1, "2025-08-01T11:00:00Z", "w-2")])
    assert [r.outcome for r in results] == ["stored", "duplicate", "stored"]
    assert ingestor.ingest(pick).outcome == "duplicate"
    # The key is (tenant, source, event_id): the same id from another tenant is another event.
    other = envelope_delivery("northwind-goods", "pick_completed", 1, "2025-08-01T10:00:00Z", "w-1")
    assert ingestor.ingest(other).outcome == "stored"
    assert count(engine, schema.event_log) == 3


def test_unknown_types_are_kept_as_ignored(engine):
    ingestor = Ingestor(engine)
    result = ingestor.ingest(envelope_delivery("demo-3pl", "teleported", 1, "2025-08-01T10:00:00Z", "w-9"))
    assert (result.outcome, result.http_status) == ("ignored", 202)
    topic = shopify_delivery("demo-3pl", "products/update", {"id": 5, "updated_at": "2025-08-01T10:00:00Z"}, "s-9")
    assert ingestor.ingest(topic).outcome == "ignored"
    assert count(engine, schema.event_log, schema.event_log.c.status == "ignored") == 2
    assert count(engine, schema.event_log, schema.event_log.c.status == "accepted") == 0


def test_replay_after_the_cause_is_fixed(engine):
    ingestor = Ingestor(engine)
    good_later = {"event_id": "w-5", "event_type": "pick_completed", "order_id": "5", "occurred_at": "2025-08-01 10:00"}
    ingestor.ingest(Delivery("demo-3pl", "wms", {}, json.dumps(good_later).encode()))
    ingestor.ingest(Delivery("demo-3pl", "wms", {}, b"garbage"))
    report = replay_dead_letters(engine)
    assert (report.replayed, report.still_failing) == (0, 2)

    # The operator repairs the timestamp of the first letter; replay stores it once.
    good_later["occurred_at"] = "2025-08-01T10:00:00Z"
    with engine.begin() as conn:
        conn.execute(update(schema.dead_letters).where(schema.dead_letters.c.id == 1)
                     .values(body=json.dumps(good_later).encode()))
    report = replay_dead_letters(engine)
    assert (report.replayed, report.still_failing) == (1, 1)
    assert report.failures[0][1].startswith("body is not valid JSON")
    assert count(engine, schema.event_log) == 1
    # Replaying again touches only the one still pending; the stored event is not duplicated.
    report = replay_dead_letters(engine, tenant="demo-3pl", limit=5)
    assert (report.replayed, report.still_failing) == (0, 1)
    assert count(engine, schema.event_log) == 1


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("event_id", 1e999, "string or an integer"),
        ("event_id", 1.5, "string or an integer"),
        ("order_id", "a\u0000b", "NUL character"),
        ("data", {"carrier": "x" * 65}, "carrier longer than 64"),
    ],
)
def test_hostile_payloads_are_malformed_not_errors(field, value, reason):
    body = {"event_id": "e", "event_type": "in_transit", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z"}
    body[field] = value
    with pytest.raises(MalformedEvent, match=reason):
        canonicalize("demo-3pl", "carrier", {}, json.dumps(body).encode())


def test_non_utf8_body_is_malformed():
    body = json.dumps({"event_id": "e", "event_type": "in_transit", "order_id": "1",
                       "occurred_at": "2025-08-01T10:00:00Z"}).encode("utf-16")
    with pytest.raises(MalformedEvent, match="not UTF-8"):
        canonicalize("demo-3pl", "carrier", {}, body)


def test_cohort_events_take_each_order_with_all_its_events_by_the_domain_cohort_rule(warehouse_url):
    """The payload's created_at decides (order 1: created 07-31 23:50, webhook after midnight), else
    the earliest event (order 2: scans only); an order created earlier with events in the range
    (order 3) stays in its own cohort. Same answer on SQLite and Postgres."""
    import datetime as dt

    from e2a_assets.intake.landing import cohort_days_of_orders, cohort_events

    engine = make_engine(warehouse_url)
    Ingestor(engine).ingest_many([
        shopify_delivery("demo-3pl", "orders/create", shopify_order(1, "2025-07-31T23:50:00Z"), "c1",
                         triggered_at="2025-08-01T00:05:00Z"),
        envelope_delivery("demo-3pl", "pick_completed", 1, "2025-08-01T09:00:00Z", "p1"),
        envelope_delivery("demo-3pl", "pick_completed", 2, "2025-08-01T10:00:00Z", "p2"),
        envelope_delivery("demo-3pl", "pack_completed", 2, "2025-08-02T08:00:00Z", "k2"),
        shopify_delivery("demo-3pl", "orders/create", shopify_order(3, "2025-07-30T12:00:00Z"), "c3",
                         triggered_at="2025-07-30T12:00:01Z"),
        envelope_delivery("demo-3pl", "delivered", 3, "2025-08-01T15:00:00Z", "d3"),
    ])
    aug1 = cohort_events(engine, dt.date(2025, 8, 1), dt.date(2025, 8, 1))
    assert list(zip(aug1["order_id"], aug1["event_id"], aug1["cohort_day"].astype(str))) == [
        ("2", "p2", "2025-08-01"), ("2", "k2", "2025-08-01")]
    jul31 = cohort_events(engine, dt.date(2025, 7, 31), dt.date(2025, 7, 31))
    assert list(zip(jul31["order_id"], jul31["event_id"], jul31["cohort_day"].astype(str))) == [
        ("1", "c1", "2025-07-31"), ("1", "p1", "2025-07-31")]
    week = cohort_events(engine, dt.date(2025, 7, 28), dt.date(2025, 8, 3))
    assert sorted(set(zip(week["order_id"], week["cohort_day"].astype(str)))) == [
        ("1", "2025-07-31"), ("2", "2025-08-01"), ("3", "2025-07-30")]
    assert len(week) == 6
    with engine.connect() as conn:
        days = cohort_days_of_orders(conn, [("demo-3pl", "1"), ("demo-3pl", "2"), ("demo-3pl", "3")])
    assert dict(zip(days["order_id"], days["cohort_day"].astype(str))) == {
        "1": "2025-07-31", "2": "2025-08-01", "3": "2025-07-30"}
