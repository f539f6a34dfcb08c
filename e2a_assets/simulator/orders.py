"""The simulated Shopify order: what a tenant's customers order, when, and how Shopify events change it.

`OrderFactory` draws one tenant's orders (creation time, line items from a per-tenant catalogue,
address, tags, shipping, carrier); `Order.apply` keeps an order's state in step with its events so
every order webhook is a snapshot of the order at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any, Iterable, Mapping

from e2a_assets.simulator import catalog
from e2a_assets.simulator.clock import HOUR, Tz


@dataclass
class Order:
    """Mutable state of one simulated Shopify order while its timeline is rendered."""

    oid: int
    number: int
    created: int
    scenario: str
    email: str
    customer: dict[str, Any]
    line_items: list[dict[str, Any]]
    address: dict[str, Any]
    shipping_code: str
    shipping_cents: int
    subtotal_cents: int
    tax_cents: int
    tags: str
    carrier: str
    tracking: str
    financial_status: str = "paid"
    fulfillment_status: str | None = None
    cancelled_at: int | None = None
    cancel_reason: str | None = None
    note: str | None = None

    def apply(self, event_type: str, t: int, extra: Mapping[str, Any], rng: Random) -> None:
        """The effect of a Shopify event at t on the order; other event types leave it unchanged."""
        if event_type == "order_paid":
            self.financial_status = "paid"
        elif event_type == "order_updated":
            if extra.get("change") == "address_fix":
                self.address = {**self.address, "zip": _valid_zip_like(rng, self.address)}
                self.note = "address corrected by customer service"
            else:
                self.note = rng.choice(("leave at front desk", "please ring twice", "gift - no invoice",
                                        "customer asked for eco packaging"))
        elif event_type == "order_cancelled":
            self.cancelled_at = t
            self.cancel_reason = extra.get("reason", "customer")
            self.financial_status = "voided" if self.financial_status in ("pending", "authorized") else "refunded"
        elif event_type == "order_fulfilled":
            self.fulfillment_status = "fulfilled"
        elif event_type == "refund_created" and self.cancelled_at is None:
            # A cancellation already set the final status (voided / refunded).
            self.financial_status = "refunded" if extra.get("full") else "partially_refunded"


class OrderFactory:
    """Draws the orders of one tenant from its share of the seeded random stream.

    Construction draws the tenant's SKUs and id counters from `rng`, so it must happen at a fixed
    point of the stream for the output to stay reproducible.
    """

    def __init__(self, tenant: str, rng: Random, tz: Tz, tagged_rate: float):
        self.rng = rng
        self.tz = tz
        self.tagged_rate = tagged_rate
        prefix = "".join(part[0] for part in tenant.split("-") if part).upper()[:3] or "SKU"
        self.catalog = [
            (f"{prefix}-{1000 + i * 7 + rng.randrange(7)}", name, price, grams)
            for i, (name, price, grams) in enumerate(catalog.PRODUCTS)
        ]
        self.next_oid = 5_000_000_000_000 + rng.randrange(10**11) * 10
        self.next_line_id = 13_000_000_000_000 + rng.randrange(10**11) * 10
        self.next_number = 1001
        self.hour_cum: dict[int, list[float]] = {}

    def created_time(self, day_start: int) -> int:
        """A creation time within the UTC day starting at day_start."""
        # Weights per UTC hour of this day follow the tenant's local daytime peak.
        off = self.tz.offset(day_start + 12 * HOUR)
        cum = self.hour_cum.get(off)
        if cum is None:
            shift = off // HOUR
            cum = cumulative([catalog.HOUR_WEIGHTS[(h + shift) % 24] for h in range(24)])
            self.hour_cum[off] = cum
        hour = pick_index(cum, self.rng.random())
        return day_start + hour * HOUR + self.rng.randrange(HOUR)

    def new(self, created: int, scenario: str) -> tuple[Order, set[str]]:
        """A new order and its DOMAIN §1.1 flags (plus `_kitting` when it needs a kitting step)."""
        rng = self.rng
        oid = self.next_oid
        self.next_oid += 10 + rng.randrange(40)
        number = self.next_number
        self.next_number += 1
        tags, flags = self._tags()
        address = self._address(scenario)
        n_lines = 1 + (rng.random() < 0.45) + (rng.random() < 0.2) + (rng.random() < 0.08)
        items: list[dict[str, Any]] = []
        subtotal = 0
        for idx in rng.sample(range(len(self.catalog)), n_lines):
            sku, title, price, grams = self.catalog[idx]
            qty = 1 if rng.random() < 0.72 else rng.randrange(2, 5)
            line_id = self.next_line_id
            self.next_line_id += 1 + rng.randrange(9)
            items.append({"id": line_id, "sku": sku, "title": title, "quantity": qty, "price": money(price),
                          "grams": grams, "requires_shipping": True, "fulfillable_quantity": qty})
            subtotal += qty * price
        if scenario == "inventory_shortage":
            short = items[rng.randrange(len(items))]
            short["inventory_shortage"] = True
            short["available_quantity"] = 0 if rng.random() < 0.4 else rng.randrange(0, short["quantity"])
        if "rush" in flags:
            code = "overnight" if rng.random() < 0.4 else "express"
        elif "hazmat" in flags or "oversized" in flags:
            code = "standard"
        else:
            u = rng.random()
            code = "standard" if u < 0.55 else "free" if u < 0.80 else "express" if u < 0.95 else "overnight"
        ship_cents = catalog.SHIPPING[code][1]
        if code == "free" or (code == "standard" and subtotal >= 7500):
            ship_cents = 0
        tax = subtotal * 8 // 100
        carrier = rng.choice(catalog.CARRIERS[code])
        tracking = _tracking_number(rng, carrier)
        first, last = address["first_name"], address["last_name"]
        email = f"{first.lower()}.{last.lower()}{rng.randrange(100)}@example.com".replace("ü", "u")
        customer = {"id": 7_000_000_000_000 + oid % 10**12, "email": email, "first_name": first, "last_name": last}
        order = Order(oid, number, created, scenario, email, customer, items, address, code, ship_cents,
                      subtotal, tax, tags, carrier, tracking)
        if "gift_wrap" in flags or "custom_packaging" in flags:
            flags.add("_kitting")
        return order, flags

    def _tags(self) -> tuple[str, set[str]]:
        rng = self.rng
        tags: list[str] = []
        flags: set[str] = set()
        if rng.random() < self.tagged_rate:
            for flag, p in catalog.FLAG_WEIGHTS:
                if rng.random() < p:
                    flags.add(flag)
            if not flags:
                flags.add(catalog.FLAG_WEIGHTS[rng.randrange(len(catalog.FLAG_WEIGHTS))][0])
            tags.extend(f for f, _ in catalog.FLAG_WEIGHTS if f in flags)
        if rng.random() < 0.08:
            tags.append(rng.choice(catalog.OTHER_TAGS))
        if tags and rng.random() < 0.15:  # Shopify tags are case-insensitive; some shops shout
            tags[0] = tags[0].upper()
        return ", ".join(tags), flags

    def _address(self, scenario: str) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(catalog.FIRST), rng.choice(catalog.LAST)
        u = rng.random()
        if u < 0.88:
            city, prov, prefix = rng.choice(catalog.US_CITIES)
            zip_code = f"{prefix}{rng.randrange(1, 100):02d}"
            country, code = "United States", "US"
        elif u < 0.96:
            city, prov, prefix = rng.choice(catalog.CA_CITIES)
            zip_code = f"{prefix} {rng.randrange(1, 10)}{chr(65 + rng.randrange(26))}{rng.randrange(1, 10)}"
            country, code = "Canada", "CA"
        else:
            city, prov, prefix = rng.choice(catalog.GB_CITIES)
            zip_code = f"{prefix} {rng.randrange(1, 10)}{chr(65 + rng.randrange(26))}{chr(65 + rng.randrange(26))}"
            country, code = "United Kingdom", "GB"
        if scenario == "invalid_address":
            zip_code = rng.choice(catalog.INVALID_ZIPS)
        return {
            "first_name": first,
            "last_name": last,
            "address1": f"{rng.randrange(1, 9900)} {rng.choice(catalog.STREETS)}",
            "address2": f"Apt {rng.randrange(1, 40)}" if rng.random() < 0.25 else None,
            "city": city,
            "province_code": prov,
            "zip": zip_code,
            "country": country,
            "country_code": code,
            "phone": None,
        }


def money(cents: int) -> str:
    """Shopify's money format: a decimal string."""
    return f"{cents // 100}.{cents % 100:02d}"


