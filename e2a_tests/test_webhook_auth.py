"""Signature schemes and secret rotation over real HTTP (docs/webhooks.md "Signing", "Rotating a secret").

Standard Webhooks (`webhook-id`/`webhook-timestamp`/`webhook-signature`, ±5 minutes) for wms and
carrier beside the e2a scheme, Shopify's unprefixed header names, tenants that require
timestamps, and a secret rotated while the receiver runs (the registry is reloaded from its files).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from e2a_assets.domain.policies import SHIPPED_POLICIES_DIR, PolicyError, TenantRegistry, default_policy, load_registry
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.schema import dead_letters, event_log
from e2a_assets.webhooks.app import create_app
from e2a_assets.webhooks.registry_reload import ReloadingRegistry
from e2a_assets.webhooks.server import running_server
from e2a_assets.webhooks.signing import TIMESTAMP_TOLERANCE_S, sign, standard_sign

WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
PLAIN = "plain-secret-for-acme"
REGISTRY = TenantRegistry((
    default_policy("acme", shop_domain="acme.myshopify.com", webhook_secret_dev=PLAIN),
    default_policy("strict", webhook_secret_dev=WHSEC, webhook_require_timestamp=True),
))


def envelope(event_id: str | None, event_type: str = "pick_completed") -> bytes:
    doc = {"event_type": event_type, "order_id": "1001", "occurred_at": "2025-08-01T10:00:00Z"}
    if event_id is not None:
        doc["event_id"] = event_id
    return json.dumps(doc).encode()


def standard(tenant: str, secret: str, body: bytes, *, msg_id: str | None = None, skew_s: int = 0,
             extra_signatures: tuple[str, ...] = ()) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) + skew_s
    signature = " ".join((*extra_signatures, standard_sign(secret, msg_id, ts, body)))
    return {"Content-Type": "application/json", "X-E2A-Tenant": tenant, "webhook-id": msg_id,
            "webhook-timestamp": str(ts), "webhook-signature": signature}


def stored(engine) -> list[tuple[str, str, str]]:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(select(event_log.c.tenant, event_log.c.source, event_log.c.event_id).order_by(event_log.c.id))
        return [tuple(r) for r in rows]


@pytest.fixture
def server(sqlite_url: str) -> Iterator[tuple[httpx.Client, object]]:
    engine = make_engine(sqlite_url)
    with running_server(create_app(engine, REGISTRY)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, engine
    engine.dispose()


def test_standard_webhooks_delivery_is_stored_with_a_whsec_secret(server):
    client, engine = server
    body = envelope("evt-sw-1")
    r = client.post("/webhooks/wms", content=body, headers=standard("strict", WHSEC, body))
    assert (r.status_code, r.json()) == (200, {"status": "stored", "event_id": "evt-sw-1"})
    # the same scheme with a non-whsec secret: its UTF-8 bytes are the key
    r = client.post("/webhooks/carrier", content=(b2 := envelope("evt-sw-2", "delivered")),
                    headers=standard("acme", PLAIN, b2))
    assert (r.status_code, r.json()["status"]) == (200, "stored")
    assert stored(engine) == [("strict", "wms", "evt-sw-1"), ("acme", "carrier", "evt-sw-2")]


def test_several_signatures_in_one_header_any_valid_one_verifies(server):
    client, engine = server
    body = envelope("evt-multi")
    wrong = standard_sign("whsec_" + base64.b64encode(b"x" * 32).decode(), "m", 1, body)
    headers = standard("strict", WHSEC, body, extra_signatures=("v2,bm90LWEtdjE=", wrong))
    assert client.post("/webhooks/wms", content=body, headers=headers).status_code == 200
    only_wrong = {**headers, "webhook-signature": f"{wrong} v2,abc"}
    assert client.post("/webhooks/wms", content=envelope("evt-multi-2"), headers=only_wrong).status_code == 401
    assert stored(engine) == [("strict", "wms", "evt-multi")]


@pytest.mark.parametrize("skew_s,status", [
    (-(TIMESTAMP_TOLERANCE_S + 30), 401), (TIMESTAMP_TOLERANCE_S + 30, 401),
    (-(TIMESTAMP_TOLERANCE_S - 30), 200), (TIMESTAMP_TOLERANCE_S - 30, 200),
])
def test_timestamp_outside_five_minutes_is_401_and_nothing_is_stored(server, skew_s, status):
    client, engine = server
    body = envelope("evt-ts")
    r = client.post("/webhooks/wms", content=body, headers=standard("strict", WHSEC, body, skew_s=skew_s))
    assert r.status_code == status
    assert len(stored(engine)) == (1 if status == 200 else 0)


@pytest.mark.parametrize("mutate", [
    lambda h, b: ({**h, "webhook-signature": "garbage"}, b),
    lambda h, b: ({**h, "webhook-signature": "v1,"}, b),
    lambda h, b: ({**h, "webhook-signature": "v1,%%%notbase64"}, b),
    lambda h, b: ({**h, "webhook-signature": "v1," + "A" * 5000}, b),
    lambda h, b: ({**h, "webhook-timestamp": "12.5"}, b),
    lambda h, b: ({**h, "webhook-timestamp": "-100"}, b),
    lambda h, b: ({**h, "webhook-timestamp": "9" * 40}, b),
    lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b),
    lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b),
    lambda h, b: ({**h, "webhook-id": "another-id"}, b),  # the id is signed
    lambda h, b: (h, b + b" "),  # the body is signed
    lambda h, b: (h, b"\xff\xfe" + b),  # not UTF-8: still just a wrong signature
], ids=["garbage", "empty-v1", "bad-base64", "huge", "fraction-ts", "negative-ts", "huge-ts", "no-id", "no-ts",
        "other-id", "body-changed", "binary-body"])
def test_tampered_or_malformed_standard_headers_are_401(server, mutate):
    client, engine = server
    body = envelope("evt-bad")
    headers, sent = mutate(standard("strict", WHSEC, body), body)
    r = client.post("/webhooks/wms", content=sent, headers=headers)
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    assert stored(engine) == []


def test_webhook_id_is_the_idempotency_key_when_the_envelope_has_no_event_id(server):
    client, engine = server
    body = envelope(None)
    first = client.post("/webhooks/wms", content=body, headers=standard("strict", WHSEC, body, msg_id="msg_42"))
    # the sender's retry: same webhook-id, new timestamp and signature
    again = client.post("/webhooks/wms", content=body, headers=standard("strict", WHSEC, body, msg_id="msg_42"))
    assert (first.status_code, first.json()) == (200, {"status": "stored", "event_id": "msg_42"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate", "event_id": "msg_42"})
    assert stored(engine) == [("strict", "wms", "msg_42")]


def test_a_tenant_requiring_timestamps_refuses_the_e2a_scheme_others_keep_it(server):
    client, engine = server
    body = envelope("evt-e2a")
    strict = client.post("/webhooks/wms", content=body,
                         headers={"X-E2A-Tenant": "strict", "X-E2A-Hmac-Sha256": sign(WHSEC, body)})
    relaxed = client.post("/webhooks/wms", content=body,
                          headers={"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": sign(PLAIN, body)})
    assert (strict.status_code, relaxed.status_code) == (401, 200)
    assert stored(engine) == [("acme", "wms", "evt-e2a")]


def test_shopify_unprefixed_header_names_are_accepted(server):
    client, engine = server
    body = json.dumps({"id": 2002, "name": "#2002", "created_at": "2025-08-01T09:00:00Z",
                       "total_price": "10.00", "currency": "EUR"}).encode()
    unprefixed = {"Shopify-Shop-Domain": "acme.myshopify.com", "Shopify-Hmac-Sha256": sign(PLAIN, body),
                  "Shopify-Topic": "orders/create", "Shopify-Webhook-Id": "wh-unprefixed"}
    r = client.post("/webhooks/shopify", content=body, headers=unprefixed)
    assert (r.status_code, r.json()) == (200, {"status": "stored", "event_id": "wh-unprefixed"})
    wrong = {**unprefixed, "Shopify-Hmac-Sha256": sign("other", body), "Shopify-Webhook-Id": "wh-2"}
    assert client.post("/webhooks/shopify", content=body, headers=wrong).status_code == 401
    # a malformed one is a dead letter with its signature header redacted
    no_topic = {k: v for k, v in unprefixed.items() if k != "Shopify-Topic"}
    r = client.post("/webhooks/shopify", content=body, headers=no_topic)
    assert (r.status_code, r.json()["reason"]) == (422, "missing header X-Shopify-Topic")
    with engine.connect() as conn:
        kept = json.loads(conn.execute(select(dead_letters.c.headers)).scalar_one())
    assert kept["shopify-hmac-sha256"] == "[redacted]" and kept["shopify-webhook-id"] == "wh-unprefixed"
    assert stored(engine) == [("acme", "shopify", "wh-unprefixed")]


# ---------------------------------------------------------------------------------------------
# rotation while the receiver runs


TENANTS_YAML = """
tenants:
  acme:
    shop_domain: acme.myshopify.com
    webhook_secret_file: secrets/acme.current
{extra}
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # what an operator's editor or a secret manager does: an atomic rename


