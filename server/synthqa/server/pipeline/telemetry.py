"""What a generation call tells the outside about its own progress: the hooks that tracing and
metrics hang on. The pipeline calls them; this base ignores them, so a server with tracing and
metrics off pays one no-op call per event. Hooks never see document text."""

from __future__ import annotations

from collections.abc import Mapping

from synthqa.contract.options import GenerationOptions

from ..text.chunker import Chunk
from .events import GenerationEvent


class CallTelemetry:
    """One generation call's hooks, called in order for each document: received, chunked,
    admitted; for each chunk: queued, then its events; last, once, `ended`."""

    def document_received(self, document_id: str, chars: int) -> None:
        """The document's last part arrived; chunking starts."""

    def document_chunked(self, document_id: str, token_count: int, chunk_count: int,
                         total_chunks: int) -> None:
        """`chunk_count` of the document's `total_chunks` chunks will be generated."""

    def document_admitted(self, document_id: str, window_wait_seconds: float) -> None:
        """Every chunk of the document is queued; it waited this long for window room."""

    def chunk_queued(self, document_id: str, chunk: Chunk) -> Mapping[str, str] | None:
        """The chunk waits for the engine. Returns trace headers for its engine request."""
        return None

    def event(self, event: GenerationEvent) -> None:
        """An event of the call, as it is queued for the client."""

    def ended(self, error: BaseException | None) -> None:
        """The call is over: cleanly (None), failed, or cancelled. Whatever is still open
        ends here."""


class Telemetry:
    """The server's source of per-call telemetry; this base gives the no-op one."""

    _NOTHING = CallTelemetry()

    def call(self, options: GenerationOptions) -> CallTelemetry:
        """Telemetry for a call starting now, in the caller's trace context."""
        return self._NOTHING
