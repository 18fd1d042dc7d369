"""The Generate stream protocol, in domain terms: options first, then documents, each whole or
in parts. Both generation RPCs speak it; GenerateDocument is a stream of one document."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field

from .assembler import DocumentAssembler, FieldPaths, WholeDocument
from .budget import DocumentMemory
from .errors import InvalidArgument
from .options import Overrides


@dataclass(frozen=True)
class OptionsMessage:
    """The call's options; must come first, and only once."""

    overrides: Overrides = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentPart:
    """A document, or one part of it when `more_follows` is set."""

    document_id: str
    text: str
    more_follows: bool = False
    # Only these chunks of the document; empty for all of them. Any sequence: a request's
    # repeated field is checked (bounded) before it is copied.
    chunk_indexes: Sequence[int] = ()


StreamMessage = OptionsMessage | DocumentPart


GENERATE_PATHS = FieldPaths()
GENERATE_DOCUMENT_PATHS = FieldPaths(document="")


async def read_options(
    messages: AsyncIterator[StreamMessage], paths: FieldPaths
) -> Overrides | None:
    """The first message's options; None for a stream that ended before sending anything."""
    first = await anext(messages, None)
    if first is None:
        return None
    if not isinstance(first, OptionsMessage):
        raise InvalidArgument.single(
            paths.options, "the first message of a Generate stream must carry options "
            "(send an empty GenerationOptions for the defaults)")
    return first.overrides


async def whole_documents(
    messages: AsyncIterator[StreamMessage],
    paths: FieldPaths,
    max_document_chars: int,
    memory: DocumentMemory,
    max_chunk_indexes: int = 20_000,
) -> AsyncGenerator[WholeDocument, None]:
    """Each document as its last part arrives; checks the protocol and that every document
    was finished when the stream ends. A document's characters stay counted in `memory` until
    the consumer asks for the next one (or closes this generator): that is while it is chunked
    and its chunks wait for the engine."""
    assembler = DocumentAssembler(max_document_chars, paths, memory, max_chunk_indexes)
    try:
        async for message in messages:
            if isinstance(message, OptionsMessage):
                raise InvalidArgument.single(
                    paths.options, "options may only come in the first message of the stream")
            document = assembler.add_part(message.document_id, message.text,
                                          message.more_follows, message.chunk_indexes)
            if document is not None:
                try:
                    yield document
                finally:
                    memory.give_back(document.held_bytes)
        assembler.close()
    finally:
        assembler.release()