def cumulative(weights: Iterable[float]) -> list[float]:
    """Normalised running sums of weights, for `pick_index`."""
    total = 0.0
    out = []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def pick_index(cum: list[float], u: float) -> int:
    """The index a uniform draw u in [0, 1) falls on in a `cumulative` list."""
    for i, c in enumerate(cum):
        if u < c:
            return i
    return len(cum) - 1


def _valid_zip_like(rng: Random, address: Mapping[str, Any]) -> str:
    code = address.get("country_code")
    if code == "CA":
        return f"M5V {rng.randrange(1, 10)}A{rng.randrange(1, 10)}"
    if code == "GB":
        return f"SW1A {rng.randrange(1, 10)}AA"
    for city, _prov, prefix in catalog.US_CITIES:
        if city == address.get("city"):
            return f"{prefix}{rng.randrange(1, 100):02d}"
    return f"{rng.randrange(10000, 99990)}"


def _tracking_number(rng: Random, carrier: str) -> str:
    if carrier == "UPS":
        return f"1Z{rng.getrandbits(40):010X}{rng.randrange(10**6):06d}"
    if carrier == "FedEx":
        return f"{rng.randrange(10**11, 10**12)}"
    if carrier == "DHL":
        return f"JD{rng.randrange(10**15, 10**16)}"
    return f"9400{rng.randrange(10**17, 10**18)}"
