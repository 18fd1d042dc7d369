"""A server-wide budget of document characters in memory: parts of unfinished documents,
documents being tokenized, and chunked documents waiting for engine slots. Many large
documents at once are refused with a retry hint instead of exhausting the machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import ResourceExhausted

# What a refused client is told to wait: about how long a large document takes to tokenize.
RETRY_AFTER_SECONDS = 10.0


class DocumentMemory:
    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self.held = 0

    def take(self, chars: int) -> None:
        """Count `chars` as held, or raise ResourceExhausted if they do not fit now."""
        if self.held + chars > self._max_chars:
            raise ResourceExhausted(
                "server memory",
                f"the server holds {self.held} characters of documents for calls in progress; "
                f"{chars} more would pass its limit of {self._max_chars}; retry shortly",
                retry_after_seconds=RETRY_AFTER_SECONDS)
        self.held += chars

    def give_back(self, chars: int) -> None:
        self.held -= chars

    @contextlib.contextmanager
    def holding(self, chars: int) -> Iterator[None]:
        self.take(chars)
        try:
            yield
        finally:
            self.give_back(chars)
