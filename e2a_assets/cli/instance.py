"""The project's Dagster instance: its home directory, its dagster.yaml, its storage created once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from e2a_assets.settings import Settings


class E2AError(click.ClickException):
    """A user-facing failure: printed as one line, exit code 1."""


def dagster_home(settings: Settings) -> Path:
    """The project's Dagster instance directory (`settings.dagster_home`) with e2a's dagster.yaml in
    it (dagster.postgres.yaml when E2A_DAGSTER_POSTGRES_URL is set). This process's environment gets
    `settings.dagster_environment()`, so the instance it opens and every child it starts agree."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    source = settings.dagster_yaml
    if source.exists() and (not instance_yaml.exists() or instance_yaml.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, instance_yaml)
    os.environ.update(settings.dagster_environment())
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
