"""One file's text: its kind recognised by content (file_kinds.py), then the reader for it."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from ..file_kinds import sniff_bytes
from .errors import ExtractionError
from .html import extract_html
from .office import extract_docx, extract_pptx
from .pdf import extract_pdf
from .plain import extract_markdown, extract_text
from .source_map import Extracted

# A .gz is read whole into memory: past this many bytes unpacked it is refused (a gzip bomb
# would otherwise take the machine's memory).
MAX_GZIP_BYTES = 256 << 20
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")

_READERS: dict[str, Callable[[bytes], Extracted]] = {
    "pdf": extract_pdf, "html": extract_html, "docx": extract_docx, "pptx": extract_pptx,
}


def extract_file(path: Path) -> tuple[Extracted, bytes]:
    """The file's text with its source map, and the file's bytes (for its sha256). Raises
    ExtractionError with the reason when it has no text to send."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ExtractionError(error.strerror or str(error)) from None
    return extract_bytes(data, path.name), data


def extract_bytes(data: bytes, name: str) -> Extracted:
    kind = sniff_bytes(data)
    if kind.name == "gzip":
        return extract_bytes(_gunzip(data), name.removesuffix(".gz"))
    reader = _READERS.get(kind.name)
    if reader is not None:
        try:
            return reader(data)
        except ExtractionError:
            raise
        except Exception as error:
            # The libraries raise what they raise on a damaged or hostile file: the file is
            # named and skipped, the run goes on.
            raise ExtractionError(f"{kind.description} that could not be read "
                                  f"({type(error).__name__}: {error})") from None
    if kind.name != "text":
        raise ExtractionError(f"{kind.description}, which synthqa does not read")
    if name.lower().endswith(_MARKDOWN_SUFFIXES):
        extracted = extract_markdown(data)
    else:
        extracted = extract_text(data)
    if not extracted.text.strip():
        raise ExtractionError("empty or only whitespace")
    return extracted


def _gunzip(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        unpacked = unpacker.decompress(data, MAX_GZIP_BYTES + 1)
    except zlib.error as error:
        raise ExtractionError(f"a corrupt gzip archive ({error})") from None
    if len(unpacked) > MAX_GZIP_BYTES:
        raise ExtractionError(f"a gzip archive that unpacks past {MAX_GZIP_BYTES >> 20} MiB")
    if not unpacker.eof:
        raise ExtractionError("a truncated gzip archive")
    return unpacked

