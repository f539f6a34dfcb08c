"""What the asset modules share: the one asset decorator factory, metadata previews and numeric
metadata."""

import datetime as dt
import math
import warnings
from typing import Any, Callable

import dagster as dg
import pandas as pd

from e2a_assets.partitions import daily_partitions

PREVIEW_ROWS = 10
FLOAT_DIGITS = 2
KINDS = {"sql", "pandas"}
OPS, FINANCE, DATA = "team:ops", "team:finance", "team:data"

# Every asset reads and writes the warehouse; a restarted Postgres or a dropped connection should
# cost a short wait, not a failed run. Steps are safe to repeat: partition writes replace a window
# in one transaction and the invoice ledger never issues twice.
WAREHOUSE_RETRY = dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# How fresh the assets of each cadence should be (docs/operations.md): refreshed hourly (order
# processing, new events) two missed hours fail; every 4 hours (exception management) a missed run
# warns, two fail; daily (the summary) a day and two hours fail.
HOURLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=2), warn_window=dt.timedelta(minutes=75))
FOUR_HOURLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=9), warn_window=dt.timedelta(hours=5))
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=25))

# Dagster 1.13 marks `backfill_policy` as beta and warns once per asset definition. e2a relies on
# single-run backfills on purpose (ARCHITECTURE "Backfills"), so that one warning is silenced while
# an asset is being defined, and nowhere else.
_BACKFILL_POLICY_IS_BETA = "Parameter `backfill_policy` of function `asset` is currently in beta"


def warehouse_assets(group: str, owner: str, freshness: dg.FreshnessPolicy | None = None) -> Callable[..., Any]:
    """The asset decorator of one group: every asset it makes is a daily-partitioned,
    single-run-backfilled warehouse table (kinds sql + pandas, WAREHOUSE_RETRY) of `group`,
    owned by `owner`, with the group's freshness policy and its table's column schema.

    Use: `orders_asset = warehouse_assets("orders", OPS, HOURLY_FRESHNESS)`, then
    `@orders_asset(schema.orders, deps=[...])`; any `dg.asset` argument given there wins.
    """

    def asset(table, **overrides: Any) -> Callable[..., dg.AssetsDefinition]:  # noqa: ANN001
        shared = dict(
            group_name=group,
            owners=[owner],
            partitions_def=daily_partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            kinds=KINDS,
            retry_policy=WAREHOUSE_RETRY,
            freshness_policy=freshness,
            metadata=table_metadata(table),
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_BACKFILL_POLICY_IS_BETA, category=dg.BetaWarning)
            return dg.asset(**{**shared, **overrides})

    return asset


def preview(frame: pd.DataFrame, columns: list[str] | None = None, rows: int = PREVIEW_ROWS) -> dg.MarkdownMetadataValue:
    """A short markdown table of the first rows, for the asset's page in the UI."""
    if frame.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = frame[columns] if columns else frame
    return dg.MetadataValue.md(shown.head(rows).to_markdown(index=False))


def number(value: Any) -> dg.MetadataValue:
    """Numeric metadata the UI plots over partitions and time; NaN becomes 0.0 so the series stays
    continuous, floats keep FLOAT_DIGITS decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dg.MetadataValue.float(0.0)
    if isinstance(value, (bool,)):
        return dg.MetadataValue.int(int(value))
    if isinstance(value, int) or (hasattr(value, "dtype") and pd.api.types.is_integer_dtype(getattr(value, "dtype", None))):
        return dg.MetadataValue.int(int(value))
    # Rounded for display: the UI shows 94.12, not 94.11723477726626.
    return dg.MetadataValue.float(round(float(value), FLOAT_DIGITS))


def window_metadata(first, last, as_of: pd.Timestamp) -> dict[str, dg.MetadataValue]:  # noqa: ANN001
    return {
        "first_day": dg.MetadataValue.text(first.isoformat()),
        "last_day": dg.MetadataValue.text(last.isoformat()),
        "as_of": dg.MetadataValue.text(as_of.isoformat()),
    }


_TYPE_NAMES = {"DateTime": "timestamp", "Date": "date", "String": "string", "Text": "string", "Boolean": "bool",
               "Integer": "int", "BigInteger": "int", "Float": "float", "LargeBinary": "bytes"}


def column_schema(table) -> dg.TableSchema:  # noqa: ANN001
    """The asset's column schema, taken from its warehouse table so the two cannot drift apart."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=_TYPE_NAMES.get(type(c.type).__name__, type(c.type).__name__.lower()),
                constraints=dg.TableColumnConstraints(nullable=bool(c.nullable)),
            )
            for c in table.columns
        ]
    )


def table_metadata(table) -> dict[str, Any]:  # noqa: ANN001
    """Definition-time metadata of an asset stored in `table`."""
    return {"dagster/column_schema": column_schema(table), "dagster/table_name": table.name}
