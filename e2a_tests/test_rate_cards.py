"""Rate cards with effective dates (DOMAIN §8.1): the registry's versions and their validation, the
version in force pricing each order, recalculations with the recorded version, the immutable
versions of issued invoices, and `e2a tenants rates`. The DOMAIN example throughout: demo-3pl
version 2 from 2025-08-15 sets pick_cents 40; pick + pack + label + 1 storage day is 70 on
2025-08-14 (version 1) and 80 on 2025-08-15 (version 2); a late return on the first is +250."""

import datetime as dt
import io
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import insert

from e2a_assets.assets import billing
from e2a_assets.assets import exceptions as exception_assets
from e2a_assets.assets import ingestion, orders
from e2a_assets.checks import invoices as invoice_checks
from e2a_assets.cli.main import main
from e2a_assets.definitions import build_resources
from e2a_assets.documents.exports import export_month_csv
from e2a_assets.domain.billing import price_orders
from e2a_assets.domain.policies import PolicyError, load_registry
from e2a_assets.domain.rate_cards import RateCardChanged, changed_versions, version_records, versions_in_force
from e2a_assets.domain.statements import compute_adjustments
from e2a_assets.intake.ingestor import Ingestor
from e2a_assets.resources import AS_OF_TAG
from e2a_assets.services.rate_cards import verify_rate_cards
from e2a_assets.settings import PROJECT_ROOT, Settings
from e2a_assets.warehouse import ledger, schema
from e2a_assets.warehouse.engine import make_engine
from e2a_assets.warehouse.frames import read_table
from e2a_tests.factories import envelope_delivery, shopify_delivery, shopify_order
from e2a_tests.test_domain_billing import billable_rows

POLICIES = PROJECT_ROOT / "policies"
HEADER = """tenants:
  demo-3pl:
    display_name: Demo 3PL Apparel
    shop_domain: demo-3pl.myshopify.com
    webhook_secret_dev: dev-secret-demo-3pl
"""
VERSION_2 = """    rate_cards:
      - version: 1
      - version: 2
        effective_from: 2025-08-15
        pick_cents: {pick}
"""
NORTHWIND = """  northwind-goods:
    webhook_secret_dev: dev-secret-northwind-goods
    tariff: {pick_cents: 35, storage_day_cents: 4}
"""
BASIC = {"picks": 1, "packs": 1, "labels": 1, "storage_days": 1}
AUG_14, AUG_15 = dt.date(2025, 8, 14), dt.date(2025, 8, 15)


