"""`e2a documents`: the client documents of a tenant's month, in one folder and one zip."""

from __future__ import annotations

from pathlib import Path

import click

from e2a_assets.cli.db import prepared_warehouse
from e2a_assets.cli.instance import E2AError
from e2a_assets.settings import Settings


@click.group()
def documents() -> None:
    """Client documents: invoices, credit/debit notes and statements (HTML and PDF)."""


@documents.command("build")
@click.option("--tenant", required=True, help="Tenant whose documents to build.")
@click.option("--month", required=True, help="Month, YYYY-MM.")
@click.option("--output", type=click.Path(file_okay=False), help="Root folder (default: the invoice folder the billing assets write).")
def build(tenant: str, month: str, output: str | None) -> None:
    """Write every document of the tenant's month (invoices, notes, statement: HTML and PDF), the
    per-order detail CSV and a zip of the folder. Idempotent: issued documents are never rewritten
    and a second build gives the same bytes."""
    from e2a_assets.documents.formatting import parse_month
    from e2a_assets.documents.month_folder import build_month_folder

    try:
        parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None
    settings = Settings.from_env()
    registry = settings.registry()
    if registry.get(tenant) is None:
        raise E2AError(f"--tenant {tenant}: unknown tenant (known: {', '.join(registry.tenants)})")
    issuer = settings.issuer()
    root = Path(output) if output else settings.invoice_dir
    try:
        result = build_month_folder(prepared_warehouse(settings), registry, issuer, tenant, month, root)
    except OSError as exc:
        raise E2AError(f"--output {root}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"{result.folder}: {len(result.files)} file(s), {len(result.written)} written now; zip {result.archive}")
