"""Dagster's private modules are reached only through `e2a_assets/compat.py`."""

import ast
from pathlib import Path

from e2a_assets.settings import PROJECT_ROOT

COMPAT = PROJECT_ROOT / "e2a_assets" / "compat.py"


def private_dagster_imports(path: Path) -> list[str]:
    """`dagster._...` modules imported by one source file, with their line numbers."""
    label = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [f"{label}:{node.lineno} {name}" for name in names
                  if name.startswith("dagster._")]
    return found


def test_only_compat_imports_private_dagster_modules():
    sources = sorted([*(PROJECT_ROOT / "e2a_assets").rglob("*.py"), *(PROJECT_ROOT / "e2a_tests").rglob("*.py")])
    assert COMPAT in sources
    offenders = [line for path in sources if path != COMPAT for line in private_dagster_imports(path)]
    assert offenders == []


def test_the_scan_sees_private_imports(tmp_path):
    """The scan itself finds both import forms (a scan that finds nothing proves nothing)."""
    sample = tmp_path / "sample.py"
    sample.write_text("import dagster as dg\nfrom dagster._core.test_utils import instance_for_test\n"
                      "def f():\n    import dagster._check as check\n")
    assert private_dagster_imports(sample) == ["sample.py:2 dagster._core.test_utils", "sample.py:4 dagster._check"]
