"""The CLI's input side: which files, their document ids, and their text. With the ingest extra
every file goes through extraction (ingest/), in worker processes, a few files ahead of the
calls; without it, files must be UTF-8 text or Markdown, and anything else is named and
skipped with the hint to install the extra."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .documents import Document
from .file_kinds import non_text_kind, non_text_kind_of
from .record_lines import Source

if TYPE_CHECKING:
    from .ingest import Extracted

INGEST_HINT = ("reading PDF, HTML, Word and PowerPoint files and text in other encodings needs "
               "the ingest extra: pip install 'synthqa-client[ingest]'")
_INGEST_MODULES = ("pypdfium2", "trafilatura", "docx", "pptx", "charset_normalizer")


class InputError(Exception):
    """An input file that cannot be sent: unreadable, not text, or with no text."""


def ingest_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in _INGEST_MODULES)


def document_ids(files: Sequence[Path]) -> dict[Path, str]:
    """Each file's document id: its path relative to the folder all the inputs share, with /
    between parts. The same files give the same ids from any working directory, and no
    absolute path goes into a dataset."""
    absolute = {path: Path(os.path.abspath(path)) for path in files}
    root = Path(os.path.commonpath([str(path.parent) for path in absolute.values()]))
    return {path: full.relative_to(root).as_posix() for path, full in absolute.items()}


def read_text(path: Path, data: bytes | None = None) -> str:
    """A UTF-8 text file's text, without the ingest extra. `data`: its bytes, when read (the
    file is then not opened again, and `path` only names it)."""
    try:
        kind = non_text_kind(path) if data is None else non_text_kind_of(data)
        if kind is not None:
            raise InputError(f"{path} is {kind}, not text: its markup or bytes would reach the "
                             f"model as if they were the document ({INGEST_HINT})")
        raw = data if data is not None else path.read_bytes()
        # Newlines as a text-mode read gives them, whatever the file's convention.
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}; "
                         f"{INGEST_HINT})") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None
    if not text.strip():
        raise InputError(f"{path} is empty or only whitespace")
    return text


class InFlight:
    """The documents being generated: read (or extracted) as the calls take them, and what
    their output lines need until their document_completed: the source, the text (for cited
    sentences) and the source map (for pages and slides)."""

    def __init__(self, skip: Callable[[str], None]) -> None:
        self.skip = skip
        self.sources: dict[str, Source] = {}
        self.texts: dict[str, str] = {}
        self.extracted: dict[str, Extracted] = {}
        # Each document's file kind (pdf, html, ..., text), for the run's manifest.
        self.kinds: dict[str, str] = {}
        # Why a document was not sent, by id.
        self.skipped: dict[str, str] = {}
        # Each extracted file's page and slide count, for the manifest (kept past finished()).
        self.extents: dict[str, dict[str, int | None]] = {}
        self.files_read = 0

    def documents(self, files: list[Path], ids: dict[Path, str],
                  done: Collection[str] = ()) -> Iterator[Document]:
        wanted = [path for path in files if ids[path] not in done]
        if ingest_available():
            yield from self._extracted(wanted, ids)
        else:
            yield from self._plain(wanted, ids)

    def _plain(self, files: list[Path], ids: dict[Path, str]) -> Iterator[Document]:
        for path in files:
            try:
                data = path.read_bytes()
                text = read_text(path, data)
            except (OSError, InputError) as error:
                self._skip(ids[path], str(error))
                continue
            self.kinds[ids[path]] = "text"
            yield self._sent(ids[path], text, hashlib.sha256(data).hexdigest())

    def _extracted(self, files: list[Path], ids: dict[Path, str]) -> Iterator[Document]:
        from .ingest import ExtractionError
        from .ingest.pool import extract_in_order

        for path, result in extract_in_order(files):
            if isinstance(result, ExtractionError):
                self._skip(ids[path], f"{path}: {result}")
                continue
            self.extracted[ids[path]] = result.extracted
            self.kinds[ids[path]] = result.extracted.kind
            self.extents[ids[path]] = {"pages": result.extracted.page_count,
                                       "slides": result.extracted.slide_count}
            yield self._sent(ids[path], result.extracted.text, result.sha256)

    def extent(self, document_id: str) -> dict[str, int | None]:
        """The file's page and slide counts; None where it has none, or was not read."""
        return self.extents.get(document_id, {"pages": None, "slides": None})

    def _skip(self, document_id: str, reason: str) -> None:
        self.skipped[document_id] = reason
        self.skip(reason)

    def _sent(self, document_id: str, text: str, sha256: str) -> Document:
        self.files_read += 1
        self.sources[document_id] = Source(document_id, sha256)
        self.texts[document_id] = text
        return Document(document_id, text)

    def finished(self, document_id: str) -> None:
        self.texts.pop(document_id, None)
        self.extracted.pop(document_id, None)


def read_document(path: Path) -> str:
    """One file's text, as `generate` would send it (the chunk command shows its chunks)."""
    if not ingest_available():
        return read_text(path)
    from .ingest import ExtractionError, extract_file

    try:
        return extract_file(path)[0].text
    except ExtractionError as error:
        raise InputError(f"{path}: {error}") from None


def check_all(files: list[Path]) -> None:
    """--strict: every file must have text before anything is sent; raises InputError for the
    first that has none."""
    if ingest_available():
        from .ingest import ExtractionError
        from .ingest.pool import extract_in_order

        for path, result in extract_in_order(files):
            if isinstance(result, ExtractionError):
                raise InputError(f"{path}: {result}")
        return
    for path in files:
        read_text(path)

