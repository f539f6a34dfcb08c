"""One chunk of days of each daily table: read its inputs, apply the rules, write the chunk.

Each function here is the whole work of one daily asset over cohort days (or days)
[first, last], Dagster-free: the asset hands it to `materialize_by_chunks` and adds only the
per-day figures, and `bench/backfill.py` calls the very same functions in a plain loop, so the
"direct" side of that benchmark cannot drift from what the assets run. Every function returns
what it wrote (the frame, or named frames), from which the asset takes each day's figures.
"""

from __future__ import annotations

import datetime as dt


def each_day(first: dt.date, last: dt.date) -> list[dt.date]:
    """The days first..last, for the rules that are built one day at a time (e2a_assets.partitions
    has the same list, but that module defines Dagster partitions and services stay Dagster-free)."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
