"""Daily cost independent of history (issue 10): the billing report, the monthly statements and
the invoice checks read only their days / months (plus per-tenant SQL aggregates), and give
exactly what the old whole-ledger computation gives - kept here as the reference."""

import dataclasses
import datetime as dt
import re

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import Engine, event

from e2a_assets.assets import billing
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.definitions import build_resources
from e2a_assets.domain.cadence import CADENCES
from e2a_assets.domain.monthly import apply_monthly_figures, monthly_statement_figures, plan_monthly_invoices
from e2a_assets.domain.statements import build_billing_report, build_monthly_statements
from e2a_assets.jobs import build_jobs
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.services.billing_reads import STATE_COLUMNS, ledger_states
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import insert_frame, read_table, replace_partition
from e2a_tests.factories import settings_for

UTC = dt.timezone.utc
AS_OF = pd.Timestamp("2025-09-20T12:00:00+00:00")
CHECKS = [invoice_checks.invoice_numbers_unique_and_gapless, invoice_checks.invoice_due_dates,
          invoice_checks.invoice_amounts_non_negative]  # fmt: skip


def _at(day: dt.date, hour: int = 12) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


def _fill(table, rows: list[dict]) -> pd.DataFrame:
    """Rows with every column of `table`: unspecified ones 0 / False / "" (None when nullable)."""
    out = []
    for row in rows:
        full = {}
        for c in table.columns:
            if c.name in row:
                full[c.name] = row[c.name]
            elif c.nullable:
                full[c.name] = None
            else:
                py = c.type.python_type
                full[c.name] = False if py is bool else 0 if py in (int, float) else ""
        out.append(full)
    return pd.DataFrame(out, columns=[c.name for c in table.columns])


