"""The traffic simulator: reproducible, valid, signed, realistic in mix, and ingestible."""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from e2a_assets.domain.events import ACCEPTED, MalformedEvent, canonicalize
from e2a_assets.domain.policies import load_registry
from e2a_assets.intake.ingestor import Delivery, Ingestor
from e2a_assets.simulator.runner import LiveStats, ReceiverUnreachable, ingest_deliveries, send_live
from e2a_assets.simulator.traffic import CANCELLATIONS, PROBLEMS, RETURNS, TrafficMix, generate
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.schema import event_log
from e2a_assets.webhooks.signing import signature_header, verify

ROOT = Path(__file__).resolve().parents[1]
START = dt.date(2025, 8, 4)


@pytest.fixture(scope="module")
def registry():
    return load_registry(ROOT / "policies")


@pytest.fixture(scope="module")
def small(registry):
    return generate(registry.policies, days=3, orders_per_day=40, seed=11, start=START)


@pytest.fixture(scope="module")
def large(registry):
    return generate(registry.policies, days=10, orders_per_day=150, seed=2024, start=START)


@pytest.fixture(scope="module")
def canonical(large):
    return [canonicalize(d.tenant, d.source, d.headers, d.body) for d in large]


def _orders(deliveries):
    scenario = {}
    for d in deliveries:
        scenario.setdefault((d.tenant, d.order_id), d.scenario)
    return scenario


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_deliveries(registry, small):
    again = generate(registry.policies, days=3, orders_per_day=40, seed=11, start=START)
    assert again == small
    assert [d.body for d in again] == [d.body for d in small]
    assert [list(d.headers.items()) for d in again] == [list(d.headers.items()) for d in small]


def test_different_seed_gives_different_deliveries(registry, small):
    other = generate(registry.policies, days=3, orders_per_day=40, seed=12, start=START)
    assert [d.body for d in other] != [d.body for d in small]
    assert {d.order_id for d in other}.isdisjoint({d.order_id for d in small})


def test_tenant_stream_does_not_depend_on_other_tenants(registry, small):
    demo = registry["demo-3pl"]
    alone = generate([demo], days=3, orders_per_day=40, seed=11, start=START)
    assert alone == [d for d in small if d.tenant == "demo-3pl"]


def test_empty_and_invalid_arguments(registry):
    assert generate(registry.policies, days=0, orders_per_day=10, seed=1, start=START) == []
    assert generate(registry.policies, days=2, orders_per_day=0, seed=1, start=START) == []
    with pytest.raises(ValueError):
        generate(registry.policies, days=-1, orders_per_day=1, seed=1, start=START)
    with pytest.raises(ValueError):
        TrafficMix(problem_rate=1.5)


# ------------------------------------------------------------------------------ validity


def test_every_delivery_is_well_formed_and_signed(registry, large, canonical):
    for d, ev in zip(large, canonical):
        assert not isinstance(ev, MalformedEvent)
        assert ev.status == ACCEPTED
        assert ev.event_type == d.event_type
        assert ev.order_id == d.order_id
        assert ev.source == d.source
        policy = registry[d.tenant]
        assert verify(policy.webhook_secret(), d.body, d.headers[signature_header(d.source)])
        if d.source == "shopify":
            assert registry.by_shop_domain(d.headers["X-Shopify-Shop-Domain"]).tenant == d.tenant
        else:
            assert d.headers["X-E2A-Tenant"] == d.tenant
        assert d.send_at.tzinfo is not None and d.send_at >= ev.occurred_at


def test_secret_of_one_tenant_does_not_verify_another(registry, small):
    demo_secret = registry["demo-3pl"].webhook_secret()
    other = next(d for d in small if d.tenant != "demo-3pl")
    assert not verify(demo_secret, other.body, other.headers[signature_header(other.source)])


def test_delivery_converts_to_ingestion_delivery(small):
    d = small[0]
    delivery = d.delivery()
    assert isinstance(delivery, Delivery)
    assert (delivery.tenant, delivery.source, delivery.body) == (d.tenant, d.source, d.body)
    assert dict(delivery.headers) == d.headers


def test_sorted_by_send_at_and_within_period(large):
    times = [d.send_at for d in large]
    assert times == sorted(times)
    begin = dt.datetime(2025, 8, 4, tzinfo=dt.timezone.utc)
    assert begin <= times[0] and times[-1] < begin + dt.timedelta(days=10)


