"""A `Document` as a self-contained, printable HTML page, from the Jinja2 templates shipped in
`documents/templates/` (one base layout; inline CSS, no scripts, no external resources)."""

from __future__ import annotations

import functools

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from e2a_assets.documents.model import Document


@functools.cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("e2a_assets.documents", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=True)  # fmt: skip


def render_html(doc: Document) -> str:
    return environment().get_template(doc.template).render(doc=doc)
