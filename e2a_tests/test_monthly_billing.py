"""Monthly billing mode (DOMAIN §8.3): the registry, the monthly invoice (lines by kind, volume
discount, minimum fee top-up, per-order detail), the grace period boundary, a late return after
issue becoming a note, the adapted checks failing on a tampered ledger, and per-order tenants
billed as before - at domain level and on SQLite and Postgres."""

import dataclasses
import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import delete, update

from e2a_assets.assets import billing
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.checks import statements as statement_checks
from e2a_assets.definitions import build_resources
from e2a_assets.domain import monthly as rules
from e2a_assets.domain.billing import price_orders
from e2a_assets.domain.policies import SHIPPED_POLICIES_DIR, PolicyError, TenantRegistry, default_policy, load_registry
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import settings_for, shopify_delivery, shopify_order
from e2a_tests.test_billing_assets import CHECKS, DAILY, check_results, wms

AUGUST = dt.date(2025, 8, 1)
DAY = AUGUST
DAILY_AS_OF = "2025-09-01T12:00:00+00:00"
BEFORE_GRACE = "2025-09-03T23:59:59+00:00"  # month end (2025-09-01 00:00) + 3 days - 1 s
AT_GRACE = "2025-09-04T00:00:00+00:00"  # month end + 3 days
STATEMENT_CHECKS = [statement_checks.statement_reconciles_with_ledger, statement_checks.note_numbers_unique_and_gapless,
                    statement_checks.monthly_invoices_hold_their_charges]  # fmt: skip
TENANTS = """
tenants:
  demo-3pl:
    shop_domain: demo-3pl.myshopify.com
    webhook_secret_dev: dev-secret-demo-3pl
  harbor-supply:
    shop_domain: harbor-supply.myshopify.com
    webhook_secret_dev: dev-secret-harbor-supply
    billing_mode: monthly
    grace_days: 3
    tariff:
      volume_discounts:
        - {min_orders: 2, rate: 0.10}
"""


# ---------------------------------------------------------------------------------------------
# Registry


def write_tenants(folder: Path, text: str) -> Path:
    path = folder / "tenants.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_registry_reads_billing_mode_and_grace_days_and_refuses_bad_values_in_one_line(tmp_path):
    registry = load_registry(SHIPPED_POLICIES_DIR, write_tenants(tmp_path, TENANTS))
    assert registry.monthly_tenants() == ["harbor-supply"]
    assert registry["demo-3pl"].billing_mode == "per_order" and registry["demo-3pl"].grace_days == 3
    assert registry.grace_days("harbor-supply") == 3
    shipped = load_registry(SHIPPED_POLICIES_DIR)
    assert {p.billing_mode for p in shipped.policies} == {"per_order", "monthly"}  # the demo shows both
    for bad, message in (("billing_mode: weekly", "field 'tenants.x-1.billing_mode': Input should be 'per_order' or 'monthly'"),
                         ("grace_days: -1", "field 'tenants.x-1.grace_days': Input should be greater than or equal to 0"),
                         ("grace_days: '3'", "field 'tenants.x-1.grace_days': Input should be a valid integer")):
        with pytest.raises(PolicyError) as err:
            load_registry(SHIPPED_POLICIES_DIR, write_tenants(tmp_path, f"tenants:\n  x-1:\n    {bad}\n"))
        assert str(err.value).endswith(message) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# Domain


def order(oid: str, picks: int = 1, rush: bool = False, day: str = "2025-08-10", tenant: str = "acme") -> dict:
    flags = {f"flag_{f}": False for f in ("rush", "oversized", "hazmat", "fragile", "gift_wrap", "photo", "quality_check",
                                          "custom_packaging")}  # fmt: skip
    return {"tenant": tenant, "order_id": oid, "cohort_day": AUGUST, "created_at": pd.Timestamp(f"{day}T08:00Z"),
            "billable_at": pd.Timestamp(f"{day}T20:00Z"), "billable_basis": "shipped",
            "invoice_date": dt.date.fromisoformat(day), "billable": True, "held": False, "hold_reasons": "",
            "picks": picks, "packs": 1, "labels": 1, "kitting": 0, "returns": 0, "storage_days": 1,
            "flags": "rush" if rush else "", **flags, "flag_rush": rush, "currency": "USD"}  # fmt: skip


def monthly_registry(**tariff) -> TenantRegistry:
    return TenantRegistry((default_policy("acme", billing_mode="monthly", tariff=tariff),))


