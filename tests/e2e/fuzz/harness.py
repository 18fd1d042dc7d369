"""Running streams against the live server: the raw gRPC channel (requests go out as the bytes
wire.py made), one stream run with its end (half-close, hold, deadline, cancellation), and
`Fuzz`, the context of a run: the server's limits, the model, counters, the ledger of
characters held on the server, the checks that the server serves and is idle, and the
verification of each stream against the model."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synthqa.client import SynthQAError
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..serverproc import SERVICE, ServerProcess
from .model import (
    CANCELLED,
    CLEAN_CODES,
    DEADLINE,
    EXHAUSTED,
    INVALID,
    MOST_BYTES_PER_CHARACTER,
    OK,
    Expect,
    Model,
    check_events,
)
from .wire import GENERATE, GENERATE_DOCUMENT, DocumentRequest, End, Message

# One line per stream on stdout (run pytest with -s).
VERBOSE = bool(os.environ.get("SYNTHQA_FUZZ_VERBOSE"))
IDLE_WITHIN = 5.0


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    error: SynthQAError | None
    events: list[pb.GenerateResponse]
    cancelled: bool
    seconds: float


def run_stream(fuzz: Fuzz, method: str, payload: list[bytes] | bytes, end: End) -> Outcome:
    stop = threading.Event()
    ready = threading.Event()
    cancelled = threading.Event()
    holder: list[Any] = []

    def cancel() -> None:
        ready.wait(10)
        cancelled.set()
        holder[0].cancel()

    def requests() -> Iterator[bytes]:
        assert isinstance(payload, list)
        for number, message in enumerate(payload):
            if end.cancel_before_message == number:
                cancel()
                stop.wait(end.deadline)
                return
            yield message
        if end.half_close:
            if end.hold:
                stop.wait(end.hold)
            return
        stop.wait(end.deadline + 10)

    started = time.monotonic()
    if method == GENERATE:
        call = fuzz.generate(requests(), timeout=end.deadline)
    else:
        assert isinstance(payload, bytes)
        call = fuzz.generate_document(payload, timeout=end.deadline)
    holder.append(call)
    ready.set()
    timer = None
    if end.cancel_after_seconds is not None:
        timer = threading.Timer(end.cancel_after_seconds, cancel)
        timer.start()
    events: list[pb.GenerateResponse] = []
    try:
        for event in call:
            events.append(event)
            if end.cancel_after_events is not None and len(events) == end.cancel_after_events:
                cancel()
    except grpc.RpcError:
        pass
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
    code = call.code()
    error = None
    if code is not OK:
        # Details naming another code than the call's (cut here after the server's status
        # arrived) are left out by the client itself.
        error = SynthQAError.from_rpc_error(call)
    return Outcome(code, call.details() or "", error, events, cancelled.is_set(),
                   time.monotonic() - started)


@dataclass(repr=False)
class Running:
    """A stream, run here or in a thread of its own."""

    label: str
    method: str
    payload: Any
    end: End
    expect: Expect
    chars: int
    held_at_start: int
    thread: threading.Thread | None = None
    outcome: Outcome | None = None
    failure: BaseException | None = None
    interval: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<{self.label} stream {id(self):#x}>"


class Fuzz:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.pid = server.process.pid if server.process else 0
        self.channel = grpc.insecure_channel(server.target, options=[
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self.stub = pb_grpc.SynthQAServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.generate = self.channel.stream_stream(
            GENERATE, request_serializer=None, response_deserializer=pb.GenerateResponse.FromString)
        self.generate_document = self.channel.unary_stream(
            GENERATE_DOCUMENT, request_serializer=None,
            response_deserializer=pb.GenerateResponse.FromString)
        self.chunk_raw = self.channel.unary_unary(
            "/synthqa.v1.SynthQAService/ChunkDocument", request_serializer=None,
            response_deserializer=pb.ChunkDocumentResponse.FromString)
        info = self.info()
        self.limits = info.limits
        self.defaults = info.defaults
        self.baseline_calls = info.load.active_calls
        self.model = Model(self)
        self.streams = 0
        self.statuses: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self.chunk_calls: Counter[str] = Counter()
        self.pairs = 0
        self.documents = 0
        self.chunk_failures = 0
        self.longest_idle_wait = 0.0
        self.longest_stream = 0.0
        # Everything that holds document characters on the server: [start, end, chars].
        self.ledger: list[list[float]] = []
        self.lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    def info(self) -> pb.GetServerInfoResponse:
        return self.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)

    def chunk_document(self, text: str, options: pb.GenerationOptions) -> pb.ChunkDocumentResponse:
        entry = self.hold(len(text))
        try:
            for attempt in range(50):
                try:
                    return self.stub.ChunkDocument(
                        pb.ChunkDocumentRequest(text=text, options=options), timeout=60)
                except grpc.RpcError as raised:
                    error = SynthQAError.from_rpc_error(raised)
                    busy = error.quota_violations and error.quota_violations[0].field in (
                        "server memory", "calls per client")
                    if not busy or attempt == 49:
                        raise error from None
                    time.sleep(0.1)
            raise AssertionError("unreachable")
        finally:
            self.release(entry)

    def hold(self, chars: int) -> list[float]:
        entry = [time.monotonic(), math.inf, float(chars)]
        with self.lock:
            self.ledger.append(entry)
        return entry

    def release(self, entry: list[float]) -> None:
        with self.lock:
            entry[1] = time.monotonic()
            horizon = time.monotonic() - 60
            self.ledger = [e for e in self.ledger if e[1] > horizon]

    def others_held(self, entry: list[float]) -> float:
        """Characters that other holders may have held while `entry` ran (ended ones count for
        two more seconds: a cancelled call gives its memory back a moment later)."""
        with self.lock:
            return sum(e[2] for e in self.ledger
                       if e is not entry and e[0] <= entry[1] and e[1] + 2 >= entry[0])

    def check_serving(self) -> None:
        assert self.server.process is not None and self.server.process.poll() is None, \
            f"the server died; see {self.server.log_path}"
        reply = self.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    def wait_idle(self) -> None:
        began = time.monotonic()
        while True:
            load = self.info().load
            if (load.engine_requests == 0 and load.in_flight_chunks == 0
                    and load.held_document_bytes == 0
                    and load.active_calls == self.baseline_calls):
                self.longest_idle_wait = max(self.longest_idle_wait, time.monotonic() - began)
                return
            assert time.monotonic() - began < IDLE_WITHIN, \
                f"not idle {IDLE_WITHIN} s after the streams ended: {load}"
            time.sleep(0.02)

    # Streams

    def prepare(self, label: str, method: str, spec: list[Message] | DocumentRequest,
                end: End) -> Running:
        # What the server may hold of it: a message over the cap never gets past the transport.
        limit = self.limits.max_message_bytes
        if isinstance(spec, DocumentRequest):
            payload: Any = spec.encode(self.limits)
            expect = self.model.predict_document(payload)
            chars = spec.chars(self.limits) if len(payload) <= limit else 0
        else:
            payload = [message.encode(self.limits) for message in spec]
            expect = self.model.predict_generate(payload, end)
            chars = sum(message.chars(self.limits) for message, data in zip(spec, payload,
                                                                            strict=True)
                        if len(data) <= limit)
        held = self.info().load.held_document_bytes
        return Running(label, method, payload, end, expect, chars, held)

    def run(self, running: Running) -> None:
        entry = self.hold(running.chars)
        try:
            running.outcome = run_stream(self, running.method, running.payload, running.end)
        finally:
            self.release(entry)
            running.interval = entry

    def start(self, running: Running) -> Running:
        def work() -> None:
            try:
                self.run(running)
            except BaseException as error:  # reported by finish()
                running.failure = error

        running.thread = threading.Thread(target=work, name=running.label, daemon=True)
        running.thread.start()
        return running

    def finish(self, running: Running) -> None:
        if running.thread is not None:
            running.thread.join(running.end.deadline + 30)
            assert not running.thread.is_alive(), f"{running.label}: the stream hangs"
        if running.failure is not None:
            raise running.failure
        self.verify(running)

    def verify(self, running: Running) -> None:
        out, expect, end = running.outcome, running.expect, running.end
        assert out is not None
        with self.lock:
            self.streams += 1
            self.methods[running.label] += 1
            self.statuses[out.code.name] += 1
            self.longest_stream = max(self.longest_stream, out.seconds)
            self.pairs += sum(e.HasField("qa_pair") for e in out.events)
            self.documents += sum(e.HasField("document_completed") for e in out.events)
            self.chunk_failures += sum(e.HasField("chunk_failed") for e in out.events)
        if VERBOSE:
            print(f"{self.streams:5d} {running.label:22s} {out.code.name:18s} {out.seconds:6.3f} s "
                  f"{len(out.events):3d} events; model: {expect.code.name} {expect.why}",
                  flush=True)
        context = (f"{running.label}: got {out.code.name} ({out.details!r}, "
                   f"{out.error.field_violations if out.error else ()}, "
                   f"{out.error.quota_violations if out.error else ()}) after {out.seconds:.3f} s; "
                   f"the model says {expect.code.name} {expect.detail!r}: {expect.why}")
        assert out.code in CLEAN_CODES, f"unclean status: {context}"
        if out.code is not OK:
            assert out.details.strip(), f"a status without a message: {context}"
            assert "Traceback" not in out.details, context
        allowed = {expect.code}
        if out.cancelled:
            allowed.add(CANCELLED)
        if end.short_deadline:
            allowed.add(DEADLINE)
        memory_may_run_out = ((expect.own_held + self.others_held(running.interval))
                              * MOST_BYTES_PER_CHARACTER + running.held_at_start
                              > self.limits.max_held_document_bytes)
        if memory_may_run_out:
            allowed.add(EXHAUSTED)
        assert out.code in allowed, f"unexpected status: {context}"
        if out.code is INVALID and expect.code is INVALID:
            assert out.error is not None
            assert frozenset(v.field for v in out.error.field_violations) == expect.detail, \
                context
            assert all(v.description for v in out.error.field_violations), context
        if out.code is EXHAUSTED:
            assert out.error is not None
            subject = (out.error.quota_violations[0].field if out.error.quota_violations
                       else None)
            if expect.code is EXHAUSTED and subject == expect.detail:
                pass
            else:
                assert memory_may_run_out and subject == "server memory", context
        try:
            check_events(out.events, expect, complete=out.code is OK)
        except AssertionError as broken:
            raise AssertionError(f"{broken}; {context}") from None
