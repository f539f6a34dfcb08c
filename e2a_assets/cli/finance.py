"""`e2a export` (accounting exports for QuickBooks and Xero) and `e2a payments` (record what
clients paid): the finance team's commands (docs/billing.md "Finance")."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path

import click

from e2a_assets.cli.instance import E2AError


def _settings():  # noqa: ANN202
    from e2a_assets.settings import Settings

    return Settings.from_env()


def _month_documents(tenant: str, month: str):  # noqa: ANN202
    from e2a_assets.cli.db import prepared_warehouse
    from e2a_assets.documents.formatting import parse_month
    from e2a_assets.exports.month_documents import month_documents

    try:
        parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None
    settings = _settings()
    registry = settings.registry()
    policy = registry.get(tenant)
    if policy is None:
        raise E2AError(f"--tenant {tenant}: unknown tenant (known: {', '.join(registry.tenants)})")
    engine = prepared_warehouse(settings)
    try:
        return month_documents(engine, policy, month)
    finally:
        engine.dispose()


def _write(text: str, output: str | None, what: str) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise E2AError(f"--output {output}: cannot write ({exc.strerror})") from None
        click.echo(f"wrote {what} to {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.group("export")
def export() -> None:
    """Accounting exports of a tenant-month: invoices and credit/debit notes with their GL accounts."""


@export.command("quickbooks")
@click.option("--tenant", required=True, help="Tenant whose documents to export.")
@click.option("--month", required=True, help="Document month, YYYY-MM.")
@click.option("--format", "fmt", type=click.Choice(["iif", "qbo-csv"]), default="iif", show_default=True,
              help="iif: QuickBooks Desktop; qbo-csv: QuickBooks Online's invoice import.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
def quickbooks(tenant: str, month: str, fmt: str, output: str | None) -> None:
    """QuickBooks Desktop IIF (INVOICE and CREDIT MEMO transactions) or QuickBooks Online CSV."""
    from e2a_assets.exports.quickbooks import to_iif, to_qbo_csv

    docs = _month_documents(tenant, month)
    text = to_iif(docs) if fmt == "iif" else to_qbo_csv(docs)
    _write(text, output, f"{len(docs.documents)} document(s), {len(docs.lines)} line(s)")


@export.command("xero")
@click.option("--tenant", required=True, help="Tenant whose documents to export.")
@click.option("--month", required=True, help="Document month, YYYY-MM.")
@click.option("--documents", type=click.Choice(["invoices", "credit-notes"]), default="invoices", show_default=True,
              help="invoices: invoices and debit notes (Xero's sales invoice import); credit-notes: Xero's credit note import.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
def xero(tenant: str, month: str, documents: str, output: str | None) -> None:
    """Xero's sales invoice CSV (invoices, debit notes) or credit note CSV (credit notes)."""
    from e2a_assets.domain.notes import CREDIT
    from e2a_assets.exports.xero import CREDIT_NOTES, to_xero_csv

    docs = _month_documents(tenant, month)
    chosen = (docs.documents["type"] == CREDIT) == (documents == CREDIT_NOTES)
    _write(to_xero_csv(docs, documents), output, f"{int(chosen.sum())} {documents.replace('-', ' ')}")


@click.group("payments")
def payments() -> None:
    """What clients paid: record payments against invoices and debit notes."""


def _record(rows, source: str) -> None:  # noqa: ANN001
    from e2a_assets.cli.db import prepared_warehouse
    from e2a_assets.documents.formatting import decimal_amount
    from e2a_assets.services.payments import PaymentsRefused, record_payments

    settings = _settings()
    engine = prepared_warehouse(settings)
    try:
        done = record_payments(engine, rows, source, settings.operator or getpass.getuser(),
                               dt.datetime.now(dt.timezone.utc))  # fmt: skip
    except PaymentsRefused as exc:
        for row, reason in exc.problems[1:20]:
            click.echo(f"  row {row}: {reason}" if row is not None else f"  {reason}", err=True)
        raise E2AError(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"recorded {done.recorded} payment(s), {decimal_amount(done.amount_cents)} in all; "
               f"{done.already_recorded} already recorded")  # fmt: skip


@payments.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def import_payments(file: str) -> None:
    """Record the payments of a CSV file (columns number, amount, date, reference). Every row is
    checked first; one refused row records nothing. Rows already recorded are skipped."""
    from e2a_assets.services.payments import parsed_rows, read_payment_file

    try:
        rows = read_payment_file(Path(file))
    except ValueError as exc:
        raise E2AError(str(exc)) from None
    _record(parsed_rows(rows), str(Path(file).resolve()))


@payments.command("record")
@click.option("--number", required=True, help="Invoice or debit note number.")
@click.option("--amount", required=True, help="Amount paid, like 125.50.")
@click.option("--date", "day", required=True, help="Payment date, YYYY-MM-DD.")
@click.option("--reference", required=True, help="Bank or remittance reference.")
def record_payment(number: str, amount: str, day: str, reference: str) -> None:
    """Record one payment (partial payments are fine; more than is owed is refused)."""
    import pandas as pd

    from e2a_assets.services.payments import RECORD_SOURCE, parsed_rows

    rows = pd.DataFrame([{"row": 1, "number": number, "amount": amount, "date": day, "reference": reference}])
    parsed = parsed_rows(rows)
    parsed["row"] = None
    _record(parsed, RECORD_SOURCE)
