"""The RPC server span, on a real grpc.aio server with small handlers: one span per call, its
parent from traceparent, current for the handler, ended with the status the call ended with."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from synthqa.server.observability.server_spans import ServerSpans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
async def traced_server() -> AsyncIterator[tuple[str, InMemorySpanExporter, list[str]]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    current: list[str] = []  # the span id each handler saw as current

    def saw() -> None:
        current.append(format(trace.get_current_span().get_span_context().span_id, "016x"))

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        saw()
        return request

    async def refuse(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        saw()
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        raise AssertionError("unreachable")

    async def endless(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes],
                      ) -> AsyncIterator[bytes]:
        saw()
        while True:
            yield b"tick"
            await asyncio.sleep(0.01)

    async def count(requests: AsyncIterator[bytes],
                    context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        saw()
        return str(len([r async for r in requests])).encode()

    async def chat(requests: AsyncIterator[bytes],
                   context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        saw()
        async for request in requests:
            yield request.upper()

    server = grpc.aio.server(interceptors=[ServerSpans(provider, untraced_services=("skip.",))])
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo),
                "Refuse": grpc.unary_unary_rpc_method_handler(refuse),
                "Endless": grpc.unary_stream_rpc_method_handler(endless),
                "Count": grpc.stream_unary_rpc_method_handler(count),
                "Chat": grpc.stream_stream_rpc_method_handler(chat)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Svc", handlers),
                                     grpc.method_handlers_generic_handler("skip.Svc", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", exporter, current
    finally:
        await server.stop(0)


async def finished(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    for _ in range(200):
        spans = list(exporter.get_finished_spans())
        if len(spans) >= count:
            return spans
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} spans did not end: {exporter.get_finished_spans()}")


async def test_a_call_gets_one_span_under_the_callers_with_ok(traced_server) -> None:  # noqa: ANN001
    target, exporter, current = traced_server
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await channel.unary_unary("/test.Svc/Echo")(
            b"hi", metadata=[("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")])
    assert reply == b"hi"
    (span,) = await finished(exporter, 1)
    assert span.name == "/test.Svc/Echo" and span.kind is trace.SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["rpc.service"] == "test.Svc" and span.attributes["rpc.method"] == "Echo"
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.status.status_code is StatusCode.UNSET
    assert current == [format(span.context.span_id, "016x")]


async def test_an_aborted_call_ends_its_span_with_the_status(traced_server) -> None:  # noqa: ANN001
    target, exporter, _ = traced_server
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary("/test.Svc/Refuse")(b"")
    (span,) = await finished(exporter, 1)
    assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 5
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "NOT_FOUND: no such thing"


async def test_a_stream_the_client_cancels_ends_its_span_cancelled(traced_server) -> None:  # noqa: ANN001
    target, exporter, _ = traced_server
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_stream("/test.Svc/Endless")(b"")
        async for _ in call:
            call.cancel()
            break
    (span,) = await finished(exporter, 1)
    assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 1
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None and span.status.description.startswith("CANCELLED")


async def test_untraced_services_make_no_span(traced_server) -> None:  # noqa: ANN001
    target, exporter, current = traced_server
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.unary_unary("/skip.Svc/Echo")(b"hi")
        await channel.unary_unary("/test.Svc/Echo")(b"hi")
    spans = await finished(exporter, 1)
    await asyncio.sleep(0.1)
    assert [s.name for s in exporter.get_finished_spans()] == ["/test.Svc/Echo"] == [
        s.name for s in spans]
    assert current[0] == format(0, "016x")  # no span was current for the untraced call


async def test_client_and_bidirectional_streams_get_a_span_each_with_ok(traced_server) -> None:  # noqa: ANN001
    target, exporter, current = traced_server

    async def requests() -> AsyncIterator[bytes]:
        for request in (b"a", b"b"):
            yield request

    async with grpc.aio.insecure_channel(target) as channel:
        assert await channel.stream_unary("/test.Svc/Count")(requests()) == b"2"
        replies = [r async for r in channel.stream_stream("/test.Svc/Chat")(requests())]
    assert replies == [b"A", b"B"]
    spans = sorted(await finished(exporter, 2), key=lambda span: span.start_time or 0)
    assert [span.name for span in spans] == ["/test.Svc/Count", "/test.Svc/Chat"]
    for span in spans:
        assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 0
        assert span.status.status_code is StatusCode.UNSET
    assert current == [format(span.context.span_id, "016x") for span in spans]
