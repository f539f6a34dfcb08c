"""Jobs: which assets each cadence refreshes. Partitioned and unpartitioned work stay apart."""

from typing import Sequence

import dagster as dg

from e2a_assets.partitions import daily_partitions, monthly_partitions

# `webhook_events` carries the blocking readiness checks (checks/readiness.py): a job that
# includes it skips its downstream work, with the reason, when the platform is not ready.
READINESS = dg.AssetSelection.assets("webhook_events")
ORDER_PROCESSING = dg.AssetSelection.groups("ingestion", "orders") | dg.AssetSelection.assets("exceptions")
EXCEPTION_MANAGEMENT = READINESS | dg.AssetSelection.groups("exceptions")
BILLING = (READINESS | dg.AssetSelection.assets("completed_orders") | dg.AssetSelection.groups("billing")) - \
    dg.AssetSelection.assets("monthly_statements")


def _keys_with(assets: Sequence[dg.AssetsDefinition], partitions: dg.PartitionsDefinition) -> list[dg.AssetKey]:
    return [key for a in assets if a.partitions_def == partitions for key in a.keys]


def build_jobs(assets: Sequence[dg.AssetsDefinition]) -> list:
    """The jobs of e2a; daily and monthly assets never share a job (DAGSTER-NOTES §9)."""
    jobs = [
        dg.define_asset_job(
            "order_processing_job",
            selection=ORDER_PROCESSING,
            partitions_def=daily_partitions,
            description="Events -> orders -> SLA clocks, exceptions and SLA metrics for cohort days.",
        ),
        dg.define_asset_job(
            "exception_management_job",
            selection=EXCEPTION_MANAGEMENT,
            partitions_def=daily_partitions,
            description="Exceptions, priorities, the action outbox, 7-day patterns and insights.",
        ),
        dg.define_asset_job(
            "billing_job",
            selection=BILLING,
            partitions_def=daily_partitions,
            description="Completed orders -> billable orders -> adjustments -> invoices [blocking checks] -> "
                        "billing report, behind the readiness checks.",
        ),
        dg.define_asset_job(
            "full_operations_job",
            selection=dg.AssetSelection.assets(*_keys_with(assets, daily_partitions)),
            partitions_def=daily_partitions,
            description="Refreshes everything daily (events, orders, exceptions, billing, summary) for the chosen "
                        "cohort days, in one run per range; monthly statements run in monthly_statements_job.",
        ),
    ]
    operations = [key for a in assets if a.partitions_def == daily_partitions and
                  a.group_names_by_key.get(a.key) == "operations" for key in a.keys]
    if operations:
        jobs.append(
            dg.define_asset_job(
                "operations_summary_job",
                selection=dg.AssetSelection.assets(*operations),
                partitions_def=daily_partitions,
                description="The executive operations summary for the chosen days.",
            )
        )
    monthly = _keys_with(assets, monthly_partitions)
    if monthly:
        jobs.append(
            dg.define_asset_job(
                "monthly_statements_job",
                selection=dg.AssetSelection.assets(*monthly),
                partitions_def=monthly_partitions,
                description="Monthly statements per tenant from the month's invoices.",
            )
        )
    return jobs
