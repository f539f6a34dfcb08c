"""`e2a db`: the warehouse's schema revision (upgrade, current, new revisions), and the one rule
every warehouse-touching command follows before it starts.

The embedded default warehouse (no DATABASE_URL: a SQLite file under the data directory) is
upgraded in place, so a fresh clone needs no setup step. A warehouse named by DATABASE_URL is
migrated deliberately by its operator: commands refuse it, in one line, until it is current.
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import Engine

from e2a_assets.settings import Settings

UPGRADE_RUN_ID = "e2a db upgrade"


def is_embedded_default(settings: Settings) -> bool:
    """True when the warehouse is the default SQLite file, not one named by DATABASE_URL."""
    return "database_url" not in settings.env_names


def prepared_warehouse(settings: Settings) -> Engine:
    """The warehouse's engine, at the head revision: upgraded here when it is the embedded default,
    else checked (raising `WarehouseBehind`, one line naming `e2a db upgrade`)."""
    from e2a_assets.warehouse.engine import make_engine
    from e2a_assets.warehouse.migrate import ensure_current, upgrade

    engine = make_engine(settings.database_url)
    try:
        if is_embedded_default(settings):
            upgrade(engine)
        else:
            ensure_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


@click.group()
def db() -> None:
    """The warehouse schema: apply migrations, show the revision, write a new revision."""


@db.command("upgrade")
def upgrade_command() -> None:
    """Migrate the warehouse (DATABASE_URL, or the default SQLite file) to this e2a's revision,
    then write the row-level lineage of documents issued without one (what `e2a invoices lineage
    --backfill` does; nothing when there are none).

    Safe to run from several hosts at once: one migrates, the others wait and find it done."""
    from e2a_assets.warehouse.engine import make_engine
    from e2a_assets.warehouse.migrate import BASELINE, shown_url, upgrade

    from e2a_assets.cli.lineage import backfill_ledger

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        result = upgrade(engine)
        where = f"warehouse {shown_url(engine)}"
        before = result.before or "none"
        if result.adopted:
            click.echo(f"{where}: made before versioned migrations; its tables match revision {BASELINE}, stamped it")
            before = BASELINE
        if before == result.after:
            click.echo(f"{where}: at revision {result.after}, up to date")
        else:
            click.echo(f"{where}: upgraded from revision {before} to {result.after}")
        # Documents issued before their lineage existed (revisions 0007, 0009) get it now, once: the
        # lineage check would otherwise fail on them and block billing_report.
        done = backfill_ledger(engine, settings, UPGRADE_RUN_ID)
        if done is not None:  # an empty ledger has nothing to link: nothing to say
            click.echo(f"{where}: lineage backfilled for {done[0]} document(s), {done[1]} link(s)")
    finally:
        engine.dispose()


@db.command("current")
def current_command() -> None:
    """Show the warehouse's revision and the one this e2a needs; exits 1 when they differ."""
    from e2a_assets.warehouse.engine import make_engine
    from e2a_assets.warehouse.migrate import current_revision, head_revision, known_revision, shown_url

    engine = make_engine(Settings.from_env().database_url)
    try:
        found, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    click.echo(f"warehouse  {shown_url(engine)}")
    click.echo(f"revision   {found or 'none'}")
    click.echo(f"head       {head}")
    if found == head:
        click.echo("up to date")
        return
    if found is not None and not known_revision(found):
        click.echo("ahead: migrated by a newer e2a; run that version")
    else:
        click.echo("behind: run `e2a db upgrade`")
    sys.exit(1)


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the revision changes, e.g. \"add invoices.po_number\".")
@click.option("--autogenerate", is_flag=True, help="Fill it in from the difference between the schema package and "
                                                     "the current head (review the result before committing it).")
def revision_command(message: str, autogenerate: bool) -> None:
    """For contributors: write the next revision file into e2a_assets/warehouse/migrations/versions/."""
    from e2a_assets.warehouse.migrate import new_revision

    click.echo(f"wrote {new_revision(message, autogenerate)}")
