"""What a file is, from its first bytes, for the files that are not text even when they decode
as UTF-8: an ASCII-only PDF or an HTML page would otherwise reach the model as operators and
tags. Recognised by content, never by name: a `.txt` that holds a PDF is a PDF."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class FileKind:
    name: str  # pdf, html, docx, pptx, gzip, ..., binary, text
    description: str  # "a PDF document"


TEXT = FileKind("text", "text")
# Members whose presence names an Office or OpenDocument file inside a zip.
_ZIP_MEMBERS = (("word/", FileKind("docx", "a Word document (DOCX)")),
                ("ppt/", FileKind("pptx", "a PowerPoint deck (PPTX)")),
                ("xl/", FileKind("xlsx", "an Excel workbook (XLSX)")),
                ("mimetype", FileKind("odf", "an OpenDocument file")))
_ZIP = FileKind("zip", "a zip archive")
_SIGNATURES = ((b"%PDF-", FileKind("pdf", "a PDF document")),
               (b"%!PS", FileKind("ps", "a PostScript document")),
               (b"{\\rtf", FileKind("rtf", "an RTF document")),
               (b"\x1f\x8b", FileKind("gzip", "a gzip archive")),
               (b"\xd0\xcf\x11\xe0", FileKind("ole", "an old Office document (DOC, PPT or XLS)")),
               (b"\x89PNG", FileKind("png", "a PNG image")),
               (b"\xff\xd8\xff", FileKind("jpeg", "a JPEG image")),
               (b"GIF8", FileKind("gif", "a GIF image")))
_HTML = FileKind("html", "an HTML page")
_MARKUP_STARTS = ((b"<!doctype html", _HTML), (b"<html", _HTML),
                  (b"<?xml", FileKind("xml", "an XML document")),
                  (b"<svg", FileKind("svg", "an SVG image")))
_BINARY = FileKind("binary", "a binary file")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def non_text_kind(path: Path) -> str | None:
    """What the file is if it is not plain text or Markdown ("a PDF document"), else None.
    Raises OSError if it cannot be read."""
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
        kind = _sniff_head(head)
        if kind is _ZIP:
            file.seek(0)
            kind = _zip_kind(file)
    return None if kind is TEXT else kind.description


def non_text_kind_of(data: bytes) -> str | None:
    """non_text_kind of a file whose bytes are all in memory."""
    kind = sniff_bytes(data)
    return None if kind is TEXT else kind.description


def sniff_bytes(data: bytes) -> FileKind:
    """The kind of a file whose bytes are all in memory."""
    kind = _sniff_head(data[:_SNIFF_BYTES])
    return _zip_kind(io.BytesIO(data)) if kind is _ZIP else kind


def _sniff_head(head: bytes) -> FileKind:
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return _ZIP
    start = head
    for bom in _BOMS:
        start = start.removeprefix(bom)
    # UTF-16 text is text: its zero bytes are half of every ASCII character.
    if b"\x00" in start and not head.startswith(_BOMS[1:]):
        return _BINARY
    opening = start.lstrip().lower()
    for markup, kind in _MARKUP_STARTS:
        if opening.startswith(markup):
            return kind
    return TEXT


def _zip_kind(file: io.BufferedIOBase | io.BytesIO) -> FileKind:
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return _ZIP
    for prefix, kind in _ZIP_MEMBERS:
        if any(name.startswith(prefix) for name in names):
            return kind
    return _ZIP
