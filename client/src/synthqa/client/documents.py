"""Documents and the Generate request stream: options first, then each document, large ones
split into parts that stay well under the message cap."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from synthqa.v1 import synthqa_pb2 as pb

DEFAULT_PART_CHARS = 1 << 20


@dataclass(frozen=True)
class Document:
    """A document to generate from; `document_id` must be unique within one call."""

    document_id: str
    text: str


def generate_requests(
    documents: Iterable[Document], options: pb.GenerationOptions, part_chars: int
) -> Iterator[pb.GenerateRequest]:
    yield pb.GenerateRequest(options=options)
    for document in documents:
        yield from document_parts(document, part_chars)


def document_parts(document: Document, part_chars: int) -> Iterator[pb.GenerateRequest]:
    text = document.text
    for start in range(0, max(len(text), 1), part_chars):
        end = start + part_chars
        yield pb.GenerateRequest(
            document=pb.DocumentPart(
                document_id=document.document_id,
                text=text[start:end],
                more_follows=end < len(text),
            )
        )
