"""The layers import only downward: checks never reach into assets, the domain and the services
know nothing of Dagster, and the domain knows nothing of the warehouse (ARCHITECTURE.md)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "e2a_assets"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, absolute names (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files, f"no modules under e2a_assets/{folder}"
    return [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_import_walker_sees_absolute_relative_and_aliased_imports(tmp_path):
    module = PACKAGE / "checks" / "_probe.py"
    try:
        module.write_text("import e2a_assets.assets.billing as b\nfrom ..assets import orders\nfrom . import invoices\n")
        found = imported_modules(module)
    finally:
        module.unlink()
    assert {"e2a_assets.assets.billing", "e2a_assets.assets", "e2a_assets.assets.orders", "e2a_assets.checks.invoices"} <= found


def test_checks_never_import_assets():
    assert offenders("checks", ("e2a_assets.assets",)) == []


@pytest.mark.parametrize("folder", ["domain", "services"])
def test_domain_and_services_know_nothing_of_dagster(folder):
    assert offenders(folder, ("dagster", "e2a_assets.assets", "e2a_assets.checks", "e2a_assets.resources")) == []


def test_the_domain_knows_nothing_of_the_warehouse():
    assert offenders("domain", ("sqlalchemy", "e2a_assets.warehouse", "e2a_assets.intake", "e2a_assets.services")) == []
