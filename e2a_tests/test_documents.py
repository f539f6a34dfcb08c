"""Client documents as a person sees them (issue 12): invoices, credit notes and the statement
rendered from Jinja2 templates to HTML and to PDF, read back from the PDF's text layer, drawn as
PNG with pdftoppm where it is installed, and built into one folder and zip per client and month."""

import datetime as dt
import io
import os
import shutil
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader

from e2a_assets.cli.main import main
from e2a_assets.documents.invoices import invoice_document
from e2a_assets.documents.pdf import render_pdf
from e2a_assets.domain.billing import LINE_COLUMNS
from e2a_assets.domain.issuer import shipped_issuer
from e2a_assets.domain.line_labels import line_label
from e2a_assets.domain.policies import PolicyError, default_policy, load_registry, shipped_defaults
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import insert_frame, read_table
from e2a_assets.settings import PROJECT_ROOT

AS_OF = pd.Timestamp("2025-08-20T12:00:00Z")
AUG_5 = dt.date(2025, 8, 5)
# pick 10 × 30, pack 8 × 20, label 5 × 15, 30 storage days × 5 = 685 (DOMAIN §5), rush ×2 = 1370.
LINES = [("pick", 10, 30), ("pack", 8, 20), ("label", 5, 15), ("storage", 30, 5), ("multiplier_rush", 1, 685)]
FILES = ["DEMO-3PL-202508-0001.html", "DEMO-3PL-202508-0001.pdf", "DEMO-3PL-202508-0002.html",
         "DEMO-3PL-202508-0002.pdf", "DEMO-3PL-202508-orders.csv", "DEMO-3PL-CN-202508-0001.html",
         "DEMO-3PL-CN-202508-0001.pdf", "DEMO-3PL-ST-202508.html", "DEMO-3PL-ST-202508.pdf"]  # fmt: skip


def seed(engine) -> None:  # noqa: ANN001
    """Two invoiced orders of 2025-08-05 (13.70 each) and a 2.50 credit note on the first."""
    ids = ["1001", "1002"]
    frame = pd.DataFrame({"tenant": "demo-3pl", "order_id": ids, "cohort_day": AUG_5, "invoice_date": AUG_5,
                          "billable_at": [pd.Timestamp(AUG_5, tz="UTC") + pd.Timedelta(minutes=n) for n in range(2)],
                          "billable_basis": "shipped", "amount_cents": 1370, "currency": "USD", "rate_card_version": 1})  # fmt: skip
    lines = pd.DataFrame([{"tenant": "demo-3pl", "order_id": o, "line_no": n + 1, "kind": kind, "description": kind,
                           "quantity": qty, "unit_cents": unit, "amount_cents": qty * unit, "rate_card_version": 1}
                          for o in ids for n, (kind, qty, unit) in enumerate(LINES)])[LINE_COLUMNS]  # fmt: skip
    ledger.issue_invoices(engine, frame, lines, None, "r1", AS_OF)
    with engine.begin() as conn:
        insert_frame(conn, schema.invoice_adjustments, pd.DataFrame([{
            "adjustment_id": "DEMO-3PL-202508-0001-A01", "tenant": "demo-3pl", "order_id": "1001",
            "invoice_number": "DEMO-3PL-202508-0001", "cohort_day": AUG_5, "adjustment_seq": 1,
            "created_at": AS_OF, "adjustment_date": dt.date(2025, 8, 20), "issued_cents": 1370,
            "previously_applied_cents": 0, "recomputed_cents": 1120, "delta_cents": -250, "kind": "credit",
            "reason": "RECALCULATION", "status": "AUTO_APPLIED", "applied": True, "flagged": False,
            "supersedes": "", "created_run_id": "r2", "rate_card_version": 1}]))  # fmt: skip
    ledger.issue_adjustment_notes(engine, read_table(engine, schema.invoice_adjustments), "r2")


