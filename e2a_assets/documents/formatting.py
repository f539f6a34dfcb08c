"""Money and month formats shared by documents, exports and the CLI."""

from __future__ import annotations

import re

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "JPY": "¥", "CHF": "CHF "}
MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def format_money(cents: int, currency: str) -> str:
    """`123456, "USD"` -> `$1,234.56`; unknown currencies as `1,234.56 XYZ`; credits with a minus."""
    cents = int(cents)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    number = f"{whole:,}.{frac:02d}"
    symbol = SYMBOLS.get(str(currency).upper())
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {currency}"


def decimal_amount(cents: int) -> str:
    """`-12345` -> `-123.45`: exact cents as the plain decimal accounting imports read."""
    cents = int(cents)
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def parse_month(value: str) -> str:
    """`2025-08` -> `202508`; ValueError for anything else."""
    match = MONTH_PATTERN.match(value or "")
    if not match:
        raise ValueError(f"expected YYYY-MM, got {value!r}")
    return match.group(1) + match.group(2)
