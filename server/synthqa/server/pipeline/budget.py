"""A server-wide budget of characters in memory-heavy work (tokenizing), so that many large
documents at once are refused with a retry hint instead of exhausting the machine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .errors import ResourceExhausted

# What a refused client is told to wait: about how long a large document takes to tokenize.
RETRY_AFTER_SECONDS = 10.0


class CharacterBudget:
    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self.held = 0

    @contextlib.contextmanager
    def reserve(self, chars: int) -> Iterator[None]:
        """Hold `chars` for the block, or raise ResourceExhausted if they do not fit now."""
        if self.held + chars > self._max_chars:
            raise ResourceExhausted(
                "server memory",
                f"the server is tokenizing {self.held} characters for other calls; "
                f"{chars} more would pass its limit of {self._max_chars}; retry shortly",
                retry_after_seconds=RETRY_AFTER_SECONDS)
        self.held += chars
        try:
            yield
        finally:
            self.held -= chars
