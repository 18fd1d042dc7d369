"""Each traced RPC's server span: W3C trace context in from the call's metadata, the span
current for the handler, ended once gRPC says the call is over, with the status it ended with.

Made here, not by opentelemetry-instrumentation-grpc's aio interceptor: that one ends the span
when the handler's async generator closes, and grpc.aio closes a cancelled stream's generator
outside the RPC's task, sometimes after the span had already gone out unmarked, and always with
a "Failed to detach context" traceback (opentelemetry-python-contrib#2357). gRPC's done
callback fires once per call however it ended, in order with the handler's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..grpc_api.status import cut_by_client

INSTRUMENTATION_SCOPE = "synthqa.server.rpc"


class ServerSpans(grpc.aio.ServerInterceptor):
    def __init__(self, tracer_provider: trace.TracerProvider,
                 untraced_services: Sequence[str] = ()) -> None:
        self._tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE)
        self._untraced = tuple(f"/{service}" for service in untraced_services)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(self._untraced):
            return handler
        # The handler's behaviour is in the one field that matches how it streams.
        traced: Callable[..., Any]
        if handler.response_streaming:
            field = "stream_stream" if handler.request_streaming else "unary_stream"
            traced = self._traced_stream(method, getattr(handler, field))
        else:
            field = "stream_unary" if handler.request_streaming else "unary_unary"
            traced = self._traced_unary(method, getattr(handler, field))
        return handler._replace(**{field: traced})

    def _traced_stream(
        self, method: str,
        stream: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncGenerator[Any, None]],
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncGenerator[Any, None]]:
        """`stream` in a span of its own, ended once gRPC says the call is over."""

        async def traced_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any],
                                ) -> AsyncGenerator[Any, None]:
            call = self._begin(method, context)
            responses = stream(request, context)
            try:
                async for response in responses:
                    yield response
            except (GeneratorExit, asyncio.CancelledError):
                raise
            except BaseException:
                call.handler_ended = True
                raise
            else:
                call.handler_ended = True
            finally:
                # A stream cut at the yield above closes the handler now (its engine work
                # is aborted there), not whenever the garbage collector gets to it.
                await responses.aclose()

        return traced_stream

    def _traced_unary(
        self, method: str,
        unary: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        """`unary` in a span of its own, ended once gRPC says the call is over."""

        async def traced_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = self._begin(method, context)
            try:
                response = await unary(request, context)
            except asyncio.CancelledError:
                raise
            except BaseException:
                call.handler_ended = True
                raise
            call.handler_ended = True
            return response

        return traced_unary

    def _begin(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> _TracedCall:
        carrier = {key: value for key, value in context.invocation_metadata() or ()
                   if isinstance(value, str)}
        parent = propagate.extract(carrier)
        service, _, name = method.lstrip("/").partition("/")
        span = self._tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name,
                        **_peer_attributes(context.peer())})
        # Not detached: grpc.aio runs each call in a task of its own, whose context goes with it.
        otel_context.attach(trace.set_span_in_context(span, parent))
        call = _TracedCall(span, context)

        def over(_: object) -> None:
            # After the handler's own done callbacks, which may say why the call was cut short.
            asyncio.get_running_loop().call_soon(call.end)

        context.add_done_callback(over)  # type: ignore[arg-type] # the stubs' nominal type
        return call


@dataclass
class _TracedCall:
    span: trace.Span
    context: grpc.aio.ServicerContext[Any, Any]
    # The handler returned or raised; False when the call was cut short around it.
    handler_ended: bool = False

    def end(self) -> None:
        if _status_unset(self.span):
            code = self._final_code()
            self.span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                details = self.context.details()
                self.span.set_status(Status(
                    StatusCode.ERROR, f"{code.name}: {details}" if details else code.name))
        self.span.end()

    def _final_code(self) -> grpc.StatusCode:
        # grpc.aio can still say "not cancelled" when a client's cancel landed in its send.
        if self.context.cancelled() or not self.handler_ended:
            return cut_by_client(self.context)[0]
        code = self.context.code()  # None unless a handler or interceptor set one: OK
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def _status_unset(span: trace.Span) -> bool:
    status = getattr(span, "status", None)  # the SDK's spans show theirs
    return status is None or status.status_code is StatusCode.UNSET


def _peer_attributes(peer: str) -> dict[str, str]:
    """ipv4:127.0.0.1:57284 or ipv6:[::1]:57284; nothing for a unix socket."""
    kind, _, address = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or ":" not in address:
        return {}
    host, _, port = address.rpartition(":")
    return {"net.peer.ip": host.strip("[]"), "net.peer.port": port}
