"""The webhook receiver over real HTTP (uvicorn on a free loopback port), DOMAIN §1.2 response codes.

Every test talks to a live server with httpx (raw sockets where a test must control exactly which
bytes are sent). The warehouse is SQLite; the load and outage tests also run on a throwaway
Postgres database (`postgres_url` in conftest.py).
"""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import make_url

from e2a_assets.domain.policies import TenantRegistry, default_policy
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.schema import dead_letters, event_log
from e2a_assets.webhooks.app import create_app
from e2a_assets.webhooks.server import running_server
from e2a_assets.webhooks.signing import sign
from e2a_tests import factories

SECRETS = {"acme": "acme-secret-0f3a", "globex": "globex-secret-77b1"}
REGISTRY = TenantRegistry(
    (
        default_policy("acme", shop_domain="acme.myshopify.com", webhook_secret_dev=SECRETS["acme"]),
        default_policy("globex", shop_domain="globex.myshopify.com", webhook_secret_dev=SECRETS["globex"]),
        default_policy("nokey", shop_domain="nokey.myshopify.com"),  # no secret configured
    )
)
SHOP_DOMAINS = {"acme": "acme.myshopify.com", "globex": "globex.myshopify.com"}
MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# deliveries


def envelope(event_id: str, event_type: str = "pick_completed", order_id: str = "1001", **extra) -> bytes:
    doc = {"event_id": event_id, "event_type": event_type, "order_id": order_id,
           "occurred_at": "2025-08-01T10:00:00Z", **extra}
    return json.dumps(doc).encode()


def shopify_order(order_id: int = 1001, **extra) -> bytes:
    """The raw body of a Shopify order webhook (factories.shopify_order, serialised)."""
    return json.dumps(factories.shopify_order(order_id, "2025-08-01T09:00:00Z", **extra)).encode()


def signed(source: str, body: bytes, tenant: str = "acme", *, secret: str | None = None,
           topic: str = "orders/create", event_id: str | None = None) -> dict[str, str]:
    """Headers of a correctly signed delivery (override `secret` to sign wrongly)."""
    signature = sign(secret if secret is not None else SECRETS[tenant], body)
    headers = {"Content-Type": "application/json"}
    if source == "shopify":
        headers.update({
            "X-Shopify-Shop-Domain": SHOP_DOMAINS.get(tenant, f"{tenant}.myshopify.com"),
            "X-Shopify-Hmac-Sha256": signature,
            "X-Shopify-Topic": topic,
            "X-Shopify-Event-Id": event_id or f"shp-{uuid.uuid4().hex}",
            "X-Shopify-Webhook-Id": f"wh-{uuid.uuid4().hex}",
        })
    else:
        headers.update({"X-E2A-Tenant": tenant, "X-E2A-Hmac-Sha256": signature})
    return headers


def events_stored(engine: Engine, where=None) -> int:  # noqa: ANN001
    stmt = select(func.count()).select_from(event_log)
    if where is not None:
        stmt = stmt.where(where)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def dead_letter_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(dead_letters).order_by(dead_letters.c.id)).mappings()]


# ---------------------------------------------------------------------------------------------
# a live receiver


