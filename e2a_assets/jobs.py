"""Jobs: one per row of the cadence table (`e2a_assets/domain/cadence.py::CADENCES`)."""

from typing import Sequence

import dagster as dg

from e2a_assets.domain.cadence import CADENCES, EVERY_GROUP, Cadence
from e2a_assets.partitions import PARTITIONS


def selected_keys(cadence: Cadence, assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    """The asset keys of `cadence`'s job: its partitioning, in one of its groups or named."""
    partitions = PARTITIONS[cadence.partitions]
    return [
        key for a in assets if a.partitions_def == partitions for key in a.keys
        if EVERY_GROUP in cadence.groups or a.group_names_by_key.get(key) in cadence.groups
        or key.to_user_string() in cadence.assets
    ]


def build_jobs(assets: Sequence[dg.AssetsDefinition], cadences: Sequence[Cadence] = CADENCES,
               tags: dict[str, str] | None = None) -> list:
    """The jobs of e2a; daily and monthly assets never share a job (DAGSTER-NOTES §9). The
    partitioning of a job follows from its assets; `tags` go on every run of every job."""
    jobs = []
    for cadence in cadences:
        if cadence.checks:
            checks = [dg.AssetCheckKey(dg.AssetKey(c.split(":")[0]), c.split(":")[1]) for c in cadence.checks]
            jobs.append(dg.define_asset_job(cadence.job, selection=dg.AssetSelection.checks(*checks),
                                            description=cadence.job_description, tags=tags))
            continue
        keys = selected_keys(cadence, assets)
        if keys:
            jobs.append(dg.define_asset_job(cadence.job, selection=dg.AssetSelection.assets(*keys),
                                            description=cadence.job_description, tags=tags))
    return jobs