def test_shopify_order_payload_shape(large, canonical):
    created = [(d, ev) for d, ev in zip(large, canonical) if ev.event_type == "order_created"]
    assert created
    names = set()
    for d, ev in created:
        assert ev.order_name.startswith("#") and ev.order_created_at is not None
        assert ev.total_price_cents > 0 and ev.currency == "USD"
        assert ev.shipping_code in {"standard", "express", "overnight", "free"}
        assert ev.line_count >= 1 and ev.item_quantity >= ev.line_count
        assert ev.ship_country
        names.add((d.tenant, ev.order_name))
        assert "X-Shopify-Triggered-At" in d.headers and "X-Shopify-Webhook-Id" in d.headers
    assert ("demo-3pl", "#1001") in names
    codes = Counter(ev.shipping_code for _, ev in created)
    assert len(codes) == 4
    flagged = sum(1 for _, ev in created if ev.tags and any(
        f in ev.tags.lower() for f in ("rush", "fragile", "gift_wrap", "oversized", "hazmat", "photo",
                                       "quality_check", "custom_packaging")))
    assert 0.10 < flagged / len(created) < 0.35


def test_orders_have_a_daytime_peak(large, canonical):
    hours = Counter()
    for d, ev in zip(large, canonical):
        if ev.event_type == "order_created" and d.tenant == "demo-3pl":  # demo-3pl is on UTC
            hours[ev.order_created_at.hour] += 1
    night = sum(hours[h] for h in range(0, 6))
    day = sum(hours[h] for h in range(10, 16))
    assert day > 4 * night


# ------------------------------------------------------------------------------ mix


def test_proportions(large, registry):
    scenario = _orders(large)
    n = len(scenario)
    counts = Counter(scenario.values())
    problems = sum(counts[s] for s in PROBLEMS) / n
    cancels = sum(counts[s] for s in CANCELLATIONS) / n
    returns = sum(counts[s] for s in RETURNS) / n
    assert n == len(registry.policies) * 10 * 150
    assert 0.16 < problems < 0.24
    assert 0.01 < cancels < 0.035
    assert 0.015 < returns < 0.045
    assert all(counts[p] > 0 for p in PROBLEMS)
    dup_share = sum(d.duplicate for d in large) / sum(not d.duplicate for d in large)
    assert 0.02 < dup_share < 0.04


def test_duplicates_resend_an_earlier_delivery_verbatim(large):
    first = {}
    for d in large:
        key = (d.tenant, d.body)
        if d.duplicate:
            original = first[key]
            assert original.headers == d.headers and original.send_at < d.send_at
        else:
            assert key not in first
            first[key] = d


def test_some_events_arrive_out_of_order(large, canonical):
    by_order = defaultdict(list)
    for d, ev in zip(large, canonical):
        if not d.duplicate:
            by_order[(d.tenant, d.order_id)].append((d.send_at, ev.occurred_at, ev.event_type))
    inverted = 0
    pick_before_paid = 0
    for events in by_order.values():
        occurred = [o for _, o, _ in events]  # events are in send order
        if any(b < a for a, b in zip(occurred, occurred[1:])):
            inverted += 1
        types = [t for _, _, t in events]
        if "order_paid" in types and "pick_started" in types and types.index("pick_started") < types.index("order_paid"):
            pick_before_paid += 1
    assert inverted > 0.02 * len(by_order)
    assert pick_before_paid > 0


def _milestones(large, canonical):
    first = defaultdict(dict)
    types = defaultdict(Counter)
    for d, ev in zip(large, canonical):
        key = (d.tenant, d.order_id)
        types[key][ev.event_type] += 0 if d.duplicate else 1
        prev = first[key].get(ev.event_type)
        if prev is None or ev.occurred_at < prev:
            first[key][ev.event_type] = ev.occurred_at
    return first, types


def test_timings_follow_the_tenant_sla(registry, large, canonical):
    scenario = _orders(large)
    first, _ = _milestones(large, canonical)

    def minutes(key, a, b):
        m = first[key]
        if a in m and b in m:
            return (m[b] - m[a]).total_seconds() / 60
        return None

    def shipped(key):
        m = first[key]
        times = [m[t] for t in ("manifested", "picked_up", "order_fulfilled") if t in m]
        return min(times) if times else None

    checked = Counter()
    for key, sc in scenario.items():
        sla = registry[key[0]].sla
        pick = minutes(key, "order_paid", "pick_completed")
        pack = minutes(key, "pick_completed", "pack_completed")
        ship_at = shipped(key)
        ship = (ship_at - first[key]["pack_completed"]).total_seconds() / 60 if ship_at and "pack_completed" in first[key] else None
        if sc == "normal":
            if pick is not None:
                assert 0 < pick <= sla.pick_minutes
                checked["normal_pick"] += 1
            if pack is not None:
                assert 0 < pack <= sla.pack_minutes
            if ship is not None:
                assert 0 < ship <= sla.ship_minutes
                checked["normal_ship"] += 1
            if "delivered" in first[key]:
                assert first[key]["delivered"] > first[key]["picked_up"]
                checked["normal_delivered"] += 1
        elif sc == "late_pick" and pick is not None:
            assert pick > sla.pick_minutes
            checked[sc] += 1
        elif sc == "late_pack" and pack is not None:
            assert pack > sla.pack_minutes
            checked[sc] += 1
        elif sc == "late_ship" and ship is not None:
            assert ship > sla.ship_minutes
            checked[sc] += 1
        elif sc == "missing_pack_scan":
            assert "pack_completed" not in first[key]
    assert min(checked.values()) > 10 and len(checked) == 6, checked


