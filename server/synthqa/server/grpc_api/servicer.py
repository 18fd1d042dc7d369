"""The SynthQAService handlers: each turns protobuf into a call on the domain facade and the
domain's answer (or error) back into protobuf and a status. No rule lives here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..pipeline.events import GenerationEvent
from ..pipeline.service import GenerationService
from ..pipeline.stream import (
    GENERATE_DOCUMENT_PATHS,
    GENERATE_PATHS,
    DocumentPart,
    OptionsMessage,
    StreamMessage,
)
from . import convert
from .convert import Response
from .event_batches import events_per_message, messages_of
from .parsing import parsed
from .rpc_scope import AccessEntry, RpcScope

DEFAULT_DOCUMENT_ID = "document"


class SynthQAHandlers(pb_grpc.SynthQAServiceServicer):
    def __init__(self, service: GenerationService, rpc_scope: RpcScope | None = None) -> None:
        self._service = service
        self._rpc = rpc_scope or RpcScope()

    async def GetServerInfo(
        self, request: pb.GetServerInfoRequest,
        context: grpc.aio.ServicerContext[pb.GetServerInfoRequest, pb.GetServerInfoResponse],
    ) -> pb.GetServerInfoResponse:
        async with self._rpc("GetServerInfo", context):
            return convert.server_info_to_proto(self._service.info())
        raise AssertionError("unreachable")  # the scope aborts or re-raises

    async def ChunkDocument(
        self, request: pb.ChunkDocumentRequest,
        context: grpc.aio.ServicerContext[pb.ChunkDocumentRequest, pb.ChunkDocumentResponse],
    ) -> pb.ChunkDocumentResponse:
        async with self._rpc("ChunkDocument", context):
            request = parsed(request)
            overrides = convert.overrides_from_proto(request.options)
            chunked = await self._service.chunk_document(overrides, request.text)
            return convert.chunked_document_to_proto(chunked)
        raise AssertionError("unreachable")  # the scope aborts or re-raises

    async def GenerateDocument(
        self, request: pb.GenerateDocumentRequest,
        context: grpc.aio.ServicerContext[pb.GenerateDocumentRequest, pb.GenerateDocumentResponse],
    ) -> AsyncIterator[pb.GenerateDocumentResponse]:
        async with self._rpc("GenerateDocument", context) as access:
            request = parsed(request)

            async def messages() -> AsyncIterator[StreamMessage]:
                yield OptionsMessage(convert.overrides_from_proto(request.options))
                yield DocumentPart(request.document_id or DEFAULT_DOCUMENT_ID, request.text,
                                   chunk_indexes=request.chunk_indexes)

            batches = self._service.generate_batches(
                messages(), GENERATE_DOCUMENT_PATHS,
                events_per_message(context.invocation_metadata()))
            async with contextlib.aclosing(
                    _sent(batches, pb.GenerateDocumentResponse, access)) as sent:
                async for message in sent:
                    yield message

    async def Generate(
        self, request_iterator: AsyncIterator[pb.GenerateRequest],
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse],
    ) -> AsyncIterator[pb.GenerateResponse]:
        async with self._rpc("Generate", context) as access:

            async def messages() -> AsyncIterator[StreamMessage]:
                async for request in request_iterator:
                    yield convert.stream_message_from_proto(parsed(request))

            batches = self._service.generate_batches(
                messages(), GENERATE_PATHS, events_per_message(context.invocation_metadata()))
            async with contextlib.aclosing(_sent(batches, pb.GenerateResponse, access)) as sent:
                async for message in sent:
                    yield message


async def _sent(
    batches: AsyncGenerator[list[GenerationEvent], None], response_type: type[Response],
    access: AccessEntry,
) -> AsyncGenerator[Response, None]:
    """Each batch of events as messages, counted as they go, and timed while the client
    takes them. Closed early (a call cut), it closes the batches now, which ends the call's
    work, instead of whenever the garbage collector gets to them."""
    async with contextlib.aclosing(batches):
        async for batch in batches:
            for message, events in messages_of(batch, response_type):
                for event in events:
                    access.count(event)
                access.handing_over()
                yield message
                access.handed_over()
