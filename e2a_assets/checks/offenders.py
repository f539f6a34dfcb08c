"""How a failing check shows what it found: the first rows of its offenders as a markdown table."""

import pandas as pd

SHOWN_ROWS = 50


def offenders_markdown(offenders: pd.DataFrame, columns: list[str]) -> str:
    """The first SHOWN_ROWS offenders (the given columns that exist) as markdown, "_none_" when
    there are none, with a "first N of M" line when there are more."""
    shown = offenders[[c for c in columns if c in offenders.columns]].head(SHOWN_ROWS)
    table = shown.to_markdown(index=False) if len(shown) else "_none_"
    if len(offenders) > SHOWN_ROWS:
        table += f"\n\n_first {SHOWN_ROWS} of {len(offenders)}_"
    return table
