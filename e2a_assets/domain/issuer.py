"""The issuer of every client document: the 3PL itself (legal name, postal address, tax id and how
to pay it), from `policies/issuer.yaml` or the file `E2A_ISSUER_FILE` names (docs/billing.md
"Documents"). A problem is a one-line `PolicyError` naming the file and the field."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from e2a_assets.domain.policies import SHIPPED_POLICIES_DIR, PolicyError, _first_error, _read_yaml


class Issuer(BaseModel):
    """The 3PL as it appears at the top of its invoices, notes and statements."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    legal_name: str = Field(min_length=1)
    address: tuple[str, ...] = Field(min_length=1)
    tax_id: str = Field(min_length=1)
    email: str = ""
    phone: str = ""
    # How a client pays (bank account, payee): printed under the remittance reference.
    payment_instructions: tuple[str, ...] = ()


def load_issuer(path: Path) -> Issuer:
    """The `issuer:` block of `path`, validated."""
    doc = _read_yaml(Path(path))
    block = doc.get("issuer") if isinstance(doc, dict) else None
    if not isinstance(block, dict):
        raise PolicyError(f"{path}: field 'issuer': expected a mapping with legal_name, address and tax_id")
    try:
        return Issuer(**block)
    except ValidationError as exc:
        raise _first_error(Path(path), "issuer", exc) from None


@functools.cache
def shipped_issuer() -> Issuer:
    """The issuer of the shipped `policies/issuer.yaml`: what documents show when no other issuer
    was configured (tools and tests that render without settings). Read once, on first use."""
    return load_issuer(SHIPPED_POLICIES_DIR / "issuer.yaml")
