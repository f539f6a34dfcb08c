"""`e2a tenants`: the tenant registry as finance sees it, starting with the rate card versions
(DOMAIN §8.1) and the invoice months each one priced."""

from __future__ import annotations

import click

from e2a_assets.cli.db import prepared_warehouse
from e2a_assets.cli.instance import E2AError
from e2a_assets.settings import Settings


@click.group()
def tenants() -> None:
    """The tenant registry: rate card versions per tenant."""


def _table(rows: list[list[str]]) -> list[str]:
    """Plain left-aligned columns (no colours, no box drawing): readable in a terminal and piped."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


@tenants.command("rates")
@click.option("--tenant", required=True, help="Tenant whose rate card versions to list.")
def rates(tenant: str) -> None:
    """List a tenant's rate card versions: when each is in force, the values that differ from the
    default tariff, and the invoice months it priced (from the invoice ledger).

    Refuses, in one line, a registry that changes a version that priced an issued invoice.
    """
    from e2a_assets.documents.formatting import format_money
    from e2a_assets.services.rate_cards import rate_card_overview, verify_rate_cards

    settings = Settings.from_env()
    registry = settings.registry()
    policy = registry.get(tenant)
    if policy is None:
        raise E2AError(f"--tenant {tenant}: unknown tenant (known: {', '.join(registry.tenants)})")
    engine = prepared_warehouse(settings)
    try:
        verify_rate_cards(engine, registry)
        overview = rate_card_overview(engine, registry, tenant)
    finally:
        engine.dispose()
    click.echo(f"{tenant}: {len(overview)} rate card version(s); values that differ from the default tariff; "
               f"months from the invoice ledger")  # fmt: skip
    rows = [["version", "effective_from", "values", "invoices", "amount", "invoice months priced"]]
    for row in overview.to_dict("records"):
        rows.append([
            str(row["version"]), row["effective_from"], row["changes"], str(row["invoices"]),
            format_money(row["amount_cents"], policy.currency), ", ".join(row["months"]) or "none yet",
        ])  # fmt: skip
    for line in _table(rows):
        click.echo(line)