def text_of(pdf: Path | bytes) -> str:
    """The PDF's text layer, lines joined by spaces (a long value may wrap onto a second line)."""
    data = pdf.read_bytes() if isinstance(pdf, Path) else pdf
    return " ".join(" ".join(page.extract_text().split("\n")) for page in PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def built(sqlite_url, tmp_path, monkeypatch, capsys):
    engine = make_engine(sqlite_url)
    seed(engine)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    main(["documents", "build", "--tenant", "demo-3pl", "--month", "2025-08"])
    out = capsys.readouterr().out
    folder = tmp_path / "invoices" / "demo-3pl" / "2025-08"
    return engine, folder, out


def test_month_folder_holds_every_document_and_reads_as_issued(built, capsys):
    engine, folder, out = built
    assert sorted(p.name for p in folder.iterdir()) == FILES
    assert out.strip() == f"{folder}: 9 file(s), 10 written now; zip {folder.parent / 'DEMO-3PL-2025-08.zip'}"

    invoice = text_of(folder / "DEMO-3PL-202508-0001.pdf")
    for words in ("Invoice", "DEMO-3PL-202508-0001", "e2a Fulfilment Services LLC", "Tax ID: EIN 94-1234567",
                  "Demo 3PL Apparel Inc.", "500 Market Street, Floor 3", "Pick", "Pack", "Shipping label",
                  "Storage, days 1–90", "Rush ×2", "$6.85", "Total due", "$13.70", "30 days net",
                  "Please pay $13.70 by 2025-09-04, quoting DEMO-3PL-202508-0001 as the remittance reference."):
        assert words in invoice, words
    note = text_of(folder / "DEMO-3PL-CN-202508-0001.pdf")
    for words in ("Credit note", "DEMO-3PL-CN-202508-0001", "Correction of invoice DEMO-3PL-202508-0001",
                  "Refers to Invoice DEMO-3PL-202508-0001 Order 1001", "Total credited", "$2.50", "Demo 3PL Apparel Inc."):
        assert words in note, words
    statement = text_of(folder / "DEMO-3PL-ST-202508.pdf")
    for words in ("Statement", "2025-08-01 – 2025-08-31", "DEMO-3PL-202508-0002", "DEMO-3PL-CN-202508-0001", "-$2.50",
                  "No payments recorded.", "Balance due", "$24.90"):
        assert words in statement, words
    # The HTML page says the same, with the amounts in right-aligned cells.
    html = (folder / "DEMO-3PL-202508-0001.html").read_text()
    assert '<td class=num>$13.70</td>' in html and "<td>Shipping label</td>" in html and "<script" not in html
    assert "<th class=num>Amount</th>" in html and "<td class=muted>Rate card</td><td>version 1</td>" in html
    detail = pd.read_csv(folder / "DEMO-3PL-202508-orders.csv", dtype=str)
    assert detail[["invoice_number", "order_id", "amount_cents"]].values.tolist() == [
        ["DEMO-3PL-202508-0001", "1001", "1370"], ["DEMO-3PL-202508-0002", "1002", "1370"]]
    with zipfile.ZipFile(folder.parent / "DEMO-3PL-2025-08.zip") as archive:
        assert archive.namelist() == [f"2025-08/{name}" for name in FILES]
        assert {info.date_time for info in archive.infolist()} == {(2025, 8, 31, 0, 0, 0)}
        assert archive.read("2025-08/DEMO-3PL-202508-0001.pdf") == (folder / "DEMO-3PL-202508-0001.pdf").read_bytes()


def test_rebuilding_gives_the_same_bytes_and_restores_a_lost_file(built, capsys):
    engine, folder, _ = built
    archive = folder.parent / "DEMO-3PL-2025-08.zip"
    before = {p.name: p.read_bytes() for p in [*folder.iterdir(), archive]}
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    main(["documents", "build", "--tenant", "demo-3pl", "--month", "2025-08"])
    assert "9 file(s), 0 written now" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    (folder / "DEMO-3PL-202508-0002.pdf").unlink()
    main(["documents", "build", "--tenant", "demo-3pl", "--month", "2025-08"])
    assert "9 file(s), 1 written now" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in [*folder.iterdir(), archive]} == before


