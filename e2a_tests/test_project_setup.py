"""The project as a user meets it: the code location loads with `dg`, the CLI fails politely."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2a_assets.domain.policies import PolicyError, load_registry
from e2a_assets.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "e2a"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_dg_check_defs_loads_the_code_location(tmp_path):
    result = subprocess.run([str(BIN / "dg"), "check", "defs"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "E2A_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "--start", "2025-13-01"], "Invalid value for --start"),
        (["simulate", "--days", "0"], "Invalid value for '--days'"),
        (["serve", "--port", "99999"], "Invalid value for '--port'"),
        (["simulate", "--tenants", "9"], "has 3 tenants"),
        (["no-such-command"], "No such command"),
        (["replay-dead-letters", "--tenant", "nobody"], "unknown tenant"),
        (["simulate", "--live", "notaurl"], "expected the receiver's base URL"),
        (["simulate", "--live", "http://127.0.0.1:9"], "no receiver answers there"),
        (["invoices", "export", "--tenant", "demo-3pl", "--month", "2025-8"], "see 'e2a invoices export --help'"),
    ],
)
def test_bad_cli_arguments_give_one_line_and_non_zero_exit(args, message, tmp_path):
    result = run_cli(*args, env={"E2A_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("e2a: ") and message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "database_url, args, message",
    [
        ("foo://bar", ["replay-dead-letters"], "DATABASE_URL foo://bar is not a usable database URL"),
        ("not a url", ["serve", "--workers", "2"], "DATABASE_URL (unparseable) is not a usable database URL"),
        ("postgresql://e2a:s3cret@127.0.0.1:9/none", ["serve"],
         "the warehouse at postgresql://e2a:***@127.0.0.1:9/none is not reachable"),
    ],
)
def test_bad_or_unreachable_warehouse_is_one_line_without_the_password(database_url, args, message, tmp_path):
    result = run_cli(*args, env={"E2A_DATA_DIR": str(tmp_path), "DATABASE_URL": database_url})
    assert result.returncode == 1
    error = [line for line in result.stderr.strip().splitlines() if line.startswith("e2a: ")]
    assert len(error) == 1 and message in error[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout and "s3cret" not in result.stderr


def test_bad_tenant_file_is_one_line_naming_file_and_field(tmp_path):
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  demo-3pl:\n    timezone: Mars/Olympus\n")
    with pytest.raises(PolicyError) as err:
        load_registry(PROJECT_ROOT / "policies", bad)
    text = str(err.value)
    assert "\n" not in text and str(bad) in text and "tenants.demo-3pl.timezone" in text

    result = run_cli("simulate", env={"E2A_TENANTS_FILE": str(bad), "E2A_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"e2a: {text}"]


def test_bad_policy_values_are_rejected(tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default_sla.yaml").write_text("pick_minutes: -5\n")
    (policies / "default_tariffs.yaml").write_text((PROJECT_ROOT / "policies" / "default_tariffs.yaml").read_text())
    (policies / "tenants.yaml").write_text((PROJECT_ROOT / "policies" / "tenants.yaml").read_text())
    with pytest.raises(PolicyError, match=r"default_sla.yaml: field 'pick_minutes'"):
        load_registry(policies)
    (policies / "default_sla.yaml").write_text("pick_minutes: [unclosed\n")
    with pytest.raises(PolicyError, match="invalid YAML"):
        load_registry(policies)


def test_registry_maps_shop_domains_and_overrides():
    registry = load_registry(PROJECT_ROOT / "policies")
    assert registry.by_shop_domain("NORTHWIND-GOODS.myshopify.com").tenant == "northwind-goods"
    assert registry.by_shop_domain("unknown.myshopify.com") is None
    assert registry["northwind-goods"].sla.pick_minutes == 90
    assert registry["northwind-goods"].sla.ship_minutes == 1440  # default kept
    assert registry["demo-3pl"].tariff.multipliers == {"rush": 2.0, "oversized": 1.5, "hazmat": 3.0, "fragile": 1.2}
    env_override = load_registry(PROJECT_ROOT / "policies", overrides={"delivery_hours": 60, "payment_terms_days": 14})
    assert env_override["demo-3pl"].sla.delivery_hours == 60
    assert env_override["northwind-goods"].sla.delivery_hours == 48  # the tenant's own value wins
    assert env_override["demo-3pl"].tariff.payment_terms_days == 14


def test_tenant_overriding_one_multiplier_keeps_the_other_defaults(tmp_path):
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants:\n  acme:\n    tariff:\n      multipliers: {rush: 2.5}\n"
                       "      services_cents: {photo: 40}\n")
    tariff = load_registry(PROJECT_ROOT / "policies", tenants)["acme"].tariff
    assert tariff.multipliers == {"rush": 2.5, "oversized": 1.5, "hazmat": 3.0, "fragile": 1.2}
    assert tariff.services_cents == {"gift_wrap": 100, "photo": 40, "quality_check": 50, "custom_packaging": 200}
