"""The e2a code location: the one `Definitions` object, with resources bound in one place.

Importing this module reads nothing: Dagster calls `defs` when it loads the code location
(`dagster dev -m`, `dg check defs`, workspace.yaml), and only then are the environment and the
tenant registry read. Tests build their own with `build_definitions(settings)`.
"""

import dagster as dg

from e2a_assets import jobs
from e2a_assets.assets import billing, exceptions, ingestion, operations, orders
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.checks import readiness as readiness_checks
from e2a_assets.checks import statements as statement_checks
from e2a_assets.executors import build_executor
from e2a_assets.resources import REGISTRY_DIGEST_TAG, ClockResource, InvoiceDocumentsResource, TenantRegistryResource, WarehouseResource
from e2a_assets.schedules import build_schedules
from e2a_assets.sensors.alerts import AlertWebhookResource, asset_check_alert_sensor, run_failure_alert_sensor
from e2a_assets.sensors.new_events import new_events_sensor
from e2a_assets.settings import Settings

ASSET_MODULES = [ingestion, orders, exceptions, billing, operations]
# Modules holding asset checks only (checks defined next to their assets are found via ASSET_MODULES).
CHECK_MODULES = [readiness_checks, invoice_checks, statement_checks]


def _from_env(settings: Settings, field: str):  # noqa: ANN202
    """A setting's value, or `dg.EnvVar` when it came from the environment: the UI then shows the
    variable's name instead of its value (database passwords, webhook URLs)."""
    name = settings.env_names.get(field)
    return dg.EnvVar(name) if name else getattr(settings, field)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(database_url=_from_env(settings, "database_url"),
                                       chunk_days=settings.chunk_days,
                                       cursor_max_wait_seconds=settings.sensor_max_wait_s),
        "tenant_registry": TenantRegistryResource(
            policies_dir=str(settings.policies_dir),
            tenants_file=str(settings.tenants_file),
            sla_response_hours=settings.sla_response_hours,
            sla_delivery_hours=settings.sla_delivery_hours,
            payment_terms_days=settings.payment_terms_days,
        ),
        "clock": ClockResource(),
        "invoice_documents": InvoiceDocumentsResource(invoice_dir=str(settings.invoice_dir),
                                                      issuer_file=str(settings.issuer_path)),
        "alert_webhook": AlertWebhookResource(webhook_url=_from_env(settings, "alert_webhook_url")),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Assemble e2a; `settings` defaults to the environment (DATABASE_URL, E2A_DATA_DIR, ...)."""
    settings = settings or Settings.from_env()
    assets = dg.load_assets_from_modules(ASSET_MODULES)
    registry = settings.registry()
    # Every run records the registry it was launched with; its steps check it (TenantRegistryResource).
    all_jobs = jobs.build_jobs(assets, tags={REGISTRY_DIGEST_TAG: registry.digest})
    default = registry.get(settings.default_tenant)
    timezone = default.timezone if default else "UTC"
    return dg.Definitions(
        assets=assets,
        asset_checks=dg.load_asset_checks_from_modules([*ASSET_MODULES, *CHECK_MODULES]),
        jobs=all_jobs,
        schedules=build_schedules(timezone, {j.name for j in all_jobs}),
        sensors=[new_events_sensor, run_failure_alert_sensor, asset_check_alert_sensor],
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location as Dagster loads it, from the environment."""
    return build_definitions()
