"""Small builders for hand-made test data (event frames in the docs/internals.md contract)."""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from e2a_assets.settings import PROJECT_ROOT, Settings

EVENT_COLUMNS = {
    "tenant": "demo-3pl",
    "source": None,
    "event_id": None,
    "event_type": None,
    "order_id": "1001",
    "occurred_at": None,
    "received_at": None,
    "order_created_at": None,
    "order_name": None,
    "financial_status": None,
    "total_price_cents": None,
    "currency": None,
    "tags": None,
    "shipping_code": None,
    "ship_zip": None,
    "ship_country": None,
    "address_valid": None,
    "line_count": None,
    "item_quantity": None,
    "inventory_shortage": False,
    "zero_available": False,
    "reason_code": None,
    "carrier": None,
}
SOURCE_OF = {
    "order_created": "shopify",
    "order_paid": "shopify",
    "order_updated": "shopify",
    "order_cancelled": "shopify",
    "order_fulfilled": "shopify",
    "refund_created": "shopify",
    "picked_up": "carrier",
    "in_transit": "carrier",
    "out_for_delivery": "carrier",
    "delivered": "carrier",
    "delivery_failed": "carrier",
    "returned_to_sender": "carrier",
}
TIMESTAMP_COLUMNS = ("occurred_at", "received_at", "order_created_at")


def ts(value: str) -> pd.Timestamp:
    """`ts("2025-08-01 10:00")` -> tz-aware UTC timestamp."""
    return pd.Timestamp(value, tz="UTC")


def make_events(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Build an event frame; each row needs `event_type` and `occurred_at` ("2025-08-01 10:00").

    Defaults: tenant demo-3pl, order 1001, source from the type (wms otherwise), a unique
    event_id, received_at = occurred_at, and for `order_created` the created time and a valid
    paid order payload unless given.
    """
    records = []
    for n, row in enumerate(rows):
        rec = dict(EVENT_COLUMNS)
        rec.update(row)
        rec["source"] = rec["source"] or SOURCE_OF.get(rec["event_type"], "wms")
        rec["event_id"] = rec["event_id"] or f"evt-{n}"
        rec["received_at"] = rec["received_at"] or rec["occurred_at"]
        if rec["event_type"] == "order_created":
            rec["order_created_at"] = rec["order_created_at"] or rec["occurred_at"]
            rec["financial_status"] = rec["financial_status"] or "paid"
            rec["order_name"] = rec["order_name"] or f"#{rec['order_id']}"
            rec["total_price_cents"] = rec["total_price_cents"] if rec["total_price_cents"] is not None else 5000
            rec["currency"] = rec["currency"] or "USD"
            rec["shipping_code"] = rec["shipping_code"] or "standard"
            rec["tags"] = rec["tags"] if rec["tags"] is not None else ""
            if rec["ship_zip"] is None:
                rec["ship_zip"] = "10001"
            rec["ship_country"] = rec["ship_country"] or "US"
            if rec["address_valid"] is None:
                rec["address_valid"] = rec["ship_zip"].strip().upper() not in ("", "00000", "99999", "INVALID")
            rec["line_count"] = rec["line_count"] if rec["line_count"] is not None else 1
            rec["item_quantity"] = rec["item_quantity"] if rec["item_quantity"] is not None else 1
        records.append(rec)
    frame = pd.DataFrame(records, columns=list(EVENT_COLUMNS))
    for col in TIMESTAMP_COLUMNS:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in ("total_price_cents", "line_count", "item_quantity"):
        frame[col] = frame[col].astype("Int64")
    for col in ("inventory_shortage", "zero_available"):
        frame[col] = frame[col].astype(bool)
    return frame


# ----------------------------------------------------------------------------- raw deliveries


def shopify_order(order_id: str | int, created_at: str, **fields: Any) -> dict[str, Any]:
    """A realistic Shopify order resource; `fields` override or add keys."""
    order = {
        "id": int(order_id) if str(order_id).isdigit() else order_id,
        "name": f"#{order_id}",
        "created_at": created_at,
        "updated_at": created_at,
        "financial_status": "paid",
        "total_price": "49.90",
        "currency": "USD",
        "tags": "",
        "line_items": [{"sku": "TEE-BLK-M", "quantity": 2, "price": "24.95"}],
        "shipping_address": {"address1": "1 Main St", "city": "New York", "zip": "10001", "country": "US"},
        "shipping_lines": [{"code": "standard"}],
    }
    order.update(fields)
    return order


def shopify_delivery(tenant: str, topic: str, resource: dict[str, Any], event_id: str, triggered_at: str | None = None):
    """An (unsigned) Shopify delivery for the ingestion core."""
    import json

    from e2a_assets.intake.ingestor import Delivery

    headers = {"X-Shopify-Topic": topic, "X-Shopify-Event-Id": event_id}
    if triggered_at:
        headers["X-Shopify-Triggered-At"] = triggered_at
    return Delivery(tenant, "shopify", headers, json.dumps(resource).encode())


def envelope_delivery(tenant: str, event_type: str, order_id: str | int, occurred_at: str, event_id: str,
                      data: dict[str, Any] | None = None, source: str | None = None):
    """An (unsigned) WMS or carrier delivery in the e2a envelope."""
    import json

    from e2a_assets.intake.ingestor import Delivery

    source = source or ("carrier" if SOURCE_OF.get(event_type) == "carrier" else "wms")
    body = {"event_id": event_id, "event_type": event_type, "order_id": str(order_id), "occurred_at": occurred_at}
    if data is not None:
        body["data"] = data
    return Delivery(tenant, source, {}, json.dumps(body).encode())


def settings_for(database_url: str, data_dir) -> Settings:  # noqa: ANN001
    """Settings for a test: the given warehouse, the project's real policies, a temp data dir."""
    return Settings(data_dir=data_dir, database_url=database_url, policies_dir=PROJECT_ROOT / "policies",
                    tenants_file=PROJECT_ROOT / "policies" / "tenants.yaml")


def requested_days(requests) -> list[str]:  # noqa: ANN001
    """Every day a list of RunRequests covers: a partition key, or a range's days, sorted."""
    import datetime as dt

    days = []
    for request in requests:
        if request.partition_key:
            days.append(request.partition_key)
            continue
        first = dt.date.fromisoformat(request.tags["dagster/asset_partition_range_start"])
        last = dt.date.fromisoformat(request.tags["dagster/asset_partition_range_end"])
        days += [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return sorted(days)
