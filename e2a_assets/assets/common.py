"""Small helpers shared by the asset modules: metadata previews and numeric metadata."""

import math
import warnings
from typing import Any, Callable

import dagster as dg
import pandas as pd

PREVIEW_ROWS = 10

# Every asset reads and writes the warehouse; a restarted Postgres or a dropped connection should
# cost a short wait, not a failed run. Steps are safe to repeat: partition writes replace a window
# in one transaction and the invoice ledger never issues twice.
WAREHOUSE_RETRY = dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# Dagster 1.13 marks `backfill_policy` as beta and warns once per asset definition. e2a relies on
# single-run backfills on purpose (ARCHITECTURE "Backfills"), so that one warning is silenced while
# an asset is being defined, and nowhere else.
_BACKFILL_POLICY_IS_BETA = "Parameter `backfill_policy` of function `asset` is currently in beta"


def single_run_asset(**kwargs: Any) -> Callable:
    """`@dg.asset` with a single-run backfill policy: a backfill of any range of days is one run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BACKFILL_POLICY_IS_BETA, category=dg.BetaWarning)
        return dg.asset(backfill_policy=dg.BackfillPolicy.single_run(), **kwargs)


def preview(frame: pd.DataFrame, columns: list[str] | None = None, rows: int = PREVIEW_ROWS) -> dg.MarkdownMetadataValue:
    """A short markdown table of the first rows, for the asset's page in the UI."""
    if frame.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = frame[columns] if columns else frame
    return dg.MetadataValue.md(shown.head(rows).to_markdown(index=False))


def number(value: Any) -> dg.MetadataValue:
    """Numeric metadata the UI plots over time; NaN becomes 0.0 so the series stays continuous."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dg.MetadataValue.float(0.0)
    if isinstance(value, (bool,)):
        return dg.MetadataValue.int(int(value))
    if isinstance(value, int) or (hasattr(value, "dtype") and pd.api.types.is_integer_dtype(getattr(value, "dtype", None))):
        return dg.MetadataValue.int(int(value))
    return dg.MetadataValue.float(float(value))


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
