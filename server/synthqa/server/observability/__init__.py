"""Tracing, metrics and logs, put together once at start-up from the flags and OTEL_* variables."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from opentelemetry.sdk.trace import TracerProvider

from ..pipeline.telemetry import Telemetry
from .call_spans import SpanTelemetry
from .metrics import ServiceMetrics, serve_metrics
from .server_spans import ServerSpans
from .telemetry_group import TelemetryGroup
from .tracing import TracingSettings, start_tracing

log = logging.getLogger(__name__)

# Probes and the reflection service would drown the calls that matter.
_UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")


@dataclass(frozen=True)
class ObservabilitySettings:
    tracing: TracingSettings
    metrics_host: str
    # 0: no metrics endpoint.
    metrics_port: int = 0


class Observability:
    def __init__(self, settings: ObservabilitySettings) -> None:
        self._settings = settings
        self.tracer_provider: TracerProvider | None = start_tracing(settings.tracing)
        self.metrics = ServiceMetrics() if settings.metrics_port else None

    @property
    def engine_traces_endpoint(self) -> str | None:
        return self._settings.tracing.engine_endpoint if self.tracer_provider else None

    def start_metrics_endpoint(self) -> None:
        if self.metrics is None:
            return
        host, port = self._settings.metrics_host, self._settings.metrics_port
        try:
            serve_metrics(host, port)
        except OSError as error:
            raise RuntimeError(f"cannot serve metrics on {host}:{port}: {error}") from None
        log.info("metrics on http://%s:%d/metrics", host, port)

    def telemetry(self, model: str) -> Telemetry:
        members: list[Telemetry] = []
        if self.tracer_provider is not None:
            members.append(SpanTelemetry(self.tracer_provider, model,
                                         engine_traces=self.engine_traces_endpoint is not None))
        if self.metrics is not None:
            members.append(self.metrics)
        if not members:
            return Telemetry()
        return members[0] if len(members) == 1 else TelemetryGroup(members)

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The RPC server spans (W3C traceparent in, the span's context for the handler)."""
        if self.tracer_provider is None:
            return []
        return [ServerSpans(self.tracer_provider, untraced_services=_UNTRACED_SERVICES)]

    def shutdown(self) -> None:
        """Export what is buffered: the process leaves with os._exit, which skips atexit."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
