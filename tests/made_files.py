"""Real files of every kind the ingestion reads, made by the tests themselves: PDFs (two
pages, encrypted, scanned with no text layer), an HTML page with boilerplate around its
article, Word and PowerPoint files, Markdown, UTF-16 and Latin-1 text, and a .gz.

Each builder makes the tests' small file by default; given content, a file of any size
(`make bench-ingest` builds its seeded corpus of larger files with these same builders)."""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PDF_PAGES = ("The Pharos of Alexandria stood on the island of Pharos. It guided ships into "
             "the harbour for centuries.",
             "An earthquake damaged the tower in the fourteenth century. Its stones went into "
             "the fort of Qaitbay.")
ARTICLE = ("Lighthouse keepers trimmed the wicks every evening. The lamp burned whale oil and "
           "later kerosene. A keeper logged the weather, the ships seen and the oil spent. "
           "In fog the keeper sounded a horn every minute until the fog lifted.")
BOILERPLATE = ("Accept all cookies", "Subscribe to our newsletter", "Home | About | Contact",
               "Copyright 2026 Example Media")
HTML_TITLE = "The keeper's day"
# (h2 heading, or "" for none; its paragraphs)
HTML_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", (ARTICLE,)), ("Fog", (f"{ARTICLE} Fog could last for days.",)))
# ("h1" or "h2", text), ("p", text), ("bullet", text) or ("table", rows of cells)
DOCX_BLOCKS: tuple[tuple[str, object], ...] = (
    ("h1", "Lamp oils"), ("p", "Keepers burned several oils over the years."),
    ("bullet", "Whale oil, until about 1860"), ("h2", "Costs"),
    ("table", (("Oil", "Cost per gallon"), ("Kerosene", "8 cents"))))
# (title, body, speaker notes or "")
PPTX_SLIDES = (("Fresnel lenses", "A lens of rings bends light into a beam.", "Invented in 1822."),
               ("Range", "A first-order lens is seen 20 miles away.", ""))
MARKDOWN = "# Keepers\n\nThey lived at the light.\n\n## Duties\n\nThey trimmed the wicks.\n"
Table = Sequence[Sequence[str]]


def pdf(path: Path, pages: Sequence[str] = PDF_PAGES, *, password: str | None = None,
        tables: Sequence[Table] = ()) -> Path:
    """A page per text, with a text layer; `tables[i]`, if given, is drawn below page i's
    text as a report's table is: a header row and rows of cells in ruled columns."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    drawing = canvas.Canvas(buffer, pagesize=A4)
    for number, text in enumerate(pages):
        y = 800
        for line in _lines(text, 80):
            drawing.drawString(72, y, line)
            y -= 16
        if number < len(tables) and tables[number]:
            _draw_table(drawing, tables[number], y - 8, A4[0] - 144)
        drawing.showPage()
    drawing.save()
    data = buffer.getvalue()
    if password is not None:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
        writer.encrypt(password)
        out = io.BytesIO()
        writer.write(out)
        data = out.getvalue()
    path.write_bytes(data)
    return path


def scanned_pdf(path: Path) -> Path:
    """Shapes only, as a scan without OCR has: no text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    drawing = canvas.Canvas(str(path), pagesize=A4)
    drawing.rect(72, 600, 300, 100, fill=1)
    drawing.showPage()
    drawing.save()
    return path


def html(path: Path, title: str = HTML_TITLE,
         sections: Sequence[tuple[str, Sequence[str]]] = HTML_SECTIONS, *,
         links: Sequence[str] = ()) -> Path:
    """An article among boilerplate: a cookie banner, a menu, an aside and a footer. `links`
    lengthens the menu and lists related articles in the aside, as news sites do."""
    menu = [*BOILERPLATE[2].split(" | "), *links]
    nav = "".join(f"<li><a href='/{n}'>{n}</a></li>" for n in menu)
    related = ("<ul>" + "".join(f"<li><a href='/related/{n}'>{n}</a></li>" for n in links)
               + "</ul>") if links else ""
    article = "".join((f"<h2>{heading}</h2>" if heading else "")
                      + "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
                      for heading, paragraphs in sections)
    path.write_text(
        "<!DOCTYPE html><html><head><title>Keepers</title>"
        "<script>var tracking = 'cookie-consent';</script></head><body>"
        f"<div id='cookie-banner'>{BOILERPLATE[0]} <button>OK</button></div>"
        f"<header><nav><ul>{nav}</ul></nav></header>"
        f"<main><article><h1>{title}</h1>{article}</article></main>"
        f"<aside>{BOILERPLATE[1]}{related}</aside><footer>{BOILERPLATE[3]}</footer></body></html>",
        encoding="utf-8")
    return path


def docx(path: Path, blocks: Sequence[tuple[str, object]] = DOCX_BLOCKS) -> Path:
    import docx as python_docx

    document = python_docx.Document()
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            document.add_heading(str(content), level=int(kind[1]))
        elif kind == "p":
            document.add_paragraph(str(content))
        elif kind == "bullet":
            document.add_paragraph(str(content), style="List Bullet")
        elif kind == "table":
            rows: Any = content
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for row, texts in zip(table.rows, rows, strict=True):
                for cell, text in zip(row.cells, texts, strict=True):
                    cell.text = text
        else:
            raise ValueError(f"no such block: {kind}")
    document.save(str(path))
    return path


def pptx(path: Path, slides: Sequence[tuple[str, str, str]] = PPTX_SLIDES) -> Path:
    import pptx as python_pptx

    deck = python_pptx.Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(str(path))
    return path


def markdown(path: Path, text: str = MARKDOWN) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def utf16_text(path: Path, text: str = "Phare de Cordouan, été comme hiver.\n") -> Path:
    path.write_bytes(text.encode("utf-16"))  # with its byte-order mark
    return path


def latin1_text(path: Path, text: str = "Le phare de Cordouan brille été comme hiver, année "
                "après année.\n", encoding: str = "latin-1") -> Path:
    """Single-byte text without a byte-order mark (charset-normalizer finds the encoding)."""
    path.write_bytes(text.encode(encoding))
    return path


def gzipped(path: Path, inner: Path) -> Path:
    path.write_bytes(gzip.compress(inner.read_bytes()))
    return path


def _draw_table(drawing: Any, rows: Table, top: float, width: float) -> None:
    """Rows of cells in ruled columns from `top` down, the first row in bold."""
    columns = max(len(row) for row in rows)
    column_width = width / columns
    y = top
    for number, row in enumerate(rows):
        drawing.setFont("Helvetica-Bold" if number == 0 else "Helvetica", 9)
        for column, cell in enumerate(row):
            drawing.drawString(76 + column * column_width, y - 11, cell)
        drawing.line(72, y, 72 + width, y)
        y -= 15
    drawing.line(72, y, 72 + width, y)
    drawing.setFont("Helvetica", 12)


def _lines(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]