def test_rotate_a_secret_while_the_receiver_runs(sqlite_url: str, tmp_path: Path):
    tenants = tmp_path / "tenants.yaml"
    (tmp_path / "secrets").mkdir()
    _write(tmp_path / "secrets/acme.current", "old-secret\n")
    _write(tenants, TENANTS_YAML.format(extra=""))
    registry = ReloadingRegistry(lambda: load_registry(SHIPPED_POLICIES_DIR, tenants), check_interval_s=0)
    engine = make_engine(sqlite_url)
    n = iter(range(1000))

    def deliver(client: httpx.Client, secret: str) -> int:
        body = envelope(f"evt-{next(n)}")
        return client.post("/webhooks/wms", content=body,
                           headers={"X-E2A-Tenant": "acme", "X-E2A-Hmac-Sha256": sign(secret, body)}).status_code

    with running_server(create_app(engine, registry)) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert (deliver(client, "old-secret"), deliver(client, "new-secret")) == (200, 401)
        # 1. the next secret is added: both verify
        _write(tmp_path / "secrets/acme.next", "new-secret")
        _write(tenants, TENANTS_YAML.format(extra="    webhook_secret_next_file: secrets/acme.next"))
        assert (deliver(client, "old-secret"), deliver(client, "new-secret")) == (200, 200)
        # 2. a broken edit is not applied: the previous registry stays in force
        _write(tenants, "tenants: [unclosed\n")
        assert (deliver(client, "old-secret"), deliver(client, "new-secret")) == (200, 200)
        # 3. the old secret expires (here: already) — only the new one verifies
        _write(tenants, TENANTS_YAML.format(extra="    webhook_secret_next_file: secrets/acme.next\n"
                                                  "    webhook_secret_expires_at: 2020-01-01T00:00:00Z"))
        assert (deliver(client, "old-secret"), deliver(client, "new-secret")) == (401, 200)
        # 4. the new secret becomes the current one (the secret file rewritten in place)
        _write(tmp_path / "secrets/acme.current", "new-secret")
        _write(tenants, TENANTS_YAML.format(extra=""))
        assert (deliver(client, "old-secret"), deliver(client, "new-secret")) == (401, 200)
        metrics = client.get("/metrics").json()
    assert (metrics["registry_reloads"], metrics["registry_failed_reloads"]) == (3, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(event_log)).scalar_one() == 7
    engine.dispose()


