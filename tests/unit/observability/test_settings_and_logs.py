"""When tracing is on, where the engine's spans go, and what a log line carries."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from synthqa.server.observability.logs import JsonFormatter, TraceContextFilter
from synthqa.server.observability.tracing import TracingConfigError, tracing_settings


def test_nothing_set_means_tracing_off() -> None:
    assert not tracing_settings({}, None).enabled


@pytest.mark.parametrize(("env", "flag", "engine_endpoint"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, None, "http://collector:4317"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, None, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317"}, None, "http://traces:4317"),
    ({}, "collector:4317", "collector:4317"),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, None, "http://localhost:4317"),
])
def test_an_otlp_destination_turns_on_synthqa_and_engine_spans(
    env: dict[str, str], flag: str | None, engine_endpoint: str
) -> None:
    settings = tracing_settings(env, flag)
    assert settings.enabled and settings.exporters == ("otlp",)
    assert settings.engine_endpoint == engine_endpoint


def test_console_exporter_traces_synthqa_only() -> None:
    settings = tracing_settings({"OTEL_TRACES_EXPORTER": "console"}, None)
    assert settings.enabled and settings.engine_endpoint is None


@pytest.mark.parametrize("env", [
    {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
    {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
])
def test_disabled_or_none_wins_over_an_endpoint(env: dict[str, str]) -> None:
    assert not tracing_settings(env, "collector:4317").enabled


@pytest.mark.parametrize("env", [{"OTEL_TRACES_EXPORTER": "zipkin"},
                                 {"OTEL_TRACES_EXPORTER": "otlp",
                                  "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}])
def test_what_the_server_cannot_do_is_refused_at_start_up(env: dict[str, str]) -> None:
    with pytest.raises(TracingConfigError):
        tracing_settings(env, None)


def log_line(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("synthqa.access", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    TraceContextFilter().filter(record)
    return record


def test_a_line_inside_a_span_carries_its_ids_in_text_and_json() -> None:
    with TracerProvider().get_tracer("test").start_as_current_span("call") as span:
        record = log_line("Generate done", pairs=4)
    context = span.get_span_context()
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    assert record.trace_suffix == f" trace_id={trace_id} span_id={span_id}"  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == trace_id and line["span_id"] == span_id
    assert line["message"] == "Generate done" and line["pairs"] == 4
    assert line["logger"] == "synthqa.access" and line["level"] == "INFO"


def test_a_line_outside_any_call_has_no_ids() -> None:
    line = json.loads(JsonFormatter().format(log_line("started")))
    assert "trace_id" not in line
