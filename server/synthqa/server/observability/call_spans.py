"""A call's spans: `synthqa.document` per document under the RPC's server span, `synthqa.chunk`
per chunk under its document, and the engine's `llm_request` under the chunk through the trace
headers handed to the engine. Attributes are counts, ids, times and options; never text."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from synthqa.contract.options import GenerationOptions

from ..pipeline.events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    GenerationEvent,
    RecordGenerated,
)
from ..pipeline.telemetry import CallTelemetry, Telemetry
from ..text.chunker import Chunk

DOCUMENT_SPAN = "synthqa.document"
CHUNK_SPAN = "synthqa.chunk"
PAIR_EVENT = "synthqa.pair"
_PROPAGATOR = TraceContextTextMapPropagator()

ChunkKey = tuple[str, int]


@dataclass
class _OpenChunk:
    span: Span
    queued_at: float
    started_at: float | None = None
    first_pair_seen: bool = False


class SpanTelemetry(Telemetry):
    def __init__(self, tracer_provider: trace.TracerProvider, model: str,
                 engine_traces: bool = True) -> None:
        self._tracer = tracer_provider.get_tracer("synthqa.server")
        self._model = model
        # Trace headers go to the engine only when it makes spans: vLLM warns otherwise.
        self._engine_traces = engine_traces

    def call(self, options: GenerationOptions) -> CallTelemetry:
        return CallSpans(self._tracer, otel_context.get_current(),
                         self._request_attributes(options), self._engine_traces)

    def _request_attributes(self, options: GenerationOptions) -> dict[str, str | int | float]:
        attributes: dict[str, str | int | float] = {
            "gen_ai.operation.name": "text_completion",
            "gen_ai.provider.name": "vllm",
            "gen_ai.request.model": self._model,
            "gen_ai.request.temperature": options.temperature,
            "gen_ai.request.top_p": options.top_p,
            "gen_ai.request.max_tokens": options.max_generation_tokens,
            "synthqa.chunk.requested_pairs": options.num_pairs,
        }
        if options.seed is not None:
            attributes["gen_ai.request.seed"] = options.seed
        return attributes


class CallSpans(CallTelemetry):
    def __init__(self, tracer: trace.Tracer, parent: otel_context.Context,
                 request_attributes: Mapping[str, str | int | float],
                 engine_traces: bool = True) -> None:
        self._tracer = tracer
        self._parent = parent
        self._engine_traces = engine_traces
        self._request_attributes = request_attributes
        self._documents: dict[str, Span] = {}
        self._chunks: dict[ChunkKey, _OpenChunk] = {}

    def document_received(self, document_id: str, chars: int) -> None:
        self._documents[document_id] = self._tracer.start_span(
            DOCUMENT_SPAN, context=self._parent, kind=SpanKind.INTERNAL,
            attributes={"synthqa.document.id": document_id,
                        "synthqa.document.characters": chars})

    def document_chunked(self, document_id: str, token_count: int, chunk_count: int,
                         total_chunks: int) -> None:
        span = self._documents.get(document_id)
        if span is not None:
            span.set_attributes({"synthqa.document.tokens": token_count,
                                 "synthqa.document.chunks": chunk_count,
                                 "synthqa.document.total_chunks": total_chunks})

    def document_admitted(self, document_id: str, window_wait_seconds: float) -> None:
        span = self._documents.get(document_id)
        if span is not None:
            span.set_attribute("synthqa.document.window_wait_seconds", window_wait_seconds)

    def chunk_queued(self, document_id: str, chunk: Chunk) -> Mapping[str, str] | None:
        document = self._documents.get(document_id)
        parent = trace.set_span_in_context(document) if document is not None else self._parent
        span = self._tracer.start_span(
            CHUNK_SPAN, context=parent, kind=SpanKind.INTERNAL,
            attributes={**self._request_attributes,
                        "synthqa.document.id": document_id,
                        "synthqa.chunk.index": chunk.index,
                        "synthqa.chunk.char_start": chunk.char_start,
                        "synthqa.chunk.char_end": chunk.char_end,
                        "synthqa.chunk.tokens": chunk.token_count})
        self._chunks[(document_id, chunk.index)] = _OpenChunk(span, time.monotonic())
        if not self._engine_traces:
            return None
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        return headers

    def event(self, event: GenerationEvent) -> None:
        if isinstance(event, RecordGenerated):
            chunk = self._chunks.get((event.document_id, event.chunk_index))
            if chunk is not None:
                if not chunk.first_pair_seen and chunk.started_at is not None:
                    chunk.first_pair_seen = True
                    chunk.span.set_attribute("synthqa.chunk.time_to_first_pair_seconds",
                                             time.monotonic() - chunk.started_at)
                chunk.span.add_event(PAIR_EVENT, {"synthqa.pair.index": event.record_index})
        elif isinstance(event, ChunkStarted):
            chunk = self._chunks.get((event.document_id, event.chunk_index))
            if chunk is not None:
                chunk.started_at = time.monotonic()
                chunk.span.set_attribute("synthqa.chunk.queue_seconds",
                                         chunk.started_at - chunk.queued_at)
        elif isinstance(event, ChunkCompleted | ChunkFailed):
            self._end_chunk(event)
        elif isinstance(event, DocumentCompleted):
            self._end_document(event)

    def ended(self, error: BaseException | None) -> None:
        description = _abandoned(error)
        for chunk in self._chunks.values():
            chunk.span.set_status(Status(StatusCode.ERROR, description))
            chunk.span.end()
        for span in self._documents.values():
            span.set_status(Status(StatusCode.ERROR, description))
            span.end()
        self._chunks.clear()
        self._documents.clear()

    def _end_chunk(self, event: ChunkCompleted | ChunkFailed) -> None:
        chunk = self._chunks.pop((event.document_id, event.chunk_index), None)
        if chunk is None:
            return
        span = chunk.span
        span.set_attributes({
            "synthqa.chunk.pairs": event.pair_count,
            "gen_ai.usage.output_tokens": event.generated_token_count,
            "gen_ai.response.finish_reasons": [event.finish_reason.value],
        })
        if isinstance(event, ChunkCompleted):
            span.set_attribute("gen_ai.usage.input_tokens", event.prompt_token_count)
        else:
            span.set_attribute("synthqa.chunk.failure_code", event.code.name)
            span.set_status(Status(StatusCode.ERROR, f"{event.code.name}: {event.message}"))
        span.end()

    def _end_document(self, event: DocumentCompleted) -> None:
        span = self._documents.pop(event.document_id, None)
        if span is None:
            return
        span.set_attributes({
            "synthqa.document.pairs": event.pair_count,
            "synthqa.document.completed_chunks": event.completed_chunk_count,
            "synthqa.document.failed_chunks": event.failed_chunk_count,
        })
        if event.failed_chunk_count:
            span.set_status(Status(
                StatusCode.ERROR,
                f"{event.failed_chunk_count} of {event.chunk_count} chunks failed"))
        span.end()


def _abandoned(error: BaseException | None) -> str:
    """Why spans still open at the end of a call did not finish."""
    if error is None:
        return "the call ended before this finished"
    if isinstance(error, BaseException) and not isinstance(error, Exception):
        return "the call was cancelled"
    return f"the call failed: {type(error).__name__}"
