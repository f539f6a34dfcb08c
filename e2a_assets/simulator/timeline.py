"""When things happen to an order: the timed events of its story, per scenario, against the tenant's SLA.

Normal orders finish each step well inside the tenant's SLA; late_* scenarios overrun one step,
the other problem scenarios add exceptions, holds, failed deliveries or returns (DOMAIN §4).
Carrier hand-over follows a daily local cut-off and deliveries land in local daytime.
"""

from __future__ import annotations

from random import Random
from typing import Any

from e2a_assets.domain.policies import SlaPolicy
from e2a_assets.simulator import catalog
from e2a_assets.simulator.clock import DAY, HOUR, MINUTE, Tz
from e2a_assets.simulator.orders import Order

Event = tuple[int, str, dict[str, Any]]  # (epoch seconds, event type, extra fields for the payload)


class Lifecycle:
    """Times the events of one tenant's orders, drawing from the tenant's seeded random stream."""

    def __init__(self, rng: Random, tz: Tz, sla: SlaPolicy, update_rate: float):
        self.rng = rng
        self.tz = tz
        self.update_rate = update_rate
        self.pick_lim = sla.pick_minutes * MINUTE
        self.pack_lim = sla.pack_minutes * MINUTE
        self.ship_lim = sla.ship_minutes * MINUTE
        self.deliv_lim = sla.delivery_hours * HOUR

    def events(self, o: Order, flags: set[str]) -> list[Event]:
        """(time, event kind, extra) for every event of the order's story, unsorted and unfiltered.

        Sets `o.financial_status` to pending for payment_pending orders (their creation shows it).
        """
        rng = self.rng
        sc = o.scenario
        U = rng.uniform
        ev: list[Event] = []

        def add(t: float, kind: str, **extra: Any) -> int:
            t = int(t)
            ev.append((t, kind, extra))
            return t

        created = add(o.created, "order_created")
        if rng.random() < self.update_rate:
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