@dataclass
class Receiver:
    base_url: str
    engine: Engine
    client: httpx.Client

    def post(self, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.post(f"/webhooks/{source}", content=body, headers=headers)

    def metrics(self) -> dict:
        return self.client.get("/metrics").json()


@pytest.fixture
def receiver(sqlite_url: str) -> Iterator[Receiver]:
    engine = make_engine(sqlite_url)
    with running_server(create_app(engine, REGISTRY)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        yield Receiver(base_url, engine, client)
    engine.dispose()


def _host_port(base_url: str) -> tuple[str, int]:
    url = httpx.URL(base_url)
    return url.host, url.port


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# ---------------------------------------------------------------------------------------------
# 200 stored / duplicate, 202 ignored


def test_wms_event_is_stored_200(receiver: Receiver):
    body = envelope("wms-1", "pick_completed")
    response = receiver.post("wms", body, signed("wms", body))
    assert response.status_code == 200
    assert response.json() == {"status": "stored", "event_id": "wms-1"}
    with receiver.engine.connect() as conn:
        row = conn.execute(select(event_log)).mappings().one()
    assert (row["tenant"], row["source"], row["event_type"], row["order_id"]) == ("acme", "wms", "pick_completed", "1001")


def test_carrier_event_is_stored_200(receiver: Receiver):
    body = envelope("trk-1", "delivered", data={"carrier": "UPS"})
    response = receiver.post("carrier", body, signed("carrier", body, "globex"))
    assert response.status_code == 200
    assert response.json() == {"status": "stored", "event_id": "trk-1"}
    assert events_stored(receiver.engine, event_log.c.tenant == "globex") == 1


def test_shopify_order_tenant_comes_from_shop_domain(receiver: Receiver):
    body = shopify_order(5001)
    headers = signed("shopify", body, "globex", event_id="shp-evt-5001")
    headers["X-Shopify-Shop-Domain"] = "GlobeX.MyShopify.com"  # mapped case-insensitively
    response = receiver.post("shopify", body, headers)
    assert response.status_code == 200
    assert response.json() == {"status": "stored", "event_id": "shp-evt-5001"}
    with receiver.engine.connect() as conn:
        row = conn.execute(select(event_log)).mappings().one()
    assert (row["tenant"], row["event_type"], row["order_id"], row["total_price_cents"]) == \
        ("globex", "order_created", "5001", 4990)


def test_duplicate_is_acknowledged_200_and_stored_once(receiver: Receiver):
    body = envelope("dup-1", "pack_completed")
    headers = signed("wms", body)
    first, second, third = (receiver.post("wms", body, headers) for _ in range(3))
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert first.json() == {"status": "stored", "event_id": "dup-1"}
    assert second.json() == third.json() == {"status": "duplicate", "event_id": "dup-1"}
    assert events_stored(receiver.engine) == 1


def test_same_event_id_for_another_tenant_is_a_different_event(receiver: Receiver):
    body = envelope("shared-id")
    assert receiver.post("wms", body, signed("wms", body, "acme")).json()["status"] == "stored"
    assert receiver.post("wms", body, signed("wms", body, "globex")).json()["status"] == "stored"
    assert events_stored(receiver.engine) == 2


@pytest.mark.parametrize(
    "source, make",
    [
        ("wms", lambda: (envelope("odd-1", "forklift_serviced"), {})),
        ("carrier", lambda: (envelope("odd-2", "drone_sighted"), {})),
        ("shopify", lambda: (json.dumps({"id": 77, "updated_at": "2025-08-01T09:00:00Z"}).encode(),
                             {"topic": "products/update"})),
    ],
)
def test_unknown_topic_or_type_is_kept_as_ignored_202(receiver: Receiver, source: str, make: Callable):
    body, kw = make()
    response = receiver.post(source, body, signed(source, body, **kw))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    with receiver.engine.connect() as conn:
        statuses = conn.execute(select(event_log.c.status)).scalars().all()
    assert statuses == ["ignored"]


# ---------------------------------------------------------------------------------------------
# 401: nothing stored, nothing dead-lettered


def _bad_signature(source: str, body: bytes) -> dict[str, str]:
    headers = signed(source, body)
    name = "X-Shopify-Hmac-Sha256" if source == "shopify" else "X-E2A-Hmac-Sha256"
    headers[name] = sign(SECRETS["acme"], body + b" ")
    return headers


def _missing_signature(source: str, body: bytes) -> dict[str, str]:
    headers = signed(source, body)
    headers.pop("X-Shopify-Hmac-Sha256" if source == "shopify" else "X-E2A-Hmac-Sha256")
    return headers


def _garbage_signature(source: str, body: bytes) -> dict[str, str]:
    headers = signed(source, body)
    headers["X-Shopify-Hmac-Sha256" if source == "shopify" else "X-E2A-Hmac-Sha256"] = "not base64 é!".encode("latin-1")
    return headers


def _unknown_tenant(source: str, body: bytes) -> dict[str, str]:
    headers = signed(source, body, secret=SECRETS["acme"])
    if source == "shopify":
        headers["X-Shopify-Shop-Domain"] = "nobody.myshopify.com"
    else:
        headers["X-E2A-Tenant"] = "nobody"
    return headers


def _missing_tenant(source: str, body: bytes) -> dict[str, str]:
    headers = signed(source, body)
    headers.pop("X-Shopify-Shop-Domain" if source == "shopify" else "X-E2A-Tenant")
    return headers


def _other_tenants_secret(source: str, body: bytes) -> dict[str, str]:
    # Claims to be acme, signed with globex's (valid, but foreign) secret.
    return signed(source, body, "acme", secret=SECRETS["globex"])


def _tenant_without_secret(source: str, body: bytes) -> dict[str, str]:
    return signed(source, body, "nokey", secret="")


@pytest.mark.parametrize("source", ["shopify", "wms", "carrier"])
@pytest.mark.parametrize(
    "make_headers",
    [_bad_signature, _missing_signature, _garbage_signature, _unknown_tenant, _missing_tenant,
     _other_tenants_secret, _tenant_without_secret],
    ids=lambda f: f.__name__.strip("_"),
)
def test_unauthenticated_delivery_is_401_and_nothing_is_stored(receiver: Receiver, source: str, make_headers):
    body = shopify_order(42) if source == "shopify" else envelope("auth-1", "delivered" if source == "carrier" else "pick_completed")
    response = receiver.post(source, body, make_headers(source, body))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "unauthorized"
    assert events_stored(receiver.engine) == 0
    assert dead_letter_rows(receiver.engine) == []


def test_unsigned_garbage_is_401_not_422(receiver: Receiver):
    """The signature is checked over the raw bytes before any parsing: no dead letter for strangers."""
    body = b"{definitely not json"
    response = receiver.post("wms", body, _bad_signature("wms", body))
    assert response.status_code == 401
    assert dead_letter_rows(receiver.engine) == []


# ---------------------------------------------------------------------------------------------
# 413


def test_declared_oversized_body_is_413_without_reading_it(receiver: Receiver):
    """Only the headers are sent: the answer must come without waiting for the 2 MB body."""
    with socket.create_connection(_host_port(receiver.base_url), timeout=5) as sock:
        sock.sendall(
            b"POST /webhooks/wms HTTP/1.1\r\nHost: test\r\nX-E2A-Tenant: acme\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
        )
        raw = _read_response(sock)
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert b"payload too large" in raw
    assert events_stored(receiver.engine) == 0


def test_streamed_body_is_cut_off_once_it_passes_1_mib(receiver: Receiver):
    """Chunked upload with no Content-Length: 413 as soon as 1 MiB is passed, before the end."""
    chunk = b"a" * 65536
    with socket.create_connection(_host_port(receiver.base_url), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/wms HTTP/1.1\r\nHost: test\r\nX-E2A-Tenant: acme\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(MIB // len(chunk) + 1):  # 1 MiB + 64 KiB, and the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        raw = _read_response(sock)
    assert raw.startswith(b"HTTP/1.1 413"), raw[:200]
    assert events_stored(receiver.engine) == 0 and dead_letter_rows(receiver.engine) == []


def test_sender_hanging_up_mid_body_is_counted_not_an_error(receiver: Receiver):
    """Senders time out and drop connections: nothing is stored, nothing is a server error."""
    with socket.create_connection(_host_port(receiver.base_url), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/wms HTTP/1.1\r\nHost: test\r\nX-E2A-Tenant: acme\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b"{" * 100)
    deadline = time.monotonic() + 10
    while (metrics := receiver.client.get("/metrics").json())["requests"]["disconnected"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metrics["requests"]["disconnected"] == 1
    assert metrics["requests"]["error"] == 0
    assert events_stored(receiver.engine) == 0 and dead_letter_rows(receiver.engine) == []


def test_oversized_body_over_httpx_is_413(receiver: Receiver):
    body = b'{"pad": "' + b"x" * MIB + b'"}'
    response = receiver.post("wms", body, signed("wms", body))
    assert response.status_code == 413
    assert response.json()["max_bytes"] == MIB

    def stream() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536  # 1.25 MiB, chunked

    response = receiver.client.post("/webhooks/wms", content=stream(), headers=signed("wms", b""))
    assert response.status_code == 413
    assert events_stored(receiver.engine) == 0 and dead_letter_rows(receiver.engine) == []


def test_body_of_exactly_1_mib_is_accepted(receiver: Receiver):
    head = envelope("big-1", data={"pad": ""})[:-3]  # ... "pad": "   <- open string
    body = head + b"p" * (MIB - len(head) - 3) + b'"}}'
    assert len(body) == MIB
    response = receiver.post("wms", body, signed("wms", body))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored", "event_id": "big-1"}


# ---------------------------------------------------------------------------------------------
# 422 + dead letter


@pytest.mark.parametrize(
    "source, body, extra, reason_part",
    [
        ("wms", b"{not json", {}, "not valid JSON"),
        ("wms", b"[1, 2, 3]", {}, "not a JSON object"),
        ("wms", json.dumps({"event_type": "pick_completed", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z"}).encode(),
         {}, "missing field event_id"),
        ("carrier", envelope("bad-ts", "delivered").replace(b"2025-08-01T10:00:00Z", b"yesterday"), {}, "invalid timestamp"),
        ("carrier", envelope("naive-ts", "delivered").replace(b"2025-08-01T10:00:00Z", b"2025-08-01T10:00:00"), {},
         "no UTC offset"),
        ("shopify", json.dumps({"name": "#1", "created_at": "2025-08-01T09:00:00Z"}).encode(), {}, "missing field id"),
    ],
)
def test_signed_malformed_delivery_is_422_with_dead_letter(receiver: Receiver, source, body, extra, reason_part):
    response = receiver.post(source, body, signed(source, body, **extra))
    assert response.status_code == 422
    payload = response.json()
    assert payload["status"] == "dead_letter"
    assert reason_part in payload["reason"]
    assert events_stored(receiver.engine) == 0
    [letter] = dead_letter_rows(receiver.engine)
    assert letter["id"] == payload["dead_letter_id"]
    assert (letter["tenant"], letter["source"], letter["status"]) == ("acme", source, "pending")
    assert letter["reason"] == payload["reason"]
    assert bytes(letter["body"]) == body  # the raw body, byte for byte
    kept_headers = {k.lower(): v for k, v in json.loads(letter["headers"]).items()}
    # The signature is kept by name only: its value would let anyone replay the body.
    signature = "x-shopify-hmac-sha256" if source == "shopify" else "x-e2a-hmac-sha256"
    assert kept_headers[signature] == "[redacted]"


# ---------------------------------------------------------------------------------------------
# health, readiness, metrics, genuine bugs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_and_readyz(receiver: Receiver):
    assert receiver.client.get("/healthz").json() == {"status": "ok"}
    ready = receiver.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["registry"] == REGISTRY.digest


def test_readyz_is_503_when_warehouse_is_unreachable_but_healthz_stays_200():
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{_closed_port()}/e2a")
    with running_server(create_app(engine, REGISTRY)) as base_url, httpx.Client(base_url=base_url) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        body = envelope("down-1")
        response = client.post("/webhooks/wms", content=body, headers=signed("wms", body))
        assert response.status_code == 503
        assert response.json() == {"error": "storage unavailable", "retry": True}
        assert "Retry-After" in response.headers
    engine.dispose()


def test_metrics_count_requests_per_outcome(receiver: Receiver):
    ok = envelope("m-1")
    receiver.post("wms", ok, signed("wms", ok))
    receiver.post("wms", ok, signed("wms", ok))
    receiver.post("wms", ok, _bad_signature("wms", ok))
    bad = b"nope"
    receiver.post("carrier", bad, signed("carrier", bad))
    metrics = receiver.metrics()
    counts = metrics["requests"]
    assert (counts["stored"], counts["duplicate"], counts["unauthorized"], counts["dead_letter"]) == (1, 1, 1, 1)
    assert counts["unavailable"] == counts["error"] == 0
    assert metrics["requests_by_source"]["carrier"] == {"dead_letter": 1}
    assert metrics["batches"] >= 1 and metrics["pending"] == 0

    # A Prometheus scraper asks for text and gets the same counters in the exposition format.
    scrape = receiver.client.get("/metrics", headers={"Accept": "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"})
    assert scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    series = prometheus_samples(scrape.text)
    assert series[("e2a_webhook_requests_total", (("outcome", "stored"), ("source", "wms")))] == 1
    assert series[("e2a_webhook_requests_total", (("outcome", "unauthorized"), ("source", "wms")))] == 1
    assert series[("e2a_webhook_requests_total", (("outcome", "dead_letter"), ("source", "carrier")))] == 1
    assert series[("e2a_webhook_requests_total", (("outcome", "stored"), ("source", "shopify")))] == 0
    assert series[("e2a_group_commit_batch_size_sum", ())] == metrics["batched_deliveries"] == 3  # stored, dup, dead
    assert series[("e2a_group_commit_batch_size_count", ())] == metrics["batches"]
    assert "# TYPE e2a_webhook_requests_total counter" in scrape.text
    # Latency histograms per source and outcome: every answer is in exactly one of them.
    answered = sum(v for (name, _), v in series.items() if name == "e2a_webhook_request_duration_seconds_count")
    assert answered == sum(counts.values()) == 4
    stored_latency = (("le", "+Inf"), ("outcome", "stored"), ("source", "wms"))
    assert series[("e2a_webhook_request_duration_seconds_bucket", stored_latency)] == 1
    assert "# TYPE e2a_webhook_request_duration_seconds histogram" in scrape.text
    assert "# TYPE e2a_group_commit_batch_size histogram" in scrape.text
    assert receiver.client.get("/metrics?format=prometheus").text.startswith("# HELP e2a_webhook_requests_total")


def prometheus_samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a text exposition, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class _BrokenRegistry:
    """A registry with a bug: the receiver must answer 500 JSON without leaking internals."""

    def get(self, tenant: str):  # noqa: ANN201
        raise RuntimeError("internal detail s3cr3t-path /etc/e2a")

    by_shop_domain = get


def test_genuine_bug_is_500_json_without_internals(sqlite_url: str, caplog: pytest.LogCaptureFixture):
    engine = make_engine(sqlite_url)
    with running_server(create_app(engine, _BrokenRegistry())) as base_url, httpx.Client(base_url=base_url) as client:
        body = envelope("bug-1")
        response = client.post("/webhooks/wms", content=body, headers=signed("wms", body))
        assert response.status_code == 500
        assert response.json() == {"error": "internal error"}
        assert "s3cr3t" not in response.text and "Traceback" not in response.text
        assert client.get("/metrics").json()["requests"]["error"] == 1
    engine.dispose()


def test_secrets_are_never_logged(receiver: Receiver, caplog: pytest.LogCaptureFixture):
    caplog.set_level("DEBUG")
    body = envelope("log-1")
    receiver.post("wms", body, signed("wms", body))
    receiver.post("wms", body, _bad_signature("wms", body))
    receiver.post("wms", body, _other_tenants_secret("wms", body))
    text = caplog.text
    assert SECRETS["acme"] not in text and SECRETS["globex"] not in text
    assert sign(SECRETS["acme"], body) not in text


# ---------------------------------------------------------------------------------------------
# both warehouses: outage (503, then the retry lands) and load


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class TcpProxy:
    """A loopback TCP forwarder standing in for the network path to Postgres: stop() is an outage."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@dataclass
class Warehouse:
    engine: Engine  # what the receiver uses
    check: Engine  # a direct connection for assertions, unaffected by the outage
    down: Callable[[], None]
    up: Callable[[], None]


@pytest.fixture
def warehouse(backend: str, request: pytest.FixtureRequest, tmp_path) -> Iterator[Warehouse]:  # noqa: ANN001
    if backend == "sqlite":
        url = request.getfixturevalue("sqlite_url")
        engine = make_engine(url)

        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_connection, _record):  # noqa: ANN001
            # A locked warehouse must fail fast here, not after make_engine's 30 s.
            dbapi_connection.execute("PRAGMA busy_timeout=100")

        engine.dispose()
        holder: dict[str, sqlite3.Connection] = {}

        def down() -> None:
            lock = sqlite3.connect(make_url(url).database, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
            holder["lock"] = lock

        def up() -> None:
            lock = holder.pop("lock")
            lock.execute("ROLLBACK")
            lock.close()

        yield Warehouse(engine, engine, down, up)
        holder and up()
        engine.dispose()
        return

    url = make_url(request.getfixturevalue("postgres_url"))
    check = make_engine(url.render_as_string(hide_password=False))
    # Tests on the shared Postgres database start from empty landing tables.
    with check.begin() as conn:
        conn.execute(event_log.delete())
        conn.execute(dead_letters.delete())
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    yield Warehouse(engine, check, proxy.stop, proxy.start)
    proxy.stop()
    engine.dispose()
    check.dispose()


def _post_all(base_url: str, items: list[tuple[str, bytes, dict[str, str]]], workers: int = 16) -> list[httpx.Response]:
    local = threading.local()

    def send(item: tuple[str, bytes, dict[str, str]]) -> httpx.Response:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=30)
        source, body, headers = item
        return client.post(f"/webhooks/{source}", content=body, headers=headers)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(send, items))


def test_outage_is_503_for_the_whole_batch_then_the_retry_lands(warehouse: Warehouse):
    deliveries = []
    for n in range(12):
        body = envelope(f"outage-{n}", "label_created", order_id=str(2000 + n))
        deliveries.append(("wms", body, signed("wms", body)))
    with running_server(create_app(warehouse.engine, REGISTRY)) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        assert client.get("/readyz").status_code == 200
        warehouse.down()
        try:
            responses = _post_all(base_url, deliveries, workers=12)
            assert [r.status_code for r in responses] == [503] * len(deliveries)
            assert all(r.json() == {"error": "storage unavailable", "retry": True} for r in responses)
            assert events_stored(warehouse.check) == 0  # nothing acknowledged, nothing stored
        finally:
            warehouse.up()
        # The senders retry once the warehouse is back: every event lands exactly once.
        retried = _post_all(base_url, deliveries, workers=12)
        assert [r.status_code for r in retried] == [200] * len(deliveries)
        assert {r.json()["status"] for r in retried} == {"stored"}
        again = client.post("/webhooks/wms", content=deliveries[0][1], headers=deliveries[0][2])
        assert again.json() == {"status": "duplicate", "event_id": "outage-0"}
        metrics = client.get("/metrics").json()
    assert events_stored(warehouse.check) == len(deliveries)
    assert metrics["requests"]["unavailable"] == len(deliveries)
    assert metrics["requests"]["error"] == 0


def test_load_concurrent_senders_with_20_percent_duplicates(warehouse: Warehouse):
    rng = random.Random(20250801)
    unique: list[tuple[str, bytes, dict[str, str]]] = []
    for n in range(1700):
        tenant = "acme" if n % 3 else "globex"
        kind = n % 4
        if kind == 0:
            body = shopify_order(100000 + n)
            unique.append(("shopify", body, signed("shopify", body, tenant, event_id=f"load-shp-{n}")))
        elif kind == 3:
            body = envelope(f"load-trk-{n}", "in_transit", order_id=str(100000 + n), data={"carrier": "DHL"})
            unique.append(("carrier", body, signed("carrier", body, tenant)))
        else:
            body = envelope(f"load-wms-{n}", "pick_completed" if kind == 1 else "pack_completed", order_id=str(100000 + n))
            unique.append(("wms", body, signed("wms", body, tenant)))
    duplicates = [rng.choice(unique) for _ in range(425)]  # 425 / 2125 = 20 %
    traffic = unique + duplicates
    rng.shuffle(traffic)

    with running_server(create_app(warehouse.engine, REGISTRY)) as base_url:
        started = time.perf_counter()
        responses = _post_all(base_url, traffic, workers=16)
        elapsed = time.perf_counter() - started
        with httpx.Client(base_url=base_url) as client:
            metrics = client.get("/metrics").json()

    codes = [r.status_code for r in responses]
    assert all(code == 200 for code in codes), sorted(set(codes))
    outcomes = [r.json()["status"] for r in responses]
    assert outcomes.count("stored") == len(unique)
    assert outcomes.count("duplicate") == len(duplicates)
    assert events_stored(warehouse.check) == len(unique)
    assert dead_letter_rows(warehouse.check) == []
    assert metrics["largest_batch"] > 1, "concurrent requests were not group-committed"
    assert metrics["batches"] < len(traffic)
    print(f"\n{len(traffic)} deliveries in {elapsed:.2f}s ({len(traffic) / elapsed:.0f}/s), "
          f"{metrics['batches']} batches, largest {metrics['largest_batch']}")


def test_one_poisonous_delivery_does_not_fail_its_batch(receiver: Receiver):
    """A body that breaks ingestion (an infinite number as event id) must not take neighbours down.

    It is a malformed delivery (422, dead letter: an event id must be a string or an integer), and
    the deliveries committed with it in the same group are stored.
    """
    poison = b'{"event_id": 1e999, "event_type": "pick_completed", "order_id": "1", "occurred_at": "2025-08-01T10:00:00Z"}'
    traffic = [("wms", poison, signed("wms", poison))]
    for n in range(15):
        body = envelope(f"neighbour-{n}", order_id=str(3000 + n))
        traffic.append(("wms", body, signed("wms", body)))
    responses = _post_all(receiver.base_url, traffic, workers=16)
    assert responses[0].status_code == 422
    assert responses[0].json()["error"] == "malformed delivery"
    assert responses[0].json()["reason"] == "field event_id must be a string or an integer"
    assert "Traceback" not in responses[0].text and responses[0].headers["content-type"] == "application/json"
    assert [r.status_code for r in responses[1:]] == [200] * 15
    assert events_stored(receiver.engine) == 15


@pytest.mark.parametrize("field, value", [("currency", {"code": "USD"}), ("financial_status", ["paid"]),
                                          ("tags", {"rush": True}), ("shipping_lines", [{"code": {"id": 7}}])])
def test_signed_delivery_with_a_wrongly_typed_text_field_is_422_not_503(receiver: Receiver, field, value):
    """Valid JSON whose text field is an object or list cannot be stored as text: that is a
    malformed delivery (422, dead letter), not a storage outage the sender would retry forever."""
    body = shopify_order(4242, **{field: value})
    response = receiver.post("shopify", body, signed("shopify", body))
    assert response.status_code == 422, response.text
    assert "must be a string" in response.json()["reason"]
    assert events_stored(receiver.engine) == 0
    assert len(dead_letter_rows(receiver.engine)) == 1
