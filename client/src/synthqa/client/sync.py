"""Blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from synthqa.contract.options import OptionArgument
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from . import tracing
from .channel import (
    CHANNEL_OPTIONS,
    READY_CHECK,
    READY_CHECK_TIMEOUT_SECONDS,
    READY_POLL_SECONDS,
    Credentials,
    Target,
    channel_target,
    describe_target,
    is_serving,
    not_ready,
)
from .documents import (
    DEFAULT_DOCUMENT_ID,
    DEFAULT_PART_CHARS,
    Document,
    generate_document_request,
    generate_requests,
)
from .errors import SynthQAError
from .events import as_generate_response
from .lanes import LostCall, SharedDocuments, run_lanes
from .options import generation_options
from .retry import DEFAULT_RETRIES, DEFAULT_RETRY_WAIT_SECONDS, ChunkRetries

Request = TypeVar("Request")
Response = TypeVar("Response")


class SynthQAClient:
    """A connection to a synthqa server.

    `timeout` (seconds) is the deadline of each call; None means none. Options not given take
    the server's defaults. Failures raise SynthQAError with the status and field details.
    Chunks that fail with UNAVAILABLE (the server's engine died under them) are asked for
    again, up to `retries` more times, once the server is SERVING (waiting up to
    `retry_wait` seconds); the caller sees each chunk's final outcome only.
    """

    def __init__(
        self, target: Target = "localhost:50051", *, timeout: float | None = None,
        retries: int = DEFAULT_RETRIES, retry_wait: float = DEFAULT_RETRY_WAIT_SECONDS,
        trace: bool = False, credentials: Credentials | None = None,
    ) -> None:
        self.target = describe_target(target)
        self.timeout = timeout
        self.retries = retries
        self.retry_wait = retry_wait
        credentials = credentials or Credentials()
        # Every call but the health check carries the token.
        self._metadata = credentials.call_metadata()
        address, more_options = channel_target(target)
        if credentials.secure:
            channel = grpc.secure_channel(address, credentials.channel_credentials(),
                                          options=CHANNEL_OPTIONS + more_options)
        else:
            channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS + more_options)
        # trace: every call gets a client span under the caller's current one, and the server
        # joins the trace (needs the otel extra).
        self._channel = tracing.traced_channel(channel) if trace else channel
        self._stub = pb_grpc.SynthQAServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __enter__(self) -> SynthQAClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def wait_ready(self, within: float = 120.0) -> None:
        """Block until the server reports SERVING (the engine is up and warm)."""
        deadline = time.monotonic() + within
        while True:
            try:
                reply = self._health.Check(READY_CHECK, timeout=READY_CHECK_TIMEOUT_SECONDS)
                if is_serving(reply):
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise not_ready(self.target, within)
            time.sleep(READY_POLL_SECONDS)

    def server_info(self) -> pb.GetServerInfoResponse:
        return self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())

    def chunk(self, text: str, **options: OptionArgument | None) -> pb.ChunkDocumentResponse:
        request = pb.ChunkDocumentRequest(text=text, options=generation_options(**options))
        return self._call(self._stub.ChunkDocument, request)

    def generate_document(
        self, text: str, *, document_id: str = "", chunk_indexes: tuple[int, ...] = (),
        **options: OptionArgument | None,
    ) -> Iterator[pb.GenerateResponse]:
        """Events for one document, as the server produces them."""
        retries = ChunkRetries(self.retries)
        message = generation_options(**options)
        document: Document | None = retries.sent(
            Document(document_id or DEFAULT_DOCUMENT_ID, text, chunk_indexes))
        while document is not None:
            request = generate_document_request(document, message)
            try:
                events = self._stub.GenerateDocument(request, timeout=self.timeout,
                                                     metadata=self._metadata)
                for event in events:
                    if (passed := retries.filter(as_generate_response(event))) is not None:
                        yield passed
            except grpc.RpcError as error:
                raise SynthQAError.from_rpc_error(error) from None
            # A retry round resends this one document, with only its failed chunks.
            document = next(iter(self._next_round(retries)), None)

    def generate(
        self,
        documents: Iterable[Document],
        *,
        streams: int = 1,
        part_chars: int = DEFAULT_PART_CHARS,
        **options: OptionArgument | None,
    ) -> Iterator[pb.GenerateResponse]:
        """Stream documents in and events out. Documents are read lazily, so an iterator of
        any length works; events for different documents come interleaved. Each document is
        held until it is done, for retries.

        `streams` calls run at once, each taking the next document when it has room: with
        several replicas (several targets or a dns:/// name), each call goes to another
        one. A call that breaks with UNAVAILABLE (a server gone) hands its unfinished chunks
        to the next round, which waits for a SERVING server."""
        if streams < 1:
            raise ValueError("streams must be at least 1")
        retries = ChunkRetries(self.retries)
        rest = retries.track(iter(documents))
        first: list[Document] = []
        message = generation_options(**options)

        def start_call(lane: Iterable[Document]) -> grpc._CallIterator[pb.GenerateResponse]:
            requests = generate_requests(lane, message, part_chars)
            return self._stub.Generate(requests, timeout=self.timeout, metadata=self._metadata)

        # With several calls, each holds no more than the server's per-call window, so the
        # documents spread by where there is room.
        window = (self.server_info().limits.max_in_flight_chunks_per_call
                  if streams > 1 else None)
        # A server that never answered is down or misnamed: that is reported at once, not
        # waited for; one that broke off after answering is waited for (a restart, a failover).
        answered = False
        while True:
            shared = SharedDocuments(first, rest, window)
            round_answered = False
            for item in run_lanes(start_call, shared, streams):
                if isinstance(item, LostCall):
                    if not (answered and retries.may_retry_lost_call(round_answered)):
                        raise item.error
                    yield from retries.call_lost(item.document_ids)
                    continue
                answered = round_answered = True
                if (passed := retries.filter(item)) is not None:
                    yield passed
            first = shared.left_over()
            if not first and not retries.pending and shared.exhausted:
                return
            first += retries.next_round(round_answered)
            time.sleep(retries.pause_seconds)
            self.wait_ready(within=self.retry_wait)

    def _next_round(self, retries: ChunkRetries) -> list[Document]:
        if not retries.pending:
            return []
        self.wait_ready(within=self.retry_wait)
        return retries.next_round()

    def _call(
        self, method: grpc.UnaryUnaryMultiCallable[Request, Response], request: Request
    ) -> Response:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise SynthQAError.from_rpc_error(error) from None
