"""`e2a worker`: a Celery worker executing e2a's steps (E2A_EXECUTOR=celery) or whole runs
(E2A_RUN_LAUNCHER=celery), with the broker and queue of the settings.

It is dagster-celery's worker (`celery -A dagster_celery.app worker`), started with e2a's checks
first: the explicit settings a distributed deployment needs (no local fallback), a warehouse at the
head schema revision, and the tenant registry's digest printed, so every host's log says which
registry it bills by.
"""

from __future__ import annotations

import hashlib
import os
import socket

import click

from e2a_assets.settings import Settings


def celery_config_module(settings: Settings) -> str:
    """The text of `dagster_celery_config.py`, the module dagster-celery's app reads its settings from."""
    from e2a_assets.executors import celery_app_config

    config = celery_app_config(settings)
    lines = [f"broker_url = {config['broker']!r}", f"result_backend = {config['backend']!r}",
             "worker_prefetch_multiplier = 1", "task_acks_late = False"]
    lines += [f"{key} = {value!r}" for key, value in config["config_source"].items()]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Steps (or runs) this worker executes at a time, each in a process of its own.")
@click.option("--name", help="Worker name (default: e2a-<pid>@<host>).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def worker(concurrency: int, name: str | None, log_level: str) -> None:
    """Run a Celery worker for e2a's runs and steps (needs `pip install 'e2a[celery]'`)."""
    from e2a_assets.cli.db import prepared_warehouse
    from e2a_assets.cli.instance import E2AError, dagster_home
    from e2a_assets.cli.processes import tool
    from e2a_assets.warehouse.migrate import shown_url

    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        raise E2AError("e2a worker needs dagster-celery: pip install 'e2a[celery]'") from None
    settings = Settings.for_worker()
    engine = prepared_warehouse(settings)  # refuses a warehouse whose schema is behind, in one line
    warehouse = shown_url(engine)
    engine.dispose()
    registry = settings.registry()
    home = dagster_home(settings)
    module = celery_config_module(settings)
    # One directory per configuration: workers of other queues on this host never share a module.
    config_dir = home / "celery" / hashlib.sha256(module.encode()).hexdigest()[:12]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "dagster_celery_config.py").write_text(module, encoding="utf-8")
    click.echo(f"e2a worker: queue {settings.celery_queue}, warehouse {warehouse}, tenant registry "
               f"{settings.tenants_file} digest {registry.digest}, invoice documents {settings.invoice_dir}", err=True)
    environment = settings.child_environment()
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(config_dir), environment.get("PYTHONPATH")]))
    args = [tool("celery"), "-A", "dagster_celery.app", "worker", "-Q", settings.celery_queue,
            "--concurrency", str(concurrency), "--prefetch-multiplier=1", "--loglevel", log_level.upper(),
            "-n", name or f"e2a-{os.getpid()}@{socket.gethostname()}",
            # No gossip, mingle or heartbeat between workers: dagster-celery does not use them,
            # and mingle alone adds seconds to every start.
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    os.execve(args[0], args, environment)
