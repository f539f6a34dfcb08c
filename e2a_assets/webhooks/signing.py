"""Webhook signatures (DOMAIN §1.2, docs/webhooks.md "Signing"): who may deliver, and when.

Three schemes, every one an HMAC-SHA256 compared in constant time:

- Shopify: base64(HMAC(secret, body)) in `X-Shopify-Hmac-Sha256` (or the unprefixed
  `Shopify-Hmac-Sha256` Shopify also sends).
- e2a (wms, carrier): base64(HMAC(secret, body)) in `X-E2A-Hmac-Sha256`.
- Standard Webhooks (wms, carrier; https://www.standardwebhooks.com/): `webhook-id`,
  `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated `v1,<base64>`
  entries) over `id.timestamp.body`; a `whsec_` secret is the base64 of the key. The timestamp
  must lie within ±5 minutes of the receiver's clock, so a captured delivery cannot be replayed
  later.

Implemented here rather than with the `standardwebhooks` package: its `verify` raises plain
`ValueError`/`binascii.Error` on a malformed signature header and `UnicodeDecodeError` on a
non-UTF-8 body (a 500 instead of a 401), has no injectable clock, and takes one secret at a time,
while rotation verifies against two.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Mapping, Sequence

SHOPIFY_SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
E2A_SIGNATURE_HEADER = "X-E2A-Hmac-Sha256"
SHOPIFY_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
E2A_TENANT_HEADER = "X-E2A-Tenant"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
# Every header that carries a signature (never copied into a dead letter).
SIGNATURE_HEADERS = frozenset({"x-shopify-hmac-sha256", "shopify-hmac-sha256", "x-e2a-hmac-sha256",
                               STANDARD_SIGNATURE_HEADER})
# Standard Webhooks' recommended tolerance between the sender's timestamp and the receiver's clock.
TIMESTAMP_TOLERANCE_S = 5 * 60
_SECRET_PREFIX = "whsec_"
_MAX_SIGNATURES = 16  # a header listing more is not a rotation, it is a guessing attempt


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time comparison of the expected and the presented signature."""
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), signature.strip().encode("ascii", "replace"))


def signature_header(source: str) -> str:
    return SHOPIFY_SIGNATURE_HEADER if source == "shopify" else E2A_SIGNATURE_HEADER


def shopify_header(headers: Mapping[str, str], name: str) -> str | None:
    """A Shopify header by its `X-Shopify-` name, or by the unprefixed `Shopify-` name Shopify
    also uses (`headers` must look names up case-insensitively, as Starlette's do)."""
    value = headers.get(name)
    if value is None and name.lower().startswith("x-shopify-"):
        value = headers.get(name[2:])
    return value


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after `whsec_`; any other secret (an
    e2a development secret, say) is used as its UTF-8 bytes, as the e2a scheme does."""
    if secret.startswith(_SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(_SECRET_PREFIX):] + "==", validate=False)
        except (binascii.Error, ValueError):
            return b""
    return secret.encode("utf-8")


def standard_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` entry (`v1,<base64>`) for a delivery: what a sender computes."""
    content = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(standard_key(secret), content, hashlib.sha256).digest()).decode("ascii")


def _standard_problem(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    msg_id = (headers.get(STANDARD_ID_HEADER) or "").strip()
    raw_ts = (headers.get(STANDARD_TIMESTAMP_HEADER) or "").strip()
    presented = headers.get(STANDARD_SIGNATURE_HEADER) or ""
    if not msg_id or not raw_ts:
        return "webhook-signature without webhook-id or webhook-timestamp"
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        return "webhook-timestamp is not Unix seconds"
    timestamp = int(raw_ts)
    if abs(now - timestamp) > TIMESTAMP_TOLERANCE_S:
        return f"webhook-timestamp outside ±{TIMESTAMP_TOLERANCE_S} s of the receiver's clock"
    offered = [entry.partition(",") for entry in presented.split()[:_MAX_SIGNATURES]]
    candidates = [sig.encode("ascii", "replace") for version, _, sig in offered if version == "v1" and sig]
    if not candidates:
        return "no v1 signature in webhook-signature"
    for secret in secrets:
        expected = standard_sign(secret, msg_id, timestamp, body)[3:].encode("ascii")
        # Compare every entry (no early exit on the first mismatch) so time says nothing.
        if any([hmac.compare_digest(expected, sig) for sig in candidates]):
            return None
    return "invalid signature"


def signature_problem(source: str, secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *,
                      now: float, require_timestamp: bool = False) -> str | None:
    """Why a delivery is not authentic (for the log; the sender gets a bare 401), or None when one
    of the tenant's active `secrets` signed it.

    wms and carrier deliveries carrying `webhook-signature` are Standard Webhooks; others use the
    e2a header, unless the tenant requires timestamped signatures (`require_timestamp`).
    """
    if not secrets:
        return "no active secret"
    if source == "shopify":
        presented = shopify_header(headers, SHOPIFY_SIGNATURE_HEADER)
    elif headers.get(STANDARD_SIGNATURE_HEADER) is not None:
        return _standard_problem(secrets, headers, body, now)
    elif require_timestamp:
        return "the tenant requires timestamped (Standard Webhooks) signatures"
    else:
        presented = headers.get(E2A_SIGNATURE_HEADER)
    if not presented:
        return "missing signature"
    if any([verify(secret, body, presented) for secret in secrets]):
        return None
    return "invalid signature"
