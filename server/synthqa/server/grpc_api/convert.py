"""Protobuf ⇄ domain objects. Only the gRPC face (this package) imports the generated
messages."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from google.rpc import status_pb2

from synthqa.contract.options import OPTIONS, GenerationOptions
from synthqa.contract.wire import options_from_message, options_message
from synthqa.v1 import synthqa_pb2 as pb

from ..pipeline.chunking import ChunkedDocument
from ..pipeline.errors import InvalidArgument
from ..pipeline.events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    FinishReason,
    GenerationEvent,
    RecordCounts,
    RecordGenerated,
    StopReason,
)
from ..pipeline.options import Overrides
from ..pipeline.service import ServerInfo
from ..pipeline.stream import DocumentPart, OptionsMessage
from ..text.chunker import Chunk

Response = TypeVar("Response", pb.GenerateResponse, pb.GenerateDocumentResponse)

_FINISH_REASONS = {
    FinishReason.UNSPECIFIED: pb.FINISH_REASON_UNSPECIFIED,
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.ABORT: pb.FINISH_REASON_ABORT,
    FinishReason.ERROR: pb.FINISH_REASON_ERROR,
}


_STOP_REASONS = {
    StopReason.COMPLETE: pb.STOP_REASON_COMPLETE,
    StopReason.TARGET_MET: pb.STOP_REASON_TARGET_MET,
    StopReason.PATIENCE: pb.STOP_REASON_PATIENCE,
    StopReason.INVALID_FRACTION: pb.STOP_REASON_INVALID_FRACTION,
    StopReason.MAX_PASSES: pb.STOP_REASON_MAX_PASSES,
}


def overrides_from_proto(message: pb.GenerationOptions) -> Overrides:
    # The names come from the declarations, which a test matches to the proto's fields.
    return options_from_message(message)


def options_to_proto(options: GenerationOptions) -> pb.GenerationOptions:
    return options_message({spec.name: getattr(options, spec.name) for spec in OPTIONS})


def stream_message_from_proto(request: pb.GenerateRequest) -> OptionsMessage | DocumentPart:
    kind = request.WhichOneof("request")
    if kind == "options":
        return OptionsMessage(overrides_from_proto(request.options))
    if kind == "document":
        part = request.document
        return DocumentPart(part.document_id, part.text, part.more_follows, part.chunk_indexes)
    raise InvalidArgument.single("document", "a message must carry options or a document")


def chunk_to_proto(chunk: Chunk) -> pb.Chunk:
    return pb.Chunk(
        index=chunk.index,
        text=chunk.text,
        token_count=chunk.token_count,
        char_start=chunk.char_start,
        char_end=chunk.char_end,
    )


def chunked_document_to_proto(chunked: ChunkedDocument) -> pb.ChunkDocumentResponse:
    return pb.ChunkDocumentResponse(
        chunks=[chunk_to_proto(c) for c in chunked.chunks],
        token_count=chunked.token_count,
        chunk_token_budget=chunked.chunk_token_budget,
    )


def server_info_to_proto(info: ServerInfo) -> pb.GetServerInfoResponse:
    return pb.GetServerInfoResponse(
        model=info.model,
        max_model_len=info.max_model_len,
        max_chunk_tokens=info.max_chunk_tokens,
        defaults=options_to_proto(info.defaults),
        version=info.version,
        limits=pb.Limits(**info.limits.as_dict()),
        load=pb.ServerLoad(
            active_calls=info.active_calls,
            in_flight_chunks=info.in_flight_chunks,
            engine_requests=info.engine_requests,
            held_document_bytes=info.held_document_bytes,
        ),
        prompt_template_tokens=info.prompt_template_tokens,
        engine_restarts=info.engine_restarts,
        engine_layout=pb.EngineLayout(**dataclasses.asdict(info.engine_layout)),
        adapters=list(info.adapters),
        chat_template=(pb.ChatTemplate(template=info.chat_template.template,
                                       special_tokens=dict(info.chat_template.special_tokens))
                       if info.chat_template is not None else None),
    )


def event_to_proto(
    event: GenerationEvent, response_type: type[Response] = pb.GenerateResponse  # type: ignore[assignment]
) -> Response:
    """The event as `response_type`: GenerateResponse, or GenerateDocumentResponse, which has
    the same fields."""
    match event:
        case ChunkStarted():
            return response_type(
                chunk_started=pb.ChunkStarted(
                    document_id=event.document_id,
                    chunk_index=event.chunk_index,
                    chunk_count=event.chunk_count,
                    token_count=event.token_count,
                    char_start=event.char_start,
                    char_end=event.char_end,
                    pass_index=event.pass_index,
                )
            )
        case RecordGenerated():
            pair = None
            if event.question is not None and event.answer is not None:
                pair = pb.QaPair(
                    document_id=event.document_id,
                    chunk_index=event.chunk_index,
                    pair_index=event.record_index,
                    question=event.question,
                    answer=event.answer,
                )
            if event.as_pair:
                return response_type(qa_pair=pair)
            return response_type(
                record=pb.Record(
                    document_id=event.document_id,
                    chunk_index=event.chunk_index,
                    record_index=event.record_index,
                    json=event.json,
                    qa_pair=pair,
                    evidence=[pb.EvidenceSpan(sentence=span.sentence, char_start=span.char_start,
                                              char_end=span.char_end)
                              for span in event.evidence],
                    rating=event.rating,
                    rating_reason=event.rating_reason,
                    pass_index=event.pass_index,
                    cached=event.cached,
                )
            )
        case ChunkCompleted():
            return response_type(
                chunk_completed=pb.ChunkCompleted(
                    document_id=event.document_id,
                    chunk_index=event.chunk_index,
                    prompt_token_count=event.prompt_token_count,
                    generated_token_count=event.generated_token_count,
                    finish_reason=_FINISH_REASONS[event.finish_reason],
                    pair_count=event.pair_count,
                    record_counts=_counts(event.counts),
                    pass_index=event.pass_index,
                    cached=event.cached,
                )
            )
        case ChunkFailed():
            return response_type(
                chunk_failed=pb.ChunkFailed(
                    document_id=event.document_id,
                    chunk_index=event.chunk_index,
                    error=status_pb2.Status(code=int(event.code), message=event.message),
                    pair_count=event.pair_count,
                    generated_token_count=event.generated_token_count,
                    finish_reason=_FINISH_REASONS[event.finish_reason],
                    record_counts=_counts(event.counts),
                    pass_index=event.pass_index,
                )
            )
        case DocumentCompleted():
            return response_type(
                document_completed=pb.DocumentCompleted(
                    document_id=event.document_id,
                    chunk_count=event.chunk_count,
                    completed_chunk_count=event.completed_chunk_count,
                    failed_chunk_count=event.failed_chunk_count,
                    pair_count=event.pair_count,
                    token_count=event.token_count,
                    record_counts=_counts(event.counts),
                    stop_reason=_STOP_REASONS[event.stop_reason],
                    pass_count=event.pass_count,
                    cached_chunk_count=event.cached_chunk_count,
                )
            )
    raise TypeError(f"unknown event {type(event).__name__}")


def _counts(counts: RecordCounts) -> pb.RecordCounts:
    return pb.RecordCounts(generated=counts.generated, invalid=counts.invalid,
                           dropped_by_judge=counts.dropped_by_judge, duplicates=counts.duplicates)
