"""The one place that reads e2a's environment (DOMAIN §7). Everything else receives values.

That includes the Dagster instance's own variables: `DAGSTER_HOME`, `E2A_DAGSTER_POSTGRES_URL` and
`E2A_DAGSTER_YAML` are resolved here, and `Settings.dagster_environment()` is what the `e2a`
launchers hand to the Dagster processes they start (run.sh only creates the virtualenv and calls
`e2a` or pytest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import datetime as dt

from e2a_assets.domain.intake_limits import TimeWindow
from e2a_assets.domain.issuer import Issuer, load_issuer
from e2a_assets.domain.policies import SHIPPED_POLICIES_DIR, PolicyError, TenantRegistry, load_registry
from e2a_assets.warehouse.engine import DEFAULT_SQLITE_SYNCHRONOUS, SQLITE_SYNCHRONOUS, normalise_url, sqlite_url
from e2a_assets.warehouse.event_cursor import DEFAULT_MAX_WAIT_S
from e2a_assets.warehouse.frames import DEFAULT_CHUNK_DAYS
from e2a_assets.webhooks.limits import ReceiverLimits

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# How a run executes its steps (`E2A_EXECUTOR`) and where the daemon starts runs (`E2A_RUN_LAUNCHER`).
EXECUTORS = ("in_process", "multiprocess", "celery")
RUN_LAUNCHERS = ("default", "celery")
# Defaults of the Celery settings: the machine's RabbitMQ, results over the broker, Dagster's queue.
CELERY_BROKER = "pyamqp://guest@localhost:5672//"
CELERY_BACKEND = "rpc://"
CELERY_QUEUE = "dagster"
# The parts of the Postgres Dagster instance URL, as dagster.postgres.yaml reads them (`postgres_db`
# with `scheme: postgresql+psycopg2`): plain `dagster` commands then need no URL rewriting.
DAGSTER_PG_PARTS = {"host": "E2A_DAGSTER_PG_HOST", "port": "E2A_DAGSTER_PG_PORT", "username": "E2A_DAGSTER_PG_USER",
                    "password": "E2A_DAGSTER_PG_PASSWORD", "database": "E2A_DAGSTER_PG_DB"}
# Outside the embedded default these must be set: no process falls back to a file of its own.
EXPLICIT_SETTINGS = ("DATABASE_URL", "E2A_TENANTS_FILE", "E2A_INVOICE_DIR")


def _number(environ: Mapping[str, str], name: str, kind: type = float) -> float | int | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise PolicyError(f"environment variable {name}={raw!r} is not a valid {kind.__name__}") from None
    if value <= 0 and name != "INVOICE_PAYMENT_TERMS_DAYS":
        raise PolicyError(f"environment variable {name} must be > 0")
    return value


@dataclass(frozen=True)
class Settings:
    """e2a's configuration: warehouse, data directory, tenant registry and policy overrides."""

    data_dir: Path
    database_url: str
    policies_dir: Path
    tenants_file: Path
    default_tenant: str = "demo-3pl"
    sla_response_hours: float | None = None
    sla_delivery_hours: float | None = None
    payment_terms_days: int | None = None
    alert_webhook_url: str | None = None
    # The environment as read here once: tenants.yaml names the variables that hold each
    # tenant's webhook signing secret (`webhook_secret_env`).
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    allow_dev_secrets: bool = True
    # Settings that came from the environment, by field: bound as dg.EnvVar so the UI shows the
    # variable's name, never its value (a database password, an alert URL).
    env_names: Mapping[str, str] = field(default_factory=dict)
    # The Dagster instance: its home, Postgres storage (psycopg2 URL, DAGSTER-NOTES §2) when set, and
    # the dagster.yaml copied into the home.
    dagster_home: Path | None = None
    dagster_postgres_url: str | None = field(default=None, repr=False)
    dagster_yaml: Path | None = None
    # Who runs the command (`e2a invoices review --reviewer` defaults to it).
    operator: str = "unknown"
    # Days an asset reads, computes and writes at a time inside one run (docs/internals.md,
    # "Bounded memory"): peak memory follows this, not the length of a backfill.
    chunk_days: int = DEFAULT_CHUNK_DAYS
    # The receiver's bounds (docs/webhooks.md, "Operating the receiver") and how durable a SQLite
    # commit is before a delivery is acknowledged (FULL: fsynced; NORMAL only on an explicit choice).
    receiver_limits: ReceiverLimits = field(default_factory=ReceiverLimits)
    sqlite_synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS
    # Postgres: seconds an open transaction may hold back the new-events sensor
    # (E2A_SENSOR_MAX_WAIT_S; docs/internals.md "Sensor staleness").
    sensor_max_wait_s: float = DEFAULT_MAX_WAIT_S
    # `e2a serve --workers N`: the directory where every worker keeps its metrics
    # (PROMETHEUS_MULTIPROC_DIR, set by the serving process for its workers; webhooks/prometheus.py).
    metrics_dir: str | None = None
    # Where invoice and note documents are written (`E2A_INVOICE_DIR`, e.g. a shared mount);
    # None: `<data_dir>/invoices`.
    documents_dir: Path | None = None
    # The Dagster deployment: executor of every job, run launcher of a generated dagster.yaml, and
    # the Celery broker, result backend and queue both use.
    executor: str = "in_process"
    run_launcher: str = "default"
    celery_broker: str = CELERY_BROKER
    celery_backend: str = CELERY_BACKEND
    celery_queue: str = CELERY_QUEUE
    # The 3PL printed on every client document (docs/billing.md "Documents"): `E2A_ISSUER_FILE`;
    # unset: `issuer_path` picks the policies directory's issuer.yaml.
    issuer_file: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("E2A_DATA_DIR") or PROJECT_ROOT / "data").resolve()
        policies_dir = Path(env.get("E2A_POLICIES_DIR") or PROJECT_ROOT / "policies").resolve()
        dagster_postgres_url = _dagster_postgres_url(env)
        default_yaml = "dagster.postgres.yaml" if dagster_postgres_url else "dagster.yaml"
        executor = _choice(env, "E2A_EXECUTOR", EXECUTORS)
        run_launcher = _choice(env, "E2A_RUN_LAUNCHER", RUN_LAUNCHERS)
        dagster_home = Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
        _require_explicit_settings(env, dagster_postgres_url, executor, run_launcher, dagster_home)
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or sqlite_url(data_dir / "warehouse.sqlite"),
            policies_dir=policies_dir,
            tenants_file=Path(env.get("E2A_TENANTS_FILE") or policies_dir / "tenants.yaml").resolve(),
            default_tenant=env.get("DEFAULT_TENANT") or "demo-3pl",
            sla_response_hours=_number(env, "SLA_RESPONSE_HOURS"),
            sla_delivery_hours=_number(env, "SLA_DELIVERY_HOURS"),
            payment_terms_days=_number(env, "INVOICE_PAYMENT_TERMS_DAYS", int),
            alert_webhook_url=env.get("E2A_ALERT_WEBHOOK_URL") or None,
            secrets=dict(env),
            allow_dev_secrets=env.get("E2A_STRICT_SECRETS") != "1",
            env_names={f: n for f, n in (("database_url", "DATABASE_URL"), ("alert_webhook_url", "E2A_ALERT_WEBHOOK_URL"),
                                         ("tenants_file", "E2A_TENANTS_FILE")) if env.get(n)},
            dagster_home=dagster_home,
            dagster_postgres_url=dagster_postgres_url,
            dagster_yaml=Path(env.get("E2A_DAGSTER_YAML") or PROJECT_ROOT / default_yaml).resolve(),
            operator=env.get("USER") or "unknown",
            chunk_days=_number(env, "E2A_CHUNK_DAYS", int) or DEFAULT_CHUNK_DAYS,
            receiver_limits=_receiver_limits(env),
            sqlite_synchronous=_sqlite_synchronous(env),
            sensor_max_wait_s=_number(env, "E2A_SENSOR_MAX_WAIT_S") or DEFAULT_MAX_WAIT_S,
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            documents_dir=Path(env["E2A_INVOICE_DIR"]).resolve() if env.get("E2A_INVOICE_DIR") else None,
            executor=executor,
            run_launcher=run_launcher,
            celery_broker=env.get("E2A_CELERY_BROKER") or CELERY_BROKER,
            celery_backend=env.get("E2A_CELERY_BACKEND") or CELERY_BACKEND,
            celery_queue=env.get("E2A_CELERY_QUEUE") or CELERY_QUEUE,
            issuer_file=Path(env["E2A_ISSUER_FILE"]).resolve() if env.get("E2A_ISSUER_FILE") else None,
        )

    @classmethod
    def for_worker(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings of a Celery worker (`e2a worker`): a worker is never the embedded default, so
        the explicit settings are required whatever else is set."""
        env = os.environ if environ is None else environ
        require_explicit_settings(env, "a Celery worker")
        return cls.from_env(env)

    def dagster_environment(self) -> dict[str, str]:
        """The variables every Dagster process e2a starts (webserver, daemon, code servers, runs)
        needs: the instance home, its Postgres storage when configured, and the warehouse URL, so a
        child never falls back to a default of its own."""
        env = {"DATABASE_URL": self.database_url}
        if self.dagster_home is not None:
            env["DAGSTER_HOME"] = str(self.dagster_home)
        if self.dagster_postgres_url:
            env["E2A_DAGSTER_POSTGRES_URL"] = self.dagster_postgres_url
            env.update(dagster_postgres_parts(self.dagster_postgres_url))
        if self.documents_dir is not None:
            env["E2A_INVOICE_DIR"] = str(self.documents_dir)
        if "tenants_file" in self.env_names:
            env["E2A_TENANTS_FILE"] = str(self.tenants_file)
        if self.executor != EXECUTORS[0]:
            env["E2A_EXECUTOR"] = self.executor
        if self.run_launcher != RUN_LAUNCHERS[0]:
            env["E2A_RUN_LAUNCHER"] = self.run_launcher
        if "celery" in (self.executor, self.run_launcher):
            env.update({"E2A_CELERY_BROKER": self.celery_broker, "E2A_CELERY_BACKEND": self.celery_backend,
                        "E2A_CELERY_QUEUE": self.celery_queue})
        return env

    def child_environment(self) -> dict[str, str]:
        """The environment for a process e2a starts: this one's, plus `dagster_environment()`."""
        return {**self.secrets, **self.dagster_environment()}

    @property
    def invoice_dir(self) -> Path:
        """Where invoice and note documents live: `E2A_INVOICE_DIR` (one directory every host
        mounts, in a distributed deployment), else `<data_dir>/invoices`."""
        return self.documents_dir or self.data_dir / "invoices"

    @property
    def issuer_path(self) -> Path:
        """`E2A_ISSUER_FILE`, else the policies directory's `issuer.yaml`, else the shipped one (a
        policies directory made before documents had issuers still bills)."""
        if self.issuer_file is not None:
            return self.issuer_file
        own = self.policies_dir / "issuer.yaml"
        return own if own.exists() else SHIPPED_POLICIES_DIR / "issuer.yaml"

    def issuer(self) -> Issuer:
        """The issuer of client documents, validated (a problem is a one-line PolicyError)."""
        return load_issuer(self.issuer_path)

    def registry(self) -> TenantRegistry:
        return load_registry(
            self.policies_dir,
            self.tenants_file,
            overrides={
                "response_hours": self.sla_response_hours,
                "delivery_hours": self.sla_delivery_hours,
                "payment_terms_days": self.payment_terms_days,
            },
            environ=self.secrets,
            allow_dev_secrets=self.allow_dev_secrets,
        )


# E2A_RECEIVER_<NAME> overrides ReceiverLimits.<name> (names in docs/webhooks.md).
_RECEIVER_LIMITS = {
    "max_header_bytes": int, "max_header_count": int, "head_timeout_s": float, "body_timeout_s": float,
    "keep_alive_s": float, "max_connections": int, "ingest_timeout_s": float, "ready_timeout_s": float,
    "worker_healthcheck_s": int,
}


def _receiver_limits(env: Mapping[str, str]) -> ReceiverLimits:
    values = {}
    for name, kind in _RECEIVER_LIMITS.items():
        value = _number(env, f"E2A_RECEIVER_{name.upper()}", kind)
        if value is not None:
            values[name] = value
    future_hours = _number(env, "E2A_INTAKE_MAX_FUTURE_HOURS")
    if future_hours is not None:
        values["window"] = TimeWindow(max_future=dt.timedelta(hours=future_hours))
    return ReceiverLimits(**values)


def _sqlite_synchronous(env: Mapping[str, str]) -> str:
    value = (env.get("E2A_SQLITE_SYNCHRONOUS") or DEFAULT_SQLITE_SYNCHRONOUS).strip().upper()
    if value not in SQLITE_SYNCHRONOUS:
        raise PolicyError(f"environment variable E2A_SQLITE_SYNCHRONOUS={value!r} must be one of "
                          f"{', '.join(SQLITE_SYNCHRONOUS)}")
    return value


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = (environ.get(name) or allowed[0]).strip().lower().replace("-", "_")
    if value not in allowed:
        raise PolicyError(f"environment variable {name}={environ.get(name)!r} is not one of {', '.join(allowed)}")
    return value


def _dagster_postgres_url(environ: Mapping[str, str]) -> str | None:
    """The Postgres Dagster instance as a psycopg2 URL: from `E2A_DAGSTER_POSTGRES_URL` (postgres://
    and postgresql:// accepted), else from its parts `E2A_DAGSTER_PG_HOST`, ...; None: SQLite."""
    from sqlalchemy.engine import URL

    if environ.get("E2A_DAGSTER_POSTGRES_URL"):
        return normalise_url(environ["E2A_DAGSTER_POSTGRES_URL"])
    if not environ.get(DAGSTER_PG_PARTS["host"]):
        return None
    parts = {part: environ.get(name) or None for part, name in DAGSTER_PG_PARTS.items()}
    try:
        parts["port"] = int(parts["port"]) if parts["port"] else 5432
    except ValueError:
        raise PolicyError(f"environment variable {DAGSTER_PG_PARTS['port']}={parts['port']!r} is not a port") from None
    return URL.create("postgresql+psycopg2", **parts).render_as_string(hide_password=False)


def dagster_postgres_parts(url: str) -> dict[str, str]:
    """The variables dagster.postgres.yaml builds its psycopg2 URL from, for a Postgres instance URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(normalise_url(url))
    values = {"host": parsed.host or "localhost", "port": str(parsed.port or 5432), "username": parsed.username or "",
              "password": parsed.password or "", "database": parsed.database or ""}
    return {DAGSTER_PG_PARTS[part]: value for part, value in values.items()}


def _local_instance(dagster_home: Path) -> bool:
    """Whether the instance config in `dagster_home` (if any) keeps its storage in local files."""
    import yaml

    try:
        config = yaml.safe_load((dagster_home / "dagster.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return True
    storage = config.get("storage") if isinstance(config, dict) else None
    return not (isinstance(storage, dict) and {"postgres", "mysql"} & set(storage))


def _require_explicit_settings(environ: Mapping[str, str], dagster_postgres_url: str | None, executor: str,
                               run_launcher: str, dagster_home: Path) -> None:
    """Outside the embedded default every process (receiver, code location, Celery worker) is told
    where the warehouse, the tenant registry and the invoice documents are, or refuses to start:
    a worker that fell back to a SQLite file of its own would report success and write nowhere."""
    if environ.get("E2A_ENV", "development").strip().lower() == "production":
        why = "E2A_ENV=production"
    elif dagster_postgres_url or not _local_instance(dagster_home):
        why = "a Postgres Dagster instance"
    elif "celery" in (executor, run_launcher):
        why = "the Celery executor or run launcher"
    else:
        return
    require_explicit_settings(environ, why)


def require_explicit_settings(environ: Mapping[str, str], why: str) -> None:
    """Raise one line naming what `why` needs and is missing of `EXPLICIT_SETTINGS`."""
    missing = [name for name in EXPLICIT_SETTINGS if not environ.get(name)]
    if missing:
        raise PolicyError(f"{why} needs explicit settings, missing: {', '.join(missing)} "
                          f"(no local fallback; see docs/deployment.md)")


def shown_database_url(environ: Mapping[str, str] | None = None) -> str:
    """The warehouse URL for messages, password hidden; works even when other settings are broken."""
    from sqlalchemy.engine import make_url

    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL")
    if not url:
        data_dir = Path(env.get("E2A_DATA_DIR") or PROJECT_ROOT / "data").resolve()
        url = sqlite_url(data_dir / "warehouse.sqlite")
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not parseable: show no more than the scheme
        return url.split("://", 1)[0] + "://..." if "://" in url else "(unparseable)"
