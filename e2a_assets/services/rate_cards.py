"""Rate card versions against the ledger (DOMAIN §8.1): the registry may not alter a version that
priced an issued invoice, and finance can see which months each version priced.

Used by the billing assets before they price or issue (refusal in one line) and by
`e2a tenants rates`. Reads only `rate_card_versions` (a few rows per tenant) for the check, and one
SQL aggregate over a tenant's invoices for the overview.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from e2a_assets.domain.policies import TenantRegistry
from e2a_assets.domain.rate_cards import RateCardChanged, changed_versions, differences_text
from e2a_assets.warehouse import ledger

OVERVIEW_COLUMNS = ["version", "effective_from", "changes", "months", "invoices", "amount_cents", "recorded"]


def verify_rate_cards(engine: Engine, registry: TenantRegistry) -> None:
    """Refuse (`RateCardChanged`, one line naming tenant and version) a registry that alters or
    drops a version that priced an issued invoice. Versions recorded by revision 0005 without a
    definition take the registry's on this first look."""
    with engine.begin() as conn:
        ledger.adopt_rate_cards(conn, registry)
        recorded = ledger.read_rate_cards(conn)
    problems = changed_versions(recorded, registry)
    if problems:
        raise RateCardChanged(problems[0])


def rate_card_overview(engine: Engine, registry: TenantRegistry, tenant: str) -> pd.DataFrame:
    """One row per rate card version of `tenant` (columns `OVERVIEW_COLUMNS`): its start, the
    values that differ from the default tariff, the invoice months it priced ("YYYY-MM (invoices)"),
    how many invoices and their amount and whether the ledger has recorded it."""
    policy = registry[tenant]
    defaults = registry.default_policy().rate_card_versions()[0]
    priced = ledger.months_priced(engine, tenant)
    recorded = set(ledger.read_rate_cards(engine, tenant)["version"].astype(int))
    rows = []
    for card in policy.rate_card_versions():
        mine = priced[priced["rate_card_version"] == card.version]
        months = [f"{m[:4]}-{m[4:]} ({n})" for m, n in zip(mine["invoice_month"], mine["invoices"])]
        rows.append({
            "version": card.version,
            "effective_from": card.effective_from.isoformat() if card.effective_from else "first day",
            "changes": differences_text(card, defaults) or "the defaults",
            "months": months,
            "invoices": int(mine["invoices"].sum()),
            "amount_cents": int(mine["amount_cents"].sum()),
            "recorded": card.version in recorded,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)
