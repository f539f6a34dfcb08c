"""The receiver under hostile traffic (issue 13), over real HTTP on loopback, SQLite and Postgres.

- 150+ hostile variants (signed bodies, headers, framing), generated from tables: never a 5xx, and
  nothing unsigned is stored (no event, no dead letter).
- Bounded resources: request heads over the size or count limit are 431 before authentication; a
  slow-loris crowd of half-sent connections neither stops real deliveries nor stays open past the
  head timeout; a body that does not arrive in time is 408; idle keep-alive connections are closed.
- Acknowledged means on disk: SQLite synchronous=FULL (a relaxed level only when asked), Postgres
  synchronous_commit=on; /readyz is 503 while the warehouse cannot take a write; a commit that does
  not come answers 503 with Retry-After within the ingest timeout (3 s, well before Shopify's 5 s).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterator

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from e2a_assets.domain.policies import PolicyError
from e2a_assets.settings import Settings
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.schema import dead_letters, event_log
from e2a_assets.webhooks.app import create_app
from e2a_assets.webhooks.limits import ReceiverLimits
from e2a_assets.webhooks.server import running_server
from e2a_assets.webhooks.signing import sign
from e2a_tests.test_receiver import REGISTRY, SECRETS, envelope, shopify_order, signed

SHOP = "acme.myshopify.com"


@dataclass
class Live:
    base_url: str
    host: str
    port: int
    engine: object

    def count(self, table) -> int:  # noqa: ANN001
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def serve(url: str, limits: ReceiverLimits) -> Iterator[Live]:
    engine = make_engine(url)
    with running_server(create_app(engine, REGISTRY, limits=limits), limits=limits) as base_url:
        parsed = httpx.URL(base_url)
        yield Live(base_url, parsed.host, parsed.port, engine)
    engine.dispose()


@pytest.fixture
def live(warehouse_url: str) -> Iterator[Live]:
    yield from serve(warehouse_url, ReceiverLimits(head_timeout_s=2.0, body_timeout_s=1.0, keep_alive_s=1.0))


@pytest.fixture
def live_sqlite(sqlite_url: str) -> Iterator[Live]:
    yield from serve(sqlite_url, ReceiverLimits(head_timeout_s=1.0, body_timeout_s=0.5, keep_alive_s=0.5))


def exchange(live: Live, raw: bytes, *, timeout: float = 10.0, half_close: bool = True) -> int | None:
    """Send raw bytes, return the status code of the first response (None: closed without one).
    `half_close` ends the sending side, as a client that gave up would (the server may then drop
    the request unanswered)."""
    with socket.create_connection((live.host, live.port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close early (a 431 while we are still sending)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


def request(path: str, headers: dict[str, str], body: bytes, *, content_length: bool = True) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: receiver"]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ---------------------------------------------------------------------------------------------
# the hostile variants, generated from tables

HOSTILE_VALUES = {
    "nested_1000": "__NEST__1000", "nested_100": "__NEST__100", "int_4301_digits": "__BIGINT__",
    "lone_surrogate": "a\ud800", "nul": "a\x00b", "huge_float": 1e30, "inf": float("inf"), "nan": float("nan"),
    "minus": -1, "quantity_3e9": 3_000_000_000, "far_future": "9999-12-31T23:59:59Z",
    "before_first_partition": "2024-06-01T00:00:00Z", "tomorrow_plus": "2099-01-01T00:00:00Z",
    "object": {"a": 1}, "list": [1, 2], "empty": "", "long_text": "x" * 5000, "bool": True, "null": None,
}
ENVELOPE_TARGETS = ["event_id", "event_type", "order_id", "occurred_at", "data"]
SHOPIFY_TARGETS = ["id", "name", "created_at", "total_price", "currency", "tags"]


def _render(doc: dict) -> bytes:
    raw = json.dumps(doc)
    raw = raw.replace('"__NEST__1000"', "[" * 1000 + "]" * 1000).replace('"__NEST__100"', "[" * 100 + "]" * 100)
    return raw.replace('"__BIGINT__"', "9" * 4301).encode()


def signed_hostile_bodies() -> list[tuple[str, str, bytes]]:
    """(name, source, body): every hostile value in every targeted field of both delivery shapes."""
    out = []
    for target in ENVELOPE_TARGETS:
        for name, value in HOSTILE_VALUES.items():
            doc = json.loads(envelope(f"h-{target}-{name}"))
            doc[target] = value
            out.append((f"wms.{target}.{name}", "wms", _render(doc)))
    for target in SHOPIFY_TARGETS:
        for name, value in HOSTILE_VALUES.items():
            doc = json.loads(shopify_order(1001))
            doc[target] = value
            out.append((f"shopify.{target}.{name}", "shopify", _render(doc)))
    for name, value in [("quantity_3e9", 3_000_000_000), ("quantity_nan", float("nan")), ("quantity_neg", -5),
                        ("quantity_text", "many")]:
        doc = json.loads(shopify_order(1002))
        doc["line_items"] = [{"sku": "A", "quantity": value, "price": "1.00"}]
        out.append((f"shopify.line_items.{name}", "shopify", _render(doc)))
    for name, body in [("not_json", b"{not json"), ("array", b"[1,2]"), ("invalid_utf8", b'{"event_id": "\xff\xfe"}'),
                       ("empty", b""), ("nul_bytes", b"\x00" * 64), ("bom", b'\xef\xbb\xbf{"event_id": "x"}'),
                       ("trailing", envelope("trail") + b"garbage"), ("deep_object", b'{"a":' * 5000 + b"1" + b"}" * 5000)]:
        out.append((f"wms.raw.{name}", "wms", body))
    return out


def signed_headers(source: str, body: bytes, event_id: str) -> dict[str, str]:
    return signed(source, body, event_id=event_id)


def unsigned_variants() -> list[tuple[str, bytes]]:
    """(name, raw request) that must never store anything: bad auth, bad headers, bad framing."""
    body = envelope("unsigned-1")
    good = signed("wms", body)
    out: list[tuple[str, bytes]] = []
    auth = {
        "no_signature": {"X-E2A-Tenant": "acme"},
        "wrong_signature": {"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": sign("wrong", body)},
        "other_tenants_secret": {"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": sign(SECRETS["globex"], body)},
        "unknown_tenant": {"X-E2A-Tenant": "nobody", "X-E2A-Hmac-Sha256": good["X-E2A-Hmac-Sha256"]},
        "tenant_without_secret": {"X-E2A-Tenant": "nokey", "X-E2A-Hmac-Sha256": good["X-E2A-Hmac-Sha256"]},
        "empty_tenant": {"X-E2A-Tenant": "", "X-E2A-Hmac-Sha256": good["X-E2A-Hmac-Sha256"]},
        "signature_not_base64": {"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": "%%%%"},
        "signature_latin1": {"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": "\xe9\xe9\xe9"},
        "signature_huge": {"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": "A" * 8000},
        "tenant_latin1": {"X-E2A-Tenant": "acm\xe9", "X-E2A-Hmac-Sha256": good["X-E2A-Hmac-Sha256"]},
    }
    for name, headers in auth.items():
        for path in ("/webhooks/wms", "/webhooks/carrier"):
            out.append((f"auth.{name}{path}", request(path, headers, body)))
    shopify_auth = {
        "no_domain": {"X-Shopify-Hmac-Sha256": sign(SECRETS["acme"], body), "X-Shopify-Topic": "orders/create"},
        "unknown_domain": {"X-Shopify-Shop-Domain": "evil.myshopify.com", "X-Shopify-Hmac-Sha256": sign(SECRETS["acme"], body)},
        "bad_signature": {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-Sha256": sign("nope", body)},
    }
    out += [(f"auth.shopify.{n}", request("/webhooks/shopify", h, body)) for n, h in shopify_auth.items()]
    # Header abuse (unsigned or not): size, count, odd bytes.
    for size in (17 * 1024, 64 * 1024, 1024 * 1024):
        out.append((f"headers.one_of_{size}", request("/webhooks/wms", {"X-Pad": "a" * size, **good}, body)))
    for count in (65, 200, 2000):
        out.append((f"headers.count_{count}", request("/webhooks/wms", {**{f"X-H{n}": "v" for n in range(count)}, **good}, body)))
    out.append(("headers.long_url", f"POST /webhooks/wms?{'q' * 20000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))
    for name, line in [("nul_in_value", b"X-A: a\x00b"), ("no_colon", b"NoColonHere"), ("space_in_name", b"Bad Name: v"),
                       ("obs_fold", b"X-A: a\r\n b"), ("ctl_in_name", b"X\x01A: v"), ("high_bytes", b"X-A: \xff\xfe")]:
        out.append((f"headers.{name}", b"POST /webhooks/wms HTTP/1.1\r\nHost: x\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n"))
    # Framing: lengths, chunking, methods, versions, pipelining.
    # Signed for another body: whatever the parser makes of the framing, nothing may be stored.
    head = "POST /webhooks/wms HTTP/1.1\r\nHost: x\r\nX-E2A-Tenant: acme\r\nX-E2A-Hmac-Sha256: {sig}\r\n".format(
        sig=sign(SECRETS["acme"], envelope("some-other-body")))
    framing = {
        "cl_negative": head + "Content-Length: -1\r\n\r\n",
        "cl_text": head + "Content-Length: abc\r\n\r\n",
        "cl_huge": head + "Content-Length: 99999999999999999999\r\n\r\n",
        "cl_two_values": head + f"Content-Length: {len(body)}\r\nContent-Length: 5\r\n\r\n",
        "cl_and_te": head + f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n",
        "te_unknown": head + "Transfer-Encoding: gzip\r\n\r\n",
        "chunk_size_text": head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "chunk_size_huge": head + "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n",
        "chunk_unterminated": head + "Transfer-Encoding: chunked\r\n\r\n5\r\nab",
        "body_shorter_than_cl": head + "Content-Length: 500\r\n\r\n" + body.decode(),
        "body_longer_than_cl": head + "Content-Length: 5\r\n\r\n" + body.decode(),
        "http_1_0": head.replace("HTTP/1.1", "HTTP/1.0") + f"Content-Length: {len(body)}\r\n\r\n" + body.decode(),
        "http_2_0_line": "POST /webhooks/wms HTTP/2.0\r\nHost: x\r\n\r\n",
        "http_9": "GET /\r\n\r\n",
        "method_get": "GET /webhooks/wms HTTP/1.1\r\nHost: x\r\n\r\n",
        "method_put": head.replace("POST", "PUT") + "Content-Length: 0\r\n\r\n",
        "method_garbage": "FOO\x01 /webhooks/wms HTTP/1.1\r\n\r\n",
        "path_unknown": "POST /webhooks/ftp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_traversal": "POST /webhooks/../../etc/passwd HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "path_percent": "POST /webhooks/%77ms%00 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "no_host": "POST /webhooks/wms HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "lf_only": head.replace("\r\n", "\n") + f"Content-Length: {len(body)}\n\n" + body.decode(),
        "garbage": "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
        "empty": "",
        "expect_continue": head + f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n",
        "upgrade_websocket": head + "Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n",
        "upgrade_h2c": head + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
        "pipelined_garbage": head + "Content-Length: 0\r\n\r\nGARBAGE\r\n\r\n",
    }
    out += [(f"framing.{n}", raw.encode("latin-1")) for n, raw in framing.items()]
    return out


def test_the_hostile_tables_have_at_least_150_variants():
    assert len(signed_hostile_bodies()) + len(unsigned_variants()) >= 150


def test_no_hostile_variant_reaches_a_5xx_and_nothing_unsigned_is_stored(live: Live):
    statuses: dict[str, int | None] = {}
    # Unsigned first: afterwards nothing may be in the warehouse.
    for name, raw in unsigned_variants():
        statuses[name] = exchange(live, raw)
    assert {n: s for n, s in statuses.items() if s is not None and s >= 500} == {}
    assert {n: s for n, s in statuses.items() if s is not None and s < 400 and s != 100} == {}
    assert (live.count(event_log), live.count(dead_letters)) == (0, 0)
    assert statuses["auth.wrong_signature/webhooks/wms"] == 401
    assert statuses["headers.one_of_1048576"] == 431 and statuses["headers.count_200"] == 431
    assert statuses["headers.one_of_17408"] == 431 and statuses["headers.count_65"] == 431

    # Signed hostile bodies: each is stored (it happens to be valid), ignored or a 422 dead letter.
    signed_statuses = {}
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        for name, source, body in signed_hostile_bodies():
            response = client.post(f"/webhooks/{source}", content=body, headers=signed(source, body, event_id=name))
            signed_statuses[name] = response.status_code
            assert response.headers["content-type"] == "application/json", name
        metrics = client.get("/metrics").json()
    assert {n: s for n, s in signed_statuses.items() if s >= 500} == {}
    assert set(signed_statuses.values()) <= {200, 202, 413, 422}
    for name in ("wms.data.nested_1000", "wms.occurred_at.far_future", "wms.occurred_at.before_first_partition",
                 "wms.event_id.lone_surrogate", "wms.event_id.int_4301_digits", "shopify.total_price.huge_float",
                 "shopify.line_items.quantity_3e9", "shopify.name.lone_surrogate", "wms.order_id.nul"):
        assert signed_statuses[name] == 422, name
    rejected = sum(1 for s in signed_statuses.values() if s == 422)
    accepted = sum(1 for s in signed_statuses.values() if s in (200, 202))
    assert live.count(dead_letters) == rejected
    assert live.count(event_log) == accepted
    assert metrics["requests"]["error"] == 0 and metrics["requests"]["unavailable"] == 0


# ---------------------------------------------------------------------------------------------
# bounded resources


def test_oversized_request_heads_are_431_before_authentication(live_sqlite: Live):
    body = envelope("big-head")
    # 256 MiB of headers would be read before the 401 without the limit: the server stops at 16 KiB.
    with socket.create_connection((live_sqlite.host, live_sqlite.port), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/wms HTTP/1.1\r\nHost: x\r\n")
        sent, answer = 0, b""
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"X-Pad: " + b"a" * 8185 + b"\r\n")
                sent += 8192
        except OSError:
            pass  # closed by the server: what we want
        try:
            answer = sock.recv(65536)
        except OSError:
            pass
    assert sent < 4 * 1024 * 1024, f"the server read {sent} bytes of headers"
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert exchange(live_sqlite, request("/webhooks/wms", {f"X-H{n}": "v" for n in range(65)}, body)) == 431
    # Under the limits: an ordinary signed delivery with 50 extra small headers passes.
    headers = {**{f"X-H{n}": "v" for n in range(50)}, **signed("wms", body)}
    assert exchange(live_sqlite, request("/webhooks/wms", headers, body), half_close=False) == 200
    assert live_sqlite.count(event_log) == 1


def test_slow_loris_does_not_stop_real_deliveries_and_is_closed_after_the_head_timeout(live_sqlite: Live):
    crowd = []
    try:
        for n in range(300):  # half-sent requests: the head never completes
            sock = socket.create_connection((live_sqlite.host, live_sqlite.port), timeout=5)
            sock.sendall(b"POST /webhooks/wms HTTP/1.1\r\nHost: x\r\nX-E2A-Tenant: acme\r\nX-Slow: ")
            crowd.append(sock)
        started = time.perf_counter()
        with httpx.Client(base_url=live_sqlite.base_url, timeout=5) as client:
            for n in range(20):
                body = envelope(f"during-loris-{n}", order_id=str(5000 + n))
                response = client.post("/webhooks/wms", content=body, headers=signed("wms", body))
                assert response.status_code == 200, response.text
        elapsed = time.perf_counter() - started
        assert elapsed < 2.0, f"20 deliveries took {elapsed:.2f}s beside 300 half-open connections"
        assert live_sqlite.count(event_log) == 20

        # After the head timeout (1 s here) every half-sent connection has been answered 408 and closed.
        deadline = time.monotonic() + 5
        closed = 0
        for sock in crowd:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            try:
                while chunk := sock.recv(4096):
                    data += chunk
            except OSError:
                continue
            closed += data.startswith(b"HTTP/1.1 408 ")
        assert closed == len(crowd)
    finally:
        for sock in crowd:
            sock.close()


def test_a_body_that_does_not_arrive_in_time_is_408(live_sqlite: Live):
    body = envelope("slow-body")
    raw = request("/webhooks/wms", signed("wms", body), body)
    with socket.create_connection((live_sqlite.host, live_sqlite.port), timeout=5) as sock:
        sock.sendall(raw[: len(raw) - 10])  # headers and most of the body, then nothing
        started = time.perf_counter()
        answer = sock.recv(65536)
        waited = time.perf_counter() - started
        assert sock.recv(65536) == b""  # and the connection is closed
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < waited < 2.0
    assert live_sqlite.count(event_log) == 0


def test_an_idle_keep_alive_connection_is_closed(live_sqlite: Live):
    body = envelope("keep-alive")
    with socket.create_connection((live_sqlite.host, live_sqlite.port), timeout=5) as sock:
        sock.sendall(request("/webhooks/wms", signed("wms", body), body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.perf_counter()
        assert sock.recv(65536) == b""  # closed by the server after keep_alive_s (0.5 s)
        assert time.perf_counter() - started < 2.0


# ---------------------------------------------------------------------------------------------
# acknowledged means on disk; readiness; the ingest timeout


def test_commits_are_durable_by_default_on_both_backends(warehouse_url: str):
    engine = make_engine(warehouse_url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
        else:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
    engine.dispose()


def test_a_relaxed_sqlite_level_is_an_explicit_setting(sqlite_url: str, tmp_path):
    env = {"E2A_DATA_DIR": str(tmp_path), "DATABASE_URL": sqlite_url}
    assert Settings.from_env(env).sqlite_synchronous == "FULL"
    relaxed = Settings.from_env({**env, "E2A_SQLITE_SYNCHRONOUS": "normal"})
    assert relaxed.sqlite_synchronous == "NORMAL"
    engine = make_engine(sqlite_url, sqlite_synchronous=relaxed.sqlite_synchronous)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1
    engine.dispose()
    with pytest.raises(PolicyError, match="E2A_SQLITE_SYNCHRONOUS='OFF' must be one of FULL, NORMAL, EXTRA"):
        Settings.from_env({**env, "E2A_SQLITE_SYNCHRONOUS": "off"})


def test_receiver_limits_come_from_the_environment(tmp_path):
    settings = Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_RECEIVER_INGEST_TIMEOUT_S": "2.5",
                                  "E2A_RECEIVER_MAX_CONNECTIONS": "100", "E2A_INTAKE_MAX_FUTURE_HOURS": "2"})
    limits = settings.receiver_limits
    assert (limits.ingest_timeout_s, limits.max_connections, limits.max_header_bytes) == (2.5, 100, 16 * 1024)
    assert limits.window.max_future.total_seconds() == 7200
    with pytest.raises(PolicyError, match="E2A_RECEIVER_MAX_CONNECTIONS='many' is not a valid int"):
        Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_RECEIVER_MAX_CONNECTIONS": "many"})


def test_readyz_is_503_while_sqlite_writes_are_locked_and_deliveries_get_503_with_retry_after(sqlite_url: str):
    limits = ReceiverLimits(ready_timeout_s=0.5)
    for live in serve(sqlite_url, limits):
        with httpx.Client(base_url=live.base_url, timeout=10) as client:
            assert client.get("/readyz").json() == {"status": "ready", "warehouse": "sqlite", "registry": REGISTRY.digest}
            lock = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # another writer holds the write lock; reads still work
            try:
                started = time.perf_counter()
                ready = client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
                assert time.perf_counter() - started < 1.5
                body = envelope("while-locked")
                started = time.perf_counter()
                response = client.post("/webhooks/wms", content=body, headers=signed("wms", body))
                waited = time.perf_counter() - started
                assert response.status_code == 503 and response.headers["retry-after"] == "5"
                assert response.json() == {"error": "storage unavailable", "retry": True}
                assert 2.9 < waited < 4.0, waited  # the 3 s ingest timeout, well before Shopify's 5 s
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            assert client.get("/readyz").status_code == 200


def test_readyz_is_503_while_postgres_cannot_write_the_heartbeat(postgres_warehouse_url: str):
    for live in serve(postgres_warehouse_url, ReceiverLimits(ready_timeout_s=0.5)):
        with httpx.Client(base_url=live.base_url, timeout=10) as client:
            assert client.get("/readyz").json() == {"status": "ready", "warehouse": "postgresql", "registry": REGISTRY.digest}
            locker = make_engine(postgres_warehouse_url)
            with locker.connect() as conn:
                conn.execute(text("LOCK TABLE receiver_heartbeats IN ACCESS EXCLUSIVE MODE"))
                started = time.perf_counter()
                ready = client.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert time.perf_counter() - started < 1.5
                conn.rollback()
            locker.dispose()
            assert client.get("/readyz").status_code == 200
