"""The project's Dagster instance: its home directory, its dagster.yaml, its storage created once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from e2a_assets.settings import PROJECT_ROOT, Settings


class E2AError(click.ClickException):
    """A user-facing failure: printed as one line, exit code 1."""


def dagster_home(settings: Settings) -> Path:
    """The project's Dagster instance directory (DAGSTER_HOME), with e2a's dagster.yaml in it:
    dagster.postgres.yaml (Postgres instance storage) when E2A_DAGSTER_POSTGRES_URL is set."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    postgres_url = os.environ.get("E2A_DAGSTER_POSTGRES_URL")
    default_yaml = "dagster.yaml"
    if postgres_url:
        from e2a_assets.warehouse.engine import normalise_url

        # Dagster's Postgres storage needs psycopg2 (DAGSTER-NOTES §2): accept postgres(ql):// too.
        os.environ["E2A_DAGSTER_POSTGRES_URL"] = normalise_url(postgres_url)
        default_yaml = "dagster.postgres.yaml"
    source = Path(os.environ.get("E2A_DAGSTER_YAML") or PROJECT_ROOT / default_yaml)
    if source.exists() and (not instance_yaml.exists() or instance_yaml.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, instance_yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def prepared_dagster_home(settings: Settings) -> Path:
    """`dagster_home`, with the instance's storage created before any Dagster process starts."""
    from e2a_assets.cli.processes import prepare_instance

    home = dagster_home(settings)
    try:
        prepare_instance()
    except Exception as exc:  # noqa: BLE001 - any storage failure becomes one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise E2AError(f"cannot open the Dagster instance in {home}: {first}") from None
    return home
