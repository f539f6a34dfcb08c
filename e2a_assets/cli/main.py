"""The `e2a` command: demo, simulate, serve, up, status, replay dead letters, invoices, open the UI,
the warehouse schema (`e2a db`), the tenant registry (`e2a tenants`), Celery workers (`e2a worker`),
client documents (`e2a documents`), accounting exports (`e2a export`) and payments (`e2a payments`).

Bad arguments and configuration problems end with one line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import click
from sqlalchemy import exc as sa_exc

from e2a_assets.domain.policies import PolicyError
from e2a_assets.cli.db import db, prepared_warehouse
from e2a_assets.cli.finance import export, payments
from e2a_assets.cli.instance import E2AError, dagster_home, prepared_dagster_home
from e2a_assets.cli import lineage as lineage_commands
from e2a_assets.cli.tenants import tenants
from e2a_assets.cli.worker import worker
from e2a_assets.cli.documents import documents
from e2a_assets.warehouse.migrate import MigrationError
from e2a_assets.settings import PROJECT_ROOT, Settings


def _settings() -> Settings:
    return Settings.from_env()


def _parse_day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}", param_hint=option) from None


def _tenants(settings: Settings, count: int):
    registry = settings.registry()
    if count > len(registry.tenants):
        raise E2AError(
            f"--tenants {count}: the registry {settings.tenants_file} has {len(registry.tenants)} tenants; add more there"
        )
    return list(registry.policies[:count])


def _reachable_receiver(url: str) -> str:
    """`--live URL` as a base URL, once it is well-formed and a receiver answers there."""
    import httpx

    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"expected the receiver's base URL, like http://127.0.0.1:8000, got {url!r}",
                                 param_hint="--live")
    base = str(parsed).rstrip("/")
    try:
        httpx.get(f"{base}/healthz", timeout=5)
    except httpx.HTTPError as exc:
        raise E2AError(f"--live {base}: no receiver answers there ({type(exc).__name__}); "
                       f"start one with `e2a serve` or `e2a up`") from None
    return base


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """e2a: exception to action, a Dagster asset platform for 3PL warehouse operations."""


@cli.command()
@click.option("--tenants", "tenant_count", type=click.IntRange(1, 1000), default=2, show_default=True)
@click.option("--days", type=click.IntRange(1, 3660), default=7, show_default=True)
@click.option("--orders-per-day", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start", help="First simulated day, YYYY-MM-DD (default: DAYS days before today, UTC).")
@click.option("--live", metavar="URL", help="Send signed HTTP deliveries to a running receiver instead.")
@click.option("--rate", type=click.FloatRange(min=0.1), help="With --live: deliveries per second (default: as fast as possible).")
def simulate(tenant_count: int, days: int, orders_per_day: int, seed: int, start: str | None,
             live: str | None, rate: float | None) -> None:
    """Generate realistic Shopify, WMS and carrier traffic (reproducible for a seed)."""
    from e2a_assets.intake.ingestor import Ingestor
    from e2a_assets.simulator.runner import ReceiverUnreachable, ingest_deliveries, send_live
    from e2a_assets.simulator.traffic import generate
    from rich.progress import Progress

    settings = _settings()
    first = _parse_day(start, "--start") or dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)
    if live:
        live = _reachable_receiver(live)
    deliveries = generate(_tenants(settings, tenant_count), days, orders_per_day, seed, first)
    engine = None if live else prepared_warehouse(settings)
    with Progress(transient=False) as progress:
        task = progress.add_task("delivering" if live else "ingesting", total=len(deliveries))
        advance = lambda done: progress.update(task, completed=done)  # noqa: E731
        if live:
            try:
                stats = send_live(live, deliveries, rate, on_progress=advance)
            except ReceiverUnreachable as exc:
                raise E2AError(f"--live: {exc}") from None
            click.echo(f"sent {len(deliveries)} deliveries to {live}: {stats}")
            return
        stats = ingest_deliveries(Ingestor(engine), deliveries, on_progress=advance)
    click.echo(
        f"simulated {tenant_count} tenant(s) x {days} day(s) from {first}: {stats.total} deliveries, "
        f"{stats.stored} stored, {stats.duplicate} duplicates, {stats.ignored} ignored, {stats.dead_letter} dead letters"
    )


@cli.command()
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True)
@click.option("--orders-per-day", type=click.IntRange(1, 100_000), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(days: int, orders_per_day: int, seed: int) -> None:
    """Simulate two tenants, materialise every asset through the project's Dagster instance,
    print a per-tenant summary."""
    from e2a_assets.cli.demo import run_demo

    settings = _settings()
    home = dagster_home(settings)
    run_demo(settings, days=days, orders_per_day=orders_per_day, seed=seed, echo=click.echo)
    click.echo(f"\nDagster instance: {home}")
    click.echo("Open the Dagster UI (history, lineage, metadata):  ./run.sh ui   -> http://127.0.0.1:3000")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Receiver processes sharing the port (use Postgres for more than one).")
def serve(host: str, port: int, log_level: str, workers: int) -> None:
    """Run the signed webhook receiver (Shopify, WMS, carrier)."""
    from e2a_assets.webhooks.server import serve as run_server

    settings = _settings()
    prepared_warehouse(settings).dispose()
    run_server(settings, host=host, port=port, log_level=log_level, workers=workers)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Receiver port.")
@click.option("--ui-port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option("--simulate", "with_traffic", is_flag=True, help="Also feed live simulated traffic to the receiver.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="With --simulate: deliveries/s.")
def up(host: str, port: int, ui_port: int, with_traffic: bool, rate: float) -> None:
    """Start the receiver, the Dagster webserver and the daemon together; Ctrl-C stops them."""
    import time

    from e2a_assets.cli.processes import ProcessGroup, tool, wait_http
    from e2a_assets.services.rate_cards import verify_rate_cards

    import signal

    def _stop(signum, _frame):  # noqa: ANN001
        raise KeyboardInterrupt

    # Stop cleanly on Ctrl-C and on SIGTERM, even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    settings = _settings()
    registry = settings.registry()  # fail fast, in one line, on a bad tenant file
    engine = prepared_warehouse(settings)  # before any process starts: migrated, or refused in one line
    try:
        verify_rate_cards(engine, registry)  # and no rate card version that priced an invoice changed
    finally:
        engine.dispose()
    home = prepared_dagster_home(settings)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    group = ProcessGroup(settings.data_dir / "tmp", settings.child_environment())
    receiver = f"http://{host}:{port}"
    try:
        group.start("receiver", [tool("e2a"), "serve", "--host", host, "--port", str(port), "--log-level", "warning"],
                    log=logs / "receiver.log")
        # The workspace file names the code location `e2a` (stable GraphQL selectors, DAGSTER-NOTES §12).
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        group.start("webserver", [tool("dagster-webserver"), "-w", workspace, "-h", host, "-p", str(ui_port)],
                    log=logs / "webserver.log")
        group.start("daemon", [tool("dagster-daemon"), "run", "-w", workspace], log=logs / "daemon.log")
        if not wait_http(f"{receiver}/healthz", 60, group):
            raise E2AError(f"the receiver did not come up on {receiver}: {group.failed() or 'timed out'}")
        if not wait_http(f"http://{host}:{ui_port}/server_info", 120, group):
            raise E2AError(f"the Dagster webserver did not come up on port {ui_port}: {group.failed() or 'timed out'}")
        click.echo(f"receiver     {receiver}/webhooks/{{shopify,wms,carrier}}")
        click.echo(f"dagster UI   http://{host}:{ui_port}   (DAGSTER_HOME={home})")
        click.echo("daemon       running: new_events_sensor refreshes touched days every 30 s")
        click.echo(f"logs         {logs}/{{receiver,webserver,daemon}}.log")
        if with_traffic:
            today = dt.datetime.now(dt.timezone.utc).date()
            group.start("simulator", [tool("e2a"), "simulate", "--live", receiver, "--rate", str(rate),
                                      "--days", "2", "--start", (today - dt.timedelta(days=1)).isoformat()],
                        log=logs / "simulator.log")
            click.echo(f"simulator    sending signed deliveries at {rate}/s")
        click.echo("Ctrl-C stops everything.")
        while True:
            problem = group.failed()
            if problem and not problem.startswith("simulator"):
                raise E2AError(problem)
            time.sleep(1)
    except KeyboardInterrupt:
        click.echo("stopping ...")
    finally:
        group.stop()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables (for monitoring).")
def status(as_json: bool) -> None:
    """Readiness (warehouse, event freshness, dead letters, sensor lag) and open work per tenant.

    Exits 1 when a readiness check that gates the scheduled runs fails, so monitoring can call it.
    """
    import json

    import dagster as dg

    from e2a_assets.resources import WarehouseResource
    from e2a_assets.cli.status import collect_status

    settings = _settings()
    try:
        prepared_warehouse(settings).dispose()
    except sa_exc.SQLAlchemyError:
        pass  # not reachable or not a usable URL: the readiness table below says so
    prepared_dagster_home(settings)
    registry = settings.registry()
    with dg.DagsterInstance.get() as instance:
        report = collect_status(WarehouseResource(database_url=settings.database_url), instance, registry.tenants,
                                _shown_database_url())
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        _print_status(report, registry)
    if report.blocking:
        raise E2AError(f"not ready: {', '.join(report.blocking)} failed (scheduled runs skip their work until fixed)")


def _print_status(report, registry) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    from e2a_assets.documents.formatting import format_money
    from e2a_assets.cli.status import OPEN_WORK

    console = Console()
    console.print(f"warehouse  {report.warehouse}")
    checks = Table(title="readiness (gates the scheduled runs)", title_justify="left")
    for column in ("check", "result", "why"):
        checks.add_column(column)
    for v in report.verdicts:
        checks.add_row(v.name, "ok" if v.passed else ("FAIL" if v.name in report.blocking else "warn"), v.description)
    console.print(checks)
    if report.work is None:
        return
    console.print(report.sensor_lag_line)
    table = Table(title="open work per tenant (as the last runs left it; invoices of this UTC month)",
                  title_justify="left")
    table.add_column("tenant")
    for name, _ in OPEN_WORK:
        table.add_column(name.replace("_cents", "").replace("_", " "), justify="right")
    for row in report.work.to_dict("records"):  # one row per tenant
        policy = registry.get(row["tenant"])
        currency = policy.currency if policy else "USD"
        table.add_row(row["tenant"], *[format_money(row[name], currency) if name.endswith("_cents") else str(row[name])
                                       for name, _ in OPEN_WORK])
    console.print(table)
    console.print(f"alerts in the last 24 h: {report.alerts_24h}"
                  + (f" (newest: {report.newest_alert})" if report.newest_alert else ""))


@cli.command("replay-dead-letters")
@click.option("--tenant", help="Only this tenant's dead letters.")
@click.option("--limit", type=click.IntRange(1), help="At most this many.")
def replay_dead_letters_command(tenant: str | None, limit: int | None) -> None:
    """Re-run dead letters through validation and dedupe once their cause is fixed."""
    from e2a_assets.intake.ingestor import replay_dead_letters

    settings = _settings()
    if tenant and settings.registry().get(tenant) is None:
        raise E2AError(f"--tenant {tenant}: unknown tenant (known: {', '.join(settings.registry().tenants)})")
    report = replay_dead_letters(prepared_warehouse(settings), tenant=tenant, limit=limit)
    for letter_id, reason in report.failures[:20]:
        click.echo(f"  dead letter {letter_id}: still failing: {reason}")
    click.echo(f"replayed {report.replayed}, still failing {report.still_failing}")


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
def ui(port: int) -> None:
    """Open the Dagster UI (webserver + daemon) on the project's instance."""
    settings = _settings()
    prepared_warehouse(settings).dispose()  # the code location only checks the revision
    home = prepared_dagster_home(settings)
    dagster = Path(sys.executable).with_name("dagster")
    args = [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    click.echo(f"DAGSTER_HOME={home}\nDagster UI on http://127.0.0.1:{port}")
    import signal

    # An ignored SIGINT survives exec and `dagster dev` would then ignore SIGTERM too (DAGSTER-NOTES §11).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(args[0], args)


cli.add_command(db)
cli.add_command(worker)
cli.add_command(tenants)
cli.add_command(documents)
cli.add_command(export)
cli.add_command(payments)


@cli.group()
def invoices() -> None:
    """The invoice ledger: exports, adjustment reviews and row-level lineage."""


@invoices.command("export")
@click.option("--tenant", required=True, help="Tenant whose invoices to export.")
@click.option("--month", required=True, help="Invoice month, YYYY-MM.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write the CSV here (default: stdout).")
def export_invoices(tenant: str, month: str, output: str | None) -> None:
    """Export a tenant's invoices of one month as CSV (one row per invoice, with adjustments)."""
    from e2a_assets.documents.exports import export_month_csv
    from e2a_assets.documents.formatting import parse_month

    try:
        parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None
    settings = _settings()
    if settings.registry().get(tenant) is None:
        raise E2AError(f"--tenant {tenant}: unknown tenant (known: {', '.join(settings.registry().tenants)})")
    text = export_month_csv(prepared_warehouse(settings), tenant, month)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {max(text.count(chr(10)) - 1, 0)} invoice(s) to {output}", err=True)
    else:
        click.echo(text, nl=False)


@invoices.command("review")
@click.argument("adjustment_id")
@click.option("--approve/--reject", required=True, help="Apply the adjustment, or reject it.")
@click.option("--reviewer", default=lambda: _settings().operator, show_default="$USER")
def review_adjustment_command(adjustment_id: str, approve: bool, reviewer: str) -> None:
    """Approve or reject an adjustment that is PENDING_REVIEW; an approval issues its credit or
    debit note (DOMAIN §8.2), dated today."""
    from e2a_assets.documents.notes import read_note_lines, write_note_documents
    from e2a_assets.warehouse.ledger import notes_for, review_adjustment

    settings = _settings()
    engine = prepared_warehouse(settings)
    try:
        reviewed = review_adjustment(engine, adjustment_id, approve, reviewer, dt.datetime.now(dt.timezone.utc))
    except LookupError as exc:
        raise E2AError(str(exc)) from None
    if not reviewed:
        raise E2AError(f"{adjustment_id}: no adjustment pending review with that id")
    note = ""
    if approve:
        issued = notes_for(engine, adjustment_id)
        write_note_documents(settings.invoice_dir, issued, settings.registry(), settings.issuer(),
                             read_note_lines(engine, list(issued["note_number"])))
        note = f"; note {issued['note_number'].iloc[0]} issued"
    click.echo(f"{adjustment_id}: {'APPROVED' if approve else 'REJECTED'} by {reviewer}{note}")


invoices.add_command(lineage_commands.explain)
invoices.add_command(lineage_commands.lineage)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _shown_database_url() -> str:
    """The warehouse URL from the environment, password hidden (for one-line errors)."""
    from e2a_assets.settings import shown_database_url

    return shown_database_url()


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, no tracebacks for user mistakes."""
    try:
        cli.main(args=argv, prog_name="e2a", standalone_mode=False)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "usage: e2a COMMAND [ARGS] (see 'e2a --help')", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path if exc.ctx else 'e2a'} --help')"
        click.echo(f"e2a: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"e2a: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (PolicyError, MigrationError) as exc:
        click.echo(f"e2a: {exc}", err=True)
        sys.exit(1)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        click.echo(f"e2a: DATABASE_URL {_shown_database_url()} is not a usable database URL: {_first_line(exc)}", err=True)
        sys.exit(1)
    except sa_exc.DBAPIError as exc:
        click.echo(f"e2a: the warehouse at {_shown_database_url()} is not reachable: {_first_line(exc.orig or exc)}",
                   err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("e2a: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
