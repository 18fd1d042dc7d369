"""Tracing configured the OpenTelemetry way: the standard `OTEL_*` variables, read through the
SDK, plus vLLM's `--otlp-traces-endpoint` flag. With nothing set, tracing is off: no provider,
no interceptor, no span objects beyond the API's no-op ones."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from synthqa.client.tracing import PROTOCOLS, resource, span_exporter

from .. import __version__

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "synthqa"
EXPORTERS = ("otlp", "console", "none")


class TracingConfigError(ValueError):
    """The OTEL_* variables or the flag ask for something this server cannot do."""


@dataclass(frozen=True)
class TracingSettings:
    enabled: bool
    exporters: tuple[str, ...] = ()
    protocol: str = "grpc"
    # Where the SDK's OTLP exporter sends; None lets the exporter read OTEL_* itself.
    endpoint: str | None = None
    # What the embedded engine is given as its otlp_traces_endpoint (turns its spans on).
    engine_endpoint: str | None = None


def tracing_settings(env: Mapping[str, str], otlp_traces_endpoint: str | None) -> TracingSettings:
    """Tracing is on when an exporter is named (OTEL_TRACES_EXPORTER otlp or console) or an
    OTLP endpoint is given (variables or flag); OTEL_SDK_DISABLED=true turns it off."""
    if env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return TracingSettings(enabled=False)
    endpoint_given = bool(otlp_traces_endpoint or env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
                          or env.get(OTEL_EXPORTER_OTLP_ENDPOINT))
    named = env.get(OTEL_TRACES_EXPORTER, "").strip()
    exporters = tuple(e.strip() for e in named.split(",") if e.strip()) if named else (
        ("otlp",) if endpoint_given else ())
    unknown = [e for e in exporters if e not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"{OTEL_TRACES_EXPORTER}={named}: unknown exporter {unknown[0]!r}; this server "
            f"knows {', '.join(EXPORTERS)}")
    exporters = tuple(e for e in exporters if e != "none")
    if not exporters:
        return TracingSettings(enabled=False)
    protocol = (env.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
                or env.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc").strip()
    if protocol not in PROTOCOLS:
        raise TracingConfigError(
            f"OTLP protocol {protocol!r} is not supported; use one of {', '.join(PROTOCOLS)}")
    engine_endpoint = None
    if "otlp" in exporters:
        engine_endpoint = otlp_traces_endpoint or _traces_endpoint(env, protocol)
    return TracingSettings(
        enabled=True, exporters=exporters, protocol=protocol,
        endpoint=otlp_traces_endpoint, engine_endpoint=engine_endpoint)


def _traces_endpoint(env: Mapping[str, str], protocol: str) -> str:
    """The URL the SDK's exporter will send traces to, as the engine needs it spelled out."""
    if specific := env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
        return specific
    base = env.get(OTEL_EXPORTER_OTLP_ENDPOINT)
    if base:
        # The SDK appends the signal's path to the shared endpoint for HTTP, not for gRPC.
        return base.rstrip("/") + "/v1/traces" if protocol == "http/protobuf" else base
    return "http://localhost:4318/v1/traces" if protocol == "http/protobuf" else \
        "http://localhost:4317"


def start_tracing(settings: TracingSettings) -> TracerProvider | None:
    """Installs the global tracer provider (the engine's spans then go through it too) and
    prepares the engine's own variables. None when tracing is off."""
    if not settings.enabled:
        return None
    # The sampler comes from OTEL_TRACES_SAMPLER, as the SDK reads it.
    provider = TracerProvider(resource=resource(DEFAULT_SERVICE_NAME, __version__))
    for name in settings.exporters:
        exporter = span_exporter(name, settings.protocol, settings.endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if settings.engine_endpoint:
        # vLLM's engine processes pick their exporter's protocol from this variable alone.
        os.environ.setdefault(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, settings.protocol)
    log.info("tracing on: exporters %s, protocol %s", ",".join(settings.exporters),
             settings.protocol)
    return provider
