"""Intake limits (issue 13): hostile signed bodies are malformed deliveries (422, dead letter), never
a database error or a crash, on SQLite and Postgres; dead letters keep no credentials.

The fuzz tests (hypothesis) drive canonicalisation and the ingestor with generated JSON documents
and mutated envelopes: every outcome is one of stored / duplicate / ignored / dead_letter.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from e2a_assets.domain.events import CanonicalEvent, MalformedEvent, canonicalize
from e2a_assets.domain.intake_limits import MAX_JSON_DEPTH, REDACTED, TimeWindow, redact_headers
from e2a_assets.intake import ingestor as ingestor_module
from e2a_assets.intake.ingestor import DEAD_LETTER, Delivery, Ingestor
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_tests.factories import shopify_order

NOW = dt.datetime(2025, 8, 1, 12, 0, tzinfo=dt.timezone.utc)


def envelope(**fields) -> dict:
    return {"event_id": "e-1", "event_type": "in_transit", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z",
            **fields}


def wms(doc: dict | bytes, now: dt.datetime = NOW) -> CanonicalEvent:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return canonicalize("acme", "carrier", {}, body, received_at=now)


def shopify(order: dict, now: dt.datetime = NOW) -> CanonicalEvent:
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Event-Id": "s-1"}
    return canonicalize("acme", "shopify", headers, json.dumps(order).encode(), received_at=now)


def nested(depth: int) -> bytes:
    return b'{"event_id": "e", "data": ' + b"[" * depth + b"]" * depth + b"}"


# ---------------------------------------------------------------------------------------------
# the limits, one by one


@pytest.mark.parametrize("body, reason", [
    (nested(1000), "nested deeper than the parser allows"),
    (nested(100_000), "nested deeper than the parser allows"),
    (nested(MAX_JSON_DEPTH), f"nested deeper than {MAX_JSON_DEPTH} levels"),
    (b'{"event_id": ' + b"7" * 4301 + b"}", "Exceeds the limit (4300 digits)"),
])
def test_deep_or_huge_json_is_malformed(body, reason):
    with pytest.raises(MalformedEvent) as caught:
        wms(body)
    assert reason in caught.value.reason


def test_json_just_inside_the_depth_limit_is_accepted():
    # data is level 2; MAX_JSON_DEPTH - 2 lists inside it reach exactly the limit.
    depth = MAX_JSON_DEPTH - 2
    doc = envelope()
    body = json.dumps(doc)[:-1].encode() + b', "data": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    assert wms(body).event_id == "e-1"


@pytest.mark.parametrize("field", ["event_id", "order_id", "event_type"])
def test_a_lone_surrogate_in_a_stored_text_field_is_malformed(field):
    body = json.dumps(envelope(**{field: "a\ud800b"})).encode()
    assert b"\\ud800" in body  # JSON-escaped, as a sender would send it
    with pytest.raises(MalformedEvent) as caught:
        wms(body)
    assert caught.value.reason in (f"field {field} is not valid UTF-8 (lone surrogate)",
                                   "field topic is not valid UTF-8 (lone surrogate)")


def test_a_lone_surrogate_in_a_shopify_text_field_is_malformed():
    with pytest.raises(MalformedEvent, match="field order_name is not valid UTF-8"):
        shopify(shopify_order(7, "2025-08-01T09:00:00Z", name="#\udfff1"))


def test_a_lone_surrogate_outside_the_extracted_fields_is_kept_verbatim():
    # The payload column keeps the body as sent (ASCII escape), which both backends store.
    event = wms(json.dumps(envelope(data={"note": "\ud800"})).encode())
    assert "\\ud800" in event.payload


@pytest.mark.parametrize("price, reason", [
    (1e30, "field total_price out of range"),
    ("1e30", "field total_price out of range"),
    ("-92233720368547759", "field total_price out of range"),
    ("1e999999999", "invalid amount '1e999999999'"),
    ("NaN", "invalid amount 'NaN'"),
    ("Infinity", "invalid amount 'Infinity'"),
])
def test_an_amount_wider_than_its_column_is_malformed(price, reason):
    with pytest.raises(MalformedEvent, match=reason):
        shopify(shopify_order(7, "2025-08-01T09:00:00Z", total_price=price))


def test_the_largest_storable_amount_is_accepted():
    assert shopify(shopify_order(7, "2025-08-01T09:00:00Z", total_price="92233720368547758.07")).total_price_cents \
        == 2**63 - 1


@pytest.mark.parametrize("items, reason", [
    ([{"sku": "A", "quantity": 3_000_000_000}], "field line_items quantity out of range"),
    ([{"sku": "A", "quantity": 2**31 - 1}, {"sku": "B", "quantity": 1}], "field line_items quantity out of range"),
    ([{"sku": "A", "quantity": -1}], "line_items: negative quantity"),
    ([{"sku": "A", "quantity": 1e999}], "line_items: invalid quantity"),
])
def test_a_quantity_wider_than_its_column_is_malformed(items, reason):
    with pytest.raises(MalformedEvent, match=reason):
        shopify(shopify_order(7, "2025-08-01T09:00:00Z", line_items=items))


def test_the_largest_storable_quantity_is_accepted():
    event = shopify(shopify_order(7, "2025-08-01T09:00:00Z", line_items=[{"sku": "A", "quantity": 2**31 - 1}]))
    assert event.item_quantity == 2**31 - 1


@pytest.mark.parametrize("occurred_at, reason", [
    ("9999-12-31T23:59:59Z", "occurred_at 9999-12-31T23:59:59+00:00 is more than 1 day, 0:00:00 in the future"),
    ("2025-08-02T12:00:01Z", "occurred_at 2025-08-02T12:00:01+00:00 is more than 1 day, 0:00:00 in the future"),
    ("2024-12-31T23:59:59Z", "occurred_at 2024-12-31T23:59:59+00:00 is before the first partition (2025-01-01)"),
    ("0001-01-01T00:00:00+01:00", "invalid payload (OverflowError"),
    ("9999-12-31T23:59:59-01:00", "invalid payload (OverflowError"),
])
def test_a_timestamp_outside_the_window_is_malformed(occurred_at, reason):
    with pytest.raises(MalformedEvent) as caught:
        wms(envelope(occurred_at=occurred_at))
    assert caught.value.reason.startswith(reason)


def test_the_window_edges_are_accepted_and_configurable():
    assert wms(envelope(occurred_at="2025-08-02T12:00:00Z")).occurred_at == NOW + dt.timedelta(days=1)
    assert wms(envelope(occurred_at="2025-01-01T00:00:00Z")).occurred_at.isoformat() == "2025-01-01T00:00:00+00:00"
    narrow = TimeWindow(max_future=dt.timedelta(minutes=5))
    body = json.dumps(envelope(occurred_at="2025-08-01T12:06:00Z")).encode()
    with pytest.raises(MalformedEvent, match="more than 0:05:00 in the future"):
        canonicalize("acme", "wms", {}, body, received_at=NOW, window=narrow)


def test_an_order_created_in_the_far_future_is_malformed():
    with pytest.raises(MalformedEvent, match="created_at 9999-01-01T00:00:00"):
        shopify(shopify_order(7, "9999-01-01T00:00:00Z", updated_at="2025-08-01T10:00:00Z"), now=NOW)


# ---------------------------------------------------------------------------------------------
# data errors from the warehouse are dead letters, on both backends


def test_a_value_the_warehouse_refuses_is_a_dead_letter_not_an_outage(warehouse_url, monkeypatch):
    """Validation should catch every such value first; if one slips through, the database's refusal
    still ends as a dead letter (422), not as a 503 the sender would retry forever."""
    real = ingestor_module.canonicalize

    def too_wide(*args, **kwargs):
        event = real(*args, **kwargs)
        event.total_price_cents = 2**70  # past BIGINT: Postgres DataError, SQLite OverflowError
        return event

    monkeypatch.setattr(ingestor_module, "canonicalize", too_wide)
    engine = make_engine(warehouse_url)
    body = json.dumps(envelope()).encode()
    try:
        result = Ingestor(engine).ingest_alone(Delivery("acme", "carrier", {"X-Api-Key": "k-123"}, body))
        assert result.outcome == DEAD_LETTER
        assert result.reason.startswith("not storable (")
        with engine.connect() as conn:
            letter = conn.execute(select(schema.dead_letters)).mappings().one()
            assert conn.execute(select(func.count()).select_from(schema.event_log)).scalar_one() == 0
        assert letter["reason"] == result.reason and bytes(letter["body"]) == body
        assert json.loads(letter["headers"]) == {"X-Api-Key": REDACTED}
    finally:
        engine.dispose()


def test_an_outage_is_not_turned_into_a_dead_letter(sqlite_url):
    engine = make_engine(sqlite_url.replace("warehouse.sqlite", "missing-dir/x/../warehouse.sqlite"))
    from sqlalchemy import exc as sa_exc
    with pytest.raises(sa_exc.OperationalError):
        Ingestor(engine).ingest_alone(Delivery("acme", "carrier", {}, json.dumps(envelope()).encode()))
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# dead letters keep no credentials


def test_credential_like_headers_are_redacted_by_name():
    headers = {"X-Api-Key": "k", "Authorization": "Bearer t", "Cookie": "s=1", "X-Auth-Token": "t",
               "X-Client-Secret": "s", "X-Session-Id": "s", "X-Password": "p", "Proxy-Authorization": "b",
               "X-Shopify-Hmac-Sha256": "sig", "X-E2A-Hmac-Sha256": "sig", "Webhook-Signature": "v1,x",
               "X-Shopify-Topic": "orders/create", "X-E2A-Tenant": "acme", "Content-Type": "application/json"}
    assert redact_headers(headers) == {
        **{name: REDACTED for name in headers},
        "X-Shopify-Topic": "orders/create", "X-E2A-Tenant": "acme", "Content-Type": "application/json",
    }


def test_a_dead_letter_keeps_the_api_key_by_name_only(sqlite_url):
    engine = make_engine(sqlite_url)
    result = Ingestor(engine).ingest(Delivery("acme", "wms", {"X-Api-Key": "live-key-9f2", "X-E2A-Tenant": "acme"},
                                              b"{not json"))
    with engine.connect() as conn:
        stored = conn.execute(select(schema.dead_letters.c.headers)).scalar_one()
    engine.dispose()
    assert result.outcome == DEAD_LETTER
    assert json.loads(stored) == {"X-Api-Key": REDACTED, "X-E2A-Tenant": "acme"}
    assert "live-key-9f2" not in stored


# ---------------------------------------------------------------------------------------------
# fuzz: canonicalisation and ingestion


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    | st.sampled_from(["\ud800", "\x00", "9999-12-31T23:59:59Z", "2025-08-01T10:00:00Z", "1e30", "NaN", "-1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
ENVELOPE_FIELDS = ["event_id", "event_type", "order_id", "occurred_at", "data"]
SHOPIFY_FIELDS = ["id", "name", "created_at", "updated_at", "total_price", "currency", "financial_status", "tags",
                  "line_items", "shipping_address", "shipping_lines"]


@st.composite
def hostile_bodies(draw) -> tuple[str, bytes]:
    """A valid delivery with some fields replaced by arbitrary JSON, or arbitrary bytes."""
    kind = draw(st.sampled_from(["envelope", "shopify", "raw", "document"]))
    if kind == "raw":
        return "wms", draw(st.binary(max_size=200))
    if kind == "document":
        return "carrier", json.dumps(draw(json_values)).encode()
    if kind == "envelope":
        doc = envelope(event_id=f"fz-{draw(st.integers(0, 10**6))}", data={"carrier": "DHL"})
        fields = ENVELOPE_FIELDS
        source = "wms"
    else:
        doc = shopify_order(draw(st.integers(1, 10**6)), "2025-08-01T09:00:00Z")
        fields = SHOPIFY_FIELDS
        source = "shopify"
    for name in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        doc[name] = draw(json_values)
    return source, json.dumps(doc).encode()


SHOPIFY_HEADERS = {"x-shopify-topic": "orders/create", "x-shopify-webhook-id": "wh-fuzz"}


@settings(max_examples=400, deadline=None)
@given(hostile_bodies())
def test_canonicalisation_either_accepts_or_names_a_reason(item):
    source, body = item
    headers = SHOPIFY_HEADERS if source == "shopify" else {}
    try:
        event = canonicalize("acme", source, headers, body, received_at=NOW)
    except MalformedEvent as exc:
        assert exc.reason and len(exc.reason) < 400
        return
    # Whatever is accepted fits the warehouse: storable text, numbers inside their columns.
    for name, value in event.row().items():
        if isinstance(value, str):
            value.encode("utf-8")
            assert "\x00" not in value, name
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**63) <= value < 2**63, name
    assert dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc) <= event.occurred_at <= NOW + dt.timedelta(days=1)


_fuzz_ids = itertools.count()


def _fuzz_ingestion(engine, item) -> None:
    source, body = item
    headers = {**SHOPIFY_HEADERS, "x-shopify-webhook-id": f"wh-{next(_fuzz_ids)}"} if source == "shopify" else {}
    result = Ingestor(engine, clock=lambda: NOW).ingest_alone(Delivery("acme", source, headers, body))
    assert result.outcome in ("stored", "duplicate", "ignored", "dead_letter")
    assert (result.outcome == DEAD_LETTER) == (result.dead_letter_id is not None)


@pytest.fixture(scope="module")
def fuzz_sqlite(tmp_path_factory, migrated_sqlite_template):
    import shutil

    path = tmp_path_factory.mktemp("fuzz") / "warehouse.sqlite"
    shutil.copyfile(migrated_sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=hostile_bodies())
def test_ingestion_on_sqlite_never_fails_on_a_delivery(fuzz_sqlite, item):
    _fuzz_ingestion(fuzz_sqlite, item)


@pytest.fixture(scope="module")
def fuzz_postgres(postgres_url):
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=hostile_bodies())
def test_ingestion_on_postgres_never_fails_on_a_delivery(fuzz_postgres, item):
    _fuzz_ingestion(fuzz_postgres, item)
