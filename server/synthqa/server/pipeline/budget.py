"""A server-wide budget of the memory documents hold: parts of unfinished documents, documents
being tokenized, and chunked documents waiting for engine slots. Counted in bytes, as each
costs (text by its width in memory, tokens and chunks by measured factors: see chunking.py),
so that CJK or emoji text cannot pass a budget sized for English. Many large documents at
once are refused with a retry hint instead of exhausting the machine.

Taken and given back from the event loop and from chunking threads alike, under a lock."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

from .errors import ResourceExhausted

# What a refused client is told to wait: about how long a large document takes to tokenize.
RETRY_AFTER_SECONDS = 10.0
_EMPTY_TEXT_BYTES = sys.getsizeof("")


def text_bytes(text: str) -> int:
    """What `text` costs in memory: CPython stores 1, 2 or 4 bytes a character, by its widest."""
    return sys.getsizeof(text) - _EMPTY_TEXT_BYTES


def mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


class DocumentMemory:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.held = 0

    def take(self, count: int) -> None:
        """Count `count` bytes as held, or raise ResourceExhausted if they do not fit now."""
        with self._lock:
            if self.held + count > self.max_bytes:
                raise ResourceExhausted(
                    "server memory",
                    f"the server holds {mib(self.held)} of documents for calls in progress; "
                    f"{mib(count)} more would pass its limit of {mib(self.max_bytes)} "
                    "(max_held_document_bytes); retry shortly",
                    retry_after_seconds=RETRY_AFTER_SECONDS)
            self.held += count

    def force(self, count: int) -> None:
        """Count `count` bytes as held whatever the limit: memory already in use."""
        with self._lock:
            self.held += count

    def give_back(self, count: int) -> None:
        with self._lock:
            self.held -= count

    @contextlib.contextmanager
    def holding(self, count: int) -> Iterator[None]:
        self.take(count)
        try:
            yield
        finally:
            self.give_back(count)


class Reservation:
    """One piece of work's share of the budget, grown or shrunk to what it holds now, and
    given back once. `alongside` is what the same document holds elsewhere (its text)."""

    def __init__(self, memory: DocumentMemory, alongside: int = 0) -> None:
        self._memory = memory
        self._alongside = alongside
        self._lock = threading.Lock()
        self.held = 0

    def resize(self, count: int) -> None:
        """Hold `count` bytes in all; raises ResourceExhausted (holding what it held) if more
        do not fit: with a retry hint if they would fit an idle server, without one if the
        document alone needs more than the whole budget."""
        with self._lock:
            if count + self._alongside > self._memory.max_bytes:
                raise ResourceExhausted(
                    "document memory",
                    f"the document needs at least {mib(count + self._alongside)} of the "
                    f"server's memory while it is chunked, more than the whole budget of "
                    f"{mib(self._memory.max_bytes)} (max_held_document_bytes); split it")
            if count > self.held:
                self._memory.take(count - self.held)
            else:
                self._memory.give_back(self.held - count)
            self.held = count

    def release(self) -> None:
        self.resize(0)
