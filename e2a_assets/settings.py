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

from e2a_assets.domain.issuer import Issuer, load_issuer
from e2a_assets.domain.policies import SHIPPED_POLICIES_DIR, PolicyError, TenantRegistry, load_registry
from e2a_assets.warehouse.engine import normalise_url, sqlite_url
from e2a_assets.warehouse.frames import DEFAULT_CHUNK_DAYS

PROJECT_ROOT = Path(__file__).resolve().parents[1]


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
    # The 3PL printed on every client document (docs/billing.md "Documents"): `E2A_ISSUER_FILE`;
    # unset: `issuer_path` picks the policies directory's issuer.yaml.
    issuer_file: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("E2A_DATA_DIR") or PROJECT_ROOT / "data").resolve()
        policies_dir = Path(env.get("E2A_POLICIES_DIR") or PROJECT_ROOT / "policies").resolve()
        # Dagster's Postgres storage needs psycopg2: accept postgres:// and postgresql:// too.
        dagster_postgres_url = normalise_url(env["E2A_DAGSTER_POSTGRES_URL"]) if env.get("E2A_DAGSTER_POSTGRES_URL") else None
        default_yaml = "dagster.postgres.yaml" if dagster_postgres_url else "dagster.yaml"
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
            env_names={f: n for f, n in (("database_url", "DATABASE_URL"), ("alert_webhook_url", "E2A_ALERT_WEBHOOK_URL"))
                       if env.get(n)},
            dagster_home=Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve(),
            dagster_postgres_url=dagster_postgres_url,
            dagster_yaml=Path(env.get("E2A_DAGSTER_YAML") or PROJECT_ROOT / default_yaml).resolve(),
            operator=env.get("USER") or "unknown",
            chunk_days=_number(env, "E2A_CHUNK_DAYS", int) or DEFAULT_CHUNK_DAYS,
            issuer_file=Path(env["E2A_ISSUER_FILE"]).resolve() if env.get("E2A_ISSUER_FILE") else None,
        )

    def dagster_environment(self) -> dict[str, str]:
        """The variables every Dagster process e2a starts (webserver, daemon, code servers, runs)
        needs: the instance home, its Postgres storage when configured, and the warehouse URL, so a
        child never falls back to a default of its own."""
        env = {"DATABASE_URL": self.database_url}
        if self.dagster_home is not None:
            env["DAGSTER_HOME"] = str(self.dagster_home)
        if self.dagster_postgres_url:
            env["E2A_DAGSTER_POSTGRES_URL"] = self.dagster_postgres_url
        return env

    def child_environment(self) -> dict[str, str]:
        """The environment for a process e2a starts: this one's, plus `dagster_environment()`."""
        return {**self.secrets, **self.dagster_environment()}

    @property
    def invoice_dir(self) -> Path:
        return self.data_dir / "invoices"

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
