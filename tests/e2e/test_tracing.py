"""Tracing end to end: the session server exports its spans to a real OTLP receiver; callers
are this test process (the Python client's OpenTelemetry interceptor), grpcurl with a
traceparent header, and a Node.js client with the OpenTelemetry grpc instrumentation."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from synthqa.client import AsyncSynthQAClient, Document
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..paths import REPO
from .helpers import SAMPLE
from .otlp_receiver import OtlpReceiver, ReceivedSpan
from .serverproc import ServerProcess
from .test_interop import NODE_DIR, node_packages  # noqa: F401 - the fixture
from .test_ops import GRPCURL

pytestmark = pytest.mark.e2e

SERVER_KIND = 2
GENERATE_SPAN = "/synthqa.v1.SynthQAService/Generate"
# Never in a span or a log line: it is only ever document text.
MARKER = "QUOKKA-MARKER-83f1"
OPTIONS = {"num_pairs": 1, "max_generation_tokens": 128, "max_chunk_tokens": 96}


@pytest.fixture(scope="session")
def caller_spans() -> Iterator[InMemorySpanExporter]:
    """This process as a traced application: its spans, and its client's, kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


def hex_trace_id(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def rpc_spans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """The server's RPC spans (the engine's llm_request spans are SERVER spans too)."""
    return [s for s in spans if s.kind == SERVER_KIND and "rpc.system" in s.attributes]


def call_complete(chunks: int, documents: int):  # noqa: ANN201 - a predicate
    def done(spans: list[ReceivedSpan]) -> bool:
        return (len(named(spans, "llm_request")) >= chunks
                and len(named(spans, "synthqa.document")) >= documents
                and bool(rpc_spans(spans)))
    return done


async def test_one_bidi_call_is_one_trace_from_the_caller_to_the_engine(
    server: ServerProcess, otlp_receiver: OtlpReceiver, caller_spans: InMemorySpanExporter
) -> None:
    short = Document("short", SAMPLE[:300])
    long = Document("long", SAMPLE[300:2300])
    with trace.get_tracer("tests").start_as_current_span("caller") as caller:
        trace_id = hex_trace_id(caller)
        async with AsyncSynthQAClient(server.target, timeout=300, retries=0,
                                      trace=True) as client:
            # 700-character parts: the long document arrives in three.
            events = [e async for e in client.generate([short, long], part_chars=700,
                                                        **OPTIONS)]

    started = {(e.chunk_started.document_id, e.chunk_started.chunk_index): e.chunk_started
               for e in events if e.WhichOneof("event") == "chunk_started"}
    ended = {(d.document_id, d.chunk_index): d for e in events
             if (kind := e.WhichOneof("event")) in ("chunk_completed", "chunk_failed")
             for d in [getattr(e, kind)]}
    completed_chunks = {(e.chunk_completed.document_id, e.chunk_completed.chunk_index)
                        for e in events if e.WhichOneof("event") == "chunk_completed"}
    pairs = Counter((e.qa_pair.document_id, e.qa_pair.chunk_index) for e in events
                    if e.WhichOneof("event") == "qa_pair")
    completed = {e.document_completed.document_id: e.document_completed for e in events
                 if e.WhichOneof("event") == "document_completed"}
    assert set(completed) == {"short", "long"} and len(started) >= 3

    spans = otlp_receiver.wait_for(call_complete(len(started), 2), trace_id=trace_id)
    by_id = {s.span_id: s for s in spans}
    # The caller's side: its span, then the client interceptor's span, in this process.
    mine = {format(s.context.span_id, "016x"): s for s in caller_spans.get_finished_spans()
            if format(s.context.trace_id, "032x") == trace_id}
    client_span = next(s for s in mine.values() if s.name != "caller")
    assert client_span.parent is not None
    assert format(client_span.parent.span_id, "016x") == format(caller.get_span_context().span_id,
                                                                "016x")

    (server_span,) = rpc_spans(spans)
    assert server_span.name == GENERATE_SPAN
    assert server_span.parent_span_id == format(client_span.context.span_id, "016x")
    assert server_span.attributes["rpc.system"] == "grpc"
    assert server_span.attributes["rpc.method"] == "Generate"
    assert server_span.attributes["rpc.service"] == "synthqa.v1.SynthQAService"
    assert server_span.attributes["rpc.grpc.status_code"] == 0
    assert server_span.service == "synthqa"

    documents = {s.attributes["synthqa.document.id"]: s for s in named(spans, "synthqa.document")}
    assert set(documents) == {"short", "long"}
    for document_id, text in (("short", short.text), ("long", long.text)):
        span, done = documents[document_id], completed[document_id]
        assert span.parent_span_id == server_span.span_id
        assert span.attributes["synthqa.document.characters"] == len(text)
        assert span.attributes["synthqa.document.tokens"] == done.token_count
        assert span.attributes["synthqa.document.chunks"] == done.chunk_count
        assert span.attributes["synthqa.document.pairs"] == done.pair_count
        assert span.attributes["synthqa.document.failed_chunks"] == done.failed_chunk_count
        assert span.attributes["synthqa.document.window_wait_seconds"] >= 0

    chunk_spans = named(spans, "synthqa.chunk")
    assert len(chunk_spans) == len(started)
    for span in chunk_spans:
        key = (span.attributes["synthqa.document.id"], span.attributes["synthqa.chunk.index"])
        begun, end = started[key], ended[key]
        assert span.parent_span_id == documents[key[0]].span_id
        assert span.attributes["synthqa.chunk.char_start"] == begun.char_start
        assert span.attributes["synthqa.chunk.char_end"] == begun.char_end
        assert span.attributes["synthqa.chunk.tokens"] == begun.token_count
        assert span.attributes["synthqa.chunk.requested_pairs"] == OPTIONS["num_pairs"]
        assert span.attributes["synthqa.chunk.pairs"] == end.pair_count == pairs[key]
        assert span.attributes["gen_ai.usage.output_tokens"] == end.generated_token_count
        assert span.attributes["gen_ai.request.max_tokens"] == OPTIONS["max_generation_tokens"]
        assert span.attributes["gen_ai.request.model"]
        assert span.attributes["synthqa.chunk.queue_seconds"] >= 0
        assert [e for e, _ in span.events] == ["synthqa.pair"] * pairs[key]
        if pairs[key]:
            assert span.attributes["synthqa.chunk.time_to_first_pair_seconds"] >= 0
        if key in completed_chunks:
            assert span.attributes["gen_ai.usage.input_tokens"] == end.prompt_token_count
            assert span.status_code != 2
        else:
            assert span.status_code == 2

    # The engine's own span sits under the chunk span that asked for it.
    chunk_ids = {s.span_id for s in chunk_spans}
    engine_spans = named(spans, "llm_request")
    assert len(engine_spans) == len(chunk_spans)
    assert {s.parent_span_id for s in engine_spans} == chunk_ids
    # Every span of the call hangs from the caller's trace: no orphans.
    for span in spans:
        assert span.parent_span_id in by_id or span.parent_span_id in mine, span.name

    # Logs written inside the call carry its trace.
    access = [line for line in server.log_path.read_text().splitlines()
              if "synthqa.access" in line and f"trace_id={trace_id}" in line]
    assert len(access) == 1 and "Generate" in access[0] and "code=OK" in access[0]
    assert f"pairs={sum(pairs.values())}" in access[0]


def traceparent(sampled: bool) -> tuple[str, str, str]:
    """A fresh W3C traceparent: (header, trace id, parent span id)."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


async def test_a_parents_sampled_flag_is_obeyed(server: ServerProcess,
                                                otlp_receiver: OtlpReceiver) -> None:
    unsampled, unsampled_trace, _ = traceparent(sampled=False)
    sampled, sampled_trace, _ = traceparent(sampled=True)
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        for header in (unsampled, sampled):
            request = pb.GenerateDocumentRequest(document_id="flag", text=SAMPLE[:300],
                                                 options=pb.GenerationOptions(num_pairs=1))
            async for _ in stub.GenerateDocument(request, metadata=[("traceparent", header)],
                                                 timeout=300):
                pass
    # The sampled call's spans arriving shows the exporter has flushed past the other call.
    otlp_receiver.wait_for(call_complete(1, 1), trace_id=sampled_trace)
    await asyncio.sleep(0.5)
    assert otlp_receiver.trace(unsampled_trace) == []


async def test_a_cancelled_call_ends_every_span_saying_so(
    server: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    header, trace_id, _ = traceparent(sampled=True)
    never = asyncio.Event()
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)

        async def requests() -> AsyncIterator[pb.GenerateRequest]:
            yield pb.GenerateRequest(options=pb.GenerationOptions(
                num_pairs=2, max_generation_tokens=256, max_chunk_tokens=64,
                chunk_overlap_tokens=0))
            # About 600 chunks, 8 at a time: far more work than the cut leaves time for, even
            # when the client reads its first pair late (gRPC buffers what the server sends,
            # so a slow reader does not hold the server back; once 170 chunks all finished).
            yield pb.GenerateRequest(document=pb.DocumentPart(document_id="cut",
                                                              text=SAMPLE * 36))
            # The input stays open, so the call cannot have finished when the cancel lands.
            await never.wait()

        call = stub.Generate(requests(), metadata=[("traceparent", header)], timeout=300)
        async for event in call:
            if event.WhichOneof("event") == "qa_pair":
                call.cancel()
                break
    spans = otlp_receiver.wait_for(
        lambda spans: bool(rpc_spans(spans)) and bool(named(spans, "synthqa.document")),
        trace_id=trace_id)
    (server_span,) = rpc_spans(spans)
    assert server_span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert server_span.status_code == 2 and server_span.status_message.startswith("CANCELLED")
    await asyncio.sleep(0.5)  # whatever ended after the server span has been exported by now
    spans = otlp_receiver.trace(trace_id)
    (document,) = named(spans, "synthqa.document")
    assert document.status_code == 2 and "cancelled" in document.status_message
    unfinished = [s for s in named(spans, "synthqa.chunk")
                  if "synthqa.chunk.pairs" not in s.attributes]
    assert unfinished, "the cut stream left no chunk unfinished"
    for span in unfinished:
        assert span.status_code == 2 and "cancelled" in span.status_message


async def test_a_passed_deadline_ends_the_call_span_saying_so(
    server: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    header, trace_id, _ = traceparent(sampled=True)
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        request = pb.GenerateDocumentRequest(
            document_id="late", text=SAMPLE * 3,
            options=pb.GenerationOptions(num_pairs=2, max_generation_tokens=256,
                                         max_chunk_tokens=64, chunk_overlap_tokens=0))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in stub.GenerateDocument(request, metadata=[("traceparent", header)],
                                                 timeout=0.3):
                pass
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    spans = otlp_receiver.wait_for(
        lambda spans: bool(rpc_spans(spans)) and bool(named(spans, "synthqa.document")),
        trace_id=trace_id)
    (server_span,) = rpc_spans(spans)
    assert server_span.attributes["rpc.grpc.status_code"] == 4
    assert server_span.status_message.startswith("DEADLINE_EXCEEDED")
    (document,) = named(spans, "synthqa.document")
    assert document.status_code == 2


async def test_an_invalid_document_ends_its_spans_with_the_error(
    server: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    header, trace_id, _ = traceparent(sampled=True)
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        request = pb.GenerateDocumentRequest(document_id="blank", text="   \n  ")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in stub.GenerateDocument(request, metadata=[("traceparent", header)],
                                                 timeout=60):
                pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    spans = otlp_receiver.wait_for(
        lambda spans: bool(rpc_spans(spans)) and bool(named(spans, "synthqa.document")),
        trace_id=trace_id)
    (server_span,) = rpc_spans(spans)
    assert server_span.attributes["rpc.grpc.status_code"] == 3
    assert server_span.status_code == 2 and "INVALID_ARGUMENT" in server_span.status_message
    (document,) = named(spans, "synthqa.document")
    assert document.status_code == 2 and "InvalidArgument" in document.status_message


async def test_document_text_is_in_no_span_and_no_log_line(
    server: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    header, trace_id, _ = traceparent(sampled=True)
    text = f"{SAMPLE[:200]} {MARKER} {SAMPLE[200:400]}"
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        for rpc in ("ChunkDocument", "GenerateDocument"):
            if rpc == "ChunkDocument":
                await stub.ChunkDocument(pb.ChunkDocumentRequest(text=text),
                                         metadata=[("traceparent", header)], timeout=60)
            else:
                request = pb.GenerateDocumentRequest(document_id="marked", text=text,
                                                     options=pb.GenerationOptions(num_pairs=1))
                async for _ in stub.GenerateDocument(request, metadata=[("traceparent", header)],
                                                     timeout=300):
                    pass
    otlp_receiver.wait_for(call_complete(1, 1), trace_id=trace_id)
    assert MARKER.encode() not in otlp_receiver.raw()
    assert MARKER.encode() not in server.log_path.read_bytes()


def test_grpcurl_with_a_traceparent_gets_the_servers_spans_in_its_trace(
    server: ServerProcess, otlp_receiver: OtlpReceiver
) -> None:
    header, trace_id, parent = traceparent(sampled=True)
    result = subprocess.run(
        [GRPCURL, "-plaintext", "-H", f"traceparent: {header}", "-d",
         json.dumps({"text": SAMPLE[:500]}), server.target,
         "synthqa.v1.SynthQAService/ChunkDocument"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (span,) = otlp_receiver.wait_for(lambda spans: bool(spans), trace_id=trace_id)
    assert span.kind == SERVER_KIND and span.parent_span_id == parent
    assert span.attributes["rpc.method"] == "ChunkDocument"


def test_a_node_client_with_opentelemetry_shares_its_trace_with_the_server(
    node_packages: Path, server: ServerProcess, otlp_receiver: OtlpReceiver  # noqa: F811
) -> None:
    node = shutil.which("node")
    assert node
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint)
    result = subprocess.run([node, str(NODE_DIR / "traced_client.mjs"), server.target],
                            capture_output=True, text=True, timeout=270, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    trace_id = summary["trace_id"]
    spans = otlp_receiver.wait_for(call_complete(1, 1), trace_id=trace_id)
    by_id = {s.span_id: s for s in spans}
    (server_span,) = rpc_spans(spans)
    node_client = by_id[server_span.parent_span_id]
    assert node_client.service == "synthqa-node-test"
    assert by_id[node_client.parent_span_id].name == "node-caller"
    assert named(spans, "synthqa.chunk") and named(spans, "llm_request")


def test_python_cli_trace_switch_puts_the_command_in_one_trace(
    server: ServerProcess, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    source = tmp_path / "doc.txt"
    source.write_text(SAMPLE[:400])
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "synthqa"), "--target", server.target, "--trace",
         "generate", str(source), "--out", str(tmp_path / "out.jsonl"), "--num-pairs", "1"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    trace_id = result.stderr.split("synthqa: trace ")[1].split()[0]
    spans = otlp_receiver.wait_for(
        lambda spans: call_complete(1, 1)(spans) and len(rpc_spans(spans)) == 2,
        trace_id=trace_id)
    by_id = {s.span_id: s for s in spans}
    # The Generate call, and the GetServerInfo call for the run's manifest, both under the
    # command's span.
    assert sorted(s.attributes.get("rpc.method") for s in rpc_spans(spans)) == [
        "Generate", "GetServerInfo"]
    for server_span in rpc_spans(spans):
        client_span = by_id[server_span.parent_span_id]
        assert client_span.service == "synthqa-cli"
        assert by_id[client_span.parent_span_id].name == "synthqa generate"

