"""Real files of every kind the ingestion reads, made by the tests themselves: PDFs (two
pages, encrypted, scanned with no text layer), an HTML page with boilerplate around its
article, Word and PowerPoint files, Markdown, UTF-16 and Latin-1 text, and a .gz."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

PDF_PAGES = ("The Pharos of Alexandria stood on the island of Pharos. It guided ships into "
             "the harbour for centuries.",
             "An earthquake damaged the tower in the fourteenth century. Its stones went into "
             "the fort of Qaitbay.")
ARTICLE = ("Lighthouse keepers trimmed the wicks every evening. The lamp burned whale oil and "
           "later kerosene. A keeper logged the weather, the ships seen and the oil spent. "
           "In fog the keeper sounded a horn every minute until the fog lifted.")
BOILERPLATE = ("Accept all cookies", "Subscribe to our newsletter", "Home | About | Contact",
               "Copyright 2026 Example Media")


def pdf(path: Path, pages: tuple[str, ...] = PDF_PAGES, *, password: str | None = None) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    drawing = canvas.Canvas(buffer, pagesize=A4)
    for text in pages:
        y = 800
        for line in _lines(text, 80):
            drawing.drawString(72, y, line)
            y -= 16
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


def html(path: Path) -> Path:
    nav = "".join(f"<li><a href='/{n}'>{n}</a></li>" for n in BOILERPLATE[2].split(" | "))
    path.write_text(
        "<!DOCTYPE html><html><head><title>Keepers</title>"
        "<script>var tracking = 'cookie-consent';</script></head><body>"
        f"<div id='cookie-banner'>{BOILERPLATE[0]} <button>OK</button></div>"
        f"<header><nav><ul>{nav}</ul></nav></header>"
        "<main><article><h1>The keeper's day</h1>"
        f"<p>{ARTICLE}</p><h2>Fog</h2><p>{ARTICLE} Fog could last for days.</p>"
        "</article></main>"
        f"<aside>{BOILERPLATE[1]}</aside><footer>{BOILERPLATE[3]}</footer></body></html>",
        encoding="utf-8")
    return path


def docx(path: Path) -> Path:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading("Lamp oils", level=1)
    document.add_paragraph("Keepers burned several oils over the years.")
    document.add_paragraph("Whale oil, until about 1860", style="List Bullet")
    document.add_heading("Costs", level=2)
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table.rows[0].cells + table.rows[1].cells,
                          ("Oil", "Cost per gallon", "Kerosene", "8 cents"), strict=True):
        cell.text = text
    document.save(str(path))
    return path


def pptx(path: Path) -> Path:
    import pptx as python_pptx

    deck = python_pptx.Presentation()
    for title, body, notes in (("Fresnel lenses", "A lens of rings bends light into a beam.",
                                "Invented in 1822."),
                               ("Range", "A first-order lens is seen 20 miles away.", "")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(str(path))
    return path


def markdown(path: Path) -> Path:
    path.write_text("# Keepers\n\nThey lived at the light.\n\n## Duties\n\nThey trimmed the "
                    "wicks.\n", encoding="utf-8")
    return path


def utf16_text(path: Path) -> Path:
    path.write_bytes("Phare de Cordouan, été comme hiver.\n".encode("utf-16"))
    return path


def latin1_text(path: Path) -> Path:
    path.write_bytes("Le phare de Cordouan brille été comme hiver, année après année.\n"
                     .encode("latin-1"))
    return path


def gzipped(path: Path, inner: Path) -> Path:
    path.write_bytes(gzip.compress(inner.read_bytes()))
    return path


def _lines(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]
