"""Accounting exports (issue 12 item 3): QuickBooks Desktop IIF, QuickBooks Online CSV and Xero
CSVs of a tenant-month, each parsed back with a reader of its format, add up to the ledger to the
cent - per-order and monthly invoices, credit and debit notes - and book every line to the GL
account its charge kind maps to. GL configuration is validated when the registry loads."""

import csv
import dataclasses
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from e2a_assets.cli.demo import materialize_range
from e2a_assets.cli.main import main
from e2a_assets.definitions import build_definitions
from e2a_assets.domain.gl_accounts import CHARGES, account_of, charge_of
from e2a_assets.domain.policies import SHIPPED_POLICIES_DIR, PolicyError, load_registry, shipped_gl_accounts
from e2a_assets.exports.month_documents import month_documents
from e2a_assets.exports.quickbooks import to_iif, to_qbo_csv
from e2a_assets.exports.xero import CREDIT_NOTES, INVOICES, to_xero_csv
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.simulator.runner import ingest_deliveries
from e2a_assets.simulator.traffic import generate
from e2a_assets.warehouse import schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import envelope_delivery, settings_for

FIRST, LAST = dt.date(2025, 8, 28), dt.date(2025, 8, 31)
EARLY_AS_OF = pd.Timestamp("2025-09-01T06:00:00Z")
AS_OF = pd.Timestamp("2025-09-12T09:00:00Z")
# demo-3pl earns a volume discount from 2 orders (a credit note at month close) and books picks to
# its own account; harbor-supply is billed monthly (one invoice holding the month's orders).
TENANTS = """
tenants:
  demo-3pl:
    display_name: Demo 3PL Apparel
    shop_domain: demo-3pl.myshopify.com
    webhook_secret_dev: dev-secret-demo-3pl
    tariff:
      volume_discounts:
        - {min_orders: 2, rate: 0.10}
    gl_accounts:
      accounts:
        pick: "4011"
  harbor-supply:
    display_name: Harbor Supply Co
    shop_domain: harbor-supply.myshopify.com
    webhook_secret_dev: dev-secret-harbor-supply
    billing_mode: monthly
"""


def _settings(url: str, tmp_path: Path):
    path = tmp_path / "tenants.yaml"
    path.write_text(TENANTS, encoding="utf-8")
    return dataclasses.replace(settings_for(url, tmp_path), tenants_file=path)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory, migrated_sqlite_template):
    """A real ledger: 4 days of simulated traffic for both tenants billed through the assets,
    late returns (debit notes) and August closed (discount credit note, monthly invoice)."""
    import shutil

    from e2a_assets.warehouse.engine import sqlite_url

    tmp_path = tmp_path_factory.mktemp("exports")
    shutil.copyfile(migrated_sqlite_template, tmp_path / "warehouse.sqlite")
    url = sqlite_url(tmp_path / "warehouse.sqlite")
    settings = _settings(url, tmp_path)
    engine = make_engine(url)
    ingest_deliveries(Ingestor(engine), generate(list(settings.registry().policies), (LAST - FIRST).days + 1, 4, 11, FIRST))
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        materialize_range(instance, defs, "full_operations_job", FIRST.isoformat(), LAST.isoformat(), EARLY_AS_OF)
        issued = read_table(engine, schema.invoices).sort_values("invoice_number").groupby("tenant").head(1)
        Ingestor(engine).ingest_many([
            envelope_delivery(row.tenant, "return_received", row.order_id, "2025-09-05T10:00:00Z", f"late-{row.order_id}")
            for row in issued.itertuples()])  # fmt: skip
        materialize_range(instance, defs, "full_operations_job", FIRST.isoformat(), LAST.isoformat(), AS_OF)
        materialize_range(instance, defs, "monthly_statements_job", "2025-08-01", "2025-08-01", AS_OF)
    return engine, settings


def ledger_net(engine, tenant: str, month: str) -> tuple[int, int, int]:
    """(Σ invoices, Σ debit notes, Σ credit notes) of the month, read straight from the ledger."""
    inv = read_table(engine, schema.invoices)
    inv = inv[(inv["tenant"] == tenant) & (inv["invoice_month"] == month)]
    notes = read_table(engine, schema.notes)
    notes = notes[(notes["tenant"] == tenant) & (notes["note_month"] == month)]
    return (int(inv["amount_cents"].sum()), int(notes.loc[notes["kind"] == "debit", "amount_cents"].sum()),
            int(notes.loc[notes["kind"] == "credit", "amount_cents"].sum()))  # fmt: skip


