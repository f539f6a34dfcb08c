"""The project's Dagster instance: its home directory, its dagster.yaml, its storage created once.

The instance configuration is the user's: e2a writes `$DAGSTER_HOME/dagster.yaml` from its settings
only when there is none (or when the one there is still exactly what e2a wrote), never over a file
somebody edited.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

from e2a_assets.settings import Settings


class E2AError(click.ClickException):
    """A user-facing failure: printed as one line, exit code 1."""


# The first line of a dagster.yaml e2a wrote: the digest of the rest, so an edit is recognised.
MARKER = "# written by e2a from its settings (docs/deployment.md); edit freely, e2a then leaves it alone. sha256="

# The run launcher block of a generated config for E2A_RUN_LAUNCHER=celery: every run is sent to a
# Celery worker (`e2a worker`) on the queue of the settings, with the broker of the settings.
CELERY_RUN_LAUNCHER = """run_launcher:
  module: dagster_celery.launcher
  class: CeleryRunLauncher
  config:
    broker: {env: E2A_CELERY_BROKER}
    backend: {env: E2A_CELERY_BACKEND}
    default_queue: {env: E2A_CELERY_QUEUE}
"""


def instance_config(settings: Settings) -> str:
    """The dagster.yaml e2a would write for these settings: `settings.dagster_yaml` (dagster.yaml,
    or dagster.postgres.yaml with a Postgres instance, or E2A_DAGSTER_YAML), plus the Celery run
    launcher when E2A_RUN_LAUNCHER=celery, headed by e2a's marker."""
    body = settings.dagster_yaml.read_text(encoding="utf-8")
    if settings.run_launcher == "celery" and "\nrun_launcher:" not in f"\n{body}":
        body = body.rstrip("\n") + "\n" + CELERY_RUN_LAUNCHER
    return f"{MARKER}{hashlib.sha256(body.encode()).hexdigest()}\n{body}"


def _written_by_e2a(text: str) -> bool:
    """Whether `text` is a config e2a wrote and nobody changed since."""
    first, _, body = text.partition("\n")
    return first.startswith(MARKER) and first[len(MARKER):] == hashlib.sha256(body.encode()).hexdigest()


def install_instance_config(settings: Settings) -> Path:
    """Write `$DAGSTER_HOME/dagster.yaml` for the settings when there is none, or when the one there
    is e2a's own, unedited; a file someone wrote or edited stays as it is (a note on stderr says
    when it differs from what the settings describe)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    wanted = instance_config(settings)
    existing = target.read_text(encoding="utf-8") if target.exists() else None
    if existing == wanted:
        return target
    if existing is None or _written_by_e2a(existing):
        target.write_text(wanted, encoding="utf-8")
    else:
        click.echo(f"e2a: note: {target} is not the one e2a would write for these settings "
                   f"({settings.dagster_yaml.name}, run launcher {settings.run_launcher}); it is yours, left as it is",
                   err=True)
    return target


def dagster_home(settings: Settings) -> Path:
    """The project's Dagster instance directory (`settings.dagster_home`) with a dagster.yaml in it
    (`install_instance_config`). This process's environment gets `settings.dagster_environment()`,
    so the instance it opens and every child it starts agree."""
    install_instance_config(settings)
    os.environ.update(settings.dagster_environment())
    return settings.dagster_home


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
