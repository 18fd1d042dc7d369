"""Reassembles documents that arrive in parts on one stream, enforcing identity and size rules."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from .budget import DocumentMemory, text_bytes
from .errors import InvalidArgument, ResourceExhausted

MAX_DOCUMENT_ID_CHARS = 256
# What a chunk index costs held in a set: the int and the set's slot.
CHUNK_INDEX_BYTES = 64


@dataclass(frozen=True)
class FieldPaths:
    """Where a stream's fields live in the RPC's request, for error details."""

    options: str = "options"
    # The message that holds document_id, text and more_follows; "" for the top level.
    document: str = "document"

    def in_document(self, name: str) -> str:
        return f"{self.document}.{name}" if self.document else name


@dataclass(frozen=True)
class WholeDocument:
    document_id: str
    text: str
    # The chunks the client asked for, in order; empty for all of them.
    chunk_indexes: tuple[int, ...] = ()
    # What its parts hold of the server's memory budget, in bytes, until the taker is done.
    held_bytes: int = 0


class DocumentAssembler:
    """`max_document_chars` bounds each document, and also the text of all unfinished documents
    of the call together, so a client cannot park unbounded text in many open documents. Every
    part, and its chunk indexes, are also counted in the server-wide `memory`; a finished
    document's count passes to whoever takes it, and `release` gives back what unfinished
    documents held. A document names at most `max_chunk_indexes` chunks, each once."""

    def __init__(
        self, max_document_chars: int, paths: FieldPaths, memory: DocumentMemory,
        max_chunk_indexes: int = 20_000,
    ) -> None:
        self._max_chars = max_document_chars
        self._max_indexes = max_chunk_indexes
        self._paths = paths
        self._memory = memory
        # StringIO, not a list of parts: a million one-character parts stay compact.
        self._open: dict[str, io.StringIO] = {}
        self._open_chars: dict[str, int] = {}
        self._open_bytes: dict[str, int] = {}
        self._buffered_chars = 0
        self._finished: set[str] = set()
        self._chunk_indexes: dict[str, set[int]] = {}

    def add_part(
        self, document_id: str, text: str, more_follows: bool,
        chunk_indexes: Sequence[int] = (),
    ) -> WholeDocument | None:
        """Take one part; return the whole document once its last part has arrived."""
        validate_document_id(document_id, self._paths.in_document("document_id"))
        chosen = self._check_indexes(document_id, chunk_indexes)
        if document_id in self._finished:
            raise InvalidArgument.single(
                self._paths.in_document("document_id"),
                f"document {document_id!r} was already completed on this stream; "
                "document ids must be unique and a finished document takes no more parts",
            )
        chars = self._open_chars.get(document_id, 0) + len(text)
        if chars > self._max_chars:
            raise ResourceExhausted(
                f"document {document_id!r}",
                f"{chars} characters is more than the limit of {self._max_chars}",
            )
        if more_follows and self._buffered_chars + len(text) > self._max_chars:
            raise ResourceExhausted(
                "unfinished documents",
                f"this call holds more than {self._max_chars} characters in documents that "
                "still expect parts; finish a document before starting many others",
            )
        cost = text_bytes(text) + len(chosen) * CHUNK_INDEX_BYTES
        self._memory.take(cost)
        if chosen:
            self._chunk_indexes.setdefault(document_id, set()).update(chosen)
        buffer = self._open.setdefault(document_id, io.StringIO())
        buffer.write(text)
        self._open_chars[document_id] = chars
        self._open_bytes[document_id] = self._open_bytes.get(document_id, 0) + cost
        self._buffered_chars += len(text)
        if more_follows:
            return None
        whole = self._open.pop(document_id).getvalue()
        self._buffered_chars -= self._open_chars.pop(document_id)
        self._finished.add(document_id)
        selected = tuple(sorted(self._chunk_indexes.pop(document_id, ())))
        return WholeDocument(document_id, whole, selected, self._open_bytes.pop(document_id))

    def _check_indexes(self, document_id: str, indexes: Sequence[int]) -> list[int]:
        """The part's chunk indexes, checked: each at least 0, none twice, at most
        `max_chunk_indexes` for the document (counted before a list of them is made)."""
        if not indexes:
            return []
        path = self._paths.in_document("chunk_indexes")
        earlier = self._chunk_indexes.get(document_id, set())
        if len(indexes) + len(earlier) > self._max_indexes:
            raise InvalidArgument.single(
                path, f"{len(indexes) + len(earlier)} chunk indexes for one document; a "
                f"document makes at most {self._max_indexes} chunks")
        chosen = list(indexes)
        if min(chosen) < 0:
            raise InvalidArgument.single(path, f"chunk indexes start at 0; got {min(chosen)}")
        seen = set(earlier)
        for index in chosen:
            if index in seen:
                raise InvalidArgument.single(path, f"chunk index {index} is given twice")
            seen.add(index)
        return chosen

    def release(self) -> None:
        """Give back the memory of unfinished documents (the call is over)."""
        self._memory.give_back(sum(self._open_bytes.values()))
        self._buffered_chars = 0
        self._open.clear()
        self._open_chars.clear()
        self._open_bytes.clear()

    def close(self) -> None:
        """The client half-closed: every document must be complete."""
        if self._open:
            unfinished = ", ".join(repr(d) for d in sorted(self._open))
            raise InvalidArgument.single(
                self._paths.in_document("more_follows"),
                f"the stream ended while document(s) {unfinished} still expected parts "
                "(their last part had more_follows set)",
            )


def validate_document_id(document_id: str, field_path: str) -> None:
    if not document_id:
        raise InvalidArgument.single(field_path, "must not be empty")
    if len(document_id) > MAX_DOCUMENT_ID_CHARS:
        raise InvalidArgument.single(
            field_path,
            f"must be at most {MAX_DOCUMENT_ID_CHARS} characters, got {len(document_id)}",
        )