def test_registry_checks_its_files_at_most_once_per_interval(tmp_path: Path):
    tenants = tmp_path / "tenants.yaml"
    _write(tenants, "tenants:\n  acme:\n    webhook_secret_dev: one\n")
    clock = [100.0]
    registry = ReloadingRegistry(lambda: load_registry(SHIPPED_POLICIES_DIR, tenants), check_interval_s=1.0,
                                 monotonic=lambda: clock[0])
    _write(tenants, "tenants:\n  acme:\n    webhook_secret_dev: two\n")
    assert registry.current()["acme"].webhook_secret() == "one"  # within the interval: not looked at
    clock[0] += 1.0
    assert registry.current()["acme"].webhook_secret() == "two"
    tenants.touch()  # touched, content unchanged: no reload
    clock[0] += 1.0
    registry.current()
    assert registry.reloads == 1


def test_secret_settings_are_validated_with_one_line_errors(tmp_path: Path):
    tenants = tmp_path / "tenants.yaml"
    _write(tenants, "tenants:\n  acme:\n    webhook_secret_file: missing.secret\n")
    with pytest.raises(PolicyError, match=r"tenants.acme.webhook_secret_file': cannot read secret file .*missing.secret"):
        load_registry(SHIPPED_POLICIES_DIR, tenants)
    _write(tenants, "tenants:\n  acme:\n    webhook_secret_dev: x\n    webhook_secret_expires_at: 2026-01-01T00:00:00\n")
    with pytest.raises(PolicyError, match=r"webhook_secret_expires_at': Value error, needs a UTC offset"):
        load_registry(SHIPPED_POLICIES_DIR, tenants)


def test_signature_matches_the_standard_webhooks_reference_vector():
    # The example of the Standard Webhooks specification (and of its reference libraries).
    body = b'{"test": 2432232314}'
    assert standard_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) \
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