def test_monthly_invoice_sums_the_charges_by_kind_with_discount_and_top_up_lines():
    registry = monthly_registry(volume_discounts=[{"min_orders": 3, "rate": 0.1}])
    totals, lines = price_orders(pd.DataFrame([order("1"), order("2", rush=True), order("3", picks=10)]), registry)
    # Per-order charges exactly as per-order invoices: 70, 140 (rush), 70 + 9 × 30 = 340.
    assert totals["amount_cents"].tolist() == [70, 140, 340]
    plans, plan_lines = rules.plan_monthly_invoices(totals, lines, registry, AUGUST, ["acme"])
    plan = plans.iloc[0]
    assert (plan["order_id"], plan["invoice_date"], plan["orders"], plan["charges_cents"]) == ("MONTHLY-202508", dt.date(2025, 8, 31), 3, 550)
    # Volume discount 10 % of 550 = 55; minimum monthly fee 10000 - (550 - 55) = 9505.
    assert (plan["discount_cents"], plan["minimum_top_up_cents"], plan["amount_cents"]) == (55, 9505, 10000)
    got = plan_lines[["line_no", "kind", "quantity", "unit_cents", "amount_cents"]].values.tolist()
    assert got == [[1, "pick", 12, 30, 360], [2, "pack", 3, 20, 60], [3, "label", 3, 15, 45], [4, "storage", 3, 5, 15],
                   [5, "multiplier_rush", 1, 70, 70], [6, "volume_discount", 1, -55, -55],
                   [7, "minimum_monthly_fee", 1, 9505, 9505]]  # fmt: skip
    assert plan_lines["amount_cents"].sum() == plan["amount_cents"]
    assert plan_lines.loc[plan_lines["kind"] == "volume_discount", "description"].item() == "volume discount 10% on 3 orders"


def test_a_month_without_orders_still_bills_the_minimum_fee_and_a_zero_fee_none():
    plans, plan_lines = rules.plan_monthly_invoices(None, None, monthly_registry(), AUGUST, ["acme"])
    assert plans["amount_cents"].tolist() == [10000] and plan_lines["kind"].tolist() == ["minimum_monthly_fee"]
    plans, _ = rules.plan_monthly_invoices(None, None, monthly_registry(minimum_monthly_fee_cents=0), AUGUST, ["acme"])
    assert plans.empty


def test_grace_period_boundary():
    assert rules.issue_time(AUGUST, 3) == pd.Timestamp(AT_GRACE)
    assert not rules.issue_due(AUGUST, 3, pd.Timestamp(BEFORE_GRACE))
    assert rules.issue_due(AUGUST, 3, pd.Timestamp(AT_GRACE))
    assert rules.issue_due(AUGUST, 0, pd.Timestamp("2025-09-01T00:00:00Z"))
    assert not rules.issue_due(AUGUST, 0, pd.Timestamp("2025-08-31T23:59:59Z"))
    registry = TenantRegistry((default_policy("acme", billing_mode="monthly", grace_days=5), default_policy("demo-3pl")))
    assert rules.due_tenants(registry, AUGUST, pd.Timestamp(AT_GRACE)) == []
    assert rules.due_tenants(registry, AUGUST, pd.Timestamp("2025-09-06T00:00:00Z")) == ["acme"]


def test_charge_adjustments_are_counted_per_order_on_one_monthly_invoice():
    charges = pd.DataFrame({"tenant": "acme", "order_id": ["1", "2"], "invoice_number": "ACME-202508-0001",
                            "amount_cents": [70, 140], "rate_card_version": 1})  # fmt: skip
    existing = pd.DataFrame({"adjustment_id": ["ACME-202508-0001-1-A01"], "tenant": "acme", "order_id": "1",
                             "invoice_number": "ACME-202508-0001", "delta_cents": [250], "status": "AUTO_APPLIED"})  # fmt: skip
    recomputed = pd.DataFrame({"tenant": "acme", "order_id": ["1", "2"], "amount_cents": [320, 140]})
    assert rules.charge_amount_problems(charges, existing, recomputed).empty
    off = rules.charge_amount_problems(charges, existing.iloc[0:0], recomputed)
    assert off[["invoice_number", "order_id", "difference_cents"]].values.tolist() == [["ACME-202508-0001", "1", 250]]


# ---------------------------------------------------------------------------------------------
# Assets (SQLite and Postgres)


