"""asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
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
    document_parts,
    generate_document_request,
)
from .errors import SynthQAError
from .events import as_generate_response
from .options import generation_options
from .retry import DEFAULT_RETRIES, DEFAULT_RETRY_WAIT_SECONDS, ChunkRetries

Request = TypeVar("Request")
Response = TypeVar("Response")


class AsyncSynthQAClient:
    """The asyncio twin of SynthQAClient: the same methods, awaited."""

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
                                               metadata=self._metadata)
            try:
                async for event in call:
                    if (passed := retries.filter(as_generate_response(event))) is not None:
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
        part_chars: int = DEFAULT_PART_CHARS,
        **options: OptionArgument | None,
    ) -> AsyncIterator[pb.GenerateResponse]:
        """Stream documents (a plain or async iterable) in and events out over one call (and
        a call per retry round, as SynthQAClient.generate: a call that breaks with
        UNAVAILABLE after the server answered hands its unfinished chunks, and the documents
        not yet sent, to the next round, which waits for a SERVING server)."""
        retries = ChunkRetries(self.retries)
        source = _DocumentSource(documents)
        first: deque[Document] = deque()
        # A server that never answered is down or misnamed: that is reported at once.
        answered = False

        async def round_documents() -> AsyncIterator[Document]:
            while first:
                yield first.popleft()  # already tracked: sent in an earlier round
            while (document := await source.next()) is not None:
                yield retries.sent(document)

        while True:
            round_answered = False
            try:
                # aclosing: a caller that stops early cancels the call now, not at garbage
                # collection.
                async with contextlib.aclosing(
                        self._generate_once(round_documents(), part_chars, options)) as events:
                    async for event in events:
                        answered = round_answered = True
                        if (passed := retries.filter(event)) is not None:
                            yield passed
            except SynthQAError as error:
                if not (error.code == grpc.StatusCode.UNAVAILABLE and answered
                        and retries.may_retry_lost_call(round_answered)):
                    raise
                for summary in retries.call_lost(retries.unfinished):
                    yield summary
                # A call that broke early may not have taken every document waiting here; each
                # is tracked, so call_lost has put it in the next round already.
                first.clear()
            if not first and not retries.pending and source.exhausted:
                return
            first.extend(retries.next_round(round_answered))
            await asyncio.sleep(retries.pause_seconds)
            await self.wait_ready(within=self.retry_wait)

    async def _next_round(self, retries: ChunkRetries) -> list[Document]:
        if not retries.pending:
            return []
        await self.wait_ready(within=self.retry_wait)
        return retries.next_round()

    async def _generate_once(
        self,
        documents: AsyncIterable[Document],
        part_chars: int,
        options: dict[str, OptionArgument | None],
    ) -> AsyncGenerator[pb.GenerateResponse, None]:
        failures: list[Exception] = []

        async def requests() -> AsyncIterator[pb.GenerateRequest]:
            yield pb.GenerateRequest(options=generation_options(**options))
            try:
                async for document in documents:
                    for part in document_parts(document, part_chars):
                        yield part
            except Exception as error:
                # gRPC would only cancel the call: keep the cause to raise it to the caller.
                failures.append(error)
                raise

        call = self._stub.Generate(requests(), timeout=self.timeout, metadata=self._metadata)
        try:
            async for event in call:
                yield event
        except grpc.RpcError as error:
            if failures:
                raise failures[0] from None
            raise SynthQAError.from_rpc_error(error) from None
        except asyncio.CancelledError:
            # grpc.aio cancels the call locally when the request iterator fails; unless our
            # own task is being cancelled, that failure is what the caller must see.
            task = asyncio.current_task()
            if failures and task is not None and task.cancelling() == 0:
                raise failures[0] from None
            raise
        finally:
            call.cancel()

    async def _call(
        self, method: grpc.aio.UnaryUnaryMultiCallable[Request, Response], request: Request
    ) -> Response:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise SynthQAError.from_rpc_error(error) from None


class _DocumentSource:
    """The caller's documents, read one at a time by each round's call in turn. A read cut
    short by its call's cancellation is not lost: the read goes on, shielded, and the next
    reader gets its document."""

    def __init__(self, documents: Iterable[Document] | AsyncIterable[Document]) -> None:
        self._async = documents.__aiter__() if isinstance(documents, AsyncIterable) else None
        self._sync = iter(documents) if not isinstance(documents, AsyncIterable) else None
        self._reading: asyncio.Future[Document | None] | None = None
        self.exhausted = False

    async def next(self) -> Document | None:
        """The next document, or None at the end."""
        if self.exhausted:
            return None
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        document = await asyncio.shield(self._reading)
        self._reading = None
        if document is None:
            self.exhausted = True
        return document

    async def _read(self) -> Document | None:
        if self._async is not None:
            return await anext(self._async, None)
        assert self._sync is not None
        return next(self._sync, None)
