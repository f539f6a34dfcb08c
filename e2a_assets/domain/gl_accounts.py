"""Which income account (GL code) each charge of an invoice or note books to, for the accounting
exports (docs/billing.md "Exporting to QuickBooks and Xero").

A line's `kind` (domain/billing.py `LINE_KINDS`, the monthly invoice's `volume_discount` and
`minimum_monthly_fee`, a note's reason, `tax`) names a **charge**; each charge has one account,
set per tenant under `gl_accounts:` over the defaults of `policies/default_gl_accounts.yaml`.
A kind this module does not know books to `other`, so a new line kind is never dropped from an
export.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

OTHER = "other"
# Every charge an account can be configured for, in the order of an invoice's lines.
CHARGES = (
    "pick", "pack", "label", "kitting", "storage", "gift_wrap", "photo", "quality_check",
    "custom_packaging", "returns", "minimum_top_up", "rush", "oversized", "hazmat", "fragile",
    "minimum_monthly_fee", "volume_discount", "adjustment", "tax", OTHER,
)  # fmt: skip


def _charge_of_kind() -> dict[str, str]:
    """Line kinds whose charge is not the kind itself (services and multipliers carry a prefix,
    handled in `charge_of`; a note's line carries the note's reason)."""
    # Imported here: notes -> billing -> policies imports this module for `GlAccounts`.
    from e2a_assets.domain.notes import MINIMUM_TOP_UP, RECALCULATION, VOLUME_DISCOUNT

    return {"storage_long_term": "storage", RECALCULATION: "adjustment", VOLUME_DISCOUNT: "volume_discount",
            MINIMUM_TOP_UP: "minimum_monthly_fee"}


class GlAccounts(BaseModel):
    """A tenant's accounts: `receivable` (the debtor side of every document), `accounts` (charge ->
    income account code) and the Xero tax type of its lines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receivable: str = Field(min_length=1)
    xero_tax_type: str = Field(min_length=1)
    accounts: dict[str, str]

    @field_validator("accounts")
    @classmethod
    def _every_charge_once(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CHARGES))
        if unknown:
            raise ValueError(f"unknown charge {unknown[0]!r} (known: {', '.join(CHARGES)})")
        missing = [c for c in CHARGES if c not in value]
        if missing:
            raise ValueError(f"no account for charge {missing[0]!r}")
        empty = [c for c in CHARGES if not str(value[c]).strip()]
        if empty:
            raise ValueError(f"empty account for charge {empty[0]!r}")
        return {c: str(value[c]).strip() for c in CHARGES}


def charge_of(kinds: pd.Series) -> pd.Series:
    """The charge (a key of `CHARGES`) each line kind books to; unknown kinds are `other`."""
    kinds = kinds.astype(str)
    charge = kinds.map(_charge_of_kind())
    stripped = kinds.str.replace(r"^(service|multiplier)_", "", regex=True)
    charge = charge.fillna(stripped.where(stripped.isin(CHARGES)))
    return charge.fillna(OTHER)


def account_of(kinds: pd.Series, gl: GlAccounts) -> pd.Series:
    """The income account code of each line kind under `gl`."""
    return charge_of(kinds).map(gl.accounts)
