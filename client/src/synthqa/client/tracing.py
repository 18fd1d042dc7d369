"""OpenTelemetry for the client (the `synthqa-client[otel]` extra): the gRPC interceptors that
put each call in the caller's trace and send `traceparent` to the server, and a tracer provider
built from the standard OTEL_* variables for programs (the CLI) that have none of their own.
The server builds its provider from the same pieces."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import grpc

EXTRA_HINT = "tracing needs the otel extra: pip install 'synthqa-client[otel]'"
PROTOCOLS = ("grpc", "http/protobuf")


def _instrumentation() -> Any:
    try:
        from opentelemetry.instrumentation import grpc as instrumentation
    except ImportError as error:
        raise ImportError(EXTRA_HINT) from error
    return instrumentation


def _not_health(details: Any) -> bool:
    # Readiness polls would each make a span of their own.
    return not str(getattr(details, "method", "")).startswith("/grpc.health.v1.Health/")


def aio_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Client spans for the asyncio channel, under the caller's current span."""
    interceptors: list[grpc.aio.ClientInterceptor] = _instrumentation().aio_client_interceptors(
        filter_=_not_health)
    return interceptors


def span_exporter(name: str, protocol: str, endpoint: str | None = None) -> Any:
    """An SDK span exporter: `otlp` over `protocol`, or `console`. With no endpoint, the OTLP
    exporters read OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT themselves."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    # vLLM's --otlp-traces-endpoint takes a bare host:port and means plaintext.
    insecure = True if endpoint and "://" not in endpoint else None
    return GrpcExporter(endpoint=endpoint, insecure=insecure)


def otlp_protocol() -> str:
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip()
    if protocol not in PROTOCOLS:
        raise ValueError(f"OTLP protocol {protocol!r} is not supported; use one of "
                         f"{', '.join(PROTOCOLS)}")
    return protocol


def resource(default_service_name: str, version: str | None = None) -> Any:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name."""
    from opentelemetry.sdk.resources import Resource

    attributes = {"service.version": version or _client_version()}
    named_in_variables = "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not os.environ.get("OTEL_SERVICE_NAME") and not named_in_variables:
        attributes["service.name"] = default_service_name
    return Resource.create(attributes)


def provider_from_environment(default_service_name: str) -> Any:
    """A tracer provider, installed globally, exporting as OTEL_TRACES_EXPORTER says (otlp
    by default, console, or none); None when OTEL_SDK_DISABLED is true or the exporter is none.
    The sampler comes from OTEL_TRACES_SAMPLER, as the SDK reads it."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise ImportError(EXTRA_HINT) from error
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
             if n.strip() and n.strip() != "none"]
    if not names:
        return None
    protocol = otlp_protocol()
    provider = TracerProvider(resource=resource(default_service_name))
    for name in names:
        if name not in ("otlp", "console"):
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}")
        provider.add_span_processor(BatchSpanProcessor(span_exporter(name, protocol)))
    trace.set_tracer_provider(provider)
    return provider


@contextlib.contextmanager
def command_span(name: str) -> Iterator[str]:
    """A span around a whole command, current while it runs; yields its trace id."""
    from opentelemetry import trace

    with trace.get_tracer("synthqa.client").start_as_current_span(name) as span:
        yield format(span.get_span_context().trace_id, "032x")


def _client_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("synthqa-client")
    except PackageNotFoundError:
        return "unknown"
