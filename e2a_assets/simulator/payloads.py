"""What the senders put on the wire: signed Shopify webhooks and e2a WMS / carrier envelopes (DOMAIN §1).

Shopify bodies are the resource (the order as of the event, or the refund) with Shopify's headers;
WMS and carrier bodies are the e2a envelope `{event_id, event_type, order_id, occurred_at, data}`.
"""

from __future__ import annotations

import json
import uuid
from random import Random
from typing import Any, Mapping

from e2a_assets.domain.events import CARRIER_TYPES, SHOPIFY_TOPICS
from e2a_assets.simulator import catalog
from e2a_assets.simulator.clock import DAY, Tz, iso_z
from e2a_assets.simulator.orders import Order, money
from e2a_assets.webhooks.signing import (
    E2A_SIGNATURE_HEADER,
    E2A_TENANT_HEADER,
    SHOPIFY_DOMAIN_HEADER,
    SHOPIFY_SIGNATURE_HEADER,
    sign,
)

TOPIC_OF = {v: k for k, v in SHOPIFY_TOPICS.items()}
SHOPIFY_API_VERSION = "2025-07"

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Payloads:
    """Renders one tenant's deliveries: its Shopify shop, its WMS and its carriers, all signed with its secret.

    Construction draws the tenant's warehouse from `rng`, so it must happen at a fixed point of the
    stream for the output to stay reproducible.
    """

    def __init__(self, tenant: str, secret: str, shop_domain: str, currency: str, tz: Tz, rng: Random):
        self.tenant = tenant
        self.secret = secret
        self.shop_domain = shop_domain
        self.currency = currency
        self.tz = tz
        self.rng = rng
        self.warehouse = f"WH-{rng.choice(('EWR', 'ONT', 'DFW', 'ATL'))}-{rng.randrange(1, 4)}"

    def render(self, o: Order, t: int, event_type: str,
               extra: Mapping[str, Any]) -> tuple[str, dict[str, str], bytes]:
        """(source, headers, body) of the event at t; `o` must already reflect the event."""
        if event_type in TOPIC_OF:
            return ("shopify", *self._shopify(o, t, event_type, extra))
        source = "carrier" if event_type in CARRIER_TYPES else "wms"
        return (source, *self._envelope(o, t, source, event_type, extra))

    def _order_doc(self, o: Order, at: int) -> dict[str, Any]:
        iso = self.tz.iso
        total = o.subtotal_cents + o.tax_cents + o.shipping_cents
        return {
            "id": o.oid,
            "admin_graphql_api_id": f"gid://shopify/Order/{o.oid}",
            "name": f"#{o.number}",
            "order_number": o.number,
            "email": o.email,
            "created_at": iso(o.created),
            "updated_at": iso(at),
            "processed_at": iso(o.created),
            "cancelled_at": iso(o.cancelled_at) if o.cancelled_at is not None else None,
            "cancel_reason": o.cancel_reason,
            "financial_status": o.financial_status,
            "fulfillment_status": o.fulfillment_status,
            "currency": self.currency,
            "presentment_currency": self.currency,
            "subtotal_price": money(o.subtotal_cents),
            "total_tax": money(o.tax_cents),
            "total_price": money(total),
            "total_weight": sum(li["grams"] * li["quantity"] for li in o.line_items),
            "tags": o.tags,
            "note": o.note,
            "customer": o.customer,
            "line_items": o.line_items,
            "shipping_address": o.address,
            "shipping_lines": [{"code": o.shipping_code, "title": catalog.SHIPPING[o.shipping_code][0],
                                "price": money(o.shipping_cents)}],
        }

    def _refund_doc(self, o: Order, t: int, full: bool) -> dict[str, Any]:
        total = o.subtotal_cents + o.tax_cents + o.shipping_cents
        amount = total if full else max(total - o.shipping_cents, 0)
        lines = o.line_items if full else o.line_items[:1]
        rid = 900_000_000_000 + o.oid % 10**11 + self.rng.randrange(1000)
        return {
            "id": rid,
            "order_id": o.oid,
            "created_at": self.tz.iso(t),
            "processed_at": self.tz.iso(t),
            "note": "order cancelled" if o.cancelled_at is not None else "return processed",
            "restock": o.cancelled_at is None,
            "refund_line_items": [
                {"line_item_id": li["id"], "quantity": li["quantity"],
                 "subtotal": money(_cents_of(li["price"]) * li["quantity"])}
                for li in lines
            ],
            "transactions": [{"id": rid + 17, "order_id": o.oid, "kind": "refund", "status": "success",
                              "amount": money(amount), "currency": self.currency, "gateway": "shopify_payments"}],
        }

    def _shopify(self, o: Order, t: int, event_type: str,
                 extra: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        rng = self.rng
        if event_type == "refund_created":
            doc = self._refund_doc(o, t, bool(extra.get("full")))
        else:
            doc = self._order_doc(o, t)
        body = _dumps(doc)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": TOPIC_OF[event_type],
            SHOPIFY_DOMAIN_HEADER: self.shop_domain,
            "X-Shopify-API-Version": SHOPIFY_API_VERSION,
            "X-Shopify-Webhook-Id": _uuid(rng),
            "X-Shopify-Event-Id": _uuid(rng),
            "X-Shopify-Triggered-At": iso_z(t),
            SHOPIFY_SIGNATURE_HEADER: sign(self.secret, body),
        }
        return headers, body

    def _envelope(self, o: Order, t: int, source: str, event_type: str,
                  extra: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        rng = self.rng
        if source == "wms":
            data: dict[str, Any] = {"warehouse": self.warehouse}
            if event_type in ("pick_started", "pick_completed"):
                data["picker"] = f"op-{rng.randrange(1, 60):03d}"
                if event_type == "pick_completed":
                    data["items"] = sum(li["quantity"] for li in o.line_items)
            elif event_type == "pack_completed":
                data["station"] = f"PACK-{rng.randrange(1, 13):02d}"
                data["box"] = rng.choice(("S", "M", "L", "XL", "poly"))
            elif event_type == "label_created":
                data.update(carrier=o.carrier, tracking_number=o.tracking, service=o.shipping_code)
            elif event_type == "manifested":
                data.update(carrier=o.carrier, manifest_id=f"MAN-{t // DAY}-{o.carrier}")
            elif event_type in ("exception_reported", "exception_resolved"):
                data.update(reason_code=extra["reason_code"], note=extra.get("note"))
            elif event_type == "return_received":
                data.update(condition=extra.get("condition", "resellable"), rma=f"RMA-{o.number}")
            agent = catalog.WMS_AGENT
        else:
            data = {"carrier": o.carrier, "tracking_number": o.tracking}
            if "location" in extra:
                data["location"] = extra["location"]
            if event_type == "delivery_failed":
                data.update(reason=extra["reason"], attempt=extra["attempt"])
            elif event_type == "returned_to_sender":
                data["reason"] = extra["reason"]
            agent = catalog.CARRIER_AGENT[o.carrier]
        doc = {
            "event_id": f"{source}_{rng.getrandbits(96):024x}",
            "event_type": event_type,
            "order_id": str(o.oid),
            "occurred_at": iso_z(t),
            "data": data,
        }
        body = _dumps(doc)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": agent,
            E2A_TENANT_HEADER: self.tenant,
            E2A_SIGNATURE_HEADER: sign(self.secret, body),
        }
        return headers, body


def _dumps(doc: Any) -> bytes:
    return _ENCODE(doc).encode("utf-8")


def _uuid(rng: Random) -> str:
    """A UUID-shaped id from the seeded stream (never uuid4: output must be reproducible)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _cents_of(price: str) -> int:
    whole, _, frac = price.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])
