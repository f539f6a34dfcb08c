"""Dagster resources: the warehouse, the evaluation clock and the tenant registry."""


import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr
from sqlalchemy import Engine

from e2a_assets.domain.issuer import Issuer, load_issuer, shipped_issuer
from e2a_assets.domain.policies import PolicyError, TenantRegistry, load_registry
from e2a_assets.domain.rate_cards import RateCardChanged
from e2a_assets.services.rate_cards import verify_rate_cards
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.event_cursor import DEFAULT_MAX_WAIT_S
from e2a_assets.warehouse.frames import DEFAULT_CHUNK_DAYS
from e2a_assets.warehouse.migrate import MigrationError, ensure_current

AS_OF_TAG = "e2a/as_of"
# The digest of the tenant registry the run was launched with (a tag of every e2a job): a process
# executing its steps with a registry of another digest fails them instead of billing differently.
REGISTRY_DIGEST_TAG = "e2a/registry_digest"


class WarehouseResource(dg.ConfigurableResource):
    """The e2a warehouse (SQLAlchemy URL: SQLite file by default, Postgres in production)."""

    database_url: str
    # Days processed (read, computed, written and committed) at a time inside one run.
    chunk_days: int = DEFAULT_CHUNK_DAYS
    # Postgres: the longest an open transaction may hold back readers of the event log (the
    # new-events sensor), in seconds (warehouse/event_cursor.py).
    cursor_max_wait_seconds: float = DEFAULT_MAX_WAIT_S
    _engine: Engine | None = PrivateAttr(default=None)

    def get_engine(self) -> Engine:
        """The engine, once the warehouse's schema is the head revision (checked once per process;
        `WarehouseBehind` names `e2a db upgrade` otherwise)."""
        if self._engine is None:
            engine = make_engine(self.database_url)
            try:
                ensure_current(engine)
            except MigrationError as exc:
                engine.dispose()
                # Not transient: the step fails at once with the one line, instead of retrying.
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    @property
    def dialect(self) -> str:
        return self.get_engine().dialect.name


class TenantRegistryResource(dg.ConfigurableResource):
    """The tenant registry file plus default policies, with environment-level overrides."""

    policies_dir: str
    tenants_file: str
    sla_response_hours: float | None = None
    sla_delivery_hours: float | None = None
    payment_terms_days: int | None = None
    _registry: TenantRegistry | None = PrivateAttr(default=None)

    def get_registry(self) -> TenantRegistry:
        if self._registry is None:
            self._registry = load_registry(
                self.policies_dir,
                self.tenants_file,
                overrides={
                    "response_hours": self.sla_response_hours,
                    "delivery_hours": self.sla_delivery_hours,
                    "payment_terms_days": self.payment_terms_days,
                },
            )
        return self._registry

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse to run a step with another tenant registry than the run was launched with (a
        worker host with an older tenants.yaml, other overrides): the step fails, without retries,
        with the one line naming both digests and the file."""
        run = context.run
        # A re-execution inherits its parent's tags, so the digest is the one the failed run was
        # launched with — typically before the registry was mended; only first runs are compared.
        launched = run.tags.get(REGISTRY_DIGEST_TAG) if run is not None and not run.parent_run_id else None
        here = self.get_registry().digest
        if launched and launched != here:
            raise dg.Failure(
                description=f"tenant registry {self.tenants_file} here has digest {here}, the run was launched with "
                            f"{launched}: deploy the same tenants.yaml and policy settings to every process",
                allow_retries=False)

    def policy_frame(self) -> pd.DataFrame:
        return self.get_registry().policy_frame()

    def billing_registry(self, engine: Engine) -> TenantRegistry:
        """The registry for pricing and issuing, once no rate card version that priced an issued
        invoice differs from what the ledger recorded (DOMAIN §8.1); otherwise the step fails with
        the one line naming tenant and version, without retries (the registry must be fixed)."""
        registry = self.get_registry()
        try:
            verify_rate_cards(engine, registry)
        except RateCardChanged as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        return registry


def parse_as_of(value: str) -> pd.Timestamp:
    """An ISO-8601 evaluation time; naive values are taken as UTC."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class ClockResource(dg.ConfigurableResource):
    """The evaluation time (`as_of`) of a run, never the wall clock inside business rules.

    Order of precedence: the run tag `e2a/as_of` (set by schedules, the sensor, the demo or at
    launch), then the same tag on the run's root run, then this resource's fixed `as_of`, then
    the root run's creation time, which is recorded with the run so every step of it agrees.

    A re-execution (from failure, of chosen steps, or the daemon's run retry) is a new run with
    `dagster/root_run_id`; Dagster copies the parent's tags only in some paths (the daemon's run
    retry does, `execute_job(reexecution_options=...)` and a job backfill "from failure" do not), so the root
    run decides: a re-executed run evaluates at the time of the run it repeats, never at its own.
    """

    as_of: str | None = None

    def as_of_for(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> pd.Timestamp:
        run = context.run
        tag = run.tags.get(AS_OF_TAG) if run else None
        if tag:
            return parse_as_of(tag)
        root = context.instance.get_run_by_id(run.root_run_id) if run and run.root_run_id else None
        if root is not None and root.tags.get(AS_OF_TAG):
            return parse_as_of(root.tags[AS_OF_TAG])
        if self.as_of:
            return parse_as_of(self.as_of)
        record = context.instance.get_run_record_by_id(root.run_id) if root is not None else None
        record = record or context.instance.get_run_record_by_id(run.run_id)
        created = pd.Timestamp(record.create_timestamp if record else dt.datetime.now(dt.timezone.utc))
        return created.tz_convert("UTC") if created.tzinfo else created.tz_localize("UTC")


class InvoiceDocumentsResource(dg.ConfigurableResource):
    """Where client documents (invoices, notes: HTML and PDF) are written
    (`<invoice_dir>/<tenant>/<YYYY-MM>/`), and the issuer file they are signed with."""

    invoice_dir: str
    issuer_file: str | None = None

    def get_issuer(self) -> Issuer:
        """The issuer of `issuer_file` (the shipped one when unset); a bad file fails the run with its one line."""
        try:
            return load_issuer(Path(self.issuer_file)) if self.issuer_file else shipped_issuer()
        except PolicyError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
