"""Each business rule lives once, in `e2a_assets/domain/`: assets and checks spell none of its
vocabulary or numbers themselves, they take them from the domain."""

import ast
from pathlib import Path

from e2a_assets.domain import billing, events, exception_patterns, exceptions, invoice_validation, operations, orders, sla
from e2a_assets.domain import statements

PACKAGE = Path(__file__).resolve().parents[1] / "e2a_assets"
THIN_LAYERS = ("assets", "checks")


def business_vocabulary() -> set[str]:
    """Every status, severity, category, code and kind name the domain defines."""
    return {
        *exceptions.REASON_CODES, *exceptions.SEVERITIES, *exceptions.PRIORITY_CATEGORIES, exceptions.OPEN,
        exceptions.RESOLVED, exceptions.PENDING, exceptions.SUCCEEDED, exceptions.DEFAULT_ACTION,
        *(action for action, _ in exceptions.ACTIONS.values()), *orders.STATUSES, *sla.CLOCKS, *billing.COMPLETIONS,
        *statements.ADJUSTMENT_STATUSES, statements.RECALCULATION, *events.SOURCES, events.ACCEPTED, events.IGNORED,
        events.DEAD_LETTER_PENDING, events.DEAD_LETTER_REPLAYED, *exception_patterns.INSIGHT_KINDS,
        *(label for _, label in operations.STATUS_LEVELS), operations.LOWEST_STATUS, operations.OVERALL,
        invoice_validation.AMOUNT_MISMATCH, invoice_validation.UNBILLABLE_ORDER, invoice_validation.MISSING_INVOICE,
    }  # fmt: skip


def business_numbers() -> set[float]:
    """Windows and thresholds whose value only the domain (or the policy) may state."""
    return {
        exception_patterns.PATTERN_WINDOW_DAYS, exception_patterns.PATTERN_WINDOW_DAYS - 1,
        exception_patterns.PATTERN_LOOKBACK_DAYS, exceptions.HIGH_IMPACT_SCORE, exceptions.SLA_RISK_SHARE,
        exceptions.DELIVERY_CRITICAL_OVERRUN.total_seconds() / 3600, 500, 2000,
    }  # fmt: skip


def literals(path: Path) -> list[tuple[int, object]]:
    """Constants of a module that are values: not docstrings, dict keys (metadata names) or
    subscripts (column and key names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Dict):
            skip.update(id(k) for k in node.keys if k is not None)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            skip.add(id(node.slice))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and id(n) not in skip]


def offending(check) -> list[str]:  # noqa: ANN001
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r}"
        for layer in THIN_LAYERS
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for line, value in literals(path)
        if check(value)
    ]


def test_assets_and_checks_spell_no_business_name():
    vocabulary = business_vocabulary()
    assert offending(lambda value: isinstance(value, str) and value in vocabulary) == []


def test_assets_and_checks_state_no_business_number():
    numbers = business_numbers()
    assert offending(lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
                     and value in numbers) == []


def test_the_scan_would_see_a_literal_status_or_window(tmp_path):
    probe = PACKAGE / "assets" / "_probe.py"
    try:
        probe.write_text('"""doc OPEN"""\nx = {"KEY": 1}\nopen_ = frame["COLUMN"] == "OPEN"\nlookback = 13\n')
        found = {value for _, value in literals(probe)}
    finally:
        probe.unlink()
    assert "OPEN" in found and 13 in found
    assert not found & {"doc OPEN", "KEY", "COLUMN"}
