"""The SynthQAService handlers: each turns protobuf into a call on the domain facade and the
domain's answer (or error) back into protobuf and a status. No rule lives here."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..pipeline.errors import ServiceError
from ..pipeline.service import GenerationService
from ..pipeline.stream import (
    GENERATE_DOCUMENT_PATHS,
    GENERATE_PATHS,
    DocumentPart,
    OptionsMessage,
    StreamMessage,
)
from . import convert
from .parsing import parsed
from .status import internal_status, to_grpc_status

log = logging.getLogger(__name__)

DEFAULT_DOCUMENT_ID = "document"


class SynthQAHandlers(pb_grpc.SynthQAServiceServicer):
    def __init__(self, service: GenerationService) -> None:
        self._service = service

    async def GetServerInfo(
        self, request: pb.GetServerInfoRequest,
        context: grpc.aio.ServicerContext[pb.GetServerInfoRequest, pb.GetServerInfoResponse],
    ) -> pb.GetServerInfoResponse:
        return convert.server_info_to_proto(self._service.info())

    async def ChunkDocument(
        self, request: pb.ChunkDocumentRequest,
        context: grpc.aio.ServicerContext[pb.ChunkDocumentRequest, pb.ChunkDocumentResponse],
    ) -> pb.ChunkDocumentResponse:
        async with _status_on_error(context):
            request = parsed(request)
            overrides = convert.overrides_from_proto(request.options)
            chunked = await self._service.chunk_document(overrides, request.text)
            return convert.chunked_document_to_proto(chunked)
        raise AssertionError("unreachable")  # _status_on_error aborts or re-raises

    async def GenerateDocument(
        self, request: pb.GenerateDocumentRequest,
        context: grpc.aio.ServicerContext[pb.GenerateDocumentRequest, pb.GenerateDocumentResponse],
    ) -> AsyncIterator[pb.GenerateDocumentResponse]:
        async with _status_on_error(context):
            request = parsed(request)

            async def messages() -> AsyncIterator[StreamMessage]:
                yield OptionsMessage(convert.overrides_from_proto(request.options))
                yield DocumentPart(request.document_id or DEFAULT_DOCUMENT_ID, request.text,
                                   chunk_indexes=tuple(request.chunk_indexes))

            async for event in self._service.generate(messages(), GENERATE_DOCUMENT_PATHS):
                yield convert.event_to_proto(event, pb.GenerateDocumentResponse)

    async def Generate(
        self, request_iterator: AsyncIterator[pb.GenerateRequest],
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse],
    ) -> AsyncIterator[pb.GenerateResponse]:
        async with _status_on_error(context):

            async def messages() -> AsyncIterator[StreamMessage]:
                async for request in request_iterator:
                    yield convert.stream_message_from_proto(parsed(request))

            async for event in self._service.generate(messages(), GENERATE_PATHS):
                yield convert.event_to_proto(event)


@contextlib.asynccontextmanager
async def _status_on_error(context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
    try:
        yield
    except ServiceError as error:
        await context.abort_with_status(to_grpc_status(error))
    except grpc.aio.AbortError:
        raise
    except Exception:
        log.exception("unexpected error in a call")
        await context.abort_with_status(internal_status("internal server error"))
