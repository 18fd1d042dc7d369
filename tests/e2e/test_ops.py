"""Operating the server: health, reflection through the real grpcurl, cancellation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.client import Document, SynthQAClient, SynthQAError

from ..paths import REPO
from .helpers import SAMPLE
from .serverproc import ServerProcess

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def grpcurl(server: ServerProcess, *command: str, data: str | None = None) -> str:
    """Run the real grpcurl binary; it learns the API only through server reflection."""
    flags = ["-plaintext", *(["-d", data] if data is not None else [])]
    result = subprocess.run([GRPCURL, *flags, server.target, *command],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_health_reports_serving_for_server_and_service(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "synthqa.v1.SynthQAService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_grpcurl_lists_and_describes_through_reflection(server: ServerProcess) -> None:
    services = grpcurl(server, "list").split()
    assert {"synthqa.v1.SynthQAService", "grpc.health.v1.Health"} <= set(services)
    description = grpcurl(server, "describe", "synthqa.v1.SynthQAService")
    for rpc in ("GetServerInfo", "ChunkDocument", "GenerateDocument", "Generate"):
        assert f"rpc {rpc}" in description
    assert "oneof event" in grpcurl(server, "describe", "synthqa.v1.GenerateResponse")


def test_grpcurl_calls_the_service_with_json(server: ServerProcess) -> None:
    info = json.loads(grpcurl(server, "synthqa.v1.SynthQAService/GetServerInfo"))
    assert info["max_model_len"] == 2048
    request = json.dumps({"document_id": "curl", "text": SAMPLE[:600],
                          "options": {"num_pairs": 2}})
    output = grpcurl(server, "synthqa.v1.SynthQAService/GenerateDocument", data=request)
    decoder, events, position = json.JSONDecoder(), [], 0
    while position < len(output.strip()):
        event, position = decoder.raw_decode(output, position)
        events.append(event)
        while position < len(output) and output[position].isspace():
            position += 1
    pairs = [e["qa_pair"] for e in events if "qa_pair" in e]
    assert len(pairs) == 2 and all(p["document_id"] == "curl" for p in pairs)
    assert "document_completed" in events[-1]


def wait_until_idle(client: SynthQAClient, within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        load = client.server_info().load
        if load.engine_requests == 0 and load.in_flight_chunks == 0 and load.active_calls == 0:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"engine still busy after {within} s: {client.server_info().load}")


def many_documents(count: int = 6) -> list[Document]:
    return [Document(f"cancel-{i}", SAMPLE) for i in range(count)]


def test_cancelling_a_call_frees_the_engine_within_a_second(client: SynthQAClient) -> None:
    stream = client.generate(many_documents(), num_pairs=5, max_chunk_tokens=200)
    for event in stream:
        if event.HasField("qa_pair"):
            break
    load = client.server_info().load
    assert load.engine_requests > 0 and load.active_calls == 1
    stream.close()  # cancels the call
    # Six documents of several chunks each were far from done: only the cancellation can
    # empty the engine this fast. wait_until_idle fails the test after a second.
    wait_until_idle(client, within=1.0)


def test_deadline_frees_the_engine(server: ServerProcess) -> None:
    engine_was_busy = threading.Event()

    def watch_load() -> None:
        with SynthQAClient(server.target, timeout=10) as observer:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not engine_was_busy.is_set():
                if observer.server_info().load.engine_requests > 0:
                    engine_was_busy.set()
                time.sleep(0.02)

    watcher = threading.Thread(target=watch_load)
    watcher.start()
    with SynthQAClient(server.target, timeout=1.5) as short:
        with pytest.raises(SynthQAError) as caught:
            list(short.generate(many_documents(), max_chunk_tokens=200))
    watcher.join()
    assert engine_was_busy.is_set(), "the call never reached the engine"
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    with SynthQAClient(server.target, timeout=30) as client:
        wait_until_idle(client, within=1.0)


def test_a_client_that_dies_mid_stream_frees_the_engine(server: ServerProcess, tmp_path) -> None:
    source = tmp_path / "doc.txt"
    source.write_text(SAMPLE * 3, encoding="utf-8")
    out = tmp_path / "pairs.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "synthqa.client.cli", "--target", server.target, "generate",
         str(source), "--out", str(out), "--max-chunk-tokens", "128", "--no-progress"],
        cwd=REPO,
    )
    # Mid-stream: its first pairs are on disk and the run is not finished, so chunks are in
    # the engine. The file is watched, not the server: on a fast engine the whole job takes
    # about 2 s, about as long as this process's threads were once held off a core by the
    # spinning CPU engine (serverproc.py), which held its GetServerInfo polls.
    partial = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.kill()
    process.wait()
    assert not out.exists(), "the run finished before it was killed"
    with SynthQAClient(server.target, timeout=30) as client:
        wait_until_idle(client, within=1.0)
