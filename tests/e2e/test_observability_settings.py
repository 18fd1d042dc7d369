"""A server of its own, run as a platform team might: Prometheus metrics on --metrics-port
scraped by a real Prometheus, JSON logs, and the trace sampler turned off through
OTEL_TRACES_SAMPLER while the exporter points at a real receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthqa.client import Document, SynthQAClient

from ..paths import REPO
from .conftest import tracing_environment
from .helpers import SAMPLE
from .otlp_receiver import OtlpReceiver, receiving
from .prometheus import PrometheusServer, value
from .serverproc import ServerProcess, free_port, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quiet_receiver() -> Iterator[OtlpReceiver]:
    yield from receiving()


@pytest.fixture(scope="module")
def observed_server(tiny_model_path: str, quiet_receiver: OtlpReceiver) -> Iterator[ServerProcess]:
    process = ServerProcess(
        port=free_port(), log_path=REPO / "out" / "test-observed-server.log",
        extra_args=["--metrics-port", str(free_port()), "--log-format", "json"],
        extra_env=tracing_environment(quiet_receiver.endpoint, OTEL_TRACES_SAMPLER="always_off"))
    yield from serving(process)


def metrics_target(server: ServerProcess) -> str:
    port = server.extra_args[server.extra_args.index("--metrics-port") + 1]
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def generated(observed_server: ServerProcess) -> dict[str, Any]:
    """One Generate call of two documents; what the client received."""
    documents = [Document("first", SAMPLE[:400]), Document("second", SAMPLE[400:1200])]
    with SynthQAClient(observed_server.target, timeout=300, retries=0) as client:
        events = list(client.generate(documents, num_pairs=2))
    kinds = [e.WhichOneof("event") for e in events]
    return {"pairs": kinds.count("qa_pair"), "documents": kinds.count("document_completed"),
            "chunks": kinds.count("chunk_started"),
            "failed": kinds.count("chunk_failed")}


def test_prometheus_scrapes_synthqa_and_engine_metrics(
    observed_server: ServerProcess, generated: dict[str, Any], tmp_path: Path
) -> None:
    assert generated["pairs"] > 0
    with PrometheusServer([metrics_target(observed_server)], workdir=tmp_path) as prometheus:
        prometheus.targets_up()
        pairs = prometheus.wait_for("synthqa_pairs_total",
                                    lambda r: bool(r) and value(r) == generated["pairs"])
        assert value(pairs) == generated["pairs"]
        assert value(prometheus.query("synthqa_documents_total")) == generated["documents"] == 2
        completed = prometheus.query('synthqa_chunks_total{outcome="completed"}')
        assert value(completed) == generated["chunks"] - generated["failed"]
        calls = prometheus.query('synthqa_rpcs_total{method="Generate",code="OK"}')
        assert value(calls) == 1
        histogram = prometheus.query("synthqa_chunk_duration_seconds_count")
        assert value(histogram) == generated["chunks"]
        # The engine's own metrics, from vLLM's stat logger, on the same endpoint.
        engine = prometheus.query('{__name__=~"vllm:.*"}')
        assert engine, "no vllm: metric was scraped"
        assert {"vllm:num_requests_running", "vllm:generation_tokens_total"} <= {
            series["metric"]["__name__"] for series in engine}


def test_always_off_sampler_exports_no_span(
    observed_server: ServerProcess, generated: dict[str, Any], quiet_receiver: OtlpReceiver
) -> None:
    assert generated["chunks"] > 0
    # The server's batch processor exports every 0.1 s: anything sampled would be here.
    assert quiet_receiver.spans() == []


def test_json_logs_carry_an_access_line_per_call(
    observed_server: ServerProcess, generated: dict[str, Any]
) -> None:
    lines = [json.loads(line) for line in observed_server.log_path.read_text().splitlines()
             if line.startswith("{")]
    assert lines, "no JSON log line"
    access = [line for line in lines if line["logger"] == "synthqa.access"
              and line.get("rpc_method") == "Generate"]
    assert len(access) == 1
    (line,) = access
    assert line["code"] == "OK"
    assert line["documents"] == generated["documents"]
    assert line["pairs"] == generated["pairs"]
    assert line["peer"].startswith("ipv4:127.0.0.1")
    assert line["duration_seconds"] > 0
    # Unsampled, the call still has a trace context, and its lines carry it.
    assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16