def cents(text: str) -> int:
    return int(Decimal(text) * 100)


def read_iif(text: str) -> list[dict]:
    """A small IIF reader: tab-separated; `!TRNS`/`!SPL` rows name the columns of the `TRNS`/`SPL`
    rows under them; each TRNS ... ENDTRNS block is one transaction."""
    headers, blocks, current = {}, [], None
    for raw in text.split("\r\n"):
        if not raw:
            continue
        cells = raw.split("\t")
        if cells[0].startswith("!"):
            headers[cells[0][1:]] = cells
            continue
        row = dict(zip(headers[cells[0]], cells)) if cells[0] in headers else {}
        if cells[0] == "TRNS":
            current = {"trns": row, "spl": []}
        elif cells[0] == "SPL":
            current["spl"].append(row)
        elif cells[0] == "ENDTRNS":
            blocks.append(current)
            current = None
    assert current is None, "a TRNS without ENDTRNS"
    return blocks


def test_iif_transactions_balance_and_add_up_to_the_ledger(ledger):
    engine, settings = ledger
    for tenant in ("demo-3pl", "harbor-supply"):
        docs = month_documents(engine, settings.registry()[tenant], "2025-08")
        blocks = read_iif(to_iif(docs))
        invoices, debits, credits = ledger_net(engine, tenant, "202508")
        assert len(blocks) == len(docs.documents) > 0
        for block in blocks:
            assert cents(block["trns"]["AMOUNT"]) + sum(cents(s["AMOUNT"]) for s in block["spl"]) == 0  # balanced
            assert block["trns"]["ACCNT"] == "1200"
        kinds = {b["trns"]["TRNSTYPE"] for b in blocks}
        total = sum(cents(b["trns"]["AMOUNT"]) for b in blocks)
        assert total == invoices + debits - credits == docs.total_cents()
        memos = sum(cents(b["trns"]["AMOUNT"]) for b in blocks if b["trns"]["TRNSTYPE"] == "CREDIT MEMO")
        assert memos == -credits
        if tenant == "demo-3pl":
            # Per-order invoices, the late return's debit note (an INVOICE), the discount's credit memo.
            assert kinds == {"INVOICE", "CREDIT MEMO"} and credits > 0 and debits > 0
            accounts = {s["ACCNT"] for b in blocks for s in b["spl"]}
            assert {"4011", "4020", "4030", "4900"} <= accounts  # own pick account; defaults for the rest
            picks = [s for b in blocks for s in b["spl"] if s["INVITEM"] == "Pick"]
            assert picks and {s["ACCNT"] for s in picks} == {"4011"}
            assert {b["trns"]["DATE"][:2] for b in blocks} == {"08"}  # MM/DD/YYYY
        else:
            monthly = read_table(engine, schema.invoices)
            monthly = monthly[(monthly["tenant"] == tenant) & (monthly["invoice_kind"] == "monthly")]
            assert len(monthly) == 1 and monthly["invoice_number"].iloc[0] in {b["trns"]["DOCNUM"] for b in blocks}
    # September holds the late return's recalculation note, booked to the adjustment account.
    september = read_iif(to_iif(month_documents(engine, settings.registry()["demo-3pl"], "2025-09")))
    invoices, debits, credits = ledger_net(engine, "demo-3pl", "202509")
    assert sum(cents(b["trns"]["AMOUNT"]) for b in september) == invoices + debits - credits and debits > 0
    assert {s["ACCNT"] for b in september for s in b["spl"]} == {"4950"}


def test_qbo_csv_rows_add_up_to_the_ledger(ledger):
    engine, settings = ledger
    docs = month_documents(engine, settings.registry()["demo-3pl"], "2025-08")
    rows = list(csv.DictReader(io.StringIO(to_qbo_csv(docs))))
    invoices, debits, credits = ledger_net(engine, "demo-3pl", "202508")
    assert sum(cents(r["ItemAmount"]) for r in rows) == invoices + debits - credits
    for r in rows:
        assert cents(r["ItemAmount"]) == int(r["ItemQuantity"]) * cents(r["ItemRate"])  # what the importer computes
    assert {r["Customer"] for r in rows} == {"Demo 3PL Apparel"}
    credit_rows = [r for r in rows if r["Memo"].startswith("credit ")]
    assert credit_rows and all(cents(r["ItemAmount"]) < 0 for r in credit_rows)
    assert sum(cents(r["ItemAmount"]) for r in credit_rows) == -credits


