"""What a client reads for each document line: the one mapping from a line's `kind` (invoice lines,
monthly invoice lines, note lines) to its human description, e.g. `pick` -> "Pick",
`storage` -> "Storage, days 1–90", `multiplier_rush` -> "Rush ×2" (docs/billing.md "Documents").

The ledger keeps the description it was issued with; documents print these labels, filled in
from the rate card version that priced the line, so the words follow the prices they explain.
"""

from __future__ import annotations

from decimal import Decimal

from e2a_assets.domain.policies import MULTIPLIER_FLAGS, Tariff, shipped_defaults

TAX_LINE = "tax"  # the kind of a tax line on an invoice or note; accounting exports map it to an account

LINE_LABELS = {
    "pick": "Pick",
    "pack": "Pack",
    "label": "Shipping label",
    "kitting": "Kitting",
    "storage": "Storage, days 1–{after}",
    "storage_long_term": "Storage, days over {after} (×{long_term})",
    "service_gift_wrap": "Gift wrap",
    "service_photo": "Product photo",
    "service_quality_check": "Quality check",
    "service_custom_packaging": "Custom packaging",
    "returns": "Returns (processing, restock, label)",
    "minimum_top_up": "Minimum order charge",
    **{f"multiplier_{m}": m.capitalize() + " ×{" + m + "}" for m in MULTIPLIER_FLAGS},
    "volume_discount": "Volume discount",
    "minimum_monthly_fee": "Minimum monthly fee",
    TAX_LINE: "Tax {rate}",
    # note lines carry the note's reason as their kind
    "RECALCULATION": "Correction of invoice {invoice}",
    "VOLUME_DISCOUNT": "Volume discount",
    "MINIMUM_TOP_UP": "Minimum monthly fee top-up",
}


def factor(value: float | Decimal) -> str:
    """`2.0` -> "2", `1.5` -> "1.5": a multiplier as a client reads it."""
    return f"{float(value):g}"


def percent(rate: Decimal | None) -> str:
    """`Decimal("0.0825")` -> "8.25%"."""
    if rate is None:
        return ""
    text = format((Decimal(rate) * 100).normalize(), "f")
    return f"{text}%"


def line_label(kind: str, tariff: Tariff | None = None, *, tax_rate: Decimal | None = None, invoice: str = "") -> str:
    """The human description of a line of `kind` priced by `tariff` (default: the shipped tariff);
    an unknown kind is the kind itself, spelled as words."""
    template = LINE_LABELS.get(kind)
    if template is None:
        return kind.replace("_", " ").capitalize()
    tariff = tariff or shipped_defaults().tariff
    return template.format(rate=percent(tax_rate), invoice=invoice, after=tariff.long_term_storage_after_days,
                           long_term=factor(tariff.long_term_storage_factor),
                           **{m: factor(tariff.multipliers[m]) for m in MULTIPLIER_FLAGS}).strip()
