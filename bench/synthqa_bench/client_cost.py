"""The clients' own CPU per 1,000 events, with the model taken out: a stand-in server (its own
process) answers every document of a Generate call with canned events as fast as the client
reads them, and the client process's CPU time (all its threads) is divided by the events it
delivered. Sync and asyncio clients, one and several streams, measured in turn in one run.

    make bench-client [BENCH_ARGS="--documents 400 --repeats 5"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from synthqa.client import AsyncSynthQAClient, Document, SynthQAClient
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

RESULTS = Path(__file__).resolve().parents[1] / "results"
CHUNKS_PER_DOCUMENT = 4
RECORDS_PER_CHUNK = 5
WINDOW = 8
RECORD_JSON = json.dumps({"question": "What does the keeper light at dusk?" * 2,
                          "answer": "The lamp, after trimming its wick and cleaning the glass."})


def _document_events(document_id: str) -> list[pb.GenerateResponse]:
    events = []
    for chunk in range(CHUNKS_PER_DOCUMENT):
        events.append(pb.GenerateResponse(chunk_started=pb.ChunkStarted(
            document_id=document_id, chunk_index=chunk, chunk_count=CHUNKS_PER_DOCUMENT,
            token_count=400)))
        for index in range(RECORDS_PER_CHUNK):
            events.append(pb.GenerateResponse(record=pb.Record(
                document_id=document_id, chunk_index=chunk, record_index=index,
                json=RECORD_JSON)))
        events.append(pb.GenerateResponse(chunk_completed=pb.ChunkCompleted(
            document_id=document_id, chunk_index=chunk, generated_token_count=300,
            pair_count=RECORDS_PER_CHUNK)))
    events.append(pb.GenerateResponse(document_completed=pb.DocumentCompleted(
        document_id=document_id, chunk_count=CHUNKS_PER_DOCUMENT,
        completed_chunk_count=CHUNKS_PER_DOCUMENT,
        pair_count=CHUNKS_PER_DOCUMENT * RECORDS_PER_CHUNK)))
    return events


EVENTS_PER_DOCUMENT = len(_document_events("d"))


class _CannedService(pb_grpc.SynthQAServiceServicer):
    async def GetServerInfo(self, request: Any, context: Any) -> pb.GetServerInfoResponse:
        return pb.GetServerInfoResponse(limits=pb.Limits(max_in_flight_chunks_per_call=WINDOW))

    async def Generate(self, requests: AsyncIterator[pb.GenerateRequest],
                       context: Any) -> AsyncIterator[pb.GenerateResponse]:
        async for request in requests:
            if request.HasField("document") and not request.document.more_follows:
                for event in _document_events(request.document.document_id):
                    yield event


def _serve(port: Any) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_SynthQAServiceServicer_to_server(_CannedService(), server)
        checker = health.aio.HealthServicer()
        await checker.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(checker, server)
        port.value = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await server.wait_for_termination()
    asyncio.run(main())


def _documents(count: int) -> Iterator[Document]:
    for n in range(count):
        yield Document(f"doc-{n}", "The keeper climbs the stairs at dusk. " * 8)


def _run_sync(target: str, documents: int, streams: int) -> int:
    with SynthQAClient(target, retries=0) as client:
        return sum(1 for _ in client.generate(_documents(documents), streams=streams))


def _run_async(target: str, documents: int, streams: int) -> int:
    async def run() -> int:
        async with AsyncSynthQAClient(target, retries=0) as client:
            kwargs = {"streams": streams} if streams > 1 else {}
            return sum([1 async for _ in client.generate(_documents(documents), **kwargs)])
    return asyncio.run(run())


ARMS: dict[str, Callable[[str, int], int]] = {
    "sync, 1 stream": lambda target, n: _run_sync(target, n, 1),
    "sync, 2 streams": lambda target, n: _run_sync(target, n, 2),
    "asyncio, 1 stream": lambda target, n: _run_async(target, n, 1),
    "asyncio, 2 streams": lambda target, n: _run_async(target, n, 2),
}


def measure(target: str, arm: str, documents: int) -> float:
    """CPU milliseconds of this process per 1,000 events delivered."""
    start = time.process_time()
    events = ARMS[arm](target, documents)
    spent = time.process_time() - start
    expected = documents * EVENTS_PER_DOCUMENT
    if events != expected:
        raise RuntimeError(f"{arm}: {events} events delivered, expected {expected}")
    return spent * 1000 / (events / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--label", default="", help="a name for this run in the results")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")  # no grpc state inherited by a fork
    port = spawn.Value("i", 0)
    server = spawn.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        while not port.value:
            time.sleep(0.05)
        target = f"127.0.0.1:{port.value}"
        figures: dict[str, list[float]] = {arm: [] for arm in args.arms}
        measure(target, args.arms[0], args.documents // 4)  # warm: imports, connections
        # Arms interleaved, repeat by repeat: a noisy neighbour hits every arm alike.
        for _ in range(args.repeats):
            for arm in args.arms:
                figures[arm].append(measure(target, arm, args.documents))
    finally:
        server.kill()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    report = {"run": stamp, "label": args.label, "documents": args.documents,
              "events_per_document": EVENTS_PER_DOCUMENT,
              "cpu_ms_per_1000_events": {arm: {"median": statistics.median(values),
                                                "min": min(values), "max": max(values)}
                                         for arm, values in figures.items()}}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"client-cost-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"client CPU ms per 1,000 events ({args.documents} documents, "
          f"{EVENTS_PER_DOCUMENT} events each; median [min, max] of {args.repeats}):")
    for arm, values in figures.items():
        print(f"  {arm:20} {statistics.median(values):7.1f}  "
              f"[{min(values):.1f}, {max(values):.1f}]")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