def test_xero_invoice_and_credit_note_files_add_up_to_the_ledger(ledger):
    engine, settings = ledger
    for tenant in ("demo-3pl", "harbor-supply"):
        docs = month_documents(engine, settings.registry()[tenant], "2025-08")
        invoices_file = list(csv.DictReader(io.StringIO(to_xero_csv(docs, INVOICES))))
        credit_file = list(csv.DictReader(io.StringIO(to_xero_csv(docs, CREDIT_NOTES))))
        invoices, debits, credits = ledger_net(engine, tenant, "202508")
        line_total = lambda r: int(Decimal(r["*Quantity"]) * Decimal(r["*UnitAmount"]) * 100)  # noqa: E731  (Xero's total)
        assert sum(line_total(r) for r in invoices_file) == invoices + debits
        assert sum(line_total(r) for r in credit_file) == credits  # positive: Xero books them as credits
        assert all(r["*TaxType"] == "Tax Exempt" and r["*AccountCode"] for r in invoices_file + credit_file)
        assert all(r["*DueDate"] for r in invoices_file)
        assert {r["*InvoiceDate"][3:] for r in invoices_file} <= {"08/2025"}  # DD/MM/YYYY
        if tenant == "demo-3pl":
            assert credit_file and {r["*CreditNoteNumber"][:12] for r in credit_file} == {"DEMO-3PL-CN-"}


def test_cli_exports_write_files_and_refuse_bad_input_in_one_line(ledger, tmp_path, monkeypatch, capsys):
    engine, settings = ledger
    monkeypatch.setenv("DATABASE_URL", str(engine.url))
    monkeypatch.setenv("E2A_TENANTS_FILE", str(settings.tenants_file))
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    out = tmp_path / "august.iif"
    main(["export", "quickbooks", "--tenant", "demo-3pl", "--month", "2025-08", "--output", str(out)])
    docs = month_documents(engine, settings.registry()["demo-3pl"], "2025-08")
    assert out.read_bytes().decode("utf-8") == to_iif(docs)
    main(["export", "xero", "--tenant", "demo-3pl", "--month", "2025-08", "--documents", "credit-notes"])
    assert capsys.readouterr().out == to_xero_csv(docs, CREDIT_NOTES)
    for argv, said in (
        (["export", "xero", "--tenant", "nobody", "--month", "2025-08"], "e2a: --tenant nobody: unknown tenant"),
        (["export", "quickbooks", "--tenant", "demo-3pl", "--month", "2025-13"], "e2a: Invalid value for --month: expected YYYY-MM"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code != 0 and err.startswith(said) and len(err.strip().splitlines()) == 1, err


def test_every_line_kind_books_to_an_account():
    kinds = pd.Series(["pick", "storage_long_term", "service_gift_wrap", "multiplier_rush", "minimum_top_up",
                       "volume_discount", "minimum_monthly_fee", "RECALCULATION", "VOLUME_DISCOUNT",
                       "MINIMUM_TOP_UP", "tax", "receiving"])  # fmt: skip
    assert charge_of(kinds).tolist() == ["pick", "storage", "gift_wrap", "rush", "minimum_top_up", "volume_discount",
                                         "minimum_monthly_fee", "adjustment", "volume_discount", "minimum_monthly_fee",
                                         "tax", "other"]  # fmt: skip
    assert account_of(kinds, shipped_gl_accounts()).tolist() == ["4010", "4100", "4210", "4510", "4400", "4900", "4600",
                                                                 "4950", "4900", "4600", "2200", "4999"]  # fmt: skip
    assert set(shipped_gl_accounts().accounts) == set(CHARGES)


@pytest.mark.parametrize("gl, said", [
    ("{accounts: {picking: '4010'}}", "field 'tenants.demo-3pl.gl_accounts.accounts': Value error, unknown charge 'picking'"),
    ("{accounts: {pick: ''}}", "field 'tenants.demo-3pl.gl_accounts.accounts': Value error, empty account for charge 'pick'"),
    ("{receivable: ''}", "field 'tenants.demo-3pl.gl_accounts.receivable': String should have at least 1 character"),
    ("[4010]", "field 'tenants.demo-3pl.gl_accounts': expected a mapping"),
])  # fmt: skip
def test_gl_accounts_are_validated_at_load(tmp_path, gl, said):
    path = tmp_path / "tenants.yaml"
    path.write_text(f"tenants:\n  demo-3pl:\n    gl_accounts: {gl}\n", encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_registry(SHIPPED_POLICIES_DIR, path)
    assert str(err.value).startswith(f"{path}: {said}"), str(err.value)
    assert "\n" not in str(err.value)
