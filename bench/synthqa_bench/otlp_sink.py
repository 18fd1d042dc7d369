"""Where the `synthqa-traced` arm's server sends its spans: an OTLP/gRPC trace receiver in the
runner's process that counts what it gets and keeps nothing, like a collector's front door."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from .servers import free_port


class _Counting(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        spans = sum(len(scope.spans) for resource in request.resource_spans
                    for scope in resource.scope_spans)
        self._sink.received(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class SpanSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.spans = 0
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Counting(self), self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self, spans: int) -> None:
        with self._lock:
            self.spans += spans

    def stop(self) -> None:
        self._server.stop(0)
