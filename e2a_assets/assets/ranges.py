"""Running an asset over its run's days in bounded chunks, with each day's own figures.

A run covers one day (the hourly refresh), a few (the sensor) or a year (a single-run backfill).
The asset gives a `step(first, last)` that reads, computes and writes one chunk of days - the
write replaces the chunk's days in one transaction, so every chunk commits on its own - and
returns what it wrote. Peak memory is that of one chunk (`WarehouseResource.chunk_days`, setting
E2A_CHUNK_DAYS), whatever the length of the range.

After each chunk, every day (or month) of it gets its own metadata in the Dagster UI through
`context.add_asset_metadata(..., partition_key=...)`: the asset's `figures(part, day)` computed
on that day's rows only, so the plots over partitions show daily trends, not the run's totals.
The run-level metadata (`first_day`, `last_day`, `as_of`) describes the run and is shared by
every partition it materialised.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, Mapping, Union

import dagster as dg
import pandas as pd

from e2a_assets.assets.common import window_metadata
from e2a_assets.partitions import day_chunks, days_between, month_chunks, months_between, partition_days

Frames = Union[pd.DataFrame, Mapping[str, pd.DataFrame]]
Step = Callable[[dt.date, dt.date], Frames]
Figures = Callable[[Frames, dt.date], Mapping[str, dg.MetadataValue]]


def _day_keys(frame: pd.DataFrame, column: str) -> pd.Series:
    """The frame's day column as `datetime.date` values, whatever type it was read or built as."""
    values = frame[column]
    if len(values) and isinstance(values.iloc[0], dt.date) and not isinstance(values.iloc[0], dt.datetime):
        return values
    return pd.to_datetime(values, cache=False).dt.date


def split_by_day(frames: Frames, column: str | Mapping[str, str], days: list[dt.date]) -> dict[dt.date, Frames]:
    """Each day's rows of `frames` (one frame, or named frames each with its own day column)."""
    if isinstance(frames, pd.DataFrame):
        keys = _day_keys(frames, column) if len(frames) else pd.Series([], dtype=object)
        groups = {day: frames.loc[idx] for day, idx in frames.groupby(keys.to_numpy()).groups.items()} if len(frames) else {}
        empty = frames.iloc[0:0]
        return {day: groups.get(day, empty) for day in days}
    split = {name: split_by_day(frame, column[name] if isinstance(column, Mapping) else column, days)
             for name, frame in frames.items()}  # fmt: skip
    return {day: {name: parts[day] for name, parts in split.items()} for day in days}


def materialize_by_chunks(
    context: dg.AssetExecutionContext,
    step: Step,
    figures: Figures,
    *,
    day_column: str | Mapping[str, str],
    chunk_days: int,
    as_of: pd.Timestamp | None = None,
    monthly: bool = False,
) -> dg.MaterializeResult:
    """Run `step` over the run's days chunk by chunk and record each partition's own figures.

    `day_column` names the column that places a row in a partition (`cohort_day`, `day`,
    `month_start`; per frame when `step` returns named frames). Monthly assets take one month per
    chunk and key their figures by the month's first day.
    """
    first, last = partition_days(context)
    chunks = month_chunks(first, last) if monthly else day_chunks(first, last, chunk_days)
    for lo, hi in chunks:
        written = step(lo, hi)
        keys = months_between(lo, hi) if monthly else days_between(lo, hi)
        for day, part in split_by_day(written, day_column, keys).items():
            context.add_asset_metadata(dict(figures(part, day)), partition_key=day.isoformat())
        del written
    if as_of is None:
        return dg.MaterializeResult(metadata={"first_day": dg.MetadataValue.text(first.isoformat()),
                                              "last_day": dg.MetadataValue.text(last.isoformat())})  # fmt: skip
    return dg.MaterializeResult(metadata=window_metadata(first, last, as_of))
