"""Synthetic webhook traffic for e2a: Shopify orders plus the WMS and carrier scans that follow them.

`generate` builds a reproducible stream of signed deliveries (DOMAIN §1) for a set of tenants:
order lifecycles with plausible timings relative to each tenant's SLA, a ~20 % mix of problems
(DOMAIN §4), cancellations, returns, re-deliveries and slightly out-of-order arrival. Same
arguments (and the same tenant secrets) ⇒ byte-identical output: every random choice comes from a
`random.Random` seeded from (seed, tenant), ids are derived from it, and nothing reads the clock.

This module is a traffic source, not domain code: it loops per order in plain Python. It holds the
public API and the per-tenant loop; the parts live beside it: `orders` (what is ordered and how
events change an order), `timeline` (when each event happens), `payloads` (the signed webhooks),
`clock` (timestamps). See docs/simulator.md for what the traffic looks like and which knobs exist.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from random import Random
from typing import Any, Iterable, Mapping, Sequence

from e2a_assets.domain.policies import TenantPolicy
from e2a_assets.intake.ingestor import Delivery
from e2a_assets.simulator.clock import DAY, EPOCH, HOUR, MINUTE, Tz, epoch_seconds
from e2a_assets.simulator.orders import Order, OrderFactory, cumulative, pick_index
from e2a_assets.simulator.payloads import Payloads
from e2a_assets.simulator.timeline import Lifecycle

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
# One tenant's stream


class _TenantSim:
    """Generates all deliveries of one tenant: its orders, their stories, and when each webhook is sent."""

    def __init__(self, policy: TenantPolicy, seed: int, start: dt.date, days: int, orders_per_day: int,
                 mix: TrafficMix):
        secret = policy.webhook_secret()
        if not secret:
            raise ValueError(
                f"tenant {policy.tenant!r} has no webhook secret (set {policy.webhook_secret_env or 'webhook_secret_env'}"
                " or webhook_secret_dev)"
            )
        self.tenant = policy.tenant
        self.rng = rng = Random(f"e2a-sim:{seed}:{policy.tenant}")
        tz = Tz(policy.timezone)
        self.start = epoch_seconds(start)
        self.end = self.start + days * DAY
        self.days = days
        self.orders_per_day = orders_per_day
        self.mix = mix
        # All parts share the tenant's random stream and some draw from it when built: keep this order.
        self.orders = OrderFactory(policy.tenant, rng, tz, mix.tagged_rate)
        self.payloads = Payloads(policy.tenant, secret, policy.shop_domain or f"{policy.tenant}.myshopify.com",
                                 policy.currency, tz, rng)
        self.lifecycle = Lifecycle(rng, tz, policy.sla, mix.update_rate)
        names, weights = zip(*((n, w) for n, w in mix.problem_weights.items() if w > 0))
        self.problem_names = names
        self.problem_cum = cumulative(weights)
        self.out: list[tuple[int, int, SimDelivery]] = []
        self.seq = 0

    def _scenario(self) -> str:
        rng, mix = self.rng, self.mix
        u = rng.random()
        if u < mix.problem_rate:
            return self.problem_names[pick_index(self.problem_cum, rng.random())]
        u -= mix.problem_rate
        if u < mix.cancel_rate:
            return CANCELLATIONS[rng.random() < 0.5]
        u -= mix.cancel_rate
        if u < mix.return_rate:
            return RETURNS[rng.random() < 0.25]
        return NORMAL

    def _emit(self, send_us: int, delivery: SimDelivery) -> None:
        self.out.append((send_us, self.seq, delivery))
        self.seq += 1

    def _send(self, order: Order, t: int, event_type: str, extra: Mapping[str, Any]) -> None:
        """Emit the event's delivery as a sender would: shortly after t, sometimes held back or sent twice."""
        rng, mix = self.rng, self.mix
        end_us = self.end * 1_000_000
        source, headers, body = self.payloads.render(order, t, event_type, extra)
        send_us = t * 1_000_000 + rng.randrange(150_000, 4_000_000)
        if rng.random() < mix.delayed_rate:  # sender queue / retry: arrives late
            send_us += int(min(rng.expovariate(1 / (20 * MINUTE)), 3 * HOUR) * 1_000_000) + 60_000_000
        if send_us >= end_us:
            return
        oid = str(order.oid)
        d = SimDelivery(self.tenant, source, headers, body, EPOCH + dt.timedelta(microseconds=send_us),
                        event_type, oid, False, order.scenario)
        self._emit(send_us, d)
        if rng.random() < mix.duplicate_rate:  # the sender re-delivers (lost ack, timeout)
            again = send_us + int(rng.choice((5, 10, 30, 60, 300, 900, 3600)) * rng.uniform(1, 2) * 1_000_000)
            if again < end_us:
                dup = SimDelivery(self.tenant, source, headers, body, EPOCH + dt.timedelta(microseconds=again),
                                  event_type, oid, True, order.scenario)
                self._emit(again, dup)

    def run(self) -> list[tuple[int, int, SimDelivery]]:
        """(send time in epoch µs, sequence, delivery) for every delivery sent within the period."""
        for day in range(self.days):
            day_start = self.start + day * DAY
            created_times = sorted(self.orders.created_time(day_start) for _ in range(self.orders_per_day))
            for created in created_times:
                order, flags = self.orders.new(created, self._scenario())
                timeline = self.lifecycle.events(order, flags)
                timeline.sort(key=lambda e: e[0])
                for t, event_type, extra in timeline:
                    if t >= self.end:
                        break
                    order.apply(event_type, t, extra, self.rng)  # the webhook shows the order as of t
                    self._send(order, t, event_type, extra)
        return self.out


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
