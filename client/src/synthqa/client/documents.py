"""Documents and the Generate request stream: options first, then each document, large ones
split into parts that stay well under the message cap."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from synthqa.v1 import synthqa_pb2 as pb

DEFAULT_PART_CHARS = 1 << 20
# The id the server gives a GenerateDocument call's document when the client gives none.
DEFAULT_DOCUMENT_ID = "document"


@dataclass(frozen=True)
class Document:
    """A document to generate from; `document_id` must be unique within one call.
    `chunk_indexes` picks chunks to generate (as an earlier call numbered them); empty for
    all."""

    document_id: str
    text: str
    chunk_indexes: tuple[int, ...] = ()


def generate_requests(
    documents: Iterable[Document], options: pb.GenerationOptions, part_chars: int
) -> Iterator[pb.GenerateRequest]:
    yield pb.GenerateRequest(options=options)
    for document in documents:
        yield from document_parts(document, part_chars)


def generate_document_request(
    document: Document, options: pb.GenerationOptions
) -> pb.GenerateDocumentRequest:
    return pb.GenerateDocumentRequest(
        document_id=document.document_id, text=document.text,
        chunk_indexes=document.chunk_indexes, options=options)


def document_parts(document: Document, part_chars: int) -> Iterator[pb.GenerateRequest]:
    text = document.text
    for start in range(0, max(len(text), 1), part_chars):
        end = start + part_chars
        yield pb.GenerateRequest(
            document=pb.DocumentPart(
                document_id=document.document_id,
                text=text[start:end],
                more_follows=end < len(text),
                chunk_indexes=document.chunk_indexes if start == 0 else (),
            )
        )