def test_problem_causes_show_up_in_the_payloads(large, canonical):
    scenario = _orders(large)
    first, types = _milestones(large, canonical)
    invalid_created = set()
    fixed = set()
    pending = set()
    shortage = set()
    zero = set()
    reported = Counter()
    resolved = Counter()
    for d, ev in zip(large, canonical):
        key = (d.tenant, d.order_id)
        if ev.event_type == "order_created":
            if ev.address_valid is False:
                invalid_created.add(key)
            if ev.financial_status == "pending":
                pending.add(key)
            if ev.inventory_shortage:
                shortage.add(key)
            if ev.zero_available:
                zero.add(key)
        if ev.event_type == "order_updated" and ev.address_valid and key in invalid_created:
            fixed.add(key)
        if ev.event_type == "exception_reported":
            reported[ev.reason_code] += 1
        if ev.event_type == "exception_resolved":
            resolved[ev.reason_code] += 1
    assert invalid_created == {k for k, s in scenario.items() if s == "invalid_address"}
    assert 0 < len(fixed) < len(invalid_created)
    assert pending == {k for k, s in scenario.items() if s == "payment_pending"}
    assert any(types[k]["order_paid"] for k in pending) and not all(types[k]["order_paid"] for k in pending)
    assert shortage == {k for k, s in scenario.items() if s == "inventory_shortage"}
    assert 0 < len(zero) < len(shortage)
    assert set(reported) == {"DAMAGED_PACKAGE", "STOCK_MISMATCH"}
    assert resolved["DAMAGED_PACKAGE"] > 0 and resolved["INVENTORY_SHORTAGE"] > 0
    failed = {k for k in scenario if types[k]["delivery_failed"]}
    assert failed and failed <= {k for k, s in scenario.items() if s == "delivery_failed"}
    assert any(types[k]["delivery_failed"] == 2 for k in failed)
    cancelled_after_pick = [k for k, s in scenario.items() if s == "cancelled_after_pick" and types[k]["order_cancelled"]]
    assert cancelled_after_pick and all(types[k]["pick_completed"] for k in cancelled_after_pick)
    cancelled_before = [k for k, s in scenario.items() if s == "cancelled_before_pick" and types[k]["order_cancelled"]]
    assert cancelled_before and not any(types[k]["pick_started"] for k in cancelled_before)
    assert sum(types[k]["return_received"] + types[k]["returned_to_sender"] for k in scenario) > 0
    assert sum(types[k]["refund_created"] for k in scenario) > 0


def test_last_days_are_still_in_flight(large, canonical):
    scenario = _orders(large)
    first, _ = _milestones(large, canonical)
    last_day = dt.date(2025, 8, 13)
    recent = [k for k in scenario if first[k]["order_created"].date() == last_day]
    assert recent
    assert not any("delivered" in first[k] for k in recent)
    assert sum("pick_completed" in first[k] for k in recent) > 0.5 * len(recent)


# ------------------------------------------------------------------------------ ingestion


def test_ingest_into_sqlite_stores_unique_events_and_counts_duplicates(sqlite_url, registry, small):
    engine = make_engine(sqlite_url)
    progress = []
    stats = ingest_deliveries(Ingestor(engine), small, batch_size=97, on_progress=progress.append)
    unique = sum(not d.duplicate for d in small)
    dups = sum(d.duplicate for d in small)
    assert dups > 0
    assert stats.stored == unique and stats.duplicate == dups
    assert stats.ignored == 0 and stats.dead_letter == 0
    assert progress[-1] == len(small) and progress == sorted(progress)
    assert sum(stats.by_type.values()) == unique
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(event_log)).scalar_one() == unique
        per_tenant = dict(conn.execute(select(event_log.c.tenant, func.count()).group_by(event_log.c.tenant)).all())
    assert per_tenant == dict(Counter(d.tenant for d in small if not d.duplicate))

    again = ingest_deliveries(Ingestor(engine), small, batch_size=500)
    assert again.stored == 0 and again.duplicate == len(small)


def test_ingest_with_simulated_clock(sqlite_url, small):
    engine = make_engine(sqlite_url)
    subset = small[:50]
    ingest_deliveries(Ingestor(engine), subset, batch_size=10, simulated_clock=True)
    with engine.connect() as conn:
        received = conn.execute(select(func.max(event_log.c.received_at))).scalar_one()
    assert received.replace(tzinfo=dt.timezone.utc) == max(d.send_at for d in subset)


