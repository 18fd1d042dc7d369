"""Several telemetries (spans and metrics) seen by the pipeline as one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from synthqa.contract.options import GenerationOptions

from ..pipeline.events import GenerationEvent
from ..pipeline.telemetry import CallTelemetry, Telemetry
from ..text.chunker import Chunk


class TelemetryGroup(Telemetry):
    def __init__(self, members: Sequence[Telemetry]) -> None:
        self._members = tuple(members)

    def call(self, options: GenerationOptions) -> CallTelemetry:
        return CallTelemetryGroup([m.call(options) for m in self._members])


class CallTelemetryGroup(CallTelemetry):
    def __init__(self, members: Sequence[CallTelemetry]) -> None:
        self._members = tuple(members)

    def document_received(self, document_id: str, chars: int) -> None:
        for member in self._members:
            member.document_received(document_id, chars)

    def document_chunked(self, document_id: str, token_count: int, chunk_count: int,
                         total_chunks: int) -> None:
        for member in self._members:
            member.document_chunked(document_id, token_count, chunk_count, total_chunks)

    def document_admitted(self, document_id: str, window_wait_seconds: float) -> None:
        for member in self._members:
            member.document_admitted(document_id, window_wait_seconds)

    def chunk_queued(self, document_id: str, chunk: Chunk) -> Mapping[str, str] | None:
        headers = None
        for member in self._members:
            headers = member.chunk_queued(document_id, chunk) or headers
        return headers

    def event(self, event: GenerationEvent) -> None:
        for member in self._members:
            member.event(event)

    def ended(self, error: BaseException | None) -> None:
        for member in self._members:
            member.ended(error)