def test_statement_lists_the_payments_against_the_months_documents(built, capsys):
    engine, folder, _ = built
    # Recorded the way finance records them; a payment dated in September against an August invoice
    # still settles August's statement (its balance counts payments by the document's month).
    main(["payments", "record", "--number", "DEMO-3PL-202508-0002", "--amount", "10.00", "--date", "2025-08-25",
          "--reference", "ACH 7731"])
    main(["payments", "record", "--number", "DEMO-3PL-202508-0001", "--amount", "5.00", "--date", "2025-09-02",
          "--reference", "ACH 7790"])
    capsys.readouterr()
    main(["documents", "build", "--tenant", "demo-3pl", "--month", "2025-08"])
    assert "3 written now" in capsys.readouterr().out  # the statement's HTML and PDF, and the zip
    statement = text_of(folder / "DEMO-3PL-ST-202508.pdf")
    assert "ACH 7731" in statement and "-$10.00" in statement
    assert "ACH 7790" in statement and "-$5.00" in statement
    assert "Balance due $9.90" in statement


def test_pdf_pages_render_to_png(built, tmp_path):
    _, folder, _ = built
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: the PDFs' text layer is checked, not their pixels")
    target = Path(os.environ.get("E2A_SCREENSHOTS") or tmp_path)
    names = {"DEMO-3PL-202508-0001": "document-invoice", "DEMO-3PL-CN-202508-0001": "document-credit-note",
             "DEMO-3PL-ST-202508": "document-statement"}  # fmt: skip
    for number, name in names.items():
        subprocess.run(["pdftoppm", "-png", "-r", "70", "-singlefile", str(folder / f"{number}.pdf"), str(target / name)],
                       check=True)  # fmt: skip
        png = (target / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # a page with text, not a blank


def test_money_follows_the_tenant_locale():
    policy = default_policy("alpen-shop", tariff={"currency": "EUR"}, locale="de_DE", billing_name="Alpen Shop GmbH",
                            billing_address=("Hauptstraße 1", "80331 München"))  # fmt: skip
    invoice = {"invoice_number": "ALPEN-SHOP-202508-0001", "tenant": "alpen-shop", "order_id": "9", "invoice_date": AUG_5,
               "due_date": dt.date(2025, 9, 4), "payment_terms_days": 30, "billable_basis": "shipped",
               "amount_cents": 123456, "currency": "EUR", "rate_card_version": 1, "invoice_kind": "order"}  # fmt: skip
    lines = pd.DataFrame([{"line_no": 1, "kind": "service_gift_wrap", "quantity": 1, "unit_cents": 123456,
                           "amount_cents": 123456, "rate_card_version": 1}])  # fmt: skip
    text = text_of(render_pdf(invoice_document(invoice, lines, policy, shipped_issuer())))
    assert "1.234,56\xa0€" in text and "Gift wrap" in text and "Hauptstraße 1" in text and "Alpen Shop GmbH" in text


def test_line_labels_follow_the_rate_card_that_priced_them():
    tariff = shipped_defaults().tariff
    assert [line_label(k, tariff) for k in ("pick", "pack", "label", "storage", "storage_long_term", "service_gift_wrap",
                                            "multiplier_rush", "multiplier_fragile")] == [
        "Pick", "Pack", "Shipping label", "Storage, days 1–90", "Storage, days over 90 (×2)", "Gift wrap", "Rush ×2",
        "Fragile ×1.2"]  # fmt: skip
    cheaper = tariff.model_copy(update={"long_term_storage_after_days": 60, "multipliers": {**tariff.multipliers, "rush": 1.5}})
    assert (line_label("storage", cheaper), line_label("multiplier_rush", cheaper)) == ("Storage, days 1–60", "Rush ×1.5")
    assert line_label("tax", tax_rate=Decimal("0.0825")) == "Tax 8.25%"


@pytest.mark.parametrize("field, value, message", [
    ("tariff", {"currency": "XYZ"}, "field 'tenants.demo-3pl.tariff.currency': Value error, unknown currency 'XYZ'"),
    ("locale", "xx_YY", "field 'tenants.demo-3pl.locale': Value error, unknown locale 'xx_YY'"),
    ("billing_address", "500 Market Street", "field 'tenants.demo-3pl.billing_address': Input should be a valid tuple"),
])  # fmt: skip
def test_registry_refuses_bad_document_fields_in_one_line(tmp_path, field, value, message):
    import yaml

    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"demo-3pl": {field: value}}}))
    with pytest.raises(PolicyError) as err:
        load_registry(PROJECT_ROOT / "policies", path)
    assert "\n" not in str(err.value) and message in str(err.value)


