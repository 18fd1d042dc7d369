"""Start-up and shutdown of a server of its own: health transitions, draining on SIGTERM, and
no process left behind. (The shared session server cannot be stopped mid-session.)"""

from __future__ import annotations

import queue
import signal
import threading
import time

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.client import Document, SynthQAClient, SynthQAError

from ..paths import REPO
from .helpers import SAMPLE, assert_document_complete, by_document
from .serverproc import ServerProcess, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def own_server(server: ServerProcess):
    # Depends on the shared server only so the two never start at the same time.
    process = ServerProcess(port=free_port(), log_path=REPO / "out" / "test-lifecycle-server.log",
                            extra_args=["--shutdown-grace", "120"])
    process.start()
    statuses = process.wait_serving()
    yield process, statuses
    if process.process and process.process.poll() is None:
        process.stop()


def watch_health(target: str, seen: queue.Queue, stop: threading.Event) -> None:
    with grpc.insecure_channel(target) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="synthqa.v1.SynthQAService"))
        try:
            for reply in stream:
                seen.put(reply.status)
                if stop.is_set():
                    break
        except grpc.RpcError:
            seen.put("closed")


def test_start_reports_not_serving_until_the_engine_is_warm(own_server) -> None:
    _, statuses = own_server
    # None: port not open yet (the engine starts before the gRPC server).
    assert statuses[-1] == SERVING
    assert NOT_SERVING in statuses, statuses
    assert statuses.index(NOT_SERVING) < statuses.index(SERVING)


def test_sigterm_drains_in_flight_calls_then_exits_cleanly(own_server) -> None:
    process, _ = own_server
    assert process.process is not None
    children = process.descendants()
    assert children, "the engine core runs in a child process"
    seen: queue.Queue = queue.Queue()
    stop_watch = threading.Event()
    watcher = threading.Thread(target=watch_health, args=(process.target, seen, stop_watch),
                               daemon=True)
    watcher.start()
    assert seen.get(timeout=10) == SERVING

    events = []
    with SynthQAClient(process.target, timeout=300) as client:
        stream = client.generate([Document("drain", SAMPLE)], num_pairs=2, max_chunk_tokens=150)
        for event in stream:
            events.append(event)
            if event.HasField("qa_pair"):
                break
        process.process.send_signal(signal.SIGTERM)
        assert seen.get(timeout=10) == NOT_SERVING, "health flips as soon as shutdown starts"
        # New calls are refused while the in-flight one finishes.
        with SynthQAClient(process.target, timeout=10) as late:
            with pytest.raises(SynthQAError) as refused:
                list(late.generate_document("More text about lighthouses.", num_pairs=1))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        events.extend(stream)

    assert_document_complete(by_document(events)["drain"], num_pairs=2)
    stop_watch.set()
    assert process.process.wait(timeout=120) == 0
    deadline = time.monotonic() + 10
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
        assert time.monotonic() < deadline, "child processes outlived the server"
        time.sleep(0.1)


@pytest.fixture
def doomed_server(own_server):
    # Runs after the shared and the SIGTERM server, never beside them.
    process = ServerProcess(port=free_port(), log_path=REPO / "out" / "test-dead-engine.log")
    process.start()
    process.wait_serving()
    yield process
    if process.process and process.process.poll() is None:
        process.stop()


def test_engine_death_fails_chunks_reports_not_serving_and_exits(doomed_server) -> None:
    process = doomed_server
    assert process.process is not None
    children = process.descendants()
    seen: queue.Queue = queue.Queue()
    stop_watch = threading.Event()
    threading.Thread(target=watch_health, args=(process.target, seen, stop_watch),
                     daemon=True).start()
    assert seen.get(timeout=10) == SERVING

    events = []
    with SynthQAClient(process.target, timeout=120) as client:
        stream = client.generate([Document("doomed", SAMPLE * 4)], num_pairs=5,
                                 max_chunk_tokens=200)
        try:
            for event in stream:
                events.append(event)
                if event.HasField("qa_pair") and not any(
                        e.HasField("qa_pair") for e in events[:-1]):
                    engine_core = [c for c in children if "EngineCore" in " ".join(
                        [c.name(), *c.cmdline()])]
                    assert engine_core, [c.cmdline() for c in children]
                    engine_core[0].kill()
        except SynthQAError as error:
            assert error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    failures = [e.chunk_failed for e in events if e.HasField("chunk_failed")]
    assert failures, "chunks caught in the engine's death are reported, not dropped"
    assert all(f.error.code == grpc.StatusCode.UNAVAILABLE.value[0] for f in failures)
    assert seen.get(timeout=30) == NOT_SERVING
    stop_watch.set()
    assert process.process.wait(timeout=60) == 1, "a dead engine makes the server exit non-zero"
    deadline = time.monotonic() + 10
    while leftovers := [c for c in children
                        if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, f"processes outlived the server: {leftovers}"
        time.sleep(0.1)
