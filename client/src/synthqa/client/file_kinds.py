"""What a file is, from its first bytes, for the files that are not text even when they decode
as UTF-8: an ASCII-only PDF or an HTML page would otherwise reach the model as operators and
tags. Recognised by content, never by name: a `.txt` that holds a PDF is a PDF."""

from __future__ import annotations

import zipfile
from pathlib import Path

_SNIFF_BYTES = 4096
# Members whose presence names an Office or OpenDocument file inside a zip.
_ZIP_MEMBERS = (("word/", "a Word document (DOCX)"), ("ppt/", "a PowerPoint deck (PPTX)"),
                ("xl/", "an Excel workbook (XLSX)"), ("mimetype", "an OpenDocument file"))
_SIGNATURES = ((b"%PDF-", "a PDF document"), (b"%!PS", "a PostScript document"),
               (b"{\\rtf", "an RTF document"), (b"\x1f\x8b", "a gzip archive"),
               (b"\xd0\xcf\x11\xe0", "an old Office document (DOC, PPT or XLS)"),
               (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
               (b"GIF8", "a GIF image"))
_MARKUP_STARTS = ((b"<!doctype html", "an HTML page"), (b"<html", "an HTML page"),
                  (b"<?xml", "an XML document"), (b"<svg", "an SVG image"))
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def non_text_kind(path: Path) -> str | None:
    """What the file is if it is not plain text or Markdown ("a PDF document"), else None.
    Raises OSError if it cannot be read."""
    with path.open("rb") as file:
        head = file.read(_SNIFF_BYTES)
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    start = head
    for bom in _BOMS:
        start = start.removeprefix(bom)
    # UTF-16 text is text: its zero bytes are half of every ASCII character.
    if b"\x00" in start and not head.startswith(_BOMS[1:]):
        return "a binary file"
    opening = start.lstrip().lower()
    for markup, kind in _MARKUP_STARTS:
        if opening.startswith(markup):
            return kind
    return None


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a zip archive"
    for prefix, kind in _ZIP_MEMBERS:
        if any(name.startswith(prefix) for name in names):
            return kind
    return "a zip archive"
