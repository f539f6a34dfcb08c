"""Synthetic webhook traffic for e2a: Shopify orders plus the WMS and carrier scans that follow them.

`generate` builds a reproducible stream of signed deliveries (DOMAIN §1) for a set of tenants:
order lifecycles with plausible timings relative to each tenant's SLA, a ~20 % mix of problems
(DOMAIN §4), cancellations, returns, re-deliveries and slightly out-of-order arrival. Same
arguments (and the same tenant secrets) ⇒ byte-identical output: every random choice comes from a
`random.Random` seeded from (seed, tenant), ids are derived from it, and nothing reads the clock.

This module is a traffic source, not domain code: it loops per order in plain Python.
See docs/simulator.md for what the traffic looks like and which knobs exist.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from random import Random
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from e2a_assets.domain.events import SHOPIFY_TOPICS
from e2a_assets.domain.policies import TenantPolicy
from e2a_assets.ingestion import Delivery
from e2a_assets.simulator import catalog
from e2a_assets.webhooks.signing import (
    E2A_SIGNATURE_HEADER,
    E2A_TENANT_HEADER,
    SHOPIFY_DOMAIN_HEADER,
    SHOPIFY_SIGNATURE_HEADER,
    sign,
)

MINUTE = 60
HOUR = 3600
DAY = 86400
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
TOPIC_OF = {v: k for k, v in SHOPIFY_TOPICS.items()}
SHOPIFY_API_VERSION = "2025-07"

# Scenario labels (one per order). Problems are spread over the DOMAIN §4 causes.
NORMAL = "normal"
PROBLEMS = (
    "late_pick",
    "late_pack",
    "late_ship",
    "missing_pack_scan",
    "invalid_address",
    "payment_pending",
    "inventory_shortage",
    "delivery_failed",
    "damaged_package",
    "stock_mismatch",
)
CANCELLATIONS = ("cancelled_before_pick", "cancelled_after_pick")
RETURNS = ("return_customer", "returned_to_sender")
SCENARIOS = (NORMAL, *PROBLEMS, *CANCELLATIONS, *RETURNS)


@dataclass(frozen=True)
class TrafficMix:
    """The knobs of the traffic mix; the defaults are what `generate` uses without a mix.

    Rates are per order (problem, cancellation, return) or per delivery (duplicate, delayed).
    """

    problem_rate: float = 0.20
    cancel_rate: float = 0.02
    return_rate: float = 0.03
    duplicate_rate: float = 0.03
    delayed_rate: float = 0.04  # deliveries held back by the sender (arrive out of order)
    tagged_rate: float = 0.22  # orders with at least one DOMAIN §1.1 flag in `tags`
    update_rate: float = 0.12  # orders with an incidental orders/updated (note, tags)
    problem_weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "late_pick": 0.15,
            "late_pack": 0.12,
            "late_ship": 0.10,
            "missing_pack_scan": 0.10,
            "invalid_address": 0.12,
            "payment_pending": 0.10,
            "inventory_shortage": 0.10,
            "delivery_failed": 0.11,
            "damaged_package": 0.05,
            "stock_mismatch": 0.05,
        }
    )

    def __post_init__(self) -> None:
        for name in ("problem_rate", "cancel_rate", "return_rate", "duplicate_rate", "delayed_rate",
                     "tagged_rate", "update_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"TrafficMix.{name} must be within 0..1, got {value}")
        if self.problem_rate + self.cancel_rate + self.return_rate > 1:
            raise ValueError("TrafficMix: problem_rate + cancel_rate + return_rate must be <= 1")
        unknown = sorted(set(self.problem_weights) - set(PROBLEMS))
        if unknown:
            raise ValueError(f"TrafficMix.problem_weights: unknown problem {unknown[0]!r}")
        if not any(w > 0 for w in self.problem_weights.values()):
            raise ValueError("TrafficMix.problem_weights: at least one weight must be > 0")


DEFAULT_MIX = TrafficMix()


@dataclass(frozen=True)
class SimDelivery:
    """One simulated webhook delivery, ready to POST to `/webhooks/{source}` or to ingest.

    `scenario` is the simulator's label of the order's story (see SCENARIOS); it is not sent.
    """

    tenant: str
    source: str
    headers: dict[str, str]
    body: bytes
    send_at: dt.datetime
    event_type: str
    order_id: str
    duplicate: bool = False
    scenario: str = NORMAL

    def delivery(self) -> Delivery:
        return Delivery(self.tenant, self.source, dict(self.headers), self.body)

    @property
    def path(self) -> str:
        return f"/webhooks/{self.source}"


# --------------------------------------------------------------------------------------------
# Helpers


_DAY_PREFIX: dict[int, str] = {}


def _day_prefix(day: int) -> str:
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = (_EPOCH + dt.timedelta(days=day)).strftime("%Y-%m-%dT")
    return prefix


def _clock(t: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of epoch seconds t (no zone)."""
    day, sec = divmod(t, DAY)
    hour, rest = divmod(sec, HOUR)
    minute, second = divmod(rest, MINUTE)
    return f"{_day_prefix(day)}{hour:02d}:{minute:02d}:{second:02d}"


