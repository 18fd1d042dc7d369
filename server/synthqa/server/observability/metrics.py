"""synthqa's own Prometheus metrics, and the endpoint that serves them beside the embedded
engine's `vllm:` metrics (vLLM's stat logger registers those in the same default registry).
Labels are methods, status codes and failure reasons; never ids or text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from synthqa.contract.options import GenerationOptions

from ..pipeline.events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    GenerationEvent,
    RecordGenerated,
)
from ..pipeline.telemetry import CallTelemetry, Telemetry
from ..text.chunker import Chunk

# Chunks take from tens of milliseconds (tiny models) to minutes (long outputs on a big model).
_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)


class ServiceMetrics(Telemetry):
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.documents = Counter(
            "synthqa_documents", "Documents completed (every chunk done or failed)",
            registry=registry)
        self.chunks = Counter(
            "synthqa_chunks", "Chunks finished, by outcome", ["outcome"], registry=registry)
        self.chunk_failures = Counter(
            "synthqa_chunk_failures", "Failed chunks, by reason (a google.rpc code name)",
            ["reason"], registry=registry)
        self.pairs = Counter("synthqa_pairs", "Question-answer pairs streamed",
                             registry=registry)
        self.generated_tokens = Counter(
            "synthqa_generated_tokens", "Tokens the engine generated for chunks",
            registry=registry)
        self.rpcs = Counter("synthqa_rpcs", "RPCs handled, by method and status code",
                            ["method", "code"], registry=registry)
        self.rpc_duration = Histogram(
            "synthqa_rpc_duration_seconds", "RPC duration, by method", ["method"],
            buckets=_SECONDS_BUCKETS, registry=registry)
        self.chunk_duration = Histogram(
            "synthqa_chunk_duration_seconds",
            "From a chunk entering the engine to its last event", buckets=_SECONDS_BUCKETS,
            registry=registry)
        self.time_to_first_pair = Histogram(
            "synthqa_time_to_first_pair_seconds",
            "From a chunk entering the engine to its first pair", buckets=_SECONDS_BUCKETS,
            registry=registry)
        self.queue_wait = Histogram(
            "synthqa_queue_wait_seconds",
            "From a chunk being queued to it entering the engine (waiting for an engine slot)",
            buckets=_SECONDS_BUCKETS, registry=registry)
        self.chunks_in_flight = Gauge(
            "synthqa_chunks_in_flight", "Chunks in the engine now", registry=registry)
        self.active_calls = Gauge("synthqa_active_calls", "Calls open now", registry=registry)

    def watch_load(self, active_calls: Callable[[], int],
                   chunks_in_flight: Callable[[], int]) -> None:
        """Gauges read at scrape time: nothing to update on the hot path."""
        self.active_calls.set_function(active_calls)
        self.chunks_in_flight.set_function(chunks_in_flight)

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        self.rpcs.labels(method, code).inc()
        self.rpc_duration.labels(method).observe(seconds)

    def call(self, options: GenerationOptions) -> CallTelemetry:
        return CallMetrics(self)


class _MetricsHandler(BaseHTTPRequestHandler):
    registry: CollectorRegistry = REGISTRY

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] not in ("/metrics", "/"):
            self.send_error(404, "metrics are at /metrics")
            return
        # Always the classic text format: prometheus_client's OpenMetrics output renames the
        # samples of vLLM's `vllm:` metrics (to `vllm_`) but not their metadata, and a
        # Prometheus that negotiates it stores them under names no vLLM dashboard knows.
        body = generate_latest(self.registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # a line per scrape would drown the server's own log


def serve_metrics(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
    """The /metrics endpoint, on a thread of its own so a busy event loop can't stall scrapes."""
    handler = type("MetricsHandler", (_MetricsHandler,), {"registry": registry})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


class CallMetrics(CallTelemetry):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._queued_at: dict[tuple[str, int], float] = {}
        self._started_at: dict[tuple[str, int], float] = {}
        self._awaiting_first_pair: set[tuple[str, int]] = set()

    def chunk_queued(self, document_id: str, chunk: Chunk) -> Mapping[str, str] | None:
        self._queued_at[(document_id, chunk.index)] = time.monotonic()
        return None

    def event(self, event: GenerationEvent) -> None:
        metrics = self._metrics
        if isinstance(event, RecordGenerated):
            metrics.pairs.inc()
            key = (event.document_id, event.chunk_index)
            if key in self._awaiting_first_pair:
                self._awaiting_first_pair.discard(key)
                metrics.time_to_first_pair.observe(time.monotonic() - self._started_at[key])
        elif isinstance(event, ChunkStarted):
            key = (event.document_id, event.chunk_index)
            now = time.monotonic()
            self._started_at[key] = now
            self._awaiting_first_pair.add(key)
            queued_at = self._queued_at.pop(key, None)
            if queued_at is not None:
                metrics.queue_wait.observe(now - queued_at)
        elif isinstance(event, ChunkCompleted | ChunkFailed):
            key = (event.document_id, event.chunk_index)
            self._awaiting_first_pair.discard(key)
            started_at = self._started_at.pop(key, None)
            if started_at is not None:
                metrics.chunk_duration.observe(time.monotonic() - started_at)
            metrics.generated_tokens.inc(event.generated_token_count)
            if isinstance(event, ChunkCompleted):
                metrics.chunks.labels("completed").inc()
            else:
                metrics.chunks.labels("failed").inc()
                metrics.chunk_failures.labels(event.code.name).inc()
        elif isinstance(event, DocumentCompleted):
            metrics.documents.inc()
