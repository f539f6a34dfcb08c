"""Canonical events: validate one delivery and map it onto e2a's event vocabulary (DOMAIN §1.1).

`canonicalize` is pure: raw body and headers in, a `CanonicalEvent` out (or `MalformedEvent`).
The fields that business rules read are extracted here once, into flat typed columns, so that
every rule downstream can stay vectorised over a DataFrame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import Decimal, DecimalException
from typing import Any, Mapping

from e2a_assets.domain.intake_limits import (
    DEFAULT_WINDOW,
    MAX_CENTS,
    MAX_COUNT,
    IntakeLimitError,
    TimeWindow,
    check_depth,
    check_range,
    check_storable_text,
)

SOURCES = ("shopify", "wms", "carrier")

SHOPIFY_TOPICS = {
    "orders/create": "order_created",
    "orders/paid": "order_paid",
    "orders/updated": "order_updated",
    "orders/cancelled": "order_cancelled",
    "orders/fulfilled": "order_fulfilled",
    "refunds/create": "refund_created",
}
WMS_TYPES = frozenset(
    {
        "pick_started",
        "pick_completed",
        "pack_completed",
        "label_created",
        "kitting_completed",
        "manifested",
        "return_received",
        "exception_reported",
        "exception_resolved",
    }
)
CARRIER_TYPES = frozenset(
    {"picked_up", "in_transit", "out_for_delivery", "delivered", "delivery_failed", "returned_to_sender"}
)
EVENT_TYPES = {"shopify": frozenset(SHOPIFY_TOPICS.values()), "wms": WMS_TYPES, "carrier": CARRIER_TYPES}
ORDER_PAYLOAD_TYPES = frozenset({"order_created", "order_updated", "order_paid", "order_cancelled", "order_fulfilled"})
# Longest value the event log stores per text field (warehouse/schema.py uses the same sizes).
FIELD_LIMITS = {"order_name": 128, "financial_status": 32, "currency": 8, "shipping_code": 32, "ship_zip": 32,
                "ship_country": 64, "reason_code": 64, "carrier": 64}
INVALID_ZIPS = frozenset({"00000", "99999", "INVALID"})
MAX_ID_LENGTH = 128

ACCEPTED = "accepted"
IGNORED = "ignored"
# A dead letter waits for a replay until one stores its event (DOMAIN §1.2).
DEAD_LETTER_PENDING, DEAD_LETTER_REPLAYED = "pending", "replayed"


class MalformedEvent(ValueError):
    """A signed delivery that cannot be understood; `reason` is kept with the dead letter."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class CanonicalEvent:
    """One delivery in e2a's vocabulary; the columns of the event log (docs/internals.md)."""

    tenant: str
    source: str
    event_id: str
    event_type: str | None
    topic: str
    order_id: str | None
    occurred_at: datetime
    status: str = ACCEPTED
    payload: str = "{}"
    order_created_at: datetime | None = None
    order_name: str | None = None
    financial_status: str | None = None
    total_price_cents: int | None = None
    currency: str | None = None
    tags: str | None = None
    shipping_code: str | None = None
    ship_zip: str | None = None
    ship_country: str | None = None
    address_valid: bool | None = None
    line_count: int | None = None
    item_quantity: int | None = None
    inventory_shortage: bool = False
    zero_available: bool = False
    reason_code: str | None = None
    carrier: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        # A shallow dict: asdict() deep-copies and was most of the ingest CPU.
        return {name: getattr(self, name) for name in _ROW_FIELDS}


_ROW_FIELDS = tuple(f.name for f in fields(CanonicalEvent) if f.name != "extra")


