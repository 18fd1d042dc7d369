"""Spans and metrics of a call, driven by the real session over a scripted engine: the tree,
the counts, the trace headers handed to the engine, and what a cancelled call leaves."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from synthqa.server.observability.call_spans import SpanTelemetry
from synthqa.server.observability.metrics import ServiceMetrics
from synthqa.server.observability.telemetry_group import TelemetryGroup
from synthqa.server.pipeline.generator import ChunkGenerator
from synthqa.server.pipeline.session import CallSession, ServerLoad
from synthqa.server.pipeline.telemetry import CallTelemetry

from ..helpers import until
from ..pipeline.scripted import ScriptedEngine, chunks, make_plan, record


def tracer_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def run_call(session: CallSession, telemetry: CallTelemetry,
                   documents: dict[str, int]) -> list[object]:
    async def feed() -> None:
        for document_id, count in documents.items():
            telemetry.document_received(document_id, 100 * count)
            await session.add_document(document_id, 2 * count, chunks(count))
        session.close_input()

    feeder = asyncio.create_task(feed())
    events = [e async for e in session.events()]
    await feeder
    telemetry.ended(None)
    return events


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_spans_form_a_tree_under_the_callers_span_with_counts_and_no_text() -> None:
    provider, exporter = tracer_provider()
    plan = make_plan(2)
    engine = ScriptedEngine(record(2), delay=0.001)
    with provider.get_tracer("test").start_as_current_span("rpc") as rpc:
        telemetry = SpanTelemetry(provider, "tiny").call(plan.options)
    session = CallSession(ChunkGenerator(engine), plan, ServerLoad(10), window=2,
                          telemetry=telemetry)
    await run_call(session, telemetry, {"a": 3, "b": 1})

    documents = {s.attributes["synthqa.document.id"]: s
                 for s in spans_named(exporter, "synthqa.document")}
    assert set(documents) == {"a", "b"}
    for document_id, count in (("a", 3), ("b", 1)):
        span = documents[document_id]
        assert span.parent.span_id == rpc.get_span_context().span_id
        assert span.attributes["synthqa.document.characters"] == 100 * count
        assert span.attributes["synthqa.document.chunks"] == count
        assert span.attributes["synthqa.document.pairs"] == 2 * count
        assert span.attributes["synthqa.document.failed_chunks"] == 0
    # Window 2: document a's third chunk waited for room.
    assert documents["a"].attributes["synthqa.document.window_wait_seconds"] > 0

    chunk_spans = spans_named(exporter, "synthqa.chunk")
    assert len(chunk_spans) == 4
    for span in chunk_spans:
        document = documents[span.attributes["synthqa.document.id"]]
        assert span.parent.span_id == document.context.span_id
        assert span.attributes["synthqa.chunk.pairs"] == 2
        assert span.attributes["gen_ai.request.model"] == "tiny"
        assert [e.name for e in span.events] == ["synthqa.pair", "synthqa.pair"]
        assert span.status.status_code is StatusCode.UNSET
    # Each engine request carried its own chunk span's context.
    parents = {headers["traceparent"].split("-")[2] for headers in engine.trace_headers}
    assert parents == {format(s.context.span_id, "016x") for s in chunk_spans}
    text = repr([(s.attributes, [e.attributes for e in s.events])
                 for s in exporter.get_finished_spans()])
    assert "Question" not in text and "Answer" not in text


async def test_a_cancelled_call_leaves_no_span_open() -> None:
    provider, exporter = tracer_provider()
    plan = make_plan(2)
    engine = ScriptedEngine(record(2), delay=0.05)
    telemetry = SpanTelemetry(provider, "tiny").call(plan.options)
    session = CallSession(ChunkGenerator(engine), plan, ServerLoad(10), window=2,
                          telemetry=telemetry)
    telemetry.document_received("a", 500)
    feeder = asyncio.create_task(session.add_document("a", 10, chunks(5)))
    await until(lambda: engine.active == 2)
    feeder.cancel()
    await session.cancel()
    telemetry.ended(asyncio.CancelledError())

    (document,) = spans_named(exporter, "synthqa.document")
    assert document.status.status_code is StatusCode.ERROR
    assert "cancelled" in document.status.description
    chunk_spans = spans_named(exporter, "synthqa.chunk")
    assert len(chunk_spans) == 2
    for span in chunk_spans:
        assert span.status.status_code is StatusCode.ERROR
        assert "cancelled" in span.status.description


async def test_metrics_count_what_the_client_receives() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    provider, _ = tracer_provider()
    plan = make_plan(3)
    telemetry = TelemetryGroup([SpanTelemetry(provider, "tiny"), metrics]).call(plan.options)
    session = CallSession(ChunkGenerator(ScriptedEngine(record(3), delay=0.001)), plan,
                          ServerLoad(10), window=4, telemetry=telemetry)
    events = await run_call(session, telemetry, {"a": 2, "b": 3})

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("synthqa_pairs_total") == 15 == sum(
        type(e).__name__ == "RecordGenerated" for e in events)
    assert sample("synthqa_documents_total") == 2
    assert sample("synthqa_chunks_total", outcome="completed") == 5
    assert sample("synthqa_chunk_duration_seconds_count") == 5
    assert sample("synthqa_time_to_first_pair_seconds_count") == 5
    assert sample("synthqa_queue_wait_seconds_count") == 5


async def test_failed_chunks_are_counted_by_reason_and_marked_on_their_span() -> None:
    registry = CollectorRegistry()
    provider, exporter = tracer_provider()
    plan = make_plan(2)
    telemetry = TelemetryGroup([SpanTelemetry(provider, "tiny"),
                                ServiceMetrics(registry)]).call(plan.options)
    # One pair of two, then the token limit: the chunk fails with RESOURCE_EXHAUSTED.
    engine = ScriptedEngine(record(1)[:-2], finish_reason="length", delay=0.001)
    session = CallSession(ChunkGenerator(engine), plan, ServerLoad(10), window=4,
                          telemetry=telemetry)
    await run_call(session, telemetry, {"b": 1})
    assert registry.get_sample_value("synthqa_chunk_failures_total",
                                     {"reason": "RESOURCE_EXHAUSTED"}) == 1
    assert registry.get_sample_value("synthqa_chunks_total", {"outcome": "failed"}) == 1
    (chunk,) = spans_named(exporter, "synthqa.chunk")
    assert chunk.status.status_code is StatusCode.ERROR
    assert chunk.attributes["synthqa.chunk.failure_code"] == "RESOURCE_EXHAUSTED"
    (document,) = spans_named(exporter, "synthqa.document")
    assert document.attributes["synthqa.document.failed_chunks"] == 1
    assert document.status.status_code is StatusCode.ERROR
