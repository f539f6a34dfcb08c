"""The operations summary (DOMAIN §6): figures, indicators, status and recommendations, exactly."""

import datetime as dt

import pandas as pd
import pytest

from e2a_assets.domain.operations import OVERALL, build_operations_summary, status_for, summary_markdown

D1, D2 = dt.date(2025, 8, 1), dt.date(2025, 8, 2)
AS_OF = pd.Timestamp("2025-08-03T00:00:00Z")


def sla_row(tenant, day, orders, completed, stalled, pick=1.0, pack=1.0, ship=1.0, delivery=1.0, response=1.0):
    return {"tenant": tenant, "day": day, "orders": orders, "completed": completed, "stalled": stalled,
            "pick_compliance": pick, "pack_compliance": pack, "ship_compliance": ship,
            "delivery_compliance": delivery, "exception_response_compliance": response}


def ts(value):
    return pd.Timestamp(value, tz="UTC") if value else pd.NaT


def test_status_levels():
    assert [status_for(s) for s in (1.0, 0.9, 0.89, 0.7, 0.5, 0.49, 0.0)] == \
        ["EXCELLENT", "EXCELLENT", "GOOD", "GOOD", "FAIR", "POOR", "POOR"]


def test_figures_indicators_status_and_recommendations():
    sla = pd.DataFrame([
        sla_row("a", D1, 10, 8, 0),
        # b: fulfilment (0.9+0.9+0.9)/3 = 0.9 < 0.95, delivery 0.5 < 0.9, 2 of 4 stalled.
        sla_row("b", D1, 4, 1, 2, pick=0.9, pack=0.9, ship=0.9, delivery=0.5),
    ])
    exceptions = pd.DataFrame({
        "tenant": ["a", "a", "b"],
        "opened_at": [ts("2025-08-01T10:00"), ts("2025-07-31T10:00"), ts("2025-08-01T23:59")],
        "resolved_at": [ts("2025-08-01T12:00"), ts("2025-08-01T09:00"), ts(None)],
    })
    actions = pd.DataFrame({
        "tenant": ["a", "a", "b", "b"],
        "automatable": [True, False, True, True],
        "requested_at": [ts("2025-08-01T10:00")] * 4,
        "outcome": ["succeeded", "pending", "pending", "succeeded"],
    })
    invoices = pd.DataFrame({"tenant": ["a", "a"], "order_id": ["1", "2"], "invoice_date": [D1, D1],
                             "amount_cents": [1000, 2550]})
    out = build_operations_summary(D1, D1, sla_metrics=sla, exceptions=exceptions, actions=actions,
                                   invoices=invoices, runs_failed={D1: 1}, as_of=AS_OF).set_index("tenant")
    assert list(out.index) == [OVERALL, "a", "b"]

    a = out.loc["a"]
    assert (a.orders_processed, a.orders_completed, a.exceptions_opened, a.exceptions_resolved) == (10, 8, 1, 2)
    assert (a.automation_attempts, a.automation_succeeded, a.invoices, a.revenue_cents, a.runs_failed) == (1, 1, 2, 3550, 1)
    # Healthy: fulfilment, delivery, response, automation, stalled; unhealthy: the failed run -> 5/6.
    assert (a.healthy_indicators, a.indicators, a.status) == (5, 6, "GOOD")
    assert a.recommendations.startswith("1 Dagster run(s) failed")

    b = out.loc["b"]
    assert b.fulfilment_compliance == pytest.approx(0.9)
    assert b.stalled_share == 0.5
    assert b.automation_success_rate == 0.5
    # Only exception response is healthy: 1/6 -> POOR.
    assert (b.healthy_indicators, b.indicators, b.status) == (1, 6, "POOR")
    assert "delivery compliance 50%" in b.recommendations

    total = out.loc[OVERALL]
    assert (total.orders_processed, total.orders_completed, total.stalled) == (14, 9, 2)
    assert total.fulfilment_compliance == pytest.approx((10 * 1.0 + 4 * 0.9) / 14)
    assert total.delivery_compliance == pytest.approx((10 + 2) / 14)
    assert (total.automation_attempts, total.automation_succeeded, total.revenue_cents, total.runs_failed) == (3, 2, 3550, 1)


def test_days_without_data_and_without_billing():
    sla = pd.DataFrame([sla_row("a", D1, 3, 3, 0)])
    out = build_operations_summary(D1, D2, sla_metrics=sla, exceptions=None, actions=None, invoices=None,
                                   runs_failed={}, as_of=AS_OF, tenants=["a", "z"])
    assert len(out) == 6  # ALL, a, z for two days
    quiet = out[(out["tenant"] == "a") & (out["day"] == D2)].iloc[0]
    # No orders, no actions: only "no failed runs" applies.
    assert (quiet.orders_processed, quiet.indicators, quiet.healthy_indicators, quiet.status) == (0, 1, 1, "EXCELLENT")
    assert pd.isna(quiet.fulfilment_compliance)
    busy = out[(out["tenant"] == "a") & (out["day"] == D1)].iloc[0]
    assert busy.recommendations == "" and busy.invoices == 0  # healthy; no billing deployed
    assert "Operations summary 2025-08-02" in summary_markdown(out)


def test_empty_inputs_still_give_an_overall_row_per_day():
    out = build_operations_summary(D1, D2, sla_metrics=None, exceptions=None, actions=None, invoices=None,
                                   runs_failed={D2: 2}, as_of=AS_OF)
    assert list(out["tenant"]) == [OVERALL, OVERALL]
    assert list(out["status"]) == ["EXCELLENT", "POOR"]
    assert list(out["runs_failed"]) == [0, 2]