def parse_timestamp(value: Any, what: str) -> datetime:
    """ISO-8601 with an offset or `Z`, returned in UTC; anything else is malformed."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedEvent(f"{what}: missing timestamp")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedEvent(f"{what}: invalid timestamp {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise MalformedEvent(f"{what}: timestamp {value[:40]!r} has no UTC offset")
    return parsed.astimezone(timezone.utc)


def _identifier(value: Any, what: str) -> str:
    if isinstance(value, bool) or value is None:
        raise MalformedEvent(f"missing field {what}")
    if isinstance(value, float) and not value.is_integer():
        raise MalformedEvent(f"field {what} must be a string or an integer")
    if isinstance(value, (int, float)):
        value = str(int(value))
    if not isinstance(value, str) or not value.strip():
        raise MalformedEvent(f"missing field {what}")
    value = value.strip()
    if len(value) > MAX_ID_LENGTH:
        raise MalformedEvent(f"field {what} longer than {MAX_ID_LENGTH} characters")
    return value


def _cents(value: Any, what: str = "total_price") -> int | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
        if not amount.is_finite():
            raise MalformedEvent(f"invalid amount {str(value)[:40]!r}")
        # Compare before converting: 1e999999 must not become a million-digit integer first.
        if abs(amount) * 100 > MAX_CENTS:
            raise MalformedEvent(f"field {what} out of range (at most {MAX_CENTS // 100} in absolute value)")
        return int((amount * 100).to_integral_value())
    except (DecimalException, ValueError) as exc:
        if isinstance(exc, MalformedEvent):
            raise
        raise MalformedEvent(f"invalid amount {str(value)[:40]!r}") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"body is not valid JSON ({exc.__class__.__name__})") from None
    except RecursionError:
        raise MalformedEvent("JSON nested deeper than the parser allows") from None
    except ValueError as exc:  # an integer of more digits than int() converts (4,300)
        raise MalformedEvent(f"body is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict):
        raise MalformedEvent("body is not a JSON object")
    try:
        check_depth(doc, body)
    except IntakeLimitError as exc:
        raise MalformedEvent(str(exc)) from None
    return doc


def address_is_valid(zip_code: str | None) -> bool:
    # Empty covers a blank one ("  "): DOMAIN §4 "zip in {00000, 99999, INVALID} or empty".
    return bool(zip_code and zip_code.strip()) and zip_code.strip().upper() not in INVALID_ZIPS


def _order_fields(event: CanonicalEvent, order: Mapping[str, Any]) -> None:
    """Extract the Shopify order fields that DOMAIN rules read."""
    if order.get("created_at"):
        event.order_created_at = parse_timestamp(order.get("created_at"), "created_at")
    event.order_name = str(order["name"]) if order.get("name") is not None else None
    event.financial_status = order.get("financial_status")
    event.total_price_cents = _cents(order.get("total_price"))
    event.currency = order.get("currency")
    tags = order.get("tags")
    event.tags = ",".join(tags) if isinstance(tags, list) else tags
    lines = order.get("shipping_lines") or []
    if isinstance(lines, list) and lines and isinstance(lines[0], dict):
        event.shipping_code = lines[0].get("code")
    address = order.get("shipping_address")
    if isinstance(address, dict):
        event.ship_zip = str(address.get("zip") or "")
        event.ship_country = address.get("country")
        event.address_valid = address_is_valid(event.ship_zip)
    items = order.get("line_items")
    if items is not None:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise MalformedEvent("line_items must be a list of objects")
        event.line_count = len(items)
        try:
            quantities = [int(i.get("quantity") or 0) for i in items]
        except (TypeError, ValueError, OverflowError):
            raise MalformedEvent("line_items: invalid quantity") from None
        if any(q < 0 for q in quantities):
            raise MalformedEvent("line_items: negative quantity")
        event.item_quantity = sum(quantities)
        check_range(event.item_quantity, "line_items quantity", 0, MAX_COUNT)
        event.inventory_shortage = any(bool(i.get("inventory_shortage")) for i in items)
        event.zero_available = any(
            i.get("available_quantity") is not None and str(i.get("available_quantity")) in ("0", "0.0")
            for i in items
        )


def _shopify_header(headers: Mapping[str, str], name: str) -> str | None:
    """`x-shopify-<name>`, or the unprefixed `shopify-<name>` Shopify also sends (lower-case names)."""
    return headers.get(f"x-shopify-{name}") or headers.get(f"shopify-{name}")


def _shopify(tenant: str, headers: Mapping[str, str], doc: dict[str, Any], body: str) -> CanonicalEvent:
    topic = (_shopify_header(headers, "topic") or "").strip()
    if not topic:
        raise MalformedEvent("missing header X-Shopify-Topic")
    event_id = _shopify_header(headers, "event-id") or _shopify_header(headers, "webhook-id")
    event_id = _identifier(event_id, "X-Shopify-Event-Id / X-Shopify-Webhook-Id")
    triggered = _shopify_header(headers, "triggered-at")
    if triggered:
        occurred_at = parse_timestamp(triggered, "X-Shopify-Triggered-At")
    else:
        occurred_at = parse_timestamp(doc.get("updated_at") or doc.get("created_at"), "updated_at/created_at")
    event_type = SHOPIFY_TOPICS.get(topic)
    if event_type is None:
        order_id = str(doc.get("order_id") or doc.get("id") or "")[:MAX_ID_LENGTH] or None
        return CanonicalEvent(tenant, "shopify", event_id, None, topic, order_id, occurred_at, IGNORED, body)
    if event_type == "refund_created":
        order_id = _identifier(doc.get("order_id"), "order_id")
    else:
        order_id = _identifier(doc.get("id"), "id")
    event = CanonicalEvent(tenant, "shopify", event_id, event_type, topic, order_id, occurred_at, ACCEPTED, body)
    if event_type in ORDER_PAYLOAD_TYPES:
        _order_fields(event, doc)
        if event_type != "order_created":
            # The cohort day comes from the orders/create payload only (DOMAIN §2).
            event.order_created_at = None
    return event


def _envelope(tenant: str, source: str, headers: Mapping[str, str], doc: dict[str, Any], body: str) -> CanonicalEvent:
    # A Standard Webhooks sender names each message in `webhook-id` (stable across its retries):
    # the idempotency key when the envelope carries no event_id of its own.
    event_id = doc.get("event_id")
    if event_id is None and headers.get("webhook-id"):
        event_id = headers["webhook-id"].strip()
    event_id = _identifier(event_id, "event_id")
    raw_type = doc.get("event_type")
    if not isinstance(raw_type, str) or not raw_type.strip():
        raise MalformedEvent("missing field event_type")
    raw_type = raw_type.strip()
    order_id = _identifier(doc.get("order_id"), "order_id")
    occurred_at = parse_timestamp(doc.get("occurred_at"), "occurred_at")
    data = doc.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MalformedEvent("field data must be an object")
    known = raw_type in EVENT_TYPES[source]
    event = CanonicalEvent(
        tenant,
        source,
        event_id,
        raw_type if known else None,
        raw_type,
        order_id,
        occurred_at,
        ACCEPTED if known else IGNORED,
        body,
    )
    if known and raw_type in ("exception_reported", "exception_resolved"):
        code = data.get("reason_code")
        if not isinstance(code, str) or not code.strip():
            raise MalformedEvent(f"{raw_type}: missing field data.reason_code")
        event.reason_code = code.strip().upper()
    if isinstance(data.get("carrier"), str):
        event.carrier = data["carrier"]
    return event


def canonicalize(tenant: str, source: str, headers: Mapping[str, str], body: bytes, *,
                 received_at: datetime | None = None, window: TimeWindow = DEFAULT_WINDOW) -> CanonicalEvent:
    """Validate one delivery and return it in canonical form.

    Raises `MalformedEvent` for bad JSON, missing fields, bad timestamps or values outside the
    intake limits (domain/intake_limits.py; timestamps outside `window` around `received_at`,
    now by default). A well-formed delivery of a topic or type e2a does not know is returned
    with status `ignored`.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("body is not UTF-8 encoded JSON") from None
    doc = _json_object(body)
    try:
        if source == "shopify":
            event = _shopify(tenant, headers, doc, text)
        else:
            event = _envelope(tenant, source, headers, doc, text)
    except MalformedEvent:
        raise
    except IntakeLimitError as exc:
        raise MalformedEvent(str(exc)) from None
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        # Anything else a hostile or broken payload can trigger is still a malformed delivery.
        raise MalformedEvent(f"invalid payload ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if len(event.topic) > MAX_ID_LENGTH:
        raise MalformedEvent(f"topic longer than {MAX_ID_LENGTH} characters")
    for name in ("event_id", "order_id", "topic", "tags", *FIELD_LIMITS):
        value = getattr(event, name)
        if value is None:
            continue
        if not isinstance(value, str):
            # An object or list here cannot be stored as text: the database would refuse the
            # whole batch and the receiver answer 503 forever to a delivery that is malformed.
            raise MalformedEvent(f"field {name} must be a string, not {type(value).__name__}")
        if name in FIELD_LIMITS and len(value) > FIELD_LIMITS[name]:
            raise MalformedEvent(f"field {name} longer than {FIELD_LIMITS[name]} characters")
    now = received_at or datetime.now(timezone.utc)
    try:
        for name in ("event_id", "order_id", "topic", "tags", *FIELD_LIMITS):
            if getattr(event, name) is not None:
                check_storable_text(getattr(event, name), name)
        check_range(event.line_count, "line_items", 0, MAX_COUNT)
        window.check(event.occurred_at, "occurred_at", now)
        window.check(event.order_created_at, "created_at", now)
    except IntakeLimitError as exc:
        raise MalformedEvent(str(exc)) from None
    return event
