"""`e2a status`: is the platform ready, and what is waiting for people, per tenant.

Readiness is the same four verdicts the scheduled runs are gated on (`checks/readiness.py`);
the open work is read from the assets' tables as their last runs left them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd
from sqlalchemy import Engine, func, select

from e2a_assets.services.billing_reads import ledger_states
from e2a_assets.warehouse import schema

# (column, what it counts): the order of the table `e2a status` prints.
OPEN_WORK = (
    ("open_exceptions", "exceptions still OPEN"),
    ("critical_urgent", "open exceptions in the critical_urgent queue"),
    ("stalled_orders", "orders with no event for stalled_hours"),
    ("held_orders", "completed orders held from invoicing by a blocking exception"),
    ("pending_review", "invoice adjustments waiting for a reviewer"),
    ("invoices_partially_paid", "invoices partly paid, not yet due (domain/payments.py)"),
    ("invoices_overdue", "invoices past their due date with something left to pay"),
    ("overdue_cents", "what is left to pay on them"),
    ("invoices_this_month", "invoices dated this calendar month (UTC)"),
    ("invoiced_cents_this_month", "their amount"),
)


def _per_tenant(engine: Engine, name: str, query) -> pd.Series:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.Series({tenant: value for tenant, value in rows}, name=name, dtype="int64")


def open_work(engine: Engine, today: dt.date, tenants: Iterable[str] = ()) -> pd.DataFrame:
    """One row per tenant (each of `tenants`, plus any other found in the tables) with the counts
    of `OPEN_WORK`, 0 where nothing waits."""
    month_start = today.replace(day=1)
    ex, pr, orders = schema.exceptions, schema.exception_priorities, schema.orders
    billable, adjustments, invoices = schema.billable_orders, schema.invoice_adjustments, schema.invoices
    queries = {
        "open_exceptions": select(ex.c.tenant, func.count()).where(ex.c.status == "OPEN").group_by(ex.c.tenant),
        "critical_urgent": select(pr.c.tenant, func.count()).where(pr.c.category == "critical_urgent").group_by(pr.c.tenant),
        "stalled_orders": select(orders.c.tenant, func.count()).where(orders.c.stalled.is_(True)).group_by(orders.c.tenant),
        "held_orders": select(billable.c.tenant, func.count()).where(billable.c.held.is_(True)).group_by(billable.c.tenant),
        "pending_review": select(adjustments.c.tenant, func.count())
        .where(adjustments.c.status == "PENDING_REVIEW").group_by(adjustments.c.tenant),
        "invoices_this_month": select(invoices.c.tenant, func.count())
        .where(invoices.c.invoice_date >= month_start).group_by(invoices.c.tenant),
        "invoiced_cents_this_month": select(invoices.c.tenant, func.sum(invoices.c.amount_cents))
        .where(invoices.c.invoice_date >= month_start).group_by(invoices.c.tenant),
    }
    frame = pd.concat([_per_tenant(engine, name, q) for name, q in queries.items()], axis=1)
    # Invoice statuses at the end of `today` (UTC), the same SQL aggregate the billing report uses.
    states = ledger_states(engine, pd.Timestamp(today) + pd.Timedelta(hours=23, minutes=59, seconds=59)).set_index("tenant")
    frame = frame.join(states[["invoices_partially_paid", "invoices_overdue", "overdue_cents"]], how="outer")
    frame = frame.reindex(index=sorted(set(frame.index) | set(tenants)), columns=[name for name, _ in OPEN_WORK])
    frame = frame.fillna(0).astype("int64")
    frame.index.name = "tenant"
    return frame.sort_index().reset_index()


def recent_alerts(engine: Engine, since: dt.datetime) -> tuple[int, str | None]:
    """How many alerts were raised since `since`, and a line about the newest one."""
    alerts = schema.alerts
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(alerts).where(alerts.c.raised_at >= since)).scalar_one()
        newest = conn.execute(select(alerts.c.raised_at, alerts.c.kind, alerts.c.subject)
                              .where(alerts.c.raised_at >= since).order_by(alerts.c.raised_at.desc()).limit(1)).first()
    if newest is None:
        return int(count), None
    raised = pd.Timestamp(newest.raised_at)
    raised = raised.tz_localize("UTC") if raised.tzinfo is None else raised.tz_convert("UTC")
    return int(count), f"{newest.kind} {newest.subject} at {raised:%Y-%m-%d %H:%M} UTC"


@dataclass
class StatusReport:
    """Everything `e2a status` shows, for the terminal or as JSON."""

    warehouse: str  # the URL, password hidden
    verdicts: list  # domain.readiness.Verdict, in CHECKS order
    work: pd.DataFrame | None  # open_work(); None when the warehouse is unreachable
    alerts_24h: int | None
    newest_alert: str | None
    # How far the new-events sensor's cursor is behind the event log, and the sensor's state.
    sensor_lag: Any = None  # warehouse.event_readers.ReaderLag
    sensor_state: str | None = None

    @property
    def sensor_lag_line(self) -> str | None:
        if self.sensor_lag is None:
            return None
        lag = self.sensor_lag
        when = "no position saved yet" if lag.read_at is None else f"position saved {lag.read_at:%Y-%m-%d %H:%M:%S} UTC"
        return (f"new_events_sensor cursor: {lag.rows} committed event(s) not read yet, the oldest waiting "
                f"{lag.seconds:.0f} s ({self.sensor_state}, {when})")

    @property
    def blocking(self) -> list[str]:
        """Failed checks that gate the scheduled runs."""
        from e2a_assets.domain.readiness import ERROR

        return [v.name for v in self.verdicts if not v.passed and v.severity == ERROR]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": not self.blocking,
            "warehouse": self.warehouse,
            "readiness": [{"check": v.name, "passed": v.passed, "severity": v.severity, "why": v.description}
                          for v in self.verdicts],
            "open_work": None if self.work is None else self.work.to_dict("records"),
            "alerts_24h": self.alerts_24h,
            "newest_alert": self.newest_alert,
            "sensor_cursor_lag": None if self.sensor_lag is None
            else {**self.sensor_lag.as_dict(), "sensor_state": self.sensor_state},
        }


def collect_status(warehouse, instance, tenants: Iterable[str], shown_url: str,  # noqa: ANN001
                   now: dt.datetime | None = None) -> StatusReport:
    """Measure readiness now (default thresholds) and, when the warehouse answers, read the work."""
    from e2a_assets.checks.readiness import evaluate_readiness, new_events_sensor_state
    from e2a_assets.domain.readiness import ReadinessThresholds
    from e2a_assets.warehouse.event_readers import NEW_EVENTS_SENSOR, reader_lags

    now = now or dt.datetime.now(dt.timezone.utc)
    verdicts = evaluate_readiness(warehouse, instance, ReadinessThresholds(), now=pd.Timestamp(now))
    if not verdicts[0].passed:  # warehouse_reachable
        return StatusReport(shown_url, verdicts, None, None, None)
    engine = warehouse.get_engine()
    count, newest = recent_alerts(engine, now - dt.timedelta(hours=24))
    # Where the sensor saved its cursor after its last read, as the receiver's /metrics reports it.
    behind = next(lag for lag in reader_lags(engine, now) if lag.reader == NEW_EVENTS_SENSOR)
    state = new_events_sensor_state(instance)[0]
    return StatusReport(shown_url, verdicts, open_work(engine, now.date(), tenants), count, newest, behind, state)
