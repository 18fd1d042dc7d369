"""The platform server (tests/e2e/conftest.py), run as a platform team might: Prometheus
metrics on --metrics-port scraped by a real Prometheus, JSON logs, and the trace sampler turned
off through OTEL_TRACES_SAMPLER while the exporter points at a real receiver. Other modules call
it too, so each figure is checked as what this module's one call added."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from synthqa.client import Document, SynthQAClient

from .helpers import SAMPLE
from .otlp_receiver import OtlpReceiver
from .prometheus import PrometheusServer, scraped, value
from .serverproc import ServerProcess

pytestmark = pytest.mark.e2e

# What the call adds to each, by the name of its figure in `generated`.
COUNTERS = {
    "pairs": ("synthqa_pairs_total",),
    "documents": ("synthqa_documents_total",),
    "completed": ("synthqa_chunks_total", 'outcome="completed"'),
    "calls": ("synthqa_rpcs_total", 'method="Generate"', 'code="OK"'),
    "chunks": ("synthqa_chunk_duration_seconds_count",),
}


def metrics_target(server: ServerProcess) -> str:
    port = server.extra_args[server.extra_args.index("--metrics-port") + 1]
    return f"127.0.0.1:{port}"


def promql(name: str, *labels: str) -> str:
    return f"{name}{{{','.join(labels)}}}" if labels else name


@pytest.fixture(scope="module")
def generated(platform_server: ServerProcess) -> dict[str, Any]:
    """One Generate call of two documents: what the client received, the counters before it,
    and the log's own lines from it."""
    before = {key: scraped(metrics_target(platform_server), *counter)
              for key, counter in COUNTERS.items()}
    log_start = platform_server.log_path.stat().st_size
    documents = [Document("first", SAMPLE[:400]), Document("second", SAMPLE[400:1200])]
    with SynthQAClient(platform_server.target, timeout=300, retries=0) as client:
        events = list(client.generate(documents, num_pairs=2))
    kinds = [e.WhichOneof("event") for e in events]
    return {"pairs": kinds.count("qa_pair"), "documents": kinds.count("document_completed"),
            "chunks": kinds.count("chunk_started"), "failed": kinds.count("chunk_failed"),
            "before": before, "log_start": log_start}


def json_lines_since(log_path: Path, start: int) -> list[dict[str, Any]]:
    with log_path.open("rb") as log:
        log.seek(start)
        text = log.read().decode(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_prometheus_scrapes_synthqa_and_engine_metrics(
    platform_server: ServerProcess, generated: dict[str, Any], tmp_path: Path
) -> None:
    assert generated["pairs"] > 0 and generated["documents"] == 2
    added = {"pairs": generated["pairs"], "documents": 2, "calls": 1,
             "completed": generated["chunks"] - generated["failed"],
             "chunks": generated["chunks"]}
    expected = {key: generated["before"][key] + added[key] for key in COUNTERS}
    with PrometheusServer([metrics_target(platform_server)], workdir=tmp_path) as prometheus:
        prometheus.targets_up()
        pairs = prometheus.wait_for(promql(*COUNTERS["pairs"]),
                                    lambda r: bool(r) and value(r) == expected["pairs"])
        assert value(pairs) == expected["pairs"]
        for key, counter in COUNTERS.items():
            assert value(prometheus.query(promql(*counter))) == expected[key], key
        # The engine's own metrics, from vLLM's stat logger, on the same endpoint.
        engine = prometheus.query('{__name__=~"vllm:.*"}')
        assert engine, "no vllm: metric was scraped"
        assert {"vllm:num_requests_running", "vllm:generation_tokens_total"} <= {
            series["metric"]["__name__"] for series in engine}


def test_always_off_sampler_exports_no_span(
    generated: dict[str, Any], quiet_receiver: OtlpReceiver
) -> None:
    assert generated["chunks"] > 0
    # The server's batch processor exports every 0.1 s: anything sampled would be here.
    assert quiet_receiver.spans() == []


def test_json_logs_carry_an_access_line_per_call(
    platform_server: ServerProcess, generated: dict[str, Any]
) -> None:
    # The line is written as the call ends, which can be just after the client's last event.
    deadline = time.monotonic() + 10
    while True:
        lines = json_lines_since(platform_server.log_path, generated["log_start"])
        access = [line for line in lines if line["logger"] == "synthqa.access"
                  and line.get("rpc_method") == "Generate"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(access) == 1
    (line,) = access
    assert line["code"] == "OK"
    assert line["documents"] == generated["documents"]
    assert line["pairs"] == generated["pairs"]
    assert line["peer"].startswith("ipv4:127.0.0.1")
    assert line["duration_seconds"] > 0
    # Unsampled, the call still has a trace context, and its lines carry it.
    assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16
