"""Builds request messages; shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from grpc_health.v1 import health_pb2

from synthqa.v1 import synthqa_pb2 as pb

# Documents above this many characters go in several parts, each well under the message cap.
DEFAULT_PART_CHARS = 1 << 20
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Readiness: the server reports SERVING for its service once the engine is up and warm.
READY_CHECK = health_pb2.HealthCheckRequest(service="synthqa.v1.SynthQAService")
READY_CHECK_TIMEOUT_SECONDS = 2.0
READY_POLL_SECONDS = 0.2


def is_serving(reply: health_pb2.HealthCheckResponse) -> bool:
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def not_ready(target: str, within: float) -> TimeoutError:
    return TimeoutError(f"{target} did not become SERVING within {within} s")


CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
]


@dataclass(frozen=True)
class Document:
    """A document to generate from; `document_id` must be unique within one call."""

    document_id: str
    text: str


def generation_options(
    *,
    num_pairs: int | None = None,
    max_generation_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    chunk_overlap_tokens: int | None = None,
    max_chunk_tokens: int | None = None,
    seed: int | None = None,
) -> pb.GenerationOptions:
    """Options with only the given fields set; the server fills in the rest."""
    chosen = {
        "num_pairs": num_pairs,
        "max_generation_tokens": max_generation_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "chunk_overlap_tokens": chunk_overlap_tokens,
        "max_chunk_tokens": max_chunk_tokens,
        "seed": seed,
    }
    return pb.GenerationOptions(**{k: v for k, v in chosen.items() if v is not None})


def generate_requests(
    documents: Iterable[Document], options: pb.GenerationOptions, part_chars: int
) -> Iterator[pb.GenerateRequest]:
    """Options first, then each document, large ones split into parts."""
    yield pb.GenerateRequest(options=options)
    for document in documents:
        yield from document_parts(document, part_chars)


def document_parts(document: Document, part_chars: int) -> Iterator[pb.GenerateRequest]:
    text = document.text
    starts = range(0, max(len(text), 1), part_chars)
    for start in starts:
        end = start + part_chars
        yield pb.GenerateRequest(
            document=pb.DocumentPart(
                document_id=document.document_id,
                text=text[start:end],
                more_follows=end < len(text),
            )
        )