def seed_ledger(engine: Engine) -> None:
    """Four months of invoices for three tenants (ghost-co is not in the registry and only has
    invoices after the report's days), paid before / after as_of or never; adjustments of every
    status, one approved after as_of; held orders across the months; payments on invoices that
    carry no paid_at: half of one in six, all of another (some dated after as_of)."""
    invoices, adjustments, held, payments = [], [], [], []
    seq: dict[tuple[str, str], int] = {}
    terms = {"demo-3pl": 30, "northwind-goods": 14, "ghost-co": 30}
    for n in range(120):
        tenant = ("demo-3pl", "northwind-goods")[n % 2] if n < 110 else "ghost-co"
        day = dt.date(2025, 6, 1) + dt.timedelta(days=n % 110 if n < 110 else 100 + n % 5)
        month = day.strftime("%Y%m")
        seq[(tenant, month)] = seq.get((tenant, month), 0) + 1
        number = f"{tenant.upper()}-{month}-{seq[(tenant, month)]:04d}"
        paid = None if n % 3 == 0 else _at(day + dt.timedelta(days=5 + n % 40))
        invoices.append(dict(
            invoice_number=number, tenant=tenant, order_id=f"o{n}", cohort_day=day, invoice_date=day,
            due_date=day + dt.timedelta(days=terms[tenant]), payment_terms_days=terms[tenant], invoice_month=month,
            invoice_seq=seq[(tenant, month)], billable_at=_at(day), billable_basis="shipped", amount_cents=100 + 7 * n,
            currency="USD", issued_at=_at(day, 23), issued_run_id="seed", status="issued", paid_at=paid))  # fmt: skip
        if n % 3 == 0:
            share, after = ((100 + 7 * n) // 2, 10) if n % 6 == 0 else (100 + 7 * n, 20 + n % 60)
            payments.append(dict(tenant=tenant, document_number=number, document_kind="invoice", invoice_number=number,
                                 document_month=month, amount_cents=share, currency="USD",
                                 payment_date=day + dt.timedelta(days=after), reference=f"bank-{n}",
                                 source_file="seed.csv", source_row=n + 2, recorded_at=AS_OF, recorded_by="seed"))  # fmt: skip
        if n % 4 == 1:
            made = day + dt.timedelta(days=3 + n % 20)
            status = ("AUTO_APPLIED", "APPLIED_FLAGGED", "PENDING_REVIEW", "APPROVED", "REJECTED")[n % 5]
            reviewed = _at(made + dt.timedelta(days=30)) if status in ("APPROVED", "REJECTED") else None
            adjustments.append(dict(
                adjustment_id=f"{number}-A01", tenant=tenant, order_id=f"o{n}", invoice_number=number, cohort_day=day,
                adjustment_seq=1, created_at=_at(made), adjustment_date=made, delta_cents=(-1) ** n * (10 + n),
                kind="debit", reason="RECALCULATION", status=status, applied=status != "PENDING_REVIEW",
                reviewed_at=reviewed, created_run_id="seed"))  # fmt: skip
        if n % 9 == 0:
            held.append(dict(tenant=tenant, order_id=f"h{n}", cohort_day=day, billable_at=_at(day), billable_basis="shipped",
                             invoice_date=day, billable=False, held=True, hold_reasons=("DAMAGED_PACKAGE", "ADDRESS_INVALID")[n % 2],
                             currency="USD", amount_cents=50 + n, as_of=AS_OF))  # fmt: skip
    with engine.begin() as conn:
        insert_frame(conn, schema.invoices, _fill(schema.invoices, invoices))
        insert_frame(conn, schema.invoice_adjustments, _fill(schema.invoice_adjustments, adjustments))
        insert_frame(conn, schema.billable_orders, _fill(schema.billable_orders, held))
        insert_frame(conn, schema.payments, _fill(schema.payments, payments))
    # The notes the ledger issues for the applied ones (DOMAIN §8.2; an approval's when reviewed).
    ledger.issue_adjustment_notes(engine, read_table(engine, schema.invoice_adjustments), "seed")


def _materialize(url, tmp_path, asset, partition, tags=None):
    return dg.materialize([asset], partition_key=partition, resources=build_resources(settings_for(url, tmp_path)),
                          tags={AS_OF_TAG: AS_OF.isoformat(), **(tags or {})})  # fmt: skip


def _table(engine, table, order):
    return read_table(engine, table).sort_values(order).reset_index(drop=True)


class Reads:
    """Every statement on the ledger tables while it is installed."""

    def __init__(self):
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if re.search(r"\bFROM\s+(invoices|invoice_adjustments|invoice_lines)\b", statement) and statement.lstrip().upper().startswith("SELECT"):
            self.statements.append(" ".join(statement.split()))

    def __enter__(self):
        event.listen(Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(Engine, "before_cursor_execute", self)


BOUNDS = re.compile(r"invoice_date >=|adjustment_date >=|cohort_day >=|invoice_number IN|order_id IN|"
                    r"\(invoices\.tenant, invoices\.invoice_month\) IN|invoice_date <")  # fmt: skip


def _bounded(statement: str) -> bool:
    """A row read is bounded by a date or key range; an aggregate (GROUP BY) returns one row per tenant."""
    return "GROUP BY" in statement or bool(BOUNDS.search(statement.split(" WHERE ", 1)[-1])) and " WHERE " in statement


def test_billing_report_equals_the_whole_ledger_computation(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_ledger(engine)
    first, last = dt.date(2025, 8, 3), dt.date(2025, 8, 6)
    with Reads() as reads:
        result = _materialize(warehouse_url, tmp_path, billing.billing_report, None,
                              {"dagster/asset_partition_range_start": first.isoformat(),
                               "dagster/asset_partition_range_end": last.isoformat()})  # fmt: skip
    assert result.success
    got = _table(engine, schema.billing_report, ["day", "tenant"])
    # The old computation: every invoice up to `last`, every held order, every adjustment.
    book = read_table(engine, schema.invoices, [schema.invoices.c.invoice_date <= last])
    held = read_table(engine, schema.billable_orders, [schema.billable_orders.c.held.is_(True),
                                                       schema.billable_orders.c.invoice_date <= last])  # fmt: skip
    adjustments = read_table(engine, schema.invoice_adjustments)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    paid = read_table(engine, schema.payments)
    ref = pd.concat([build_billing_report(book, held, adjustments, AS_OF, d, payments=paid) for d in days], ignore_index=True)
    replace_partition(engine, schema.billing_report, ref, "day", first, last)
    want = _table(engine, schema.billing_report, ["day", "tenant"])
    pd.testing.assert_frame_equal(got, want)
    # ghost-co's invoices all come after the days; its adjustments still give it a (zero) row.
    assert sorted(set(got["tenant"])) == ["demo-3pl", "ghost-co", "northwind-goods"]
    ghost = got[got["tenant"] == "ghost-co"]
    assert ghost["status_breakdown"].tolist() == ["open:0,partially_paid:0,overdue:0,paid:0"] * 4
    known = got[got["tenant"] != "ghost-co"]
    assert (known["invoices_paid"] > 0).all() and (known["invoices_overdue"] > 0).all() and (known["overdue_cents"] > 0).all()
    unbounded = [s for s in reads.statements if not _bounded(s)]
    assert reads.statements and not unbounded, unbounded


@pytest.mark.parametrize("month", ["2025-07-01", "2025-09-01"])
def test_monthly_statements_equal_the_whole_ledger_computation(warehouse_url, tmp_path, month):
    engine = make_engine(warehouse_url)
    seed_ledger(engine)
    with Reads() as reads:
        assert _materialize(warehouse_url, tmp_path, billing.monthly_statements, month).success
    got = _table(engine, schema.monthly_statements, ["tenant"])
    start = dt.date.fromisoformat(month)
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    registry = build_resources(settings_for(warehouse_url, tmp_path))["tenant_registry"].get_registry()
    book = read_table(engine, schema.invoices)
    ref = build_monthly_statements(book, read_table(engine, schema.invoice_adjustments), registry, start, AS_OF,
                                   payments=read_table(engine, schema.payments))
    # The monthly tenant (harbor-supply, DOMAIN §8.3) shows its monthly invoice: from the whole ledger too.
    monthly = book[(book["invoice_kind"] == "monthly") & (book["invoice_month"] == start.strftime("%Y%m"))]
    figures = monthly_statement_figures(monthly, read_table(engine, schema.invoice_lines), read_table(engine, schema.order_charges))
    pending = [t for t in registry.monthly_tenants() if t not in set(monthly["tenant"])]
    provisional = plan_monthly_invoices(None, None, registry, start, pending)[0]
    ref = apply_monthly_figures(ref, figures, provisional, registry.monthly_tenants(), registry)
    # July is past its grace period at as_of: the run issued harbor-supply's minimum fee (no orders).
    assert monthly["tenant"].tolist() == (["harbor-supply"] if month == "2025-07-01" else [])
    replace_partition(engine, schema.monthly_statements, ref, "month_start", start, end)
    pd.testing.assert_frame_equal(got, _table(engine, schema.monthly_statements, ["tenant"]))
    assert "ghost-co" in set(got["tenant"]) and got["overdue_cents"].sum() > 0
    unbounded = [s for s in reads.statements if not _bounded(s)]
    assert not unbounded, unbounded


def test_ledger_states_sql_equals_the_domain_rule(warehouse_url, tmp_path):
    """The SQL aggregate against the domain reference (build_billing_report over all earlier invoices)."""
    engine = make_engine(warehouse_url)
    seed_ledger(engine)
    before = dt.date(2025, 8, 15)
    book = read_table(engine, schema.invoices, [schema.invoices.c.invoice_date < before])
    ref = build_billing_report(book, None, read_table(engine, schema.invoice_adjustments), AS_OF, before,
                               payments=read_table(engine, schema.payments))
    ref = ref[STATE_COLUMNS].reset_index(drop=True)
    got = ledger_states(engine, AS_OF, before=before)
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)
    assert got.set_index("tenant").loc["demo-3pl"].tolist() == ref.set_index("tenant").loc["demo-3pl"].tolist()
    # Earlier, payments leave invoices partly paid (half paid, not yet due): the same in SQL.
    early = pd.Timestamp("2025-07-20T12:00:00Z")
    ref = build_billing_report(book, None, read_table(engine, schema.invoice_adjustments), early, before,
                               payments=read_table(engine, schema.payments))[STATE_COLUMNS].reset_index(drop=True)
    got = ledger_states(engine, early, before=before)
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)
    assert got.set_index("tenant").loc["demo-3pl", "invoices_partially_paid"] == 3


def test_checks_verify_the_touched_months_and_the_audit_job_the_whole_ledger(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed_ledger(engine)
    with engine.begin() as conn:  # a gap and a wrong due date in June, which the August run does not touch
        conn.execute(schema.invoices.delete().where(schema.invoices.c.invoice_number == "DEMO-3PL-202506-0002"))
        conn.execute(schema.invoices.update().where(schema.invoices.c.invoice_number == "NORTHWIND-GOODS-202506-0003")
                     .values(due_date=dt.date(2025, 6, 1)))  # fmt: skip
    resources = build_resources(settings_for(warehouse_url, tmp_path))
    audit = next(c for c in CADENCES if c.job == "ledger_audit_job")
    # The structural checks only: the lineage check of the audit is tested in test_lineage.py.
    names = {k.name for d in CHECKS for k in d.check_keys}
    audit = dataclasses.replace(audit, checks=tuple(c for c in audit.checks if c.split(":")[1] in names))
    defs = dg.Definitions(assets=[billing.invoices], asset_checks=CHECKS, jobs=build_jobs([billing.invoices], [audit]),
                          resources=resources)  # fmt: skip
    with Reads() as reads:
        daily = dg.materialize([billing.invoices, *CHECKS], partition_key="2025-08-05", resources=resources,
                               tags={AS_OF_TAG: AS_OF.isoformat()})  # fmt: skip
    evaluations = {e.check_name: e for e in daily.get_asset_check_evaluations()}
    assert {k: (e.passed, e.metadata["invoices_checked"].value) for k, e in evaluations.items()} == {
        "invoice_numbers_unique_and_gapless": (True, 16), "invoice_due_dates": (True, 16),
        "invoice_amounts_non_negative": (True, 16)}  # northwind-goods' 16 August invoices
    assert not [s for s in reads.statements if not _bounded(s)]
    full = defs.resolve_job_def("ledger_audit_job").execute_in_process(tags={AS_OF_TAG: AS_OF.isoformat()}, raise_on_error=False)
    evaluations = {e.check_name: e for e in full.get_asset_check_evaluations()}
    assert {k: (e.passed, e.metadata["invoices_checked"].value) for k, e in evaluations.items()} == {
        "invoice_numbers_unique_and_gapless": (False, 119), "invoice_due_dates": (False, 119),
        "invoice_amounts_non_negative": (True, 119)}
    assert "DEMO-3PL-202506-0002" in evaluations["invoice_numbers_unique_and_gapless"].metadata["offenders"].value
    assert "NORTHWIND-GOODS-202506-0003" in evaluations["invoice_due_dates"].metadata["offenders"].value