def seed(engine) -> None:
    """demo-3pl 1001 (per order, 70); harbor-supply 3001 (70) and 3002 (rush, 140), all shipped 2025-08-01."""
    d = []
    for tenant, oid, tags in (("demo-3pl", 1001, ""), ("harbor-supply", 3001, ""), ("harbor-supply", 3002, "rush")):
        d.append(shopify_delivery(tenant, "orders/create", shopify_order(oid, "2025-08-01T08:00:00Z", tags=tags), f"s-{oid}"))
        d += [wms(tenant, "pick_completed", oid, "2025-08-01T09:00:00Z", f"p-{oid}"),
              wms(tenant, "pack_completed", oid, "2025-08-01T10:00:00Z", f"k-{oid}"),
              wms(tenant, "label_created", oid, "2025-08-01T11:00:00Z", f"l-{oid}"),
              wms(tenant, "manifested", oid, "2025-08-01T20:00:00Z", f"m-{oid}")]  # fmt: skip
    Ingestor(engine).ingest_many(d)


def settings(url: str, tmp_path: Path, tenants: str = TENANTS):
    return dataclasses.replace(settings_for(url, tmp_path), tenants_file=write_tenants(tmp_path, tenants))


def daily(url: str, tmp_path: Path, as_of: str = DAILY_AS_OF, raise_on_error: bool = True, tenants: str = TENANTS):
    return dg.materialize([*DAILY, *CHECKS], partition_key=DAY.isoformat(),
                          resources=build_resources(settings(url, tmp_path, tenants)), tags={AS_OF_TAG: as_of},
                          raise_on_error=raise_on_error)  # fmt: skip


def statements(url: str, tmp_path: Path, as_of: str, raise_on_error: bool = True):
    return dg.materialize([billing.monthly_statements, *STATEMENT_CHECKS], partition_key="2025-08-01",
                          resources=build_resources(settings(url, tmp_path)), tags={AS_OF_TAG: as_of},
                          raise_on_error=raise_on_error)  # fmt: skip


def passed(result) -> dict[str, bool]:
    return {name: e.passed for name, e in check_results(result).items()}


def issued_august(url: str, tmp_path: Path):
    engine = make_engine(url)
    seed(engine)
    assert daily(url, tmp_path).success
    return engine, statements(url, tmp_path, AT_GRACE)


