"""Servers of their own: health transitions at start, draining on Ctrl-C to the process group,
the engine killed and replaced under open streams, a crash loop, no process left behind. (The
shared session server cannot be stopped mid-session.)"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.client import Document, SynthQAClient, SynthQAError

from ..paths import REPO
from .helpers import SAMPLE, assert_document_complete, by_document
from .serverproc import ServerProcess, alive, assert_all_gone, free_port

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


def watch_health(target: str, seen: queue.Queue, stop: threading.Event,
                 service: str = "synthqa.v1.SynthQAService") -> None:
    with grpc.insecure_channel(target) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service))
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


def test_health_answers_in_time_while_a_maximum_size_document_is_chunked(own_server) -> None:
    process, _ = own_server
    with SynthQAClient(process.target, timeout=600) as client:
        limit = client.server_info().limits.max_document_chars  # the default: 16 million
        text = (SAMPLE * (limit // len(SAMPLE) + 1))[:limit]
        answered: list[float] = []
        failures: list[str] = []
        chunking = threading.Event()

        def check_health() -> None:
            with grpc.insecure_channel(process.target) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                while chunking.is_set():
                    started = time.monotonic()
                    try:
                        health.Check(health_pb2.HealthCheckRequest(), timeout=3)
                        answered.append(time.monotonic() - started)
                    except grpc.RpcError as error:
                        failures.append(f"{error.code()}: {error.details()}")
                    # Often: on a fast machine the chunking takes under 2 s.
                    time.sleep(0.05)

        chunking.set()
        checker = threading.Thread(target=check_health, daemon=True)
        checker.start()
        try:
            chunked = client.chunk(text)
        finally:
            chunking.clear()
            checker.join(10)
    assert sum(len(c.text) for c in chunked.chunks) >= limit
    assert not failures, failures
    # The chunking took long enough that health was asked many times meanwhile.
    assert len(answered) >= 10, answered


def test_sigint_to_the_process_group_drains_in_flight_calls_then_exits_cleanly(
    own_server,
) -> None:
    """What Ctrl-C in a terminal or systemd's stop sends: the whole group, engine included,
    gets the signal, and the engine must outlive the drain."""
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
    # No retries and a deadline inside the test's timeout: a chunk lost in the drain fails
    # here at once, with the server's log of the stop, instead of waiting for a server that
    # is gone.
    with SynthQAClient(process.target, timeout=200, retries=0) as client:
        serve_a_load(client)
        log_before_stop = process.log_path.stat().st_size
        stream = client.generate([Document("drain", SAMPLE)], num_pairs=2, max_chunk_tokens=150)
        for event in stream:
            events.append(event)
            if event.HasField("qa_pair"):
                break
        os.killpg(process.process.pid, signal.SIGINT)
        assert seen.get(timeout=10) == NOT_SERVING, "health flips as soon as shutdown starts"
        # New calls are refused while the in-flight one finishes.
        with SynthQAClient(process.target, timeout=10) as late:
            with pytest.raises(SynthQAError) as refused:
                list(late.generate_document("More text about lighthouses.", num_pairs=1))
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        try:
            events.extend(stream)
        except SynthQAError as error:
            pytest.fail(f"the in-flight call broke in the drain: {error}\n"
                        f"{log_since(process, log_before_stop)[-4000:]}")

    try:
        assert_document_complete(by_document(events)["drain"], num_pairs=2)
    except AssertionError:
        print(log_since(process, log_before_stop)[-4000:])
        raise
    stop_watch.set()
    assert process.process.wait(timeout=120) == 0
    assert_all_gone(children)
    # A clean stop after a load prints no traceback: not the server's, not the engine's, not
    # multiprocessing's resource tracker's (which shares the server's stderr).
    stop_log = log_since(process, log_before_stop)
    assert "Traceback" not in stop_log, stop_log[-4000:]


def log_since(process: ServerProcess, offset: int) -> str:
    with process.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def serve_a_load(client: SynthQAClient) -> None:
    """A few hundred calls of every kind, some generating at once, before the stop."""
    documents = [Document(f"load-{n}", SAMPLE[n * 40:n * 40 + 600]) for n in range(24)]
    finished = sum(event.HasField("document_completed")
                   for event in client.generate(documents, num_pairs=1, streams=4))
    assert finished == len(documents)
    for n in range(120):
        client.server_info()
        client.chunk(SAMPLE[n:n + 400], max_chunk_tokens=64, chunk_overlap_tokens=8)


@pytest.fixture(scope="module")
def supervised_server(own_server):
    # Runs after the shared and the SIGINT server, never beside them. Two restarts allowed: the
    # third death is a crash loop.
    process = ServerProcess(
        port=free_port(), log_path=REPO / "out" / "test-engine-restart.log",
        extra_args=["--engine-max-restarts", "2", "--max-in-flight-chunks-per-call", "4"])
    process.start()
    process.wait_serving()
    yield process
    if process.process and process.process.poll() is None:
        process.stop()


def kill_engine_core(process: ServerProcess) -> list[psutil.Process]:
    """SIGKILL the engine core, as the kernel's OOM killer would; returns the engine's processes
    as they were."""
    engine = [c for c in process.descendants() if c.name().startswith("VLLM::")]
    # After a restart the dead engine's core can linger a moment (a zombie not yet reaped):
    # the running engine's core is the newest live one.
    core = sorted((c for c in engine if "EngineCore" in c.name() and alive(c)),
                  key=lambda c: c.create_time())
    assert core, [(c.name(), c.status()) for c in engine]
    core[-1].kill()
    return engine


def engine_death_documents() -> list[Document]:
    # The first is long (24 chunks, 4 in the engine at a time): whenever the kill lands, some
    # of it is still in the engine.
    return [Document("doc-0", SAMPLE * 3), Document("doc-1", SAMPLE), Document("doc-2", SAMPLE)]


def generate_killing_the_engine(
    process: ServerProcess, documents: list[Document], **client_args
) -> list:
    """Generate over one stream and kill the engine core when the first pair arrives. The
    documents after the first are sent only once the engine is dead, so however late this
    client reads, the death lands mid-stream with work still to do."""
    events = []
    killed = threading.Event()

    def sent_around_the_kill() -> Iterator[Document]:
        yield documents[0]
        killed.wait(timeout=300)
        yield from documents[1:]

    with SynthQAClient(process.target, timeout=600, **client_args) as client:
        for event in client.generate(sent_around_the_kill(), num_pairs=2, max_chunk_tokens=200):
            events.append(event)
            if event.HasField("qa_pair") and sum(e.HasField("qa_pair") for e in events) == 1:
                kill_engine_core(process)
                killed.set()
    return events


def test_engine_death_fails_lost_chunks_in_the_open_stream_and_a_new_engine_takes_over(
    supervised_server,
) -> None:
    process = supervised_server
    seen: queue.Queue = queue.Queue()
    stop_watch = threading.Event()
    threading.Thread(target=watch_health, args=(process.target, seen, stop_watch),
                     daemon=True).start()
    # Liveness ("") stays SERVING through the restart: a probe must not kill a recovering pod.
    liveness: queue.Queue = queue.Queue()
    threading.Thread(target=watch_health, args=(process.target, liveness, stop_watch, ""),
                     daemon=True).start()
    assert seen.get(timeout=10) == SERVING

    documents = engine_death_documents()
    events = generate_killing_the_engine(process, documents, retries=0)

    grouped = by_document(events)
    failures = [f for d in grouped.values() for f in d.failed]
    assert failures, "chunks caught in the engine's death are reported, not dropped"
    for failure in failures:
        assert failure.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "retry" in failure.error.message
    # The stream stayed open: every chunk of every document has exactly one outcome, and the
    # chunks that were not in the dead engine completed on the new one.
    for document_id, document in grouped.items():
        count = document.done[0].chunk_count
        outcomes = sorted([c.chunk_index for c in document.completed]
                          + [f.chunk_index for f in document.failed])
        assert outcomes == list(range(count)), document_id
    assert grouped["doc-2"].completed, "documents after the death are generated"
    assert seen.get(timeout=30) == NOT_SERVING
    assert seen.get(timeout=300) == SERVING
    stop_watch.set()
    assert list(liveness.queue) == [SERVING]
    with SynthQAClient(process.target, timeout=30) as client:
        assert client.server_info().engine_restarts == 1


def test_the_client_retries_chunks_lost_with_the_engine_and_gets_each_once(
    supervised_server,
) -> None:
    documents = engine_death_documents()
    events = generate_killing_the_engine(supervised_server, documents)  # default retries
    grouped = by_document(events)
    assert sorted(grouped) == ["doc-0", "doc-1", "doc-2"]
    for document in grouped.values():
        assert_document_complete(document, num_pairs=2)
    with SynthQAClient(supervised_server.target, timeout=30) as client:
        assert client.server_info().engine_restarts == 2


def test_a_crash_loop_exits_non_zero_and_leaves_no_process(supervised_server) -> None:
    process = supervised_server
    assert process.process is not None
    engine = kill_engine_core(process)  # the third death: past --engine-max-restarts 2
    assert process.process.wait(timeout=120) == 1
    assert_all_gone(engine)


def test_a_server_killed_outright_takes_its_engine_with_it(supervised_server) -> None:
    # After the crash-loop server, never beside it.
    process = ServerProcess(port=free_port(), log_path=REPO / "out" / "test-server-killed.log")
    process.start()
    try:
        process.wait_serving()
        engine = [c for c in process.descendants() if c.name().startswith("VLLM::")]
        assert engine
        assert process.process is not None
        process.process.kill()  # no drain, no clean-up: only the engine's own watch is left
        process.process.wait(timeout=30)
        assert_all_gone(engine)
    finally:
        if process.process and process.process.poll() is None:
            process.stop()
