"""The wire, by hand: what a stream sends, described compactly (hypothesis prints these values
on a failure) and encoded byte by byte, so that invalid UTF-8 (unpaired surrogates), garbage,
unknown fields and messages past the server's limits reach the server as sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from synthqa.v1 import synthqa_pb2 as pb

GENERATE = "/synthqa.v1.SynthQAService/Generate"
GENERATE_DOCUMENT = "/synthqa.v1.SynthQAService/GenerateDocument"
NORMAL_DEADLINE = 30.0


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 and int64 go out as ten bytes, as protobuf does
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, data: bytes) -> bytes:
    return key(number, 2) + varint(len(data)) + data


def utf8(text: str) -> bytes:
    """UTF-8, except that unpaired surrogates go out as their (invalid) three bytes."""
    return text.encode("utf-8", "surrogatepass")


def short(text: str, keep: int = 40) -> str:
    return repr(text) if len(text) <= 2 * keep else f"{text[:keep]!r}...<{len(text)} chars>"


# What a stream sends: messages described compactly (hypothesis prints them on a failure) ----

@dataclass(frozen=True)
class Txt:
    text: str

    def value(self, limits: pb.Limits) -> str:
        return self.text

    def __repr__(self) -> str:
        return short(self.text)


# Sizes relative to the server's limits, so the strategies need no server to exist.
HUGE_SIZES: dict[str, Callable[[pb.Limits], int]] = {
    "third": lambda limits: limits.max_document_chars // 3,
    "0.6": lambda limits: limits.max_document_chars * 6 // 10,
    "limit-1": lambda limits: limits.max_document_chars - 1,
    "limit": lambda limits: limits.max_document_chars,
    "limit+1": lambda limits: limits.max_document_chars + 1,
    "message+1": lambda limits: limits.max_message_bytes + 1,
}


@dataclass(frozen=True)
class Huge:
    pattern: str
    size: str

    def value(self, limits: pb.Limits) -> str:
        length = HUGE_SIZES[self.size](limits)
        return (self.pattern * (length // len(self.pattern) + 1))[:length]

    def __repr__(self) -> str:
        return f"Huge({self.pattern!r}, {self.size!r})"


Text = Txt | Huge


@dataclass(frozen=True)
class Opts:
    """GenerateRequest{options}."""

    fields: tuple[tuple[str, int | float | str], ...] = ()

    def payload(self) -> bytes:
        return pb.GenerationOptions(**dict(self.fields)).SerializeToString()

    def encode(self, limits: pb.Limits) -> bytes:
        return length_delimited(1, self.payload())

    def chars(self, limits: pb.Limits) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Opts({', '.join(f'{k}={v!r}' for k, v in self.fields)})"


def document_part_fields(document_id: Text, text: Text, chunk_indexes: tuple[int, ...],
                         packed: bool, limits: pb.Limits) -> tuple[bytes, bytes, bytes]:
    ident = utf8(document_id.value(limits))
    body = utf8(text.value(limits))
    if packed:
        indexes = (length_delimited(4, b"".join(varint(i) for i in chunk_indexes))
                   if chunk_indexes else b"")
    else:
        indexes = b"".join(key(4, 0) + varint(i) for i in chunk_indexes)
    return (length_delimited(1, ident) if ident else b"",
            length_delimited(2, body) if body else b"", indexes)


@dataclass(frozen=True)
class Part:
    """GenerateRequest{document: DocumentPart}."""

    document_id: Text
    text: Text
    more_follows: bool = False
    chunk_indexes: tuple[int, ...] = ()
    packed: bool = True

    def encode(self, limits: pb.Limits) -> bytes:
        ident, body, indexes = document_part_fields(
            self.document_id, self.text, self.chunk_indexes, self.packed, limits)
        more = key(3, 0) + varint(1) if self.more_follows else b""
        return length_delimited(2, ident + body + more + indexes)

    def chars(self, limits: pb.Limits) -> int:
        return len(self.text.value(limits))

    def __repr__(self) -> str:
        extra = ", more" if self.more_follows else ""
        extra += f", idx={self.chunk_indexes!r}" if self.chunk_indexes else ""
        extra += "" if self.packed else ", unpacked"
        return f"Part({self.document_id!r}, {self.text!r}{extra})"


@dataclass(frozen=True)
class Raw:
    """Any bytes as a message: garbage, an empty message, an unknown field."""

    data: bytes

    def encode(self, limits: pb.Limits) -> bytes:
        return self.data

    def chars(self, limits: pb.Limits) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Raw({self.data!r})"


@dataclass(frozen=True)
class Concat:
    """Two encodings in one message: options and a document together, an unknown field."""

    first: Message
    second: Message

    def encode(self, limits: pb.Limits) -> bytes:
        return self.first.encode(limits) + self.second.encode(limits)

    def chars(self, limits: pb.Limits) -> int:
        return self.first.chars(limits) + self.second.chars(limits)

    def __repr__(self) -> str:
        return f"{self.first!r}+{self.second!r}"


Message = Opts | Part | Raw | Concat


@dataclass(frozen=True)
class DocumentRequest:
    """A GenerateDocumentRequest, by hand."""

    document_id: Text
    text: Text
    options: Opts | None
    chunk_indexes: tuple[int, ...] = ()
    extra: bytes = b""

    def encode(self, limits: pb.Limits) -> bytes:
        ident, body, indexes = document_part_fields(
            self.document_id, self.text, self.chunk_indexes, True, limits)
        options = length_delimited(3, self.options.payload()) if self.options else b""
        return ident + body + options + indexes + self.extra

    def chars(self, limits: pb.Limits) -> int:
        return len(self.text.value(limits))


@dataclass(frozen=True)
class End:
    """How the client ends its side: half-close (after `hold` seconds), or never; a deadline;
    a cancellation after some events, some seconds, or before sending message i."""

    half_close: bool = True
    hold: float = 0.0
    deadline: float = NORMAL_DEADLINE
    cancel_after_events: int | None = None
    cancel_after_seconds: float | None = None
    cancel_before_message: int | None = None

    @property
    def cancels(self) -> bool:
        return (self.cancel_after_events is not None or self.cancel_after_seconds is not None
                or self.cancel_before_message is not None)

    @property
    def short_deadline(self) -> bool:
        return self.deadline < NORMAL_DEADLINE

    def __repr__(self) -> str:
        fields = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                  if getattr(self, f.name) != f.default]
        return f"End({', '.join(fields)})"