def _iso_z(t: int) -> str:
    return _clock(t) + "Z"


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(doc: Any) -> bytes:
    return _ENCODE(doc).encode("utf-8")


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _uuid(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Tz:
    """Cached local-time rendering for one tenant time zone (Shopify timestamps carry an offset)."""

    def __init__(self, name: str):
        self.zone = ZoneInfo(name)
        self._offsets: dict[int, int] = {}

    def offset(self, t: int) -> int:
        hour = t // HOUR
        off = self._offsets.get(hour)
        if off is None:
            delta = (_EPOCH + dt.timedelta(seconds=hour * HOUR)).astimezone(self.zone).utcoffset()
            off = int(delta.total_seconds()) if delta else 0
            self._offsets[hour] = off
        return off

    def iso(self, t: int) -> str:
        off = self.offset(t)
        sign_ = "+" if off >= 0 else "-"
        a = abs(off)
        return _clock(t + off) + f"{sign_}{a // HOUR:02d}:{a % HOUR // MINUTE:02d}"

    def local_seconds_of_day(self, t: int) -> int:
        return (t + self.offset(t)) % DAY


@dataclass
class _Order:
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


class _TenantSim:
    """Generates all deliveries of one tenant."""

    def __init__(self, policy: TenantPolicy, seed: int, start: dt.date, days: int, orders_per_day: int,
                 mix: TrafficMix):
        secret = policy.webhook_secret()
        if not secret:
            raise ValueError(
                f"tenant {policy.tenant!r} has no webhook secret (set {policy.webhook_secret_env or 'webhook_secret_env'}"
                " or webhook_secret_dev)"
            )
        self.policy = policy
        self.tenant = policy.tenant
        self.secret = secret
        self.shop_domain = policy.shop_domain or f"{policy.tenant}.myshopify.com"
        self.currency = policy.currency
        self.rng = Random(f"e2a-sim:{seed}:{policy.tenant}")
        self.tz = _Tz(policy.timezone)
        self.start = int((dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc) - _EPOCH).total_seconds())
        self.end = self.start + days * DAY
        self.days = days
        self.orders_per_day = orders_per_day
        self.mix = mix
        sla = policy.sla
        self.pick_lim = sla.pick_minutes * MINUTE
        self.pack_lim = sla.pack_minutes * MINUTE
        self.ship_lim = sla.ship_minutes * MINUTE
        self.deliv_lim = sla.delivery_hours * HOUR
        rng = self.rng
        prefix = "".join(part[0] for part in policy.tenant.split("-") if part).upper()[:3] or "SKU"
        self.catalog = [
            (f"{prefix}-{1000 + i * 7 + rng.randrange(7)}", name, price, grams)
            for i, (name, price, grams) in enumerate(catalog.PRODUCTS)
        ]
        self.next_oid = 5_000_000_000_000 + rng.randrange(10**11) * 10
        self.next_line_id = 13_000_000_000_000 + rng.randrange(10**11) * 10
        self.next_number = 1001
        self.warehouse = f"WH-{rng.choice(('EWR', 'ONT', 'DFW', 'ATL'))}-{rng.randrange(1, 4)}"
        names, weights = zip(*((n, w) for n, w in mix.problem_weights.items() if w > 0))
        self.problem_names = names
        self.problem_cum = _cumulative(weights)
        self.hour_cum: dict[int, list[float]] = {}
        self.out: list[tuple[int, int, SimDelivery]] = []
        self.seq = 0

    # ---------------------------------------------------------------- order shape

    def _created_time(self, day_start: int) -> int:
        # Weights per UTC hour of this day follow the tenant's local daytime peak.
        off = self.tz.offset(day_start + 12 * HOUR)
        cum = self.hour_cum.get(off)
        if cum is None:
            shift = off // HOUR
            cum = _cumulative([catalog.HOUR_WEIGHTS[(h + shift) % 24] for h in range(24)])
            self.hour_cum[off] = cum
        hour = _pick_index(cum, self.rng.random())
        return day_start + hour * HOUR + self.rng.randrange(HOUR)

    def _scenario(self) -> str:
        rng, mix = self.rng, self.mix
        u = rng.random()
        if u < mix.problem_rate:
            return self.problem_names[_pick_index(self.problem_cum, rng.random())]
        u -= mix.problem_rate
        if u < mix.cancel_rate:
            return CANCELLATIONS[rng.random() < 0.5]
        u -= mix.cancel_rate
        if u < mix.return_rate:
            return RETURNS[rng.random() < 0.25]
        return NORMAL

    def _tags(self) -> tuple[str, set[str]]:
        rng = self.rng
        tags: list[str] = []
        flags: set[str] = set()
        if rng.random() < self.mix.tagged_rate:
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

    def _new_order(self, created: int, scenario: str) -> tuple[_Order, set[str]]:
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
            items.append({"id": line_id, "sku": sku, "title": title, "quantity": qty, "price": _money(price),
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
        order = _Order(oid, number, created, scenario, email, customer, items, address, code, ship_cents,
                       subtotal, tax, tags, carrier, tracking)
        if "gift_wrap" in flags or "custom_packaging" in flags:
            flags.add("_kitting")
        return order, flags

    # ---------------------------------------------------------------- lifecycle

    def _timeline(self, o: _Order, flags: set[str]) -> list[tuple[int, str, dict[str, Any]]]:
        """(time, event kind, extra) for every event of the order's story, unfiltered."""
        rng = self.rng
        sc = o.scenario
        U = rng.uniform
        ev: list[tuple[int, str, dict[str, Any]]] = []

        def add(t: float, kind: str, **extra: Any) -> int:
            t = int(t)
            ev.append((t, kind, extra))
            return t

        created = add(o.created, "order_created")
        if rng.random() < self.mix.update_rate:
            add(created + U(5 * MINUTE, 6 * HOUR), "order_updated", change="note")

        # Payment
        if sc == "payment_pending":
            o.financial_status = "pending"
            if rng.random() < 0.65:
                paid = add(created + U(1 * HOUR, 30 * HOUR), "order_paid")
            else:
                if rng.random() < 0.5:
                    add(created + U(24 * HOUR, 72 * HOUR), "order_cancelled", reason="declined")
                return ev
        else:
            paid = add(created + U(2, 90), "order_paid")

        # Pick (inventory shortages wait for a restock)
        pick_base = paid
        if sc == "inventory_shortage":
            if rng.random() < 0.6:
                pick_base = add(paid + U(3 * HOUR, 30 * HOUR), "exception_resolved",
                                reason_code="INVENTORY_SHORTAGE", note="restocked")
            else:
                return ev
        pick_dur = U(1.15, 3.0) * self.pick_lim if sc == "late_pick" else U(0.25, 0.8) * self.pick_lim
        picked = pick_base + pick_dur
        pick_started = max(pick_base + 60, picked - U(4 * MINUTE, 20 * MINUTE))
        if sc == "late_pick":
            pick_started = max(pick_base + 60, picked - U(5 * MINUTE, 40 * MINUTE))
        if sc == "cancelled_before_pick":
            cancel = paid + (pick_started - paid) * U(0.1, 0.9)
            add(cancel, "order_cancelled", reason=rng.choice(catalog.CANCEL_REASONS))
            add(cancel + U(60, 15 * MINUTE), "refund_created", full=True)
            return ev
        add(pick_started, "pick_started")
        if sc == "stock_mismatch":
            reported = add(pick_started + U(2 * MINUTE, 10 * MINUTE), "exception_reported",
                           reason_code="STOCK_MISMATCH", note="bin count differs from system quantity")
            if rng.random() < 0.5:
                resolved = add(reported + U(1 * HOUR, 8 * HOUR), "exception_resolved",
                               reason_code="STOCK_MISMATCH", note="cycle count corrected")
                picked = max(picked, resolved + U(5 * MINUTE, 20 * MINUTE))
        picked = add(picked, "pick_completed")

        # Kitting and pack
        pack_dur = U(1.1, 2.5) * self.pack_lim if sc == "late_pack" else U(0.2, 0.8) * self.pack_lim
        packed = picked + pack_dur
        if "_kitting" in flags or rng.random() < 0.04:
            add(picked + pack_dur * U(0.2, 0.8), "kitting_completed")
        if sc == "cancelled_after_pick":
            cancel = picked + (packed - picked) * U(0.1, 0.9)
            add(cancel, "order_cancelled", reason=rng.choice(catalog.CANCEL_REASONS))
            add(cancel + U(60, 30 * MINUTE), "refund_created", full=True)
            return ev
        if sc == "damaged_package":
            reported = add(picked + pack_dur * U(0.1, 0.6), "exception_reported", reason_code="DAMAGED_PACKAGE",
                           note="item damaged at pack station")
            if rng.random() < 0.6:
                resolved = add(reported + U(30 * MINUTE, 6 * HOUR), "exception_resolved",
                               reason_code="DAMAGED_PACKAGE", note="replacement item packed")
                packed = max(packed, resolved + U(10 * MINUTE, 30 * MINUTE))
        if sc != "missing_pack_scan":
            packed = add(packed, "pack_completed")
        else:
            packed = int(packed)

        # Label, fulfilment and hand-over to the carrier
        ready = packed
        if sc == "invalid_address":
            if rng.random() < 0.6:
                fixed = add(created + U(1 * HOUR, 12 * HOUR), "order_updated", change="address_fix")
                ready = max(ready, fixed + int(U(10 * MINUTE, 60 * MINUTE)))
            else:
                return ev  # held at the pack bench until someone fixes the address
        if sc == "late_ship":
            manifested = packed + U(1.1, 2.0) * self.ship_lim
            label = max(ready + 60, manifested - min(U(10 * MINUTE, 40 * MINUTE), 0.05 * self.ship_lim))
        else:
            label = ready + U(2 * MINUTE, 20 * MINUTE)
            manifested = self._next_cutoff(label + 15 * MINUTE)
            cap = packed + 0.9 * self.ship_lim
            if manifested > cap:
                manifested = max(label + 5 * MINUTE, cap)
        label = add(label, "label_created")
        add(label + U(60, 10 * MINUTE), "order_fulfilled")
        manifested = add(manifested, "manifested")
        picked_up = add(manifested + U(10 * MINUTE, 90 * MINUTE), "picked_up")
        transit = add(picked_up + U(2 * HOUR, 8 * HOUR), "in_transit", location="origin hub")

        # Delivery target
        if o.shipping_code == "overnight":
            target = picked_up + U(14 * HOUR, 22 * HOUR)
        elif o.shipping_code == "express":
            target = created + U(0.30, 0.55) * self.deliv_lim
        else:
            target = created + U(0.45, 0.92) * self.deliv_lim
        target = max(target, picked_up + 12 * HOUR)
        target = self._daytime(int(target), floor=picked_up + 10 * HOUR)
        if target - transit > 14 * HOUR and rng.random() < 0.6:
            add(transit + (target - transit) * U(0.3, 0.6), "in_transit", location="destination hub")

        if sc == "delivery_failed":
            attempts = 1 if rng.random() < 0.6 else 2
            t = target
            for n in range(attempts):
                ofd = max(t - U(1 * HOUR, 5 * HOUR), transit + 30 * MINUTE)
                add(ofd, "out_for_delivery")
                t = add(max(t, ofd + 10 * MINUTE), "delivery_failed", reason=rng.choice(catalog.FAIL_REASONS),
                        attempt=n + 1)
                t = self._daytime(t + DAY + int(U(-2 * HOUR, 2 * HOUR)), floor=t + 12 * HOUR)
            if attempts == 2 and rng.random() < 0.3:
                rts = add(t + U(1 * DAY, 3 * DAY), "returned_to_sender", reason="UNDELIVERABLE")
                add(rts + U(2 * DAY, 5 * DAY), "return_received", condition="sealed")
                return ev
            target = t
        if sc == "returned_to_sender":
            rts = add(target + U(0, 1 * DAY), "returned_to_sender", reason="REFUSED")
            received = add(rts + U(2 * DAY, 5 * DAY), "return_received", condition="sealed")
            add(received + U(2 * HOUR, 2 * DAY), "refund_created", full=True)
            return ev
        ofd = max(target - U(1 * HOUR, 6 * HOUR), transit + 30 * MINUTE)
        add(ofd, "out_for_delivery")
        delivered = add(max(target, ofd + 10 * MINUTE), "delivered")
        if sc == "return_customer":
            received = add(delivered + U(3 * DAY, 10 * DAY), "return_received",
                           condition=rng.choice(("resellable", "resellable", "damaged")))
            add(received + U(2 * HOUR, 2 * DAY), "refund_created", full=False)
        return ev

    def _next_cutoff(self, t: float) -> float:
        """The next daily carrier pick-up cut-off (17:00 local, ± a few minutes) at or after t."""
        t = int(t)
        local = self.tz.local_seconds_of_day(t)
        cutoff = 17 * HOUR
        wait = cutoff - local if local <= cutoff else DAY - local + cutoff
        return t + wait + self.rng.uniform(0, 25 * MINUTE)

    def _daytime(self, t: int, floor: float) -> int:
        """Move a delivery into local daytime (09:00–20:00), preferring earlier, never before floor."""
        local = self.tz.local_seconds_of_day(t)
        if 9 * HOUR <= local <= 20 * HOUR:
            return t
        if local < 9 * HOUR:
            earlier = t - local - 4 * HOUR - int(self.rng.uniform(0, 6 * HOUR))  # previous day 14–20h
            later = t - local + 9 * HOUR + int(self.rng.uniform(0, 3 * HOUR))
        else:
            earlier = t - (local - 20 * HOUR) - int(self.rng.uniform(0, 5 * HOUR))
            later = t - local + DAY + 9 * HOUR + int(self.rng.uniform(0, 3 * HOUR))
        return earlier if earlier >= floor else later

    # ---------------------------------------------------------------- rendering

    def _order_doc(self, o: _Order, at: int) -> dict[str, Any]:
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
            "subtotal_price": _money(o.subtotal_cents),
            "total_tax": _money(o.tax_cents),
            "total_price": _money(total),
            "total_weight": sum(li["grams"] * li["quantity"] for li in o.line_items),
            "tags": o.tags,
            "note": o.note,
            "customer": o.customer,
            "line_items": o.line_items,
            "shipping_address": o.address,
            "shipping_lines": [{"code": o.shipping_code, "title": catalog.SHIPPING[o.shipping_code][0],
                                "price": _money(o.shipping_cents)}],
        }

    def _shopify(self, o: _Order, t: int, event_type: str, extra: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        rng = self.rng
        if event_type == "order_paid":
            o.financial_status = "paid"
        elif event_type == "order_updated":
            if extra.get("change") == "address_fix":
                o.address = {**o.address, "zip": _valid_zip_like(rng, o.address)}
                o.note = "address corrected by customer service"
            else:
                o.note = rng.choice(("leave at front desk", "please ring twice", "gift - no invoice",
                                     "customer asked for eco packaging"))
        elif event_type == "order_cancelled":
            o.cancelled_at = t
            o.cancel_reason = extra.get("reason", "customer")
            o.financial_status = "voided" if o.financial_status in ("pending", "authorized") else "refunded"
        elif event_type == "order_fulfilled":
            o.fulfillment_status = "fulfilled"
        if event_type == "refund_created":
            total = o.subtotal_cents + o.tax_cents + o.shipping_cents
            amount = total if extra.get("full") else max(total - o.shipping_cents, 0)
            lines = o.line_items if extra.get("full") else o.line_items[:1]
            rid = 900_000_000_000 + o.oid % 10**11 + rng.randrange(1000)
            doc: dict[str, Any] = {
                "id": rid,
                "order_id": o.oid,
                "created_at": self.tz.iso(t),
                "processed_at": self.tz.iso(t),
                "note": "order cancelled" if o.cancelled_at is not None else "return processed",
                "restock": o.cancelled_at is None,
                "refund_line_items": [
                    {"line_item_id": li["id"], "quantity": li["quantity"],
                     "subtotal": _money(_cents_of(li["price"]) * li["quantity"])}
                    for li in lines
                ],
                "transactions": [{"id": rid + 17, "order_id": o.oid, "kind": "refund", "status": "success",
                                  "amount": _money(amount), "currency": self.currency, "gateway": "shopify_payments"}],
            }
            if extra.get("full") and o.cancelled_at is None:
                o.financial_status = "refunded"
            elif o.cancelled_at is None:
                o.financial_status = "partially_refunded"
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
            "X-Shopify-Triggered-At": _iso_z(t),
            SHOPIFY_SIGNATURE_HEADER: sign(self.secret, body),
        }
        return headers, body

    def _envelope(self, o: _Order, t: int, source: str, event_type: str,
                  extra: dict[str, Any]) -> tuple[dict[str, str], bytes]:
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
            "occurred_at": _iso_z(t),
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

    def _emit(self, send_us: int, delivery: SimDelivery) -> None:
        self.out.append((send_us, self.seq, delivery))
        self.seq += 1

    def run(self) -> list[tuple[int, int, SimDelivery]]:
        rng, mix = self.rng, self.mix
        end_us = self.end * 1_000_000
        for day in range(self.days):
            day_start = self.start + day * DAY
            created_times = sorted(self._created_time(day_start) for _ in range(self.orders_per_day))
            for created in created_times:
                order, flags = self._new_order(created, self._scenario())
                timeline = self._timeline(order, flags)
                timeline.sort(key=lambda e: e[0])
                oid = str(order.oid)
                for t, event_type, extra in timeline:
                    if t >= self.end:
                        break
                    if event_type in TOPIC_OF:
                        source = "shopify"
                        headers, body = self._shopify(order, t, event_type, extra)
                    else:
                        source = "carrier" if event_type in _CARRIER_EVENTS else "wms"
                        headers, body = self._envelope(order, t, source, event_type, extra)
                    send_us = t * 1_000_000 + rng.randrange(150_000, 4_000_000)
                    if rng.random() < mix.delayed_rate:  # sender queue / retry: arrives late
                        send_us += int(min(rng.expovariate(1 / (20 * MINUTE)), 3 * HOUR) * 1_000_000) + 60_000_000
                    if send_us >= end_us:
                        continue
                    d = SimDelivery(self.tenant, source, headers, body, _EPOCH + dt.timedelta(microseconds=send_us),
                                    event_type, oid, False, order.scenario)
                    self._emit(send_us, d)
                    if rng.random() < mix.duplicate_rate:  # the sender re-delivers (lost ack, timeout)
                        again = send_us + int(rng.choice((5, 10, 30, 60, 300, 900, 3600)) * rng.uniform(1, 2) * 1_000_000)
                        if again < end_us:
                            dup = SimDelivery(self.tenant, source, headers, body,
                                              _EPOCH + dt.timedelta(microseconds=again), event_type, oid, True,
                                              order.scenario)
                            self._emit(again, dup)
        return self.out


_CARRIER_EVENTS = frozenset({"picked_up", "in_transit", "out_for_delivery", "delivered", "delivery_failed",
                             "returned_to_sender"})


def _cumulative(weights: Iterable[float]) -> list[float]:
    total = 0.0
    out = []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def _pick_index(cum: list[float], u: float) -> int:
    for i, c in enumerate(cum):
        if u < c:
            return i
    return len(cum) - 1


def _cents_of(price: str) -> int:
    whole, _, frac = price.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


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


# --------------------------------------------------------------------------------------------
# Public API


def generate(
    tenants: Sequence[TenantPolicy],
    days: int,
    orders_per_day: int,
    seed: int,
    start: dt.date,
    *,
    mix: TrafficMix | None = None,
) -> list[SimDelivery]:
    """Simulate `days` UTC days from `start` of webhook traffic for each tenant, sorted by `send_at`.

    Every tenant gets exactly `orders_per_day` new orders per UTC day (created with a local daytime
    peak). Only deliveries sent before the end of the period are returned, so orders of the last
    days are still in flight. Reproducible: the same arguments (and tenant secrets) give
    byte-identical deliveries; each tenant's stream depends only on (seed, tenant name).
    """
    if days < 0 or orders_per_day < 0:
        raise ValueError("days and orders_per_day must be >= 0")
    if isinstance(start, dt.datetime):
        start = start.date()
    mix = mix or DEFAULT_MIX
    names = [t.tenant for t in tenants]
    if len(set(names)) != len(names):
        raise ValueError("generate: duplicate tenant")
    rows: list[tuple[int, int, int, SimDelivery]] = []
    for index, policy in enumerate(tenants):
        sim = _TenantSim(policy, seed, start, days, orders_per_day, mix)
        rows.extend((send_us, index, seq, d) for send_us, seq, d in sim.run())
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return [r[3] for r in rows]


def summarize(deliveries: Iterable[SimDelivery]) -> dict[str, Any]:
    """Counts for a CLI summary: deliveries, duplicates, per source / event type / order scenario."""
    deliveries = list(deliveries)
    orders: dict[tuple[str, str], str] = {}
    for d in deliveries:
        orders.setdefault((d.tenant, d.order_id), d.scenario)
    scenarios = Counter(orders.values())
    n_orders = len(orders)
    problems = sum(scenarios[s] for s in PROBLEMS)
    return {
        "deliveries": len(deliveries),
        "duplicates": sum(d.duplicate for d in deliveries),
        "orders": n_orders,
        "problem_orders": problems,
        "problem_share": problems / n_orders if n_orders else 0.0,
        "by_tenant": dict(sorted(Counter(d.tenant for d in deliveries).items())),
        "by_source": dict(sorted(Counter(d.source for d in deliveries).items())),
        "by_event_type": dict(sorted(Counter(d.event_type for d in deliveries if not d.duplicate).items())),
        "by_scenario": dict(sorted(scenarios.items())),
        "first_send_at": deliveries[0].send_at if deliveries else None,
        "last_send_at": deliveries[-1].send_at if deliveries else None,
    }


__all__ = [
    "CANCELLATIONS",
    "DEFAULT_MIX",
    "NORMAL",
    "PROBLEMS",
    "RETURNS",
    "SCENARIOS",
    "SimDelivery",
    "TrafficMix",
    "generate",
    "summarize",
]