def tenants_file(tmp_path: Path, text: str, name: str = "tenants.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def registry_with(tmp_path: Path, text: str):  # noqa: ANN201
    return load_registry(POLICIES, tenants_file(tmp_path, text))


@pytest.fixture
def demo_v2(tmp_path):  # noqa: ANN201
    return registry_with(tmp_path, HEADER + VERSION_2.format(pick=40) + NORTHWIND)


# --------------------------------------------------------------------------------------------- registry


def test_versions_are_read_over_the_tenants_tariff_and_version_1_is_the_tariff(tmp_path):
    registry = registry_with(tmp_path, HEADER + VERSION_2.format(pick=40) + NORTHWIND + """    rate_cards:
      - version: 2
        effective_from: 2025-09-01
        pick_cents: 40
        services_cents: {gift_wrap: 120}
        multipliers: {rush: 1.5}
""")
    demo = registry["demo-3pl"].rate_card_versions()
    assert [(v.version, v.effective_from, v.tariff.pick_cents) for v in demo] == [(1, None, 30), (2, AUG_15, 40)]
    # Version 1 may be left out; every version keeps the tenant's own tariff under its values.
    north = registry["northwind-goods"].rate_card_versions()
    assert [(v.version, v.tariff.pick_cents, v.tariff.storage_day_cents) for v in north] == [(1, 35, 4), (2, 40, 4)]
    assert north[1].tariff.services_cents["gift_wrap"] == 120 and north[1].tariff.services_cents["photo"] == 25
    assert north[1].tariff.multipliers == {"rush": 1.5, "oversized": 1.5, "hazmat": 3.0, "fragile": 1.2}
    assert registry["northwind-goods"].tariff == north[0].tariff  # version 1 is the tenant's tariff
    frame = registry.rate_card_frame()
    assert list(zip(frame["tenant"], frame["rate_card_version"], frame["tariff_pick_cents"])) == [
        ("demo-3pl", 1, 30), ("demo-3pl", 2, 40), ("northwind-goods", 1, 35), ("northwind-goods", 2, 40)]
    # A tenant without versions is version 1 alone, in force from the first day.
    plain = load_registry(POLICIES)["demo-3pl"].rate_card_versions()
    assert [(v.version, v.effective_from) for v in plain] == [(1, None)]


@pytest.mark.parametrize(("cards", "expected"), [
    ("- {version: 1}\n- {version: 3, effective_from: 2025-08-15, pick_cents: 40}",
     "rate_cards[1].version': expected 2"),
    ("- {version: 2, effective_from: 2025-08-15}\n- {version: 3, effective_from: 2025-08-15}",
     "rate_cards[1].effective_from': 2025-08-15 is not after version 2's 2025-08-15"),
    ("- {version: 2, effective_from: 2025-08-15, currency: EUR}", "rate_cards[0].currency': not a rate card value"),
    ("- {version: 2, effective_from: 2025-08-15, pick_cent: 40}", "rate_cards[0].pick_cent': not a rate card value"),
    ("- {version: 2, effective_from: 15/08/2025}", "rate_cards[0].effective_from': expected a date YYYY-MM-DD"),
    ("- {version: 2}", "rate_cards[0].effective_from': expected a date YYYY-MM-DD"),
    ("- {version: 1, effective_from: 2025-01-01}", "rate_cards[0]': version 1 is the tenant's tariff"),
    ("- {version: 2, effective_from: 2025-08-15, pick_cents: -1}", "rate_cards[0].pick_cents'"),
    ("- {version: 2, effective_from: 2025-08-15, services_cents: {engraving: 5}}", "unknown service 'engraving'"),
    ("{version: 2}", "rate_cards': expected a list of versions"),
])  # fmt: skip
def test_a_bad_version_list_is_refused_in_one_line_naming_the_field(tmp_path, cards, expected):
    text = HEADER + "    rate_cards:\n" + "".join(f"      {line}\n" for line in cards.splitlines())
    with pytest.raises(PolicyError) as error:
        registry_with(tmp_path, text)
    message = str(error.value)
    assert "\n" not in message and "tenants.yaml: field 'tenants.demo-3pl.rate_cards" in message
    assert expected in message, message


# --------------------------------------------------------------------------------------------- pricing


def test_domain_example_70_on_version_1_and_80_on_version_2(demo_v2):
    frame = billable_rows([{**BASIC, "invoice_date": AUG_14}, {**BASIC, "invoice_date": AUG_15},
                           {**BASIC, "invoice_date": dt.date(2026, 1, 1)}])  # fmt: skip
    totals, lines = price_orders(frame, demo_v2)
    assert list(totals["amount_cents"]) == [70, 80, 80]
    assert list(totals["rate_card_version"]) == [1, 2, 2]
    assert lines.groupby("order_id")["rate_card_version"].agg(set).to_dict() == {"o0": {1}, "o1": {2}, "o2": {2}}
    assert lines[(lines["order_id"] == "o1") & (lines["kind"] == "pick")]["unit_cents"].tolist() == [40]
    # An order carrying a recorded version keeps it whatever is in force on its date.
    totals, _ = price_orders(frame.assign(rate_card_version=[None, 1, None]), demo_v2)
    assert list(totals["amount_cents"]) == [70, 70, 80] and list(totals["rate_card_version"]) == [1, 1, 2]
    # A registry without versions prices exactly as before: version 1.
    plain, _ = price_orders(frame, load_registry(POLICIES))
    assert list(plain["amount_cents"]) == [70, 70, 70] and set(plain["rate_card_version"]) == {1}


def test_the_version_in_force_is_the_latest_effective_from_on_or_before_the_invoice_date(tmp_path):
    registry = registry_with(tmp_path, HEADER + """    rate_cards:
      - {version: 2, effective_from: 2025-08-15, pick_cents: 40}
      - {version: 3, effective_from: 2025-09-01, pick_cents: 45}
""" + NORTHWIND)
    days = ["2025-01-01", "2025-08-14", "2025-08-15", "2025-08-31", "2025-09-01", "2030-01-01"]
    orders_ = pd.DataFrame({"tenant": ["demo-3pl"] * 6 + ["northwind-goods", "ghost-co"],
                            "invoice_date": [dt.date.fromisoformat(d) for d in days] + [AUG_15, AUG_15]})
    # An unlisted tenant (only in hand-made frames) has the default policy's version 1.
    from e2a_assets.domain.rate_cards import rate_card_table

    table = rate_card_table(registry, orders_["tenant"].unique())
    assert list(versions_in_force(orders_, table)) == [1, 1, 2, 2, 3, 3, 1, 1]
    # Shuffled input, same answer per row (merge_asof sorts internally, the result keeps the order).
    shuffled = orders_.sample(frac=1, random_state=3)
    assert versions_in_force(shuffled, table).sort_index().tolist() == [1, 1, 2, 2, 3, 3, 1, 1]
    with pytest.raises(ValueError, match="tenant demo-3pl: rate card version 7 is not in the tenant registry"):
        versions_in_force(orders_.assign(rate_card_version=7), table)


def test_a_late_return_is_adjusted_with_the_version_recorded_on_the_invoice(demo_v2):
    """+250 by version 1, for the DOMAIN order of 2025-08-14 and for an order of 2025-08-15 that
    was invoiced (by version 1) before version 2 was added: never +260 from version 2."""
    issued = pd.DataFrame({"tenant": "demo-3pl", "order_id": ["o0", "o1"], "invoice_number": ["DEMO-3PL-202508-0001",
                           "DEMO-3PL-202508-0002"], "amount_cents": [70, 70], "rate_card_version": [1, 1]})  # fmt: skip
    late = billable_rows([{**BASIC, "returns": 1, "invoice_date": AUG_14}, {**BASIC, "returns": 1, "invoice_date": AUG_15}])
    in_force, _ = price_orders(late, demo_v2)
    assert list(in_force["amount_cents"]) == [320, 330]  # what the version in force would say
    recorded = late.merge(issued[["tenant", "order_id", "rate_card_version"]], on=["tenant", "order_id"])
    recomputed, _ = price_orders(recorded, demo_v2)
    new = compute_adjustments(issued, recomputed, None, demo_v2, pd.Timestamp("2025-09-06T12:00:00Z"))
    assert list(zip(new["invoice_number"], new["delta_cents"], new["rate_card_version"], new["status"])) == [
        ("DEMO-3PL-202508-0001", 250, 1, "AUTO_APPLIED"), ("DEMO-3PL-202508-0002", 250, 1, "AUTO_APPLIED")]
    with pytest.raises(ValueError, match="DEMO-3PL-202508-0002 was priced with rate card version 1"):
        compute_adjustments(issued, in_force, None, demo_v2, pd.Timestamp("2025-09-06T12:00:00Z"))


def test_a_change_to_a_recorded_version_is_named_and_a_new_version_is_not(tmp_path, demo_v2):
    used = pd.DataFrame({"tenant": ["demo-3pl", "demo-3pl"], "version": [1, 2]})
    recorded = version_records(demo_v2, used).assign(first_used_at=pd.Timestamp("2025-09-01T12:00:00Z"))
    assert changed_versions(recorded, demo_v2) == []
    v3 = registry_with(tmp_path, HEADER + VERSION_2.format(pick=40)
                       + "      - {version: 3, effective_from: 2025-10-01, pick_cents: 45}\n")
    assert changed_versions(recorded, v3) == []
    altered = registry_with(tmp_path, HEADER + VERSION_2.format(pick=45))
    assert changed_versions(recorded, altered) == [
        "tenant demo-3pl: rate card version 2 has priced issued invoices since 2025-09-01 and cannot change "
        "(pick_cents 40 -> 45); put the change in a new version"]
    moved = registry_with(tmp_path, HEADER + VERSION_2.format(pick=40).replace("2025-08-15", "2025-08-20"))
    assert "effective_from 2025-08-15 -> 2025-08-20" in changed_versions(recorded, moved)[0]
    base = registry_with(tmp_path, HEADER + "    tariff: {pack_cents: 25}\n" + VERSION_2.format(pick=40))
    problems = changed_versions(recorded, base)  # the tenant's tariff is under every version
    assert [p.split(" has ")[0] for p in problems] == ["tenant demo-3pl: rate card version 1",
                                                        "tenant demo-3pl: rate card version 2"]
    dropped = registry_with(tmp_path, HEADER)
    assert changed_versions(recorded, dropped) == [
        "tenant demo-3pl: rate card version 2 has priced issued invoices since 2025-09-01 and is missing from the "
        "tenant registry; restore it (changes go into a new version)"]


# --------------------------------------------------------------------------------------------- assets

DAILY = [ingestion.webhook_events, orders.orders, orders.order_sla, exception_assets.exceptions,
         billing.completed_orders, billing.billable_orders, billing.invoice_adjustments, billing.invoices,
         billing.billing_report]  # fmt: skip
CHECKS = [invoice_checks.invoice_amounts_match_events, invoice_checks.invoice_numbers_unique_and_gapless,
          invoice_checks.one_invoice_per_billable_order, invoice_checks.invoice_due_dates,
          invoice_checks.invoice_amounts_non_negative]  # fmt: skip


def settings_with(url: str, tmp_path: Path, tenants: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES, tenants_file=tenants)


def run(url: str, tmp_path: Path, tenants: Path, as_of: str, raise_on_error: bool = True):  # noqa: ANN201
    return dg.materialize([*DAILY, *CHECKS], partition_key=AUG_14.isoformat(),
                          resources=build_resources(settings_with(url, tmp_path, tenants)),
                          tags={AS_OF_TAG: as_of}, raise_on_error=raise_on_error)  # fmt: skip


def seed(engine) -> None:  # noqa: ANN001
    """Two demo-3pl orders created 2025-08-14: 3001 shipped that day, 3002 shipped 2025-08-15
    02:00 (invoice date 08-15, one storage day); each picked, packed and labelled once."""
    deliveries = []
    for oid, shipped in ((3001, "2025-08-14T20:00:00Z"), (3002, "2025-08-15T02:00:00Z")):
        deliveries += [
            shopify_delivery("demo-3pl", "orders/create", shopify_order(oid, "2025-08-14T08:00:00Z"), f"s-{oid}"),
            envelope_delivery("demo-3pl", "pick_completed", oid, "2025-08-14T09:00:00Z", f"p-{oid}"),
            envelope_delivery("demo-3pl", "pack_completed", oid, "2025-08-14T10:00:00Z", f"k-{oid}"),
            envelope_delivery("demo-3pl", "label_created", oid, "2025-08-14T11:00:00Z", f"l-{oid}"),
            envelope_delivery("demo-3pl", "manifested", oid, shipped, f"m-{oid}"),
        ]
    Ingestor(engine).ingest_many(deliveries)


def late_return(engine, oid: int) -> None:  # noqa: ANN001
    Ingestor(engine).ingest(envelope_delivery("demo-3pl", "return_received", oid, "2025-09-05T10:00:00Z", f"r-{oid}"))


def evaluations(result) -> dict[str, bool]:  # noqa: ANN001
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_assets_invoice_by_the_version_in_force_and_adjust_by_the_recorded_one(warehouse_url, tmp_path):
    engine = make_engine(warehouse_url)
    seed(engine)
    tenants = tenants_file(tmp_path, HEADER + VERSION_2.format(pick=40))
    result = run(warehouse_url, tmp_path, tenants, "2025-09-01T12:00:00+00:00")
    assert result.success and all(evaluations(result).values()), evaluations(result)
    book = read_table(engine, schema.invoices).set_index("order_id")
    assert book.loc[["3001", "3002"], ["invoice_number", "invoice_date", "amount_cents", "rate_card_version"]].values.tolist() == [
        ["DEMO-3PL-202508-0001", AUG_14, 70, 1], ["DEMO-3PL-202508-0002", AUG_15, 80, 2]]
    lines = read_table(engine, schema.invoice_lines)
    assert lines.groupby("order_id")["rate_card_version"].agg(set).to_dict() == {"3001": {1}, "3002": {2}}
    billable = read_table(engine, schema.billable_orders).set_index("order_id")
    assert billable["rate_card_version"].to_dict() == {"3001": 1, "3002": 2}
    cards = read_table(engine, schema.rate_card_versions)
    assert list(zip(cards["tenant"], cards["version"], cards["effective_from"].astype(object).where(cards["effective_from"].notna(), None))) == [
        ("demo-3pl", 1, None), ("demo-3pl", 2, AUG_15)]
    assert set(cards["first_used_at"]) == {pd.Timestamp("2025-09-01T12:00:00Z")} and cards["fingerprint"].str.len().eq(64).all()
    # The client's document and the finance export say which version priced each invoice.
    html = (tmp_path / "invoices" / "demo-3pl" / "2025-08" / "DEMO-3PL-202508-0002.html").read_text()
    assert "<td class=muted>Rate card</td><td>version 2</td>" in html and "$0.80" in html
    csv = pd.read_csv(io.StringIO(export_month_csv(engine, "demo-3pl", "2025-08")), dtype=str)
    assert list(zip(csv["invoice_number"], csv["rate_card_version"])) == [
        ("DEMO-3PL-202508-0001", "1"), ("DEMO-3PL-202508-0002", "2")]

    # A late return on the 08-14 order, after version 2 exists: +250 priced by version 1.
    late_return(engine, 3001)
    result = run(warehouse_url, tmp_path, tenants, "2025-09-06T12:00:00+00:00")
    assert result.success and all(evaluations(result).values()), evaluations(result)
    adj = read_table(engine, schema.invoice_adjustments)
    assert adj[["invoice_number", "issued_cents", "recomputed_cents", "delta_cents", "rate_card_version", "status"]].values.tolist() == [
        ["DEMO-3PL-202508-0001", 70, 320, 250, 1, "AUTO_APPLIED"]]


def test_a_version_added_after_an_invoice_never_reprices_it(warehouse_url, tmp_path):
    """3002 (08-15) is invoiced by version 1 while the registry has no version 2; version 2 from
    08-15 is added later (version 1 unchanged: allowed). A late return on 3002 is +250 by the
    recorded version 1, not +260, and the amount check agrees with the ledger."""
    engine = make_engine(warehouse_url)
    seed(engine)
    before = tenants_file(tmp_path, HEADER, "before.yaml")
    assert run(warehouse_url, tmp_path, before, "2025-09-01T12:00:00+00:00").success
    assert read_table(engine, schema.invoices).set_index("order_id")["amount_cents"].to_dict() == {"3001": 70, "3002": 70}
    after = tenants_file(tmp_path, HEADER + VERSION_2.format(pick=40), "after.yaml")
    late_return(engine, 3002)
    result = run(warehouse_url, tmp_path, after, "2025-09-06T12:00:00+00:00")
    assert result.success and all(evaluations(result).values()), evaluations(result)
    adj = read_table(engine, schema.invoice_adjustments)
    assert adj[["invoice_number", "delta_cents", "rate_card_version"]].values.tolist() == [["DEMO-3PL-202508-0002", 250, 1]]
    assert read_table(engine, schema.billable_orders).set_index("order_id")["rate_card_version"].to_dict() == {"3001": 1, "3002": 1}
    assert list(read_table(engine, schema.rate_card_versions)["version"]) == [1]  # version 2 priced nothing yet


def test_changing_a_version_that_priced_an_invoice_is_refused_in_one_line(warehouse_url, tmp_path, monkeypatch, capsys):
    engine = make_engine(warehouse_url)
    seed(engine)
    tenants = tenants_file(tmp_path, HEADER + VERSION_2.format(pick=40))
    assert run(warehouse_url, tmp_path, tenants, "2025-09-01T12:00:00+00:00").success
    ledger_before = read_table(engine, schema.invoices)
    tenants = tenants_file(tmp_path, HEADER + VERSION_2.format(pick=45))
    line = ("tenant demo-3pl: rate card version 2 has priced issued invoices since 2025-09-01 and cannot change "
            "(pick_cents 40 -> 45); put the change in a new version")  # fmt: skip

    result = run(warehouse_url, tmp_path, tenants, "2025-09-02T12:00:00+00:00", raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert {e.step_key for e in failures} == {"billable_orders"}
    assert failures[0].step_failure_data.user_failure_data.description == line
    pd.testing.assert_frame_equal(read_table(engine, schema.invoices), ledger_before)

    # The ledger itself refuses, inside the issuing transaction, whatever the caller checked.
    registry = load_registry(POLICIES, tenants)
    priced, lines = price_orders(billable_rows([{**BASIC, "invoice_date": AUG_15}]).assign(order_id="3999"), registry)
    with pytest.raises(RateCardChanged) as error:
        ledger.issue_invoices(engine, priced, lines, registry, "r-x", pd.Timestamp("2025-09-02T12:00:00Z"))
    assert str(error.value) == line
    pd.testing.assert_frame_equal(read_table(engine, schema.invoices), ledger_before)

    # So does the CLI, in one line with a non-zero exit.
    monkeypatch.setenv("DATABASE_URL", warehouse_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("E2A_TENANTS_FILE", str(tenants))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["tenants", "rates", "--tenant", "demo-3pl"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"e2a: {line}"]
    # The demo, which issues invoices through the assets, refuses before simulating anything.
    events_before = read_table(engine, schema.event_log)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--days", "1", "--orders-per-day", "1"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"e2a: {line}"]
    assert len(read_table(engine, schema.event_log)) == len(events_before)

    # A new version instead is accepted.
    tenants = tenants_file(tmp_path, HEADER + VERSION_2.format(pick=40)
                           + "      - {version: 3, effective_from: 2025-09-02, pick_cents: 45}\n")
    verify_rate_cards(engine, load_registry(POLICIES, tenants))


def test_tenants_rates_lists_versions_and_the_months_each_priced(sqlite_url, tmp_path, monkeypatch, capsys):
    engine = make_engine(sqlite_url)
    seed(engine)
    tenants = tenants_file(tmp_path, HEADER + VERSION_2.format(pick=40)
                           + "      - {version: 3, effective_from: 2025-10-01, pick_cents: 45, multipliers: {rush: 2.5}}\n")
    assert run(sqlite_url, tmp_path, tenants, "2025-09-01T12:00:00+00:00").success
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("E2A_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("E2A_TENANTS_FILE", str(tenants))
    capsys.readouterr()
    main(["tenants", "rates", "--tenant", "demo-3pl"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo-3pl: 3 rate card version(s)")
    assert out[1].split() == ["version", "effective_from", "values", "invoices", "amount", "invoice", "months", "priced"]
    assert out[2].split() == ["1", "first", "day", "the", "defaults", "1", "$0.70", "2025-08", "(1)"]
    assert out[3].split() == ["2", "2025-08-15", "pick_cents=40", "1", "$0.80", "2025-08", "(1)"]
    assert out[4].split() == ["3", "2025-10-01", "multipliers.rush=2.5,", "pick_cents=45", "0", "$0.00", "none", "yet"]
    assert len(out) == 5 and "\x1b" not in "".join(out)  # plain text when piped

    with pytest.raises(SystemExit) as exit_info:
        main(["tenants", "rates", "--tenant", "nobody"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["e2a: --tenant nobody: unknown tenant (known: demo-3pl)"]


def test_versions_found_by_the_migration_take_the_registrys_definition_once(sqlite_url, tmp_path):
    """Revision 0004 records version 1 of each invoiced tenant without a definition; the first
    registry load fills it, and from then on a change to it is refused."""
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(insert(schema.rate_card_versions).values(
            tenant="demo-3pl", version=1, first_used_at=dt.datetime(2025, 8, 2, tzinfo=dt.timezone.utc)))
    registry = registry_with(tmp_path, HEADER)
    verify_rate_cards(engine, registry)
    row = read_table(engine, schema.rate_card_versions).iloc[0]
    assert row["fingerprint"] == registry["demo-3pl"].rate_card_versions()[0].fingerprint()
    changed = registry_with(tmp_path, HEADER + "    tariff: {pick_cents: 31}\n")
    with pytest.raises(RateCardChanged, match=r"tenant demo-3pl: rate card version 1 .* \(pick_cents 30 -> 31\)"):
        verify_rate_cards(engine, changed)
