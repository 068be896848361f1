"""The PDF report set on A4 pages with reportlab: heading, measurements table, calculated
values, what was not reported, the algorithms, then the pictures.

The text uses DejaVu Sans (the TrueType font matplotlib ships), embedded, so the report's
symbols (×, ÷, ², ′, −) print everywhere and the text can be searched and extracted.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from echo_node.results.pdfcontent import Content, Picture, Row

FONT, BOLD, ITALIC = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique"
_MARGIN = 14 * mm
_WIDTH = A4[0] - 2 * _MARGIN
_GRID = colors.HexColor("#b0b0b0")
_HEAD = colors.HexColor("#e8eef4")


@cache
def _fonts() -> None:
    """Register the fonts once per process (reportlab's registry is global)."""
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in (FONT, BOLD, ITALIC):
        pdfmetrics.registerFont(TTFont(name, str(folder / f"{name}.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=ITALIC, boldItalic=BOLD)


def _style(name: str, size: float, font: str = FONT, **extra: Any) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.25, **extra)


def render(content: Content) -> bytes:
    """The report as PDF bytes."""
    _fonts()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 4 * mm,
        title=content.title,
        author="Echo Node",
        creator="Echo Node",
        subject="Automated echocardiography measurements",
    )
    footer = f"{content.title} · {_patient_line(content)}"

    def on_page(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7)
        canvas.drawString(_MARGIN, _MARGIN - 2 * mm, footer)
        canvas.drawRightString(A4[0] - _MARGIN, _MARGIN - 2 * mm, f"page {doc.page}")
        canvas.restoreState()

    document.build(_story(content), onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def _patient_line(content: Content) -> str:
    values = dict(content.patient)
    return f"{values.get('Patient', '')}, ID {values.get('Patient ID', '')}"


def _story(content: Content) -> list[Flowable]:
    title = _style("title", 16, BOLD, spaceAfter=4)
    heading = _style("heading", 11, BOLD, spaceBefore=8, spaceAfter=3)
    body = _style("body", 8.5)
    small = _style("small", 7.5, ITALIC, textColor=colors.HexColor("#404040"))
    story: list[Flowable] = [Paragraph(escape(content.title), title), _patient_table(content)]
    story += [Spacer(1, 2 * mm), Paragraph(escape(content.statement), small)]
    if content.rows:
        story += [Paragraph("Measurements", heading)]
        story.append(_table(("Value", "Measurement", "Convention", "Measured on"), content.rows))
    if content.derived:
        story += [Paragraph("Calculated from the measurements", heading)]
        story.append(_table(("Value", "Measurement", "Formula", "From"), content.derived))
    if content.characteristics:
        story += [Paragraph("Patient characteristics", heading)]
        story.append(Paragraph(escape("; ".join(content.characteristics)), body))
    if content.notes:
        story += [Paragraph("Not reported, and why", heading)]
        story += [Paragraph(escape(note), body, bulletText="•") for note in content.notes]
    if content.algorithms:
        story += [Paragraph("Algorithms", heading)]
        story += [Paragraph(escape(line), small) for line in content.algorithms]
    if content.pictures:
        story += [Paragraph("Where the values were measured", heading)]
        story += _pictures(content.pictures, _style("caption", 7.5, ITALIC))
    return story


def _patient_table(content: Content) -> Table:
    label = _style("label", 8, BOLD)
    value = _style("value", 8)
    cells = [
        (Paragraph(escape(name), label), Paragraph(escape(text), value))
        for name, text in content.patient
    ]
    rows = [
        [*cells[i], *(cells[i + 1] if i + 1 < len(cells) else ("", ""))]
        for i in range(0, len(cells), 2)
    ]
    table = Table(rows, colWidths=[24 * mm, 66 * mm, 24 * mm, 66 * mm])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return table


def _table(header: Sequence[str], rows: Sequence[Row]) -> Table:
    head = _style("head", 8, BOLD)
    value = _style("cell-value", 8.5, BOLD)
    cell = _style("cell", 8)
    note = _style("cell-note", 7, ITALIC, textColor=colors.HexColor("#7a3b00"))
    data: list[list[object]] = [[Paragraph(escape(h), head) for h in header]]
    for row in rows:
        name: list[Flowable] = [Paragraph(escape(row.name), cell)]
        name += [Paragraph(escape(text), note) for text in row.notes]
        data.append(
            [
                Paragraph(escape(row.value), value),
                name,
                Paragraph(escape(row.convention), cell),
                Paragraph(escape(row.source), cell),
            ]
        )
    table = Table(data, colWidths=[38 * mm, 52 * mm, 46 * mm, _WIDTH - 136 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, _GRID),
                ("BACKGROUND", (0, 0), (-1, 0), _HEAD),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _image(data: bytes, width: float) -> Image:
    pixels_wide, pixels_high = ImageReader(io.BytesIO(data)).getSize()
    return Image(io.BytesIO(data), width=width, height=width * pixels_high / pixels_wide)


def _pictures(pictures: Sequence[Picture], caption: ParagraphStyle) -> list[Flowable]:
    """Wide pictures one a row; frames two a row, each over its caption."""
    flowables: list[Flowable] = []
    half = (_WIDTH - 4 * mm) / 2
    frames = [p for p in pictures if not p.wide]
    for i in range(0, len(frames), 2):
        pair = frames[i : i + 2]
        cells = [[_image(p.image, half), Paragraph(escape(p.caption), caption)] for p in pair]
        table = Table([cells], colWidths=[half + 2 * mm] * len(pair))
        table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
        flowables += [table, Spacer(1, 3 * mm)]
    for picture in (p for p in pictures if p.wide):
        flowables.append(
            KeepTogether(
                [
                    _image(picture.image, _WIDTH),
                    Paragraph(escape(picture.caption), caption),
                    Spacer(1, 3 * mm),
                ]
            )
        )
    return flowables
