"""A stand-in synthqa server for synthqa.ray's tests: real gRPC, no engine. It answers each
document of a Generate call with canned events made from the document itself (two chunks,
split at its first paragraph break; two records per chunk, the first citing the chunk's first
characters), and injects faults by document id, on that document's first call only:

- `fail_once`: a chunk fails (INTERNAL, which the client does not retry), so the document
  completes with a failed chunk;
- `kill_once`: the calling process is killed (SIGKILL) before the document is answered, as
  the kernel's OOM killer or a lost node would end a Ray actor mid-shard.

`expected_lines` gives what the CLI's line function makes of a document's canned events."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Collection
from concurrent import futures
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from synthqa.client.channel import READY_CHECK
from synthqa.client.record_lines import Locator, Place, RunShape, Source, record_line
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

RECORDS_PER_CHUNK = 2
CITED_CHARS = 12
INTERNAL = grpc.StatusCode.INTERNAL.value[0]


def chunk_spans(text: str) -> list[tuple[int, int]]:
    """Two chunks: up to the first paragraph break (a PDF's first page), and the rest."""
    cut = text.find("\n\n")
    cut = cut if cut > 0 else len(text) // 2
    return [(0, cut), (cut, len(text))]


def document_events(document_id: str, text: str, *, fail: bool = False
                    ) -> list[pb.GenerateResponse]:
    events = []
    spans = chunk_spans(text)
    for chunk, (start, end) in enumerate(spans):
        events.append(pb.GenerateResponse(chunk_started=pb.ChunkStarted(
            document_id=document_id, chunk_index=chunk, chunk_count=len(spans),
            char_start=start, char_end=end)))
        if fail and chunk == 1:
            events.append(pb.GenerateResponse(chunk_failed=pb.ChunkFailed(
                document_id=document_id, chunk_index=chunk,
                error={"code": INTERNAL, "message": "the stand-in failed this chunk"})))
            continue
        for index in range(RECORDS_PER_CHUNK):
            cited = ([pb.EvidenceSpan(sentence=0, char_start=start,
                                      char_end=min(start + CITED_CHARS, end))]
                     if index == 0 else [])
            record = {"question": f"What is {document_id} about, part {chunk}.{index}?",
                      "answer": f"Answer {chunk}.{index}."}
            events.append(pb.GenerateResponse(record=pb.Record(
                document_id=document_id, chunk_index=chunk, record_index=index,
                json=json.dumps(record), evidence=cited)))
        events.append(pb.GenerateResponse(chunk_completed=pb.ChunkCompleted(
            document_id=document_id, chunk_index=chunk, pair_count=RECORDS_PER_CHUNK)))
    events.append(pb.GenerateResponse(document_completed=pb.DocumentCompleted(
        document_id=document_id, chunk_count=len(spans),
        completed_chunk_count=len(spans) - fail, failed_chunk_count=int(fail),
        pair_count=RECORDS_PER_CHUNK * (len(spans) - fail))))
    return events


def expected_lines(document_id: str, text: str, sha256: str,
                   locator: Locator | None) -> list[dict[str, Any]]:
    spans = chunk_spans(text)
    return [record_line(event.record, Source(document_id, sha256), RunShape("qa", False), text,
                        Place(locator, *spans[event.record.chunk_index]))
            for event in document_events(document_id, text) if event.HasField("record")]


class CannedService(pb_grpc.SynthQAServiceServicer):
    def __init__(self) -> None:
        self.target = ""  # set by start()
        self.fail_once: set[str] = set()
        self.kill_once: set[str] = set()
        # Per document id: how often a call sent it; and the faults injected.
        self.sent: Counter[str] = Counter()
        self.failed: list[str] = []
        self.killed: list[int] = []
        self.generate_calls = 0
        self._lock = threading.Lock()

    def reset(self, *, fail_once: Collection[str] = (), kill_once: Collection[str] = ()) -> None:
        with self._lock:
            self.fail_once, self.kill_once = set(fail_once), set(kill_once)
            self.sent.clear()
            self.failed.clear()
            self.killed.clear()
            self.generate_calls = 0

    def GetServerInfo(self, request: Any, context: Any) -> pb.GetServerInfoResponse:
        return pb.GetServerInfoResponse(
            limits=pb.Limits(max_in_flight_chunks_per_call=8))

    def Generate(self, requests: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            self.generate_calls += 1
        texts: dict[str, list[str]] = {}
        for request in requests:
            if not request.HasField("document"):
                continue
            part = request.document
            texts.setdefault(part.document_id, []).append(part.text)
            if part.more_follows:
                continue
            document_id, text = part.document_id, "".join(texts.pop(part.document_id))
            with self._lock:
                first = self.sent[document_id] == 0
                self.sent[document_id] += 1
                fail = first and document_id in self.fail_once
                kill = first and document_id in self.kill_once
                if fail:
                    self.failed.append(document_id)
            if kill:
                self._kill_caller(context)
                return
            yield from document_events(document_id, text, fail=fail)

    def _kill_caller(self, context: grpc.ServicerContext) -> None:
        """The process at the other end of this call's connection: the one whose socket is
        the call's peer address and is connected to this server."""
        port = int(context.peer().rsplit(":", 1)[1])
        served = int(self.target.rsplit(":", 1)[1])
        for connection in psutil.net_connections(kind="tcp"):
            if (connection.laddr and connection.laddr.port == port and connection.raddr
                    and connection.raddr.port == served and connection.pid
                    and connection.pid != os.getpid()):
                os.kill(connection.pid, signal.SIGKILL)
                with self._lock:
                    self.killed.append(connection.pid)
                return
        raise AssertionError(f"no process holds the caller's port {port}")


def start(service: CannedService, port: int) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_SynthQAServiceServicer_to_server(service, server)
    checker = health.HealthServicer()
    checker.set(READY_CHECK.service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    service.target = f"127.0.0.1:{port}"
    return server
