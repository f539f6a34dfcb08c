"""What a client document says, independent of its format: the issuer, the bill-to, the facts
(number, dates, terms), tables of lines with right-aligned money, totals and the closing words.
Invoices, notes and statements build one `Document` each (invoices.py, notes.py, statements.py);
html.py renders it through the Jinja2 templates and pdf.py draws the same content as a PDF, so the
two files of a document never disagree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from e2a_assets.domain.issuer import Issuer
from e2a_assets.domain.line_labels import line_label
from e2a_assets.domain.policies import Tariff, TenantPolicy, TenantRegistry
from e2a_assets.documents.formatting import format_money

LEFT, RIGHT = "left", "right"


@dataclass(frozen=True)
class Party:
    """A name and the lines printed under it (address, tax id, contact)."""

    name: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Column:
    heading: str
    align: str = LEFT
    width: float = 1.0  # relative width in the PDF


@dataclass(frozen=True)
class Section:
    """One table of a document: its rows are already formatted text, one cell per column."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str = "None."


@dataclass(frozen=True)
class Document:
    """A client document ready to render (HTML and PDF alike)."""

    template: str  # invoice.html.j2, note.html.j2, statement.html.j2
    title: str  # "Invoice", "Credit note", "Debit note", "Statement"
    number: str
    issued_on: dt.date  # fixes the PDF's creation date: the same document always gives the same bytes
    issuer: Party
    bill_to: Party
    facts: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    totals: tuple[tuple[str, str], ...]  # the last one is the amount the document is about
    closing: tuple[str, ...] = ()
    language: str = "en"


def issuer_party(issuer: Issuer) -> Party:
    contact = " · ".join(v for v in (issuer.email, issuer.phone) if v)
    return Party(issuer.legal_name, (*issuer.address, f"Tax ID: {issuer.tax_id}", *([contact] if contact else [])))


def bill_to_party(policy: TenantPolicy) -> Party:
    return Party(policy.bill_to_name, tuple(policy.billing_address))


def policy_of(registry: TenantRegistry | None, tenant: str) -> TenantPolicy:
    """The tenant's policy; one the registry does not list gets its defaults under its own name."""
    policy = registry.get(tenant) if registry is not None else None
    if policy is None:
        base = registry.default_policy() if registry is not None else TenantRegistry(()).default_policy()
        policy = base.model_copy(update={"tenant": tenant})
    return policy


def tariff_of(policy: TenantPolicy, version: int) -> Tariff:
    """The tariff of rate card `version` (the line's words follow the prices that priced it)."""
    return next((v.tariff for v in policy.rate_card_versions() if v.version == int(version)), policy.tariff)


LINE_COLUMNS = (Column("#", RIGHT, 0.5), Column("Description", LEFT, 5.5), Column("Qty", RIGHT, 1.1),
                Column("Unit price", RIGHT, 1.9), Column("Amount", RIGHT, 2.0))  # fmt: skip


def line_rows(lines: pd.DataFrame, policy: TenantPolicy, currency: str, *, invoice: str = "",
              own_version: int | None = None) -> tuple[tuple[str, ...], ...]:  # fmt: skip
    """Ledger lines as printed: number, human description, quantity, unit price, amount."""
    money = lambda cents: format_money(cents, currency, policy.locale)  # noqa: E731
    rows = []
    for line in lines.sort_values("line_no").to_dict("records"):
        version = int(line.get("rate_card_version") or 1) if "rate_card_version" in line else None
        label = line_label(str(line["kind"]), tariff_of(policy, version or 1), invoice=invoice)
        if version is not None and own_version is not None and version != own_version:
            label += f" (rate card v{version})"
        rows.append((str(int(line["line_no"])), label, f"{int(line['quantity']):,}", money(line["unit_cents"]),
                     money(line["amount_cents"])))
    return tuple(rows)
