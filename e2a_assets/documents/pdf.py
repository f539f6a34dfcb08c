"""A `Document` drawn as an A4 PDF with fpdf2 (pure Python; docs/internals.md "Documents" says why
this library and this way): the same issuer, bill-to, facts, tables and totals as the HTML page,
numbers right-aligned in their columns. DejaVu Sans is embedded (subset), so every character the
locale formats use (€, ×, –, narrow spaces) prints.

The bytes depend only on the document: the PDF's creation and modification dates are the
document's own date, never the time of rendering, so re-rendering an issued document gives the
same file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from e2a_assets.documents.model import RIGHT, Document, Section

FONTS = Path(__file__).resolve().parent / "fonts"
FAMILY = "DejaVu"
GREY, RULE = (102, 102, 102), (34, 34, 34)


def _new_pdf(doc: Document) -> FPDF:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_font(FAMILY, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FAMILY, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    stamp = dt.datetime.combine(doc.issued_on, dt.time(), tzinfo=dt.timezone.utc)
    pdf.set_creation_date(stamp)
    pdf.set_title(f"{doc.title} {doc.number}")
    pdf.set_author(doc.issuer.name)
    pdf.set_subject(f"{doc.title} {doc.number} to {doc.bill_to.name}")
    pdf.set_lang(doc.language)
    pdf.add_page()
    return pdf


def _text(pdf: FPDF, text: str, *, size: float = 9, bold: bool = False, grey: bool = False, align: str = "L",
          w: float = 0, h: float = 4.6) -> None:  # fmt: skip
    pdf.set_font(FAMILY, "B" if bold else "", size)
    pdf.set_text_color(*(GREY if grey else (0, 0, 0)))
    pdf.cell(w, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _header(pdf: FPDF, doc: Document) -> None:
    top = pdf.get_y()
    width = pdf.epw
    _text(pdf, doc.title, size=20, bold=True, h=9)
    _text(pdf, doc.number, size=10, grey=True)
    below_title = pdf.get_y()
    pdf.set_y(top)
    pdf.set_x(pdf.l_margin + width / 2)
    for n, line in enumerate((doc.issuer.name, *doc.issuer.lines)):
        pdf.set_x(pdf.l_margin + width / 2)
        _text(pdf, line, bold=n == 0, size=9, align="R", w=width / 2)
    pdf.set_y(max(pdf.get_y(), below_title) + 8)
    # Bill-to on the left, the document's facts on the right.
    top = pdf.get_y()
    _text(pdf, "BILL TO", size=7.5, grey=True)
    for n, line in enumerate((doc.bill_to.name, *doc.bill_to.lines)):
        _text(pdf, line, bold=n == 0, w=width / 2)
    left_end = pdf.get_y()
    pdf.set_y(top)
    # The facts take the right 58 %: labels as wide as the widest, values right-aligned after them
    # (shrunk to fit rather than running into their label).
    pdf.set_font(FAMILY, "", 9)
    start = pdf.l_margin + width * 0.42
    label_w = max((pdf.get_string_width(label) for label, _ in doc.facts), default=0) + 4
    value_w = pdf.l_margin + width - start - label_w
    for label, value in doc.facts:
        pdf.set_x(start)
        pdf.set_font(FAMILY, "", 9)
        pdf.set_text_color(*GREY)
        pdf.cell(label_w, 4.6, label)
        size, room = 9.0, value_w - 2 * pdf.c_margin  # a cell keeps a margin on both sides
        while size > 8 and pdf.get_string_width(value) > room:
            size -= 0.5
            pdf.set_font(FAMILY, "", size)
        if pdf.get_string_width(value) > room:  # still too long: wrapped at 9 pt, never over its label
            pdf.set_font(FAMILY, "", 9)
        pdf.set_text_color(0, 0, 0)
        pdf.multi_cell(value_w, 4.6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(max(pdf.get_y(), left_end) + 6)


def _section(pdf: FPDF, section: Section) -> None:
    if section.title:
        _text(pdf, section.title, size=11, bold=True, h=7)
    pdf.set_font(FAMILY, "", 8.5)
    pdf.set_text_color(0, 0, 0)
    aligns = tuple("RIGHT" if c.align == RIGHT else "LEFT" for c in section.columns)
    widths = tuple(c.width for c in section.columns)
    with pdf.table(col_widths=widths, text_align=aligns, borders_layout="HORIZONTAL_LINES", line_height=5.2,
                   headings_style=FontFace(emphasis="BOLD"), padding=(1.2, 1.0), first_row_as_headings=True) as table:  # fmt: skip
        table.row([c.heading for c in section.columns])
        for row in section.rows:
            table.row(list(row))
    if not section.rows:  # one sentence across the table, not squeezed into its first column
        pdf.set_draw_color(*RULE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
        _text(pdf, section.empty, size=8.5, grey=True, h=6)
    pdf.ln(3)


def _totals(pdf: FPDF, doc: Document) -> None:
    width = pdf.epw * 0.45
    pdf.set_text_color(0, 0, 0)
    for n, (label, value) in enumerate(doc.totals):
        last = n == len(doc.totals) - 1
        pdf.set_x(pdf.l_margin + pdf.epw - width)
        if last:
            pdf.set_draw_color(*RULE)
            pdf.line(pdf.get_x(), pdf.get_y(), pdf.get_x() + width, pdf.get_y())
        pdf.set_font(FAMILY, "B" if last else "", 9.5)
        pdf.cell(width * 0.55, 6, label)
        pdf.cell(width * 0.45, 6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)


def render_pdf(doc: Document) -> bytes:
    """The document as PDF bytes (deterministic for a given document)."""
    pdf = _new_pdf(doc)
    _header(pdf, doc)
    for section in doc.sections:
        _section(pdf, section)
    if doc.totals:
        _totals(pdf, doc)
    for paragraph in doc.closing:
        pdf.set_font(FAMILY, "", 8.5)
        pdf.set_text_color(68, 68, 68)
        pdf.multi_cell(0, 4.4, paragraph, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)
    return bytes(pdf.output())
