"""Rate cards with effective dates (DOMAIN §8.1): which version of a tenant's tariff prices an
order, and whether the registry still says what an issued invoice's version said.

The versions themselves are read and validated with the rest of the registry
(`policies.py::load_registry`, `RateCardVersion`). Pure and vectorised: the version in force is one
`merge_asof` over all orders, never a loop over them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from e2a_assets.domain.policies import FIRST_RATE_CARD_VERSION, PolicyError, RateCardVersion, TenantRegistry

CARD_COLUMNS = ["tenant", "rate_card_version", "effective_from"]
# What the ledger keeps of every version that priced an issued invoice (warehouse table
# `rate_card_versions`): the canonical definition and its SHA-256.
RECORD_COLUMNS = ["tenant", "version", "effective_from", "definition", "fingerprint"]


def rate_card_table(registry: TenantRegistry, tenants: Any = ()) -> pd.DataFrame:
    """One row per (tenant, rate card version) with `effective_from` and the version's `tariff_*`
    columns; tenants the registry does not list get its default policy's version 1."""
    frame = registry.rate_card_frame()
    missing = sorted(set(pd.Series(list(tenants), dtype=object).dropna()) - set(frame["tenant"]))
    if missing:
        default = TenantRegistry((registry.default_policy(),)).rate_card_frame()
        extra = pd.concat([default.assign(tenant=t) for t in missing], ignore_index=True)
        frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
    return frame.reset_index(drop=True)


def versions_in_force(orders: pd.DataFrame, cards: pd.DataFrame) -> pd.Series:
    """The rate card version that prices each order (aligned with `orders`, int64).

    `orders`: tenant, invoice_date and optionally `rate_card_version`; a row that already carries a
    version (an invoiced order: the version recorded on its invoice) keeps it, the others get the
    version **in force**: the latest `effective_from` <= invoice_date, else version 1 (in force from
    the first day). `cards`: `CARD_COLUMNS` (`rate_card_table`). A kept version the tenant's card
    does not have is an error (one line).
    """
    if orders.empty:
        return pd.Series([], index=orders.index, dtype=np.int64)
    left = pd.DataFrame({
        "_row": np.arange(len(orders)), "tenant": orders["tenant"].to_numpy(),
        "_day": pd.to_datetime(pd.Series(orders["invoice_date"].to_numpy(), dtype=object)).astype("datetime64[ns]"),
    }).sort_values("_day", kind="stable")  # fmt: skip
    dated = cards[cards["effective_from"].notna()][["tenant", "rate_card_version", "effective_from"]]
    dated = dated.assign(effective_from=pd.to_datetime(dated["effective_from"]).astype("datetime64[ns]"))
    found = pd.merge_asof(left, dated.sort_values("effective_from"), left_on="_day", right_on="effective_from",
                          by="tenant", direction="backward")  # fmt: skip
    in_force = found.sort_values("_row")["rate_card_version"].fillna(FIRST_RATE_CARD_VERSION).to_numpy(dtype=np.int64)
    version = pd.Series(in_force, index=orders.index, dtype=np.int64)
    if "rate_card_version" in orders.columns:
        recorded = pd.to_numeric(orders["rate_card_version"], errors="coerce")
        version = recorded.fillna(version).astype(np.int64)
        known = pd.MultiIndex.from_frame(cards[["tenant", "rate_card_version"]].astype({"rate_card_version": np.int64}))
        unknown = ~pd.MultiIndex.from_arrays([orders["tenant"], version]).isin(known)
        if unknown.any():
            tenant, number = orders["tenant"][unknown].iloc[0], version[unknown].iloc[0]
            raise ValueError(f"tenant {tenant}: rate card version {number} is not in the tenant registry")
    return version


# ---------------------------------------------------------------------------------------------
# Immutability: a version that priced an issued invoice never changes


class RateCardChanged(PolicyError):
    """The tenant registry alters a rate card version that priced an issued invoice (one line
    naming the tenant and the version)."""


def version_records(registry: TenantRegistry, used: pd.DataFrame) -> pd.DataFrame:
    """`RECORD_COLUMNS` of the registry's versions listed in `used` (tenant, version): what the
    ledger records when a version prices its first invoice."""
    rows = []
    for tenant, number in sorted(set(zip(used["tenant"], used["version"].astype(int)))):
        policy = registry.get(tenant) or registry.default_policy()
        card = next((v for v in policy.rate_card_versions() if v.version == number), None)
        if card is None:
            raise ValueError(f"tenant {tenant}: rate card version {number} is not in the tenant registry")
        rows.append((tenant, number, card.effective_from, card.definition(), card.fingerprint()))
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def _flat(definition: str) -> dict[str, Any]:
    doc = json.loads(definition)
    flat: dict[str, Any] = {"effective_from": doc.get("effective_from")}
    for key, value in (doc.get("prices") or {}).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            flat[key] = value
    return flat


def differences_text(card: RateCardVersion, defaults: RateCardVersion) -> str:
    """The rate card values of `card` that differ from `defaults`, e.g. `pick_cents=40`."""
    mine, base = _flat(card.definition()), _flat(defaults.definition())
    keys = sorted(k for k in mine if k != "effective_from" and mine[k] != base.get(k))
    return ", ".join(f"{k}={mine[k]:g}" if isinstance(mine[k], float) else f"{k}={mine[k]}" for k in keys)


def describe_change(before: str, after: str, shown: int = 3) -> str:
    """What differs between two version definitions, e.g. `pick_cents 40 -> 45`."""
    old, new = _flat(before), _flat(after)
    keys = ["effective_from", *sorted(k for k in set(old) | set(new) if k != "effective_from")]
    diffs = [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]
    more = f" and {len(diffs) - shown} more" if len(diffs) > shown else ""
    return ", ".join(diffs[:shown]) + more


def changed_versions(recorded: pd.DataFrame, registry: TenantRegistry) -> list[str]:
    """One line per recorded version (`RECORD_COLUMNS`, plus `first_used_at`) that the registry
    no longer has or defines differently, naming the tenant, the version and what changed."""
    problems = []
    for row in recorded.sort_values(["tenant", "version"]).to_dict("records"):
        tenant, number = row["tenant"], int(row["version"])
        first = pd.Timestamp(row["first_used_at"]).date() if pd.notna(row.get("first_used_at")) else None
        since = f" since {first}" if first else ""
        # A tenant the registry does not list is priced by its defaults (`rate_card_table`).
        policy = registry.get(tenant) or registry.default_policy()
        card = next((v for v in policy.rate_card_versions() if v.version == number), None)
        if card is None:
            problems.append(f"tenant {tenant}: rate card version {number} has priced issued invoices{since} and is "
                            f"missing from the tenant registry; restore it (changes go into a new version)")
        elif card.fingerprint() != row["fingerprint"]:
            change = describe_change(row["definition"], card.definition())
            problems.append(f"tenant {tenant}: rate card version {number} has priced issued invoices{since} and "
                            f"cannot change ({change}); put the change in a new version")
    return problems
