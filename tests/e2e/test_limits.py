"""Limits that keep one client from hurting the others, on a server of its own with small
ones: calls per client, documents per call, a stream left unread, the longest call, and new
documents refused while the server drains. Each is hit and answered as promised, and the
server goes on serving."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from synthqa.client import Document, SynthQAClient, SynthQAError
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..paths import REPO
from .helpers import SAMPLE
from .serverproc import ServerProcess, free_port, serving

pytestmark = pytest.mark.e2e

CALLS_PER_CLIENT = 2
DOCUMENTS_PER_CALL = 3
UNREAD_SECONDS = 3
CALL_SECONDS = 12
# A client window this small makes the server's sends wait at once when nobody reads.
TINY_WINDOW = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]


@pytest.fixture(scope="module")
def limited(tiny_model_path: str) -> Iterator[ServerProcess]:
    process = ServerProcess(
        port=free_port(), log_path=REPO / "out" / "test-limited-server.log",
        extra_args=["--max-calls-per-client", str(CALLS_PER_CLIENT),
                    "--max-documents-per-call", str(DOCUMENTS_PER_CALL),
                    "--max-unread-seconds", str(UNREAD_SECONDS),
                    "--max-call-seconds", str(CALL_SECONDS)])
    yield from serving(process)


def options(**fields: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(options=pb.GenerationOptions(num_pairs=1, **fields))


def document(document_id: str, text: str) -> pb.GenerateRequest:
    return pb.GenerateRequest(document=pb.DocumentPart(document_id=document_id, text=text))


async def held_open(*first: pb.GenerateRequest) -> AsyncIterator[pb.GenerateRequest]:
    """A request stream that sends `first`, then stays open until the call ends."""
    for request in first:
        yield request
    await asyncio.Event().wait()


def server_load(target: str) -> pb.ServerLoad:
    with SynthQAClient(target, timeout=10) as client:
        return client.server_info().load


async def test_a_client_past_its_calls_is_told_to_wait(limited: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(limited.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        open_calls = [stub.Generate(held_open(options()), timeout=60)
                      for _ in range(CALLS_PER_CLIENT)]
        await asyncio.sleep(0.5)
        with SynthQAClient(limited.target, timeout=30, retries=0) as client:
            assert client.server_info().load.active_calls == CALLS_PER_CLIENT
            with pytest.raises(SynthQAError) as refused:
                list(client.generate_document(SAMPLE[:300]))
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.quota_violations[0].field == "calls per client"
        assert refused.value.retry_after == 1.0
        open_calls[0].cancel()
        await asyncio.sleep(0.5)
        with SynthQAClient(limited.target, timeout=60, retries=0) as client:
            events = list(client.generate_document(SAMPLE[:300], num_pairs=1))
        assert events[-1].WhichOneof("event") == "document_completed"
        for call in open_calls[1:]:
            call.cancel()


def test_past_the_documents_of_a_call_the_taken_ones_finish(limited: ServerProcess) -> None:
    documents = [Document(f"d{i}", SAMPLE[300 * i:300 * i + 300]) for i in range(5)]
    with SynthQAClient(limited.target, timeout=120, retries=0) as client:
        events = []
        with pytest.raises(SynthQAError) as ended:
            for event in client.generate(documents, num_pairs=1):
                events.append(event)
    assert ended.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'d3'" in str(ended.value)
    completed = [e.document_completed.document_id for e in events
                 if e.WhichOneof("event") == "document_completed"]
    assert sorted(completed) == ["d0", "d1", "d2"]


async def test_a_stream_left_unread_is_cancelled_and_its_engine_work_aborted(
    limited: ServerProcess
) -> None:
    async with grpc.aio.insecure_channel(limited.target, options=TINY_WINDOW) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        call = stub.Generate(held_open(options(max_chunk_tokens=64, chunk_overlap_tokens=0),
                                       document("flood", SAMPLE * 4)), timeout=60)
        began = time.monotonic()
        # Read nothing: the server's sends wait, the per-call window fills, then the watch
        # cancels the call.
        await asyncio.sleep(UNREAD_SECONDS + 3)
        load = server_load(limited.target)
        assert load.in_flight_chunks == 0 and load.engine_requests == 0
        assert load.active_calls == 0
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            async for _ in call:
                pass
    assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "read nothing" in cut.value.details()
    assert time.monotonic() - began < CALL_SECONDS
    assert "max_unread_seconds" in limited.log_path.read_text()


async def test_a_call_past_the_longest_allowed_is_cancelled(limited: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(limited.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        began = time.monotonic()
        call = stub.Generate(held_open(options()), timeout=60)
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            async for _ in call:
                pass
    assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "max_call_seconds" in cut.value.details()
    assert CALL_SECONDS <= time.monotonic() - began < CALL_SECONDS + 5


async def test_draining_refuses_new_documents_on_open_streams(limited: ServerProcess) -> None:
    """Last in the module: it stops the server."""
    async with grpc.aio.insecure_channel(limited.target) as channel:
        stub = pb_grpc.SynthQAServiceStub(channel)
        call = stub.Generate(held_open(options(), document("early", SAMPLE[:300])), timeout=60)
        events = []
        async for event in call:
            events.append(event)
            if event.WhichOneof("event") == "document_completed":
                assert limited.process is not None
                limited.process.send_signal(signal.SIGTERM)
                break
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for event in call:
                events.append(event)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in ended.value.details()
    assert limited.process is not None and limited.process.wait(timeout=120) == 0