def test_the_shipped_registry_addresses_every_tenant():
    registry = load_registry(PROJECT_ROOT / "policies")
    assert [(p.bill_to_name, len(p.billing_address) > 1, p.locale) for p in registry.policies] == [
        ("Demo 3PL Apparel Inc.", True, "en_US"), ("Northwind Goods LLC", True, "en_US"),
        ("Harbor Supply Company Ltd", True, "en_GB")]  # fmt: skip


def test_build_refuses_bad_input_in_one_line(sqlite_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path))
    bad_issuer = tmp_path / "issuer.yaml"
    bad_issuer.write_text("issuer:\n  legal_name: e2a\n  address: []\n  tax_id: X\n")
    cases = [(["--tenant", "demo-3pl", "--month", "2025-13"], 2, "YYYY-MM"),
             (["--tenant", "nobody", "--month", "2025-08"], 1, "--tenant nobody: unknown tenant"),
             (["--tenant", "demo-3pl", "--month", "2025-08"], 1, "issuer.yaml: field 'issuer.address'")]  # fmt: skip
    for n, (args, code, words) in enumerate(cases):
        if n == 2:
            monkeypatch.setenv("E2A_ISSUER_FILE", str(bad_issuer))
        with pytest.raises(SystemExit) as exit_info:
            main(["documents", "build", *args])
        err = capsys.readouterr().err
        assert exit_info.value.code == code and len(err.strip().splitlines()) == 1 and words in err, err


def test_monthly_invoice_and_debit_note_documents():
    policy = load_registry(PROJECT_ROOT / "policies")["harbor-supply"]
    invoice = {"invoice_number": "HARBOR-SUPPLY-202508-0001", "tenant": "harbor-supply", "order_id": "MONTHLY-202508",
               "invoice_date": dt.date(2025, 8, 31), "due_date": dt.date(2025, 9, 30), "payment_terms_days": 30,
               "billable_basis": "monthly", "amount_cents": 10000, "currency": "USD", "rate_card_version": 1,
               "invoice_kind": "monthly"}  # fmt: skip
    lines = pd.DataFrame([{"line_no": n + 1, "kind": kind, "quantity": qty, "unit_cents": unit, "amount_cents": qty * unit,
                           "rate_card_version": version}
                          for n, (kind, qty, unit, version) in enumerate([
                              ("pick", 2, 30, 1), ("pick", 1, 40, 2), ("storage", 3, 5, 1),
                              ("minimum_monthly_fee", 1, 9885, 1)])])  # fmt: skip
    text = text_of(render_pdf(invoice_document(invoice, lines, policy, shipped_issuer())))
    for words in ("Billing period 2025-08", "HARBOR-SUPPLY-202508-0001-orders.csv", "Pick (rate card v2)",
                  "Minimum monthly fee", "US$98.85", "Harbor Supply Company Ltd", "Southampton SO14 3TJ", "US$100.00"):
        assert words in text, words  # en_GB spells US dollars "US$"
    from e2a_assets.documents.notes import note_document

    note = {"note_number": "HARBOR-SUPPLY-DN-202509-0001", "tenant": "harbor-supply", "kind": "debit",
            "note_date": dt.date(2025, 9, 3), "reason": "RECALCULATION", "invoice_number": "HARBOR-SUPPLY-202508-0001",
            "order_id": "3001", "statement_month": None, "amount_cents": 250, "currency": "USD"}  # fmt: skip
    text = text_of(render_pdf(note_document(note, None, policy, shipped_issuer())))
    for words in ("Debit note", "Correction of invoice HARBOR-SUPPLY-202508-0001", "US$2.50",
                  "Please pay US$2.50 by 2025-10-03, quoting HARBOR-SUPPLY-DN-202509-0001 as the remittance reference."):
        assert words in text, words
