"""Protobuf ⇄ domain objects. Nothing else in the server imports the generated messages except
the servicer."""

from __future__ import annotations

from typing import TypeVar

from google.rpc import status_pb2

from synthqa.v1 import synthqa_pb2 as pb

from .chunker import Chunk
from .events import (
    ChunkCompleted,
    ChunkFailed,
    ChunkStarted,
    DocumentCompleted,
    FinishReason,
    GenerationEvent,
    PairGenerated,
)
from .options import GenerationOptions, OptionOverrides
from .service import ChunkedDocument, ServerInfo

Response = TypeVar("Response", pb.GenerateResponse, pb.GenerateDocumentResponse)

_FINISH_REASONS = {
    FinishReason.UNSPECIFIED: pb.FINISH_REASON_UNSPECIFIED,
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.ABORT: pb.FINISH_REASON_ABORT,
    FinishReason.ERROR: pb.FINISH_REASON_ERROR,
}
_OPTION_FIELDS = [
    "num_pairs",
    "max_generation_tokens",
    "temperature",
    "top_p",
    "chunk_overlap_tokens",
    "max_chunk_tokens",
    "seed",
]


def overrides_from_proto(message: pb.GenerationOptions) -> OptionOverrides:
    chosen = {name: getattr(message, name) for name in _OPTION_FIELDS if message.HasField(name)}
    return OptionOverrides(**chosen)


def options_to_proto(options: GenerationOptions) -> pb.GenerationOptions:
    message = pb.GenerationOptions()
    for name in _OPTION_FIELDS:
        value = getattr(options, name)
        if value is not None:
            setattr(message, name, value)
    return message


def chunk_to_proto(chunk: Chunk) -> pb.Chunk:
    return pb.Chunk(
        index=chunk.index,
        text=chunk.text,
        token_count=chunk.token_count,
        char_start=chunk.char_start,
        char_end=chunk.char_end,
    )


def chunked_document_to_proto(chunked: ChunkedDocument, budget: int) -> pb.ChunkDocumentResponse:
    return pb.ChunkDocumentResponse(
        chunks=[chunk_to_proto(c) for c in chunked.chunks],
        token_count=chunked.document.token_count,
        chunk_token_budget=budget,
    )


def server_info_to_proto(info: ServerInfo) -> pb.GetServerInfoResponse:
    limits = info.limits
    return pb.GetServerInfoResponse(
        model=info.model,
        max_model_len=info.max_model_len,
        max_chunk_tokens=info.max_chunk_tokens,
        defaults=options_to_proto(info.defaults),
        version=info.version,
        limits=pb.Limits(
            max_message_bytes=limits.max_message_bytes,
            max_document_chars=limits.max_document_chars,
            max_num_pairs=limits.max_num_pairs,
            max_in_flight_chunks_per_call=limits.max_in_flight_chunks_per_call,
            max_in_flight_chunks=limits.max_in_flight_chunks,
            max_chunks_per_document=limits.max_chunks_per_document,
        ),
        load=pb.ServerLoad(
            active_calls=info.active_calls,
            in_flight_chunks=info.in_flight_chunks,
            engine_requests=info.engine_requests,
        ),
        prompt_template_tokens=info.prompt_template_tokens,
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
                )
            )
        case PairGenerated():
            return response_type(
                qa_pair=pb.QaPair(
                    document_id=event.document_id,
                    chunk_index=event.chunk_index,
                    pair_index=event.pair_index,
                    question=event.question,
                    answer=event.answer,
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
                )
            )
    raise TypeError(f"unknown event {type(event).__name__}")
