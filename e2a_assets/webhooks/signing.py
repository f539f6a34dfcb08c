"""Webhook signatures (DOMAIN §1.2): base64(HMAC-SHA256(tenant secret, raw body))."""

from __future__ import annotations

import base64
import hashlib
import hmac

SHOPIFY_SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
E2A_SIGNATURE_HEADER = "X-E2A-Hmac-Sha256"
SHOPIFY_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
E2A_TENANT_HEADER = "X-E2A-Tenant"


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
