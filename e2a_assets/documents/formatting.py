"""Money and month formats shared by documents, exports and the CLI."""

from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency

from e2a_assets.domain.policies import DEFAULT_LOCALE

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def format_money(cents: int, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """Integer cents as the tenant's locale writes money (Babel, CLDR data): `123456, "USD"` ->
    `$1,234.56` in en_US, `1.234,56 €` for EUR in de_DE; credits with a minus."""
    return format_currency(Decimal(int(cents)) / 100, str(currency), locale=locale or DEFAULT_LOCALE)


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
