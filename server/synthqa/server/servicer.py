"""The gRPC face of the service: protobuf in, domain calls, protobuf and status codes out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from . import convert
from .assembler import DocumentAssembler, validate_document_id
from .errors import InvalidArgument, ServiceError
from .planner import GenerationPlan
from .service import QAService
from .session import GenerateSession
from .status import internal_status, to_grpc_status

log = logging.getLogger(__name__)

DEFAULT_DOCUMENT_ID = "document"


class SynthQAServicer(pb_grpc.SynthQAServiceServicer):
    def __init__(self, service: QAService) -> None:
        self._service = service

    async def GetServerInfo(
        self, request: pb.GetServerInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServerInfoResponse:
        return convert.server_info_to_proto(self._service.info())

    async def ChunkDocument(
        self, request: pb.ChunkDocumentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChunkDocumentResponse:
        async with _status_on_error(context):
            self._service.check_available()
            async with self._service.call():
                plan = self._service.plan(convert.overrides_from_proto(request.options))
                self._service.check_document_size(request.text, "text")
                chunked = await self._service.chunk(request.text, plan, "text")
                return convert.chunked_document_to_proto(chunked, plan.chunk_token_budget)
        raise AssertionError("unreachable")  # _status_on_error aborts or re-raises

    async def GenerateDocument(
        self, request: pb.GenerateDocumentRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateDocumentResponse]:
        async with _status_on_error(context):
            self._service.check_available()
            async with self._service.call():
                plan = self._service.plan(convert.overrides_from_proto(request.options))
                document_id = request.document_id or DEFAULT_DOCUMENT_ID
                validate_document_id(document_id, "document_id")
                self._service.check_document_size(request.text, "text")
                chunked = await self._service.chunk(request.text, plan, "text")
                async with self._service.session(plan) as session:

                    async def feed() -> None:
                        await session.add_document(
                            document_id, chunked.document.token_count, chunked.chunks
                        )
                        session.close_input()

                    async with _background(feed(), session):
                        async for event in session.events():
                            yield convert.event_to_proto(event, pb.GenerateDocumentResponse)

    async def Generate(
        self, request_iterator: AsyncIterator[pb.GenerateRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        async with _status_on_error(context):
            self._service.check_available()
            async with self._service.call():
                first = await anext(aiter(request_iterator), None)
                if first is None:
                    return  # the client sent nothing: nothing to do
                if not first.HasField("options"):
                    raise InvalidArgument.single(
                        "options", "the first message of a Generate stream must carry options "
                        "(send an empty GenerationOptions for the defaults)"
                    )
                plan = self._service.plan(convert.overrides_from_proto(first.options))
                async with self._service.session(plan) as session:
                    reader = self._read_documents(request_iterator, session, plan)
                    async with _background(reader, session):
                        async for event in session.events():
                            yield convert.event_to_proto(event)

    async def _read_documents(
        self,
        requests: AsyncIterator[pb.GenerateRequest],
        session: GenerateSession,
        plan: GenerationPlan,
    ) -> None:
        assembler = DocumentAssembler(self._service.limits.max_document_chars)
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "options":
                raise InvalidArgument.single(
                    "options", "options may only come in the first message of the stream"
                )
            if kind != "document":
                raise InvalidArgument.single("document", "a message must carry a document")
            part = request.document
            text = assembler.add_part(part.document_id, part.text, part.more_follows)
            if text is None:
                continue
            chunked = await self._service.chunk(text, plan, "document.text")
            await session.add_document(part.document_id, chunked.document.token_count,
                                       chunked.chunks)
        assembler.close()
        session.close_input()


@contextlib.asynccontextmanager
async def _background(
    work: Coroutine[Any, Any, None], session: GenerateSession
) -> AsyncIterator[None]:
    """Run `work` (feeding documents in) beside the event stream; its error ends the stream."""

    async def guarded() -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            session.fail(error)

    task = asyncio.create_task(guarded())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        work.close()  # a no-op once it ran; stops a "never awaited" warning if it did not


@contextlib.asynccontextmanager
async def _status_on_error(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    try:
        yield
    except ServiceError as error:
        await context.abort_with_status(to_grpc_status(error))
    except grpc.aio.AbortError:
        raise
    except DecodeError as error:
        # Typically a string field that is not valid UTF-8, from a client in another language.
        problem = InvalidArgument.single("request", f"a message could not be parsed: {error}")
        await context.abort_with_status(to_grpc_status(problem))
    except Exception:
        log.exception("unexpected error in a call")
        await context.abort_with_status(internal_status("internal server error"))
