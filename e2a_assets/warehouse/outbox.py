"""The automated-resolution outbox: one action per exception, requested once, outcome updated."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, and_, bindparam, update

from e2a_assets.domain.exceptions import PENDING, SUCCEEDED
from e2a_assets.warehouse.frames import insert_new, read_table
from e2a_assets.warehouse.schema import exception_actions


def sync_actions(
    engine: Engine, planned: pd.DataFrame, first: dt.date, last: dt.date, as_of: pd.Timestamp
) -> dict[str, pd.DataFrame]:
    """Request actions for newly open exceptions and record outcomes of resolved ones.

    `planned` is `plan_actions(exceptions)` for the days [first, last]. An action is inserted
    only while its exception is open and only once (unique `action_key`); afterwards only its
    outcome and completion time change. Returns the planned rows it requested ("requested") and
    those whose outcome it recorded ("succeeded").
    """
    stamp = as_of.to_pydatetime()
    with engine.begin() as conn:
        existing = read_table(
            conn,
            exception_actions,
            [exception_actions.c.cohort_day >= first, exception_actions.c.cohort_day <= last],
            columns=["action_key", "outcome"],
        )
        known = set(existing["action_key"])
        new = planned[(planned["outcome"] == PENDING) & ~planned["action_key"].isin(known)].copy()
        new["recorded_at"] = stamp
        new["updated_at"] = stamp
        insert_new(conn, exception_actions, new, ["action_key"])

        pending = set(existing.loc[existing["outcome"] == PENDING, "action_key"])
        done = planned[(planned["outcome"] == SUCCEEDED) & planned["action_key"].isin(pending)]
        if len(done):
            conn.execute(
                update(exception_actions)
                .where(and_(exception_actions.c.action_key == bindparam("key"), exception_actions.c.outcome == PENDING))
                .values(outcome=SUCCEEDED, completed_at=bindparam("done_at"), updated_at=stamp),
                [
                    {"key": k, "done_at": t.to_pydatetime()}
                    for k, t in zip(done["action_key"], pd.to_datetime(done["completed_at"], utc=True))
                ],
            )
    return {"requested": new, "succeeded": done}