def test_monthly_tenant_is_invoiced_once_after_the_grace_period(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed(engine)
    result = daily(warehouse_url, tmp_path)
    assert result.success and all(passed(result).values()), passed(result)
    book = read_table(engine, schema.invoices)
    # The per-order tenant is invoiced per order as before; the monthly tenant's orders are not.
    assert book[["tenant", "order_id", "invoice_number", "amount_cents", "invoice_kind"]].values.tolist() == [
        ["demo-3pl", "1001", "DEMO-3PL-202508-0001", 70, "order"]]
    billable = read_table(engine, schema.billable_orders).set_index("order_id")
    assert billable.loc[["3001", "3002"], "amount_cents"].tolist() == [70, 140]  # charges computed the same way

    # One second before month end + grace: nothing issued; the statement is provisional.
    early = statements(warehouse_url, tmp_path, BEFORE_GRACE)
    assert early.success and all(passed(early).values()), passed(early)
    assert ledger.read_invoices(engine, tenant="harbor-supply").empty
    st = read_table(engine, schema.monthly_statements).set_index("tenant").loc["harbor-supply"]
    assert (bool(st["closed"]), st["invoiced_orders"], st["gross_cents"], st["discount_cents"]) == (False, 2, 210, 21)
    assert (st["minimum_top_up_cents"], st["net_due_cents"]) == (9811, 0)

    # At month end + grace: one monthly invoice in the invoice number series, its lines and charges.
    result = statements(warehouse_url, tmp_path, AT_GRACE)
    assert result.success and all(passed(result).values()), passed(result)
    inv = ledger.read_invoices(engine, tenant="harbor-supply")
    assert inv[["invoice_number", "order_id", "invoice_kind", "invoice_date", "due_date", "amount_cents"]].values.tolist() == [
        ["HARBOR-SUPPLY-202508-0001", "MONTHLY-202508", "monthly", dt.date(2025, 8, 31), dt.date(2025, 9, 30), 10000]]
    lines = read_table(engine, schema.invoice_lines, [schema.invoice_lines.c.tenant == "harbor-supply"]).sort_values("line_no")
    assert lines[["kind", "quantity", "unit_cents", "amount_cents"]].values.tolist() == [
        ["pick", 2, 30, 60], ["pack", 2, 20, 40], ["label", 2, 15, 30], ["storage", 2, 5, 10],
        ["multiplier_rush", 1, 70, 70], ["volume_discount", 1, -21, -21], ["minimum_monthly_fee", 1, 9811, 9811]]  # fmt: skip
    charges = ledger.read_charges(engine)
    assert charges[["order_id", "invoice_number", "billing_month", "amount_cents"]].values.tolist() == [
        ["3001", "HARBOR-SUPPLY-202508-0001", "202508", 70], ["3002", "HARBOR-SUPPLY-202508-0001", "202508", 140]]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["monthly_invoices_issued"].value == 1 and meta["monthly_invoiced_cents"].value == 10000
    st = read_table(engine, schema.monthly_statements).set_index("tenant")
    harbor = st.loc["harbor-supply"]
    assert (bool(harbor["closed"]), harbor["invoiced_orders"], harbor["gross_cents"], harbor["discount_cents"]) == (True, 2, 210, 21)
    assert (harbor["minimum_top_up_cents"], harbor["net_due_cents"], harbor["credit_notes_count"]) == (9811, 10000, 0)
    # Month-close notes for the per-order tenant only; the monthly tenant's are lines of its invoice.
    notes = ledger.read_notes(engine)
    assert set(notes["tenant"]) == {"demo-3pl"} and st.loc["demo-3pl", "net_due_cents"] == 10000
    # The document and its per-order detail attachment.
    folder = Path(settings(warehouse_url, tmp_path).invoice_dir) / "harbor-supply" / "2025-08"
    assert (folder / "HARBOR-SUPPLY-202508-0001.html").exists()
    detail = pd.read_csv(folder / "HARBOR-SUPPLY-202508-0001-orders.csv", dtype={"order_id": str})
    assert detail[["order_id", "amount_cents"]].values.tolist() == [["3001", 70], ["3002", 140]]

    # A rerun issues nothing more; the daily checks now see the charges and still pass.
    again = statements(warehouse_url, tmp_path, "2025-09-05T00:00:00+00:00")
    assert again.success and len(ledger.read_invoices(engine, tenant="harbor-supply")) == 1
    assert len(ledger.read_charges(engine)) == 2
    result = daily(warehouse_url, tmp_path, as_of="2025-09-05T00:00:00+00:00")
    assert result.success and all(passed(result).values()), passed(result)


def test_late_return_after_issue_becomes_a_note_on_the_monthly_invoice(warehouse_url, tmp_path):
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    Ingestor(engine).ingest_many([wms("harbor-supply", "return_received", 3001, "2025-09-05T10:00:00Z", "r-3001")])
    result = daily(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00")
    assert result.success and all(passed(result).values()), passed(result)
    adj = read_table(engine, schema.invoice_adjustments)
    assert adj[["adjustment_id", "order_id", "invoice_number", "delta_cents", "status", "cohort_day"]].values.tolist() == [
        ["HARBOR-SUPPLY-202508-0001-3001-A01", "3001", "HARBOR-SUPPLY-202508-0001", 250, "AUTO_APPLIED", DAY]]
    note = ledger.notes_of_invoices(engine, ["HARBOR-SUPPLY-202508-0001"])
    assert note[["note_number", "kind", "amount_cents", "order_id"]].values.tolist() == [
        ["HARBOR-SUPPLY-DN-202509-0001", "debit", 250, "3001"]]
    # The issued invoice and its charges never change; a rerun adds nothing.
    assert ledger.read_invoices(engine, tenant="harbor-supply")["amount_cents"].tolist() == [10000]
    assert ledger.read_charges(engine)["amount_cents"].tolist() == [70, 140]
    assert daily(warehouse_url, tmp_path, as_of="2025-09-06T12:00:00+00:00").success
    assert len(read_table(engine, schema.invoice_adjustments)) == 1


TAMPERING = {
    # A charge lost from the ledger: the invoice's lines no longer add up to its charges, and a
    # billable order due on it is charged nowhere.
    "charge_deleted": (lambda t: delete(t).where(t.c.order_id == "3002"), "monthly_invoices_hold_their_charges",
                       {"charges_mismatch", "missing_charge"}),
    # A charge's amount changed: it no longer equals the amount recomputed from the events.
    "charge_amount": (lambda t: update(t).where(t.c.order_id == "3002").values(amount_cents=141), "invoice_amounts_match_events",
                      {"amount_mismatch"}),
    # A charge pointing at an invoice the ledger does not hold.
    "charge_orphaned": (lambda t: update(t).where(t.c.order_id == "3002").values(invoice_number="HARBOR-SUPPLY-202508-0009"),
                        "one_invoice_per_billable_order", {"charge_without_invoice"}),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_checks_fail_on_a_tampered_monthly_ledger(warehouse_url, tmp_path, case):
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    change, check, problems = TAMPERING[case]
    with engine.begin() as conn:
        conn.execute(change(schema.order_charges))
    as_of = "2025-09-05T00:00:00+00:00"
    runner = statements if check.startswith("monthly_") else daily
    evaluation = check_results(runner(warehouse_url, tmp_path, as_of, raise_on_error=False))[check]
    assert not evaluation.passed
    shown = evaluation.metadata["offenders"].value
    assert all(p in shown for p in problems), shown


def test_an_order_released_after_issue_is_charged_on_the_next_monthly_invoice(warehouse_url, tmp_path):
    """3003 (1 August) is held by a DAMAGED_PACKAGE exception when August is invoiced; released on
    10 September, it is charged once, on September's invoice - never lost, never twice."""
    engine = make_engine(warehouse_url)
    seed(engine)
    Ingestor(engine).ingest_many([
        shopify_delivery("harbor-supply", "orders/create", shopify_order(3003, "2025-08-01T08:00:00Z"), "s-3003"),
        wms("harbor-supply", "pick_completed", 3003, "2025-08-01T09:00:00Z", "p-3003"),
        wms("harbor-supply", "manifested", 3003, "2025-08-01T20:00:00Z", "m-3003"),
        wms("harbor-supply", "exception_reported", 3003, "2025-08-01T12:00:00Z", "x-3003", reason_code="DAMAGED_PACKAGE"),
    ])  # fmt: skip
    assert daily(warehouse_url, tmp_path).success
    assert statements(warehouse_url, tmp_path, AT_GRACE).success
    assert ledger.read_charges(engine)["order_id"].tolist() == ["3001", "3002"]
    Ingestor(engine).ingest_many([wms("harbor-supply", "exception_resolved", 3003, "2025-09-10T09:00:00Z", "y-3003",
                                      reason_code="DAMAGED_PACKAGE")])  # fmt: skip
    result = daily(warehouse_url, tmp_path, as_of="2025-09-10T12:00:00+00:00")
    # Billable now, awaiting September's invoice: not a missing invoice of its own.
    assert result.success and all(passed(result).values()), passed(result)
    again = statements(warehouse_url, tmp_path, "2025-09-10T12:00:00+00:00")  # August re-run: nothing new
    assert again.success and all(passed(again).values()), passed(again)
    september = dg.materialize([billing.monthly_statements, *STATEMENT_CHECKS], partition_key="2025-09-01",
                               resources=build_resources(settings(warehouse_url, tmp_path)),
                               tags={AS_OF_TAG: "2025-10-04T00:00:00+00:00"})  # fmt: skip
    assert september.success and all(passed(september).values()), passed(september)
    charges = ledger.read_charges(engine)
    assert charges[["order_id", "invoice_number", "billing_month", "amount_cents"]].values.tolist() == [
        ["3001", "HARBOR-SUPPLY-202508-0001", "202508", 70], ["3002", "HARBOR-SUPPLY-202508-0001", "202508", 140],
        ["3003", "HARBOR-SUPPLY-202509-0001", "202509", 50]]  # pick 30 + 1 storage day 5, minimum order charge 50
    assert ledger.read_invoices(engine, tenant="harbor-supply")["invoice_number"].tolist() == [
        "HARBOR-SUPPLY-202508-0001", "HARBOR-SUPPLY-202509-0001"]


def test_parallel_statement_runs_issue_one_monthly_invoice(warehouse_url, tmp_path):
    """Four runs issuing August at once: one invoice, one set of charges, numbers gapless."""
    import threading

    from e2a_assets.services.billing import issue_monthly

    engine = make_engine(warehouse_url)
    seed(engine)
    assert daily(warehouse_url, tmp_path).success
    registry = settings(warehouse_url, tmp_path).registry()
    errors: list[BaseException] = []

    def issue(n: int) -> None:
        try:
            issue_monthly(make_engine(warehouse_url), registry, AUGUST, pd.Timestamp(AT_GRACE), f"run-{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.read_invoices(engine, tenant="harbor-supply")["invoice_number"].tolist() == ["HARBOR-SUPPLY-202508-0001"]
    assert ledger.read_charges(engine)["order_id"].tolist() == ["3001", "3002"]


def test_a_tenant_leaving_monthly_billing_is_never_invoiced_twice_for_a_charged_order(warehouse_url, tmp_path):
    """harbor-supply's August orders are on its monthly invoice; switched to per_order, its next
    daily run issues them no invoice of their own, and the checks pass."""
    engine, result = issued_august(warehouse_url, tmp_path)
    assert result.success
    per_order = TENANTS.replace("billing_mode: monthly", "billing_mode: per_order")
    result = daily(warehouse_url, tmp_path, as_of="2025-09-05T00:00:00+00:00", tenants=per_order)
    assert result.success and all(passed(result).values()), passed(result)
    assert ledger.read_invoices(engine, tenant="harbor-supply")["order_id"].tolist() == ["MONTHLY-202508"]
