"""Word and PowerPoint files, read with python-docx and python-pptx (MIT, pure Python on
lxml). Word: headings give each paragraph its path, lists keep their bullets, tables become
Markdown tables. PowerPoint: each slide's text, tables and speaker notes, mapped to the slide."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import docx
import pptx
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from .errors import ExtractionError
from .source_map import Extracted, TextBuilder

_WORD_NAMESPACE = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def extract_docx(data: bytes) -> Extracted:
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ExtractionError(f"not a readable Word file ({error})") from None
    builder = TextBuilder("docx")
    path: list[str] = []
    style_of = _paragraph_styles(document)
    for block in _body_blocks(document):
        if isinstance(block, Table):
            builder.add(_markdown_table([[cell.text for cell in row.cells]
                                         for row in block.rows]), heading=tuple(path))
            continue
        text = block.text.strip()
        style = style_of(block)
        level = _heading_level(style)
        if level and text:
            path = path[:level - 1] + [text]
            builder.add("#" * level + " " + text, heading=tuple(path))
        elif text:
            bullet = "- " if _is_list_item(block, style) else ""
            builder.add(bullet + text, heading=tuple(path))
    return _non_empty(builder.build(), "a Word file")


def _body_blocks(document: Any) -> Iterator[Paragraph | Table]:
    """Paragraphs and tables in the order they stand in the body."""
    for child in document.element.body.iterchildren():
        if child.tag == f"{_WORD_NAMESPACE}p":
            yield Paragraph(child, document)
        elif child.tag == f"{_WORD_NAMESPACE}tbl":
            yield Table(child, document)


def _paragraph_styles(document: Any) -> Callable[[Paragraph], str]:
    """A paragraph's style name, from a table of the document's styles made once: python-docx's
    `Paragraph.style` searches every style of the file per call, which made Word extraction
    five times slower than reading the paragraphs (make bench-ingest)."""
    names = {style.style_id: style.name or "" for style in document.styles
             if style.type == WD_STYLE_TYPE.PARAGRAPH}
    default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    fallback = default.name or "" if default is not None else ""

    def style_of(paragraph: Paragraph) -> str:
        style_id = paragraph._p.style  # the paragraph's own style id, None for the default
        return names.get(style_id, fallback) if style_id is not None else fallback
    return style_of


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading ") and style[8:].isdigit():
        return min(int(style[8:]), 6)
    return 0


def _is_list_item(paragraph: Paragraph, style: str) -> bool:
    properties = paragraph._p.pPr  # numbering sits in the paragraph's own properties
    return style.startswith("List") or (properties is not None and properties.numPr is not None)


def _markdown_table(rows: list[list[str]]) -> str:
    cells = [[" ".join(text.split()).replace("|", "\\|") for text in row] for row in rows]
    if not cells:
        return ""
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def extract_pptx(data: bytes) -> Extracted:
    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ExtractionError(f"not a readable PowerPoint file ({error})") from None
    builder = TextBuilder("pptx", slide_count=len(deck.slides))
    for number, slide in enumerate(deck.slides, start=1):
        for shape in slide.shapes:
            if shape.has_text_frame:
                builder.add(shape.text_frame.text, slide=number)
            elif getattr(shape, "has_table", False):
                builder.add(_markdown_table([[cell.text for cell in row.cells]
                                             for row in shape.table.rows]), slide=number)
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                builder.add("Notes: " + notes.text, slide=number)
    return _non_empty(builder.build(), "a PowerPoint deck")


def _non_empty(extracted: Extracted, what: str) -> Extracted:
    if not extracted.text:
        raise ExtractionError(f"{what} with no text")
    return extracted
