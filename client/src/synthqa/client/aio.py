"""The asyncio client: the one implementation of the calls, their retries, failover and lanes.
The blocking SynthQAClient drives it on an event loop of its own (sync.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from synthqa.contract.event_batches import EVENTS_PER_MESSAGE_KEY
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
    document_parts,
    generate_document_request,
)
from .errors import SynthQAError
from .events import EVENTS_PER_MESSAGE, as_generate_response, events_in
from .lanes import GenerateCall, Lane, LostCall, SharedDocuments, run_lanes
from .options import generation_options
from .retry import DEFAULT_RETRIES, DEFAULT_RETRY_WAIT_SECONDS, ChunkRetries
from .sources import DocumentSource

Request = TypeVar("Request")
Response = TypeVar("Response")


class AsyncSynthQAClient:
    """A connection to a synthqa server, for asyncio programs; SynthQAClient has the same
    methods, blocking.

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
        # The generation streams take events in batches (EventBatch): at saturation, events
        # ready together come in one message, which costs both ends less than one each.
        self._stream_metadata = (*(self._metadata or ()),
                                 (EVENTS_PER_MESSAGE_KEY, str(EVENTS_PER_MESSAGE)))
        # trace: every call gets a client span under the caller's current one, and the server
        # joins the trace (needs the otel extra).
        interceptors = tracing.aio_interceptors() if trace else None
        address, more_options = channel_target(target)
        if credentials.secure:
            self._channel = grpc.aio.secure_channel(
                address, credentials.channel_credentials(),
                options=CHANNEL_OPTIONS + more_options, interceptors=interceptors)
        else:
            self._channel = grpc.aio.insecure_channel(
                address, options=CHANNEL_OPTIONS + more_options, interceptors=interceptors)
        self._stub = pb_grpc.SynthQAServiceStub(self._channel)  # typed as the async stub
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> AsyncSynthQAClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def wait_ready(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                reply = await self._health.Check(READY_CHECK, timeout=READY_CHECK_TIMEOUT_SECONDS)
                if is_serving(reply):
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise not_ready(self.target, within)
            await asyncio.sleep(READY_POLL_SECONDS)

    async def server_info(self) -> pb.GetServerInfoResponse:
        return await self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())

    async def chunk(self, text: str, **options: OptionArgument | None) -> pb.ChunkDocumentResponse:
        request = pb.ChunkDocumentRequest(text=text, options=generation_options(**options))
        return await self._call(self._stub.ChunkDocument, request)

    async def generate_document(
        self, text: str, *, document_id: str = "", chunk_indexes: tuple[int, ...] = (),
        **options: OptionArgument | None,
    ) -> AsyncIterator[pb.GenerateResponse]:
        retries = ChunkRetries(self.retries)
        message = generation_options(**options)
        document: Document | None = retries.sent(
            Document(document_id or DEFAULT_DOCUMENT_ID, text, chunk_indexes))
        while document is not None:
            request = generate_document_request(document, message)
            call = self._stub.GenerateDocument(request, timeout=self.timeout,
                                               metadata=self._stream_metadata)
            try:
                async for reply in call:
                    for event in events_in(as_generate_response(reply)):
                        if (passed := retries.filter(event)) is not None:
                            yield passed
            except grpc.RpcError as error:
                raise SynthQAError.from_rpc_error(error) from None
            finally:
                call.cancel()
            document = next(iter(await self._next_round(retries)), None)

    async def generate(
        self,
        documents: Iterable[Document] | AsyncIterable[Document],
        *,
        streams: int = 1,
        part_chars: int = DEFAULT_PART_CHARS,
        **options: OptionArgument | None,
    ) -> AsyncIterator[pb.GenerateResponse]:
        """Stream documents (a plain or async iterable) in and events out. Documents are read
        lazily, so an iterator of any length works; events for different documents come
        interleaved. Each document is held until it is done, for retries.

        `streams` calls run at once, each taking the next document when it has room: with
        several replicas (several targets or a dns:/// name), each call goes to another
        one. A call that breaks with UNAVAILABLE (a server gone) hands its unfinished chunks
        to the next round, which waits for a SERVING server."""
        if streams < 1:
            raise ValueError("streams must be at least 1")
        retries = ChunkRetries(self.retries)
        source = DocumentSource(documents, on_read=retries.sent)
        message = generation_options(**options)
        # With several calls, each holds no more than the server's per-call window, so the
        # documents spread by where there is room.
        window = ((await self.server_info()).limits.max_in_flight_chunks_per_call
                  if streams > 1 else None)

        def start_call(lane: Lane) -> GenerateCall:
            return self._stub.Generate(_requests(lane, message, part_chars),
                                       timeout=self.timeout, metadata=self._stream_metadata)

        # A server that never answered is down or misnamed: that is reported at once, not
        # waited for; one that broke off after answering is waited for (a restart, a failover).
        answered = False
        while True:
            shared = SharedDocuments(source, window)
            round_answered = False
            # aclosing: a caller that stops early cancels the calls now, not at garbage
            # collection.
            async with contextlib.aclosing(run_lanes(start_call, shared, streams)) as items:
                async for item in items:
                    if isinstance(item, LostCall):
                        for summary in await self._lost(item, retries, answered,
                                                        round_answered):
                            yield summary
                        continue
                    answered = round_answered = True
                    if (passed := retries.filter(item)) is not None:
                        yield passed
            if not retries.pending and source.exhausted:
                return
            source.give_back(retries.next_round(round_answered))
            await asyncio.sleep(retries.pause_seconds)
            await self.wait_ready(within=self.retry_wait)

    async def _lost(self, lost: LostCall, retries: ChunkRetries, answered: bool,
                    round_answered: bool) -> list[pb.GenerateResponse]:
        """A call broke with UNAVAILABLE: its documents' unfinished chunks wait for the next
        round (the summaries of documents with nothing left are returned), unless the loss is
        final and raised."""
        if lost.error.cut_while_sending and not round_answered:
            await self._raise_refusal()
        if not (answered and retries.may_retry_lost_call(round_answered)):
            raise lost.error
        return retries.call_lost(lost.document_ids)

    async def _raise_refusal(self) -> None:
        """A call cut while sending, before the server answered, may have been refused (no
        token, a limit) with a status grpc.aio lost: a unary call, through the same checks,
        raises that refusal; a server gone or busy leaves the lost call as it was."""
        try:
            await self.server_info()
        except SynthQAError as refusal:
            if refusal.code not in (grpc.StatusCode.UNAVAILABLE,
                                    grpc.StatusCode.DEADLINE_EXCEEDED):
                raise refusal from None

    async def _next_round(self, retries: ChunkRetries) -> list[Document]:
        if not retries.pending:
            return []
        await self.wait_ready(within=self.retry_wait)
        return retries.next_round()

    async def _call(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Request, Response], request: Request
    ) -> Response:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise SynthQAError.from_rpc_error(error) from None


async def _requests(
    documents: AsyncIterator[Document], options: pb.GenerationOptions, part_chars: int
) -> AsyncIterator[pb.GenerateRequest]:
    yield pb.GenerateRequest(options=options)
    async for document in documents:
        for part in document_parts(document, part_chars):
            yield part
