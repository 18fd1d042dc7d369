"""synthqa's log lines: text (the default) or one JSON object per line for log shippers; inside
a traced call every line carries the call's trace_id and span_id."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from opentelemetry import trace

LOG_FORMATS = ("text", "json")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(trace_suffix)s"
# What LogRecord has of its own; anything else on a record came through `extra=`.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "trace_suffix",
                                                          "trace_id", "span_id"}


class TraceContextFilter(logging.Filter):
    """Stamps each record with the current span's ids (empty outside a traced call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        trace_id = span_id = suffix = ""
        if context.is_valid:
            trace_id = format(context.trace_id, "032x")
            span_id = format(context.span_id, "016x")
            suffix = f" trace_id={trace_id} span_id={span_id}"
        record.__dict__.update(trace_id=trace_id, span_id=span_id, trace_suffix=suffix)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                line[key] = value
        if trace_id := getattr(record, "trace_id", ""):
            line["trace_id"] = trace_id
            line["span_id"] = getattr(record, "span_id", "")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """synthqa's loggers (and anything else that logs through the root logger)."""
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