# ------------------------------------------------------------------------------ live sending


class _Receiver:
    """A tiny webhook receiver: verifies signatures, answers 503 to the first try of each body."""

    def __init__(self, registry):
        self.registry = registry
        self.tries: Counter[str] = Counter()
        self.accepted: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    async def webhook(self, request: Request) -> JSONResponse:
        source = request.path_params["source"]
        body = await request.body()
        if source == "shopify":
            policy = self.registry.by_shop_domain(request.headers.get("x-shopify-shop-domain", ""))
        else:
            policy = self.registry.get(request.headers.get("x-e2a-tenant", ""))
        if policy is None or not verify(policy.webhook_secret(), body, request.headers.get(signature_header(source))):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            self.tries[digest] += 1
            first = self.tries[digest] == 1
            if not first:
                self.accepted.append((source, digest))
        if first:
            return JSONResponse({"error": "storage unavailable"}, status_code=503)
        return JSONResponse({"status": "stored"})


@pytest.fixture
def live_receiver(registry):
    receiver = _Receiver(registry)
    app = Starlette(routes=[Route("/webhooks/{source}", receiver.webhook, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", receiver
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_send_live_retries_until_stored(live_receiver, small):
    base_url, receiver = live_receiver
    batch = [d for d in small if not d.duplicate][:12]
    progress = []
    stats = send_live(base_url, batch, rate=None, retries=3, on_progress=progress.append, backoff_base=0.001)
    assert isinstance(stats, LiveStats)
    assert stats.deliveries == 12 and stats.delivered == 12
    assert stats.by_status == {503: 12, 200: 12}
    assert stats.final_status == {200: 12}
    assert stats.attempts == 24 and stats.retries == 12
    assert stats.rejected == 0 and stats.gave_up == 0 and stats.connection_errors == 0
    assert progress == list(range(1, 13))
    assert sorted(s for s, _ in receiver.accepted) == sorted(d.source for d in batch)


def test_send_live_does_not_retry_client_errors_and_respects_rate(live_receiver, small):
    base_url, receiver = live_receiver
    good = [d for d in small if not d.duplicate][:4]
    forged = Delivery(good[0].tenant, good[0].source, {**good[0].headers, signature_header(good[0].source): "AAAA"},
                      good[0].body + b" ")
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:
        stats = send_live(base_url, [forged, *good], rate=20, retries=2, client=client, backoff_base=0.001)
    elapsed = time.monotonic() - started
    assert stats.rejected == 1 and stats.delivered == 4
    assert stats.by_status == {401: 1, 503: 4, 200: 4}
    assert stats.attempts == 9
    assert elapsed >= 8 / 20 * 0.9  # 9 request starts at most 20/s


def test_send_live_gives_up_on_connection_errors():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here
    d = Delivery("demo-3pl", "wms", {"X-E2A-Tenant": "demo-3pl"}, b"{}")
    stats = send_live(f"http://127.0.0.1:{port}", [d], rate=None, retries=2, backoff_base=0.001, timeout=2)
    assert stats.gave_up == 1 and stats.connection_errors == 3 and stats.attempts == 3
    assert stats.final_status == {0: 1} and stats.by_status == {}


def test_send_live_stops_when_the_receiver_goes_away(live_receiver, small):
    """A receiver that disappears mid-run ends the run with what was delivered, not a hang."""
    base_url, _receiver = live_receiver
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    gone = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    batch = [d for d in small if not d.duplicate][:8]
    with httpx.Client(timeout=5) as client:
        # The first two deliveries (503, then 200 on the retry) reach the receiver; then it is gone.
        routed = _Rerouting(client, base_url, gone, after=4)
        with pytest.raises(ReceiverUnreachable) as caught:
            send_live(base_url, batch, rate=None, retries=1, client=routed, backoff_base=0.001, max_unreachable=3)
    stats = caught.value.stats
    assert (stats.delivered, stats.deliveries, stats.gave_up) == (2, 5, 3)
    assert "3 deliveries in a row" in str(caught.value) and "2 of 5 delivered" in str(caught.value)


class _Rerouting:
    """An httpx client stand-in whose receiver moves to a dead address after `after` requests."""

    def __init__(self, client: httpx.Client, base_url: str, gone: str, after: int):
        self.client, self.base_url, self.gone, self.left = client, base_url, gone, after

    def post(self, url: str, **kwargs):  # noqa: ANN003, ANN201
        if self.left <= 0:
            url = url.replace(self.base_url, self.gone)
        self.left -= 1
        return self.client.post(url, **kwargs)
