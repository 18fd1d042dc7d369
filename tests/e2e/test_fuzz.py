"""Hostile input at scale: a stateful property-based fuzzer drives the live server with random
Generate and GenerateDocument streams and checks each against a model of the protocol.

The streams put options anywhere (first, later, twice, missing), send parts out of order (a
continuation for a document never started, more_follows misused, unknown and duplicate ids),
random Unicode with unpaired surrogates as raw bytes (the messages are encoded here by hand,
so invalid UTF-8 reaches the server), garbage and unknown fields, huge and empty fields around
the server's limits, options in and out of bounds, odd chunk_indexes, cancellations (before,
during and after sending) and short deadlines; some run in the background while others go on.

Every stream must end OK or with the status the model predicts (or CANCELLED / DEADLINE_EXCEEDED
where the client cut it short), always a known code with a message and never a traceback; an OK
stream must complete every document it sent exactly once, each chunk with one outcome and pairs
only for started chunks. After every step the server is alive and SERVING; after every example
it is idle (no call, chunk, engine request or held document); its idle memory grows by no more
than RSS_BOUND_MIB over the last three quarters of the run; its log has no new traceback.

`make test` runs SYNTHQA_FUZZ_STREAMS=150 (the default); `make fuzz` runs 5,000.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from synthqa.client import SynthQAError
from synthqa.contract.options import INT32_MAX, INT64_MAX, INT64_MIN, OPTIONS
from synthqa.contract.wire import options_from_message
from synthqa.server.pipeline.assembler import CHUNK_INDEX_BYTES
from synthqa.server.pipeline.budget import text_bytes
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..paths import REPO
from .helpers import SAMPLE
from .serverproc import SERVICE, ServerProcess

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench.process_tree import ProcessTreeSampler, TreeRss  # noqa: E402

STREAMS = int(os.environ.get("SYNTHQA_FUZZ_STREAMS", "150"))
SEED = int(os.environ.get("SYNTHQA_FUZZ_SEED", "1822"))
# Streams run before the memory baseline is taken: every kind of input has been seen by then.
WARM_UP_STREAMS = max(20, STREAMS // 10)
# Server RSS, idle, may grow by this much over the last three quarters of the run. The allocator's
# high-water mark settles in the warm-up and first quarter (the heap it cannot give back depends
# on where the largest documents fell); after that, a leak shows as growth. Measured without
# leaks: +5 MiB over 150 streams, +32 over 5,000 (the leak it caught first: +1,216 over 5,270).
RSS_BOUND_MIB = float(os.environ.get("SYNTHQA_FUZZ_RSS_BOUND_MIB", "48"))
# One line per stream on stdout (run pytest with -s).
VERBOSE = bool(os.environ.get("SYNTHQA_FUZZ_VERBOSE"))
STEPS = 10
# Shrinking replays a failure against the live server hundreds of times: on demand only (the
# failing example is printed step by step either way).
PHASES = [Phase.generate, Phase.shrink] if os.environ.get("SYNTHQA_FUZZ_SHRINK") else [
    Phase.generate]
NORMAL_DEADLINE = 30.0
IDLE_WITHIN = 5.0
# The server looks for freed heap to give back every 2 s once idle (synthqa.server.heap).
IDLE_TRIM_SECONDS = 2.5
MAX_BACKGROUND = 4
INT32_MIN = -(2**31)

GENERATE = "/synthqa.v1.SynthQAService/Generate"
GENERATE_DOCUMENT = "/synthqa.v1.SynthQAService/GenerateDocument"
OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
CANCELLED = grpc.StatusCode.CANCELLED
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
CLEAN_CODES = {OK, INVALID, EXHAUSTED, CANCELLED, DEADLINE}

pytestmark = pytest.mark.timeout(int(300 + 1.5 * STREAMS))


# The wire, by hand -------------------------------------------------------------------------

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


# The most a character of a document can cost the server's budget: 4 bytes of text, and up to
# 4 tokens (one a UTF-8 byte), each 48 bytes tokenized and 80 in chunks with their numbered
# sentences (pipeline/chunking.py).
MOST_BYTES_PER_CHARACTER = 4 + 4 * (48 + 80)


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


# Strategies ------------------------------------------------------------------------------

SAFE_CHARACTERS = st.characters(codec="utf-8")  # no surrogates
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2003\u2028\u3000"


@st.composite
def prose(draw: st.DrawFn) -> Txt:
    start = draw(st.integers(0, len(SAMPLE) - 1))
    return Txt(SAMPLE[start:start + draw(st.integers(1, 400))])


@st.composite
def surrogate_text(draw: st.DrawFn, max_size: int = 40) -> Txt:
    """Text with an unpaired surrogate in it: not UTF-8 on the wire."""
    text = draw(st.text(SAFE_CHARACTERS, max_size=max_size))
    at = draw(st.integers(0, len(text)))
    return Txt(text[:at] + chr(draw(st.integers(0xD800, 0xDFFF))) + text[at:])


def usable_texts() -> st.SearchStrategy[Txt]:
    return st.one_of(prose(), prose(), prose(),
                     st.text(SAFE_CHARACTERS, min_size=1, max_size=60).map(Txt))


# CJK without spaces: three tokens a character, cut into pieces at no space.
HUGE_TEXTS = st.builds(Huge, st.sampled_from(["lighthouse ", "é", "ab\n", "灯塔", "🙂", " ",
                                             "灯台は夜に船を導く"]),
                       st.sampled_from(["third", "0.6", "limit-1", "limit", "limit+1"]))


def hostile_texts(huge: bool) -> st.SearchStrategy[Text]:
    options: list[st.SearchStrategy[Any]] = [
        st.text(WHITESPACE, max_size=6).map(Txt),  # empty and blank
        surrogate_text(),
        st.text(max_size=40).map(Txt),  # anything, surrogates included
        st.text(st.characters(max_codepoint=0x20), min_size=1, max_size=20).map(Txt),
        prose(),
    ]
    if huge:
        options.append(HUGE_TEXTS)
    return st.one_of(*options)


class Indexes(tuple[int, ...]):
    """Many chunk indexes, printed short."""

    def __repr__(self) -> str:
        return f"<{len(self)} indexes: {self[0]}, {self[1]}, ... {self[-1]}>"


POOL_IDS = st.sampled_from(["a", "b", "c"]).map(Txt)
HOSTILE_IDS = st.one_of(
    st.sampled_from(["", "x" * 256, "x" * 257, "y" * 10_000, "\x00", " ", "é", "🙂" * 256,
                     "🙂" * 257]).map(Txt),
    st.text(max_size=10).map(Txt),
    surrogate_text(6),
)
HOSTILE_INDEXES = st.one_of(
    st.lists(st.one_of(st.integers(0, 3), st.sampled_from([-1, INT32_MIN, 999, 1000, INT32_MAX]),
                       st.integers(INT32_MIN, INT32_MAX)), max_size=6).map(tuple),
    st.just(Indexes((0,) * 5000)),
    st.just(Indexes(range(1200))),
    st.just(Indexes(range(20_001))),
    st.sampled_from([(1, 2, 1), (0, 0)]),
)
# Bounded work for a huge document: a few of its chunks, or a bad index.
HUGE_INDEXES = st.sampled_from([(0,), (1,), (0, 0, 0), (2, 1), (999,), (1000,), (INT32_MAX,)])


@st.composite
def valid_options(draw: st.DrawFn) -> Opts:
    """In bounds, and cheap to generate on the tiny model."""
    num_pairs = draw(st.sampled_from([1, 2]))
    fields: dict[str, int | float | str] = {
        "num_pairs": num_pairs,
        "max_generation_tokens": draw(st.sampled_from([60, 64, 96] if num_pairs == 1
                                                      else [108, 128])),
    }
    if draw(st.booleans()):
        fields["temperature"] = draw(st.floats(0.0, 2.0))
    if draw(st.booleans()):
        fields["top_p"] = draw(st.floats(0.0, 1.0, exclude_min=True))
    chunk = draw(st.sampled_from([None, 0, 48, 128, 512]))
    if chunk is not None:
        fields["max_chunk_tokens"] = chunk
    fields["chunk_overlap_tokens"] = draw(st.integers(0, chunk // 2 if chunk else 32))
    if draw(st.booleans()):
        value = draw(st.integers(INT64_MIN, INT64_MAX))
        fields["seed"] = -2 if value == -1 else value  # -1 is reserved
    if not draw(st.integers(0, 5)):
        fields["record_regex"] = draw(HOSTILE_PATTERNS)
    return Opts(tuple(fields.items()))


# Patterns a backtracking matcher takes exponential time on, ones RE2 cannot run, ones no
# record can be written for, and plain ones.
HOSTILE_PATTERNS = st.sampled_from([
    "(a?){29}a{29}\\n", "(a|aa)*b", "(x+x+)+y", "(?=a)a", "(a)\\1", '"', '[^"]"',
    "[a-z]{1,12}", "(lamp|light) [0-9]{1,3}",
])


ANY_VALUE: dict[str, st.SearchStrategy[Any]] = {
    "num_pairs": st.integers(INT32_MIN, INT32_MAX),
    "max_generation_tokens": st.integers(INT32_MIN, INT32_MAX),
    "temperature": st.floats(allow_nan=True, allow_infinity=True),
    "top_p": st.floats(allow_nan=True, allow_infinity=True),
    "chunk_overlap_tokens": st.integers(INT32_MIN, INT32_MAX),
    "max_chunk_tokens": st.integers(INT32_MIN, INT32_MAX),
    "seed": st.integers(INT64_MIN, INT64_MAX),
}
BAD_VALUE: dict[str, st.SearchStrategy[Any]] = {
    "num_pairs": st.one_of(st.integers(INT32_MIN, 0), st.integers(51, INT32_MAX)),
    "max_generation_tokens": st.one_of(st.integers(INT32_MIN, 0), st.integers(2048, INT32_MAX)),
    "temperature": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=2.0000001),
                             st.just(math.nan)),
    "top_p": st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0000001),
                       st.just(math.nan)),
    "chunk_overlap_tokens": st.integers(INT32_MIN, -1),
    "max_chunk_tokens": st.one_of(st.integers(INT32_MIN, -1), st.integers(2048, INT32_MAX)),
    "seed": st.just(-1),
}


@st.composite
def invalid_options(draw: st.DrawFn) -> Opts:
    """At least one field out of bounds, the others anything."""
    fields = draw(st.fixed_dictionaries({}, optional=ANY_VALUE))
    bad = draw(st.sampled_from(sorted(BAD_VALUE)))
    fields[bad] = draw(BAD_VALUE[bad])
    order = [spec.name for spec in OPTIONS]
    return Opts(tuple(sorted(fields.items(), key=lambda item: order.index(item[0]))))


def any_options() -> st.SearchStrategy[Opts]:
    return st.one_of(valid_options(), invalid_options(), st.just(Opts()))


GARBAGE = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"\x12\x05ab", b"\x0f", b"\x12\x80", b"\x0a\xff\xff\xff\xff\x0f",
                     b"\xff" * 11, b"\x12\x04\x12\x02\xff\xfe", b"\x12\x03\x0a\x01\x80"]),
)
UNKNOWN_FIELDS = st.sampled_from([
    key(15, 0) + varint(7), length_delimited(99, b"zz"), key(3, 5) + b"\0\0\0\0",
    key(1, 0) + varint(1), key(536_870_911, 0) + varint(0),
])


@st.composite
def wellformed(draw: st.DrawFn) -> list[Message]:
    """Options, then 0-3 documents in 1-3 parts each, interleaved: the protocol followed."""
    messages: list[Message] = [draw(valid_options())]
    ids = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "é", "🙂", "x" * 256]),
                        max_size=3, unique=True))
    lanes: list[list[Part]] = []
    for document_id in ids:
        text = draw(usable_texts()).text
        count = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), min_size=count - 1,
                                    max_size=count - 1)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        indexes = draw(st.sampled_from([(), (), (), (0,), (0, 0), (1,), (0, 2)]))
        on = draw(st.integers(0, count - 1))
        lanes.append([Part(Txt(document_id), Txt(piece), k < count - 1,
                           indexes if k == on else ()) for k, piece in enumerate(pieces)])
    order = draw(st.permutations([i for i, lane in enumerate(lanes) for _ in lane]))
    taken = [0] * len(lanes)
    for lane in order:
        messages.append(lanes[lane][taken[lane]])
        taken[lane] += 1
    return messages


MUTATIONS = ["drop", "dup", "swap", "options", "flip", "garbage", "empty", "both", "unknown",
             "text", "id", "indexes", "stranger", "unpacked", "huge", "huge"]



@st.composite
def mutated(draw: st.DrawFn, huge: bool) -> list[Message]:
    """A well-formed stream broken in one to three places."""
    messages = draw(wellformed())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        at = draw(st.integers(0, max(len(messages) - 1, 0)))
        where = draw(st.integers(0, len(messages)))
        target = messages[at] if messages else None
        if kind == "drop" and messages:
            del messages[at]
        elif kind == "dup" and target is not None:
            messages.insert(where, target)
        elif kind == "swap" and messages:
            messages[at], messages[where - 1] = messages[where - 1], messages[at]
        elif kind == "options":
            messages.insert(where, draw(any_options()))
        elif kind == "garbage":
            messages.insert(where, Raw(draw(GARBAGE)))
        elif kind == "empty":
            messages.insert(where, Raw(b""))
        elif kind == "unknown" and target is not None:
            messages[at] = Concat(target, Raw(draw(UNKNOWN_FIELDS)))
        elif kind == "huge" and huge:
            part = Part(draw(POOL_IDS), draw(HUGE_TEXTS), draw(st.booleans()), draw(HUGE_INDEXES))
            if isinstance(target, Part) and draw(st.booleans()):
                messages[at] = dataclasses.replace(part, document_id=target.document_id,
                                                   more_follows=target.more_follows)
            else:
                messages.insert(where, part)
        elif kind == "stranger":
            messages.insert(where, Part(draw(st.one_of(POOL_IDS, HOSTILE_IDS)),
                                        draw(usable_texts()), draw(st.booleans())))
        elif isinstance(target, Part):
            part = target
            if kind == "flip":
                part = dataclasses.replace(part, more_follows=not part.more_follows)
            elif kind == "both":
                options = draw(any_options())
                messages[at] = Concat(options, part) if draw(st.booleans()) else Concat(
                    part, options)
                continue
            elif kind == "text":
                text = draw(hostile_texts(huge))
                part = dataclasses.replace(part, text=text)
                if isinstance(text, Huge):
                    part = dataclasses.replace(part, chunk_indexes=draw(HUGE_INDEXES))
            elif kind == "id":
                part = dataclasses.replace(part, document_id=draw(HOSTILE_IDS))
            elif kind == "indexes":
                # A huge document keeps a few chunks: generating all of them takes minutes.
                part = dataclasses.replace(part, chunk_indexes=draw(
                    HUGE_INDEXES if isinstance(part.text, Huge) else HOSTILE_INDEXES))
            elif kind == "unpacked":
                part = dataclasses.replace(part, packed=False,
                                           chunk_indexes=part.chunk_indexes or (0, 0))
            messages[at] = part
    return messages


def any_message() -> st.SearchStrategy[Message]:
    parts = st.builds(Part, st.one_of(POOL_IDS, HOSTILE_IDS),
                      st.one_of(usable_texts(), hostile_texts(False)), st.booleans(),
                      st.one_of(st.just(()), HOSTILE_INDEXES))
    return st.one_of(valid_options(), invalid_options(), parts, parts, st.just(Raw(b"")),
                     GARBAGE.map(Raw))


def scripts(huge: bool = True) -> st.SearchStrategy[list[Message]]:
    return st.one_of(wellformed(), mutated(huge), mutated(huge),
                     st.lists(any_message(), max_size=5))


def ends(streaming: bool = True) -> st.SearchStrategy[End]:
    normal = st.just(End())
    choices = [
        normal, normal, normal,
        st.builds(End, deadline=st.sampled_from([0.001, 0.02, 0.1, 0.5, 2.0])),
        st.builds(End, cancel_after_events=st.sampled_from([1, 2, 5]),
                  cancel_after_seconds=st.sampled_from([None, 0.05, 0.3])),
        st.builds(End, cancel_after_seconds=st.sampled_from([0.0, 0.01, 0.1, 0.5])),
    ]
    if streaming:
        choices += [
            st.builds(End, hold=st.sampled_from([0.02, 0.2])),
            st.builds(End, half_close=st.just(False), deadline=st.sampled_from([0.2, 0.8])),
            st.builds(End, half_close=st.booleans(), cancel_before_message=st.integers(0, 4),
                      cancel_after_seconds=st.just(1.0)),
            st.builds(End, half_close=st.just(False), cancel_after_events=st.sampled_from([1, 3]),
                      cancel_after_seconds=st.sampled_from([0.1, 0.6])),
        ]
    return st.one_of(choices)


@st.composite
def document_requests(draw: st.DrawFn) -> DocumentRequest:
    text = draw(st.one_of(usable_texts(), usable_texts(), hostile_texts(True)))
    return DocumentRequest(
        document_id=draw(st.one_of(POOL_IDS, st.just(Txt("")), HOSTILE_IDS)),
        text=text,
        options=draw(st.one_of(valid_options(), valid_options(), invalid_options())),
        chunk_indexes=draw(HUGE_INDEXES if isinstance(text, Huge) else st.one_of(
            st.just(()), st.just(()), HOSTILE_INDEXES, HUGE_INDEXES)),
        extra=draw(st.one_of(st.just(b""), st.just(b""), UNKNOWN_FIELDS, GARBAGE)),
    )


# The model of the protocol -----------------------------------------------------------------

@dataclass
class Expect:
    """What the model says a stream ends with, and what may come before."""

    code: grpc.StatusCode = OK
    # INVALID_ARGUMENT: the fields named; RESOURCE_EXHAUSTED: the quota subject (None: the
    # transport refused a message, with no details).
    detail: frozenset[str] | str | None = None
    # Documents taken before the end: id -> the chunk indexes to generate.
    admitted: dict[str, tuple[int, ...]] = field(default_factory=dict)
    chunk_counts: dict[str, int] = field(default_factory=dict)
    num_pairs: int = 5
    # Records of a caller's pattern: a chunk may fail on one the pattern refuses.
    custom_records: bool = False
    # Most characters this stream alone makes the server hold at once.
    own_held: int = 0
    why: str = ""

    def fail(self, code: grpc.StatusCode, detail: frozenset[str] | str | None,
             why: str) -> Expect:
        self.code, self.detail, self.why = code, detail, why
        return self


TOO_BIG = object()


@dataclass(frozen=True)
class Paths:
    """Field names as each RPC reports them."""

    document: str = "document"

    def of(self, name: str) -> str:
        return f"{self.document}.{name}" if self.document else name


GENERATE_PATHS = Paths()
DOCUMENT_PATHS = Paths("")


class Model:
    """The server's protocol, restated: parse each message as the server will, then apply its
    rules in order. Options beyond the contract's bounds (planning) and chunk counts come from
    ChunkDocument, which the server keeps consistent with Generate."""

    def __init__(self, fuzz: Fuzz) -> None:
        self.fuzz = fuzz
        self.limits = fuzz.limits
        self._plans: dict[bytes, frozenset[str] | None] = {}
        self._chunks: dict[tuple[int, str, bytes], int | str] = {}

    def options_problem(self, options: pb.GenerationOptions) -> frozenset[str] | None:
        limits = {f.name: getattr(self.limits, f.name) for f in pb.Limits.DESCRIPTOR.fields}
        bad = set()
        chosen = {**options_from_message(self.fuzz.defaults), **options_from_message(options)}
        for spec in OPTIONS:
            value = chosen.get(spec.name)
            if value is not None and spec.problem(value, limits) is not None:
                bad.add(f"options.{spec.name}")
        if bad:
            return frozenset(bad)
        serialized = options.SerializeToString(deterministic=True)
        if serialized not in self._plans:
            try:
                self.fuzz.chunk_document("x", options)
                self._plans[serialized] = None
            except SynthQAError as error:
                assert error.code == INVALID, error
                self._plans[serialized] = frozenset(v.field for v in error.field_violations)
        return self._plans[serialized]

    def chunk_count(self, text: str, options: pb.GenerationOptions) -> int | str:
        """Chunks of `text`, or the quota subject that refuses it."""
        cache_key = (hash(text), text[:64], options.SerializeToString(deterministic=True))
        if cache_key not in self._chunks:
            try:
                self._chunks[cache_key] = len(self.fuzz.chunk_document(text, options).chunks)
            except SynthQAError as error:
                assert error.code == EXHAUSTED, error
                self._chunks[cache_key] = error.quota_violations[0].field
        return self._chunks[cache_key]

    def predict_generate(self, encoded: list[bytes], end: End) -> Expect:
        messages = [self._parse(pb.GenerateRequest, data) for data in encoded]
        return self._simulate(messages, end.half_close, GENERATE_PATHS)

    def predict_document(self, encoded: bytes) -> Expect:
        request = self._parse(pb.GenerateDocumentRequest, encoded)
        if not isinstance(request, pb.GenerateDocumentRequest):
            return self._simulate([request], True, DOCUMENT_PATHS)
        part = pb.DocumentPart(document_id=request.document_id or "document", text=request.text,
                               chunk_indexes=request.chunk_indexes)
        return self._simulate([pb.GenerateRequest(options=request.options),
                               pb.GenerateRequest(document=part)], True, DOCUMENT_PATHS)

    def _parse(self, kind: type, data: bytes) -> Any:
        if len(data) > self.limits.max_message_bytes:
            return TOO_BIG
        try:
            return kind.FromString(data)
        except DecodeError:
            return None

    def _simulate(self, messages: list[Any], half_close: bool, paths: Paths) -> Expect:
        expect = Expect(num_pairs=self.fuzz.defaults.num_pairs)
        max_chars = self.limits.max_document_chars
        options: pb.GenerationOptions | None = None
        open_parts: dict[str, list[str]] = {}
        open_indexes: dict[str, set[int]] = {}
        finished: set[str] = set()
        buffered = 0
        buffered_bytes = 0
        for number, message in enumerate(messages):
            where = f"message {number}"
            if message is TOO_BIG:
                return expect.fail(EXHAUSTED, None, f"{where} is over max_message_bytes")
            if message is None:
                return expect.fail(INVALID, frozenset({"request"}), f"{where} does not parse")
            kind = message.WhichOneof("request")
            if kind is None:
                return expect.fail(INVALID, frozenset({"document"}), f"{where} is empty")
            if options is None:
                if kind != "options":
                    return expect.fail(INVALID, frozenset({"options"}), "no options first")
                if problem := self.options_problem(message.options):
                    return expect.fail(INVALID, problem, "options out of bounds")
                options = message.options
                if options.HasField("num_pairs"):
                    expect.num_pairs = options.num_pairs
                expect.custom_records = options.HasField("record_regex")
                continue
            if kind == "options":
                return expect.fail(INVALID, frozenset({"options"}), f"options again at {where}")
            part = message.document
            document_id, text = part.document_id, part.text
            if not document_id or len(document_id) > 256:
                return expect.fail(INVALID, frozenset({paths.of("document_id")}),
                                   f"bad id at {where}")
            earlier = open_indexes.get(document_id, set())
            if len(part.chunk_indexes) + len(earlier) > self.limits.max_chunks_per_document:
                return expect.fail(INVALID, frozenset({paths.of("chunk_indexes")}),
                                   f"more indexes than chunks at {where}")
            if any(index < 0 for index in part.chunk_indexes):
                return expect.fail(INVALID, frozenset({paths.of("chunk_indexes")}),
                                   f"negative index at {where}")
            if (len(set(part.chunk_indexes)) < len(part.chunk_indexes)
                    or earlier & set(part.chunk_indexes)):
                return expect.fail(INVALID, frozenset({paths.of("chunk_indexes")}),
                                   f"an index twice at {where}")
            if document_id in finished:
                return expect.fail(INVALID, frozenset({paths.of("document_id")}),
                                   f"{document_id!r} again at {where}")
            so_far = sum(map(len, open_parts.get(document_id, [])))
            if so_far + len(text) > max_chars:
                return expect.fail(EXHAUSTED, f"document {document_id!r}", f"too long at {where}")
            if part.more_follows and buffered + len(text) > max_chars:
                return expect.fail(EXHAUSTED, "unfinished documents", f"too much open at {where}")
            arriving = text_bytes(text) + CHUNK_INDEX_BYTES * len(part.chunk_indexes)
            if buffered_bytes + arriving > self.limits.max_held_document_bytes:
                return expect.fail(EXHAUSTED, "server memory", f"over the budget at {where}")
            expect.own_held = max(expect.own_held, buffered + len(text))
            open_parts.setdefault(document_id, []).append(text)
            open_indexes.setdefault(document_id, set()).update(part.chunk_indexes)
            buffered += len(text)
            buffered_bytes += arriving
            if part.more_follows:
                continue
            whole = "".join(open_parts.pop(document_id))
            buffered -= len(whole)
            buffered_bytes = sum(text_bytes(t) for parts in open_parts.values() for t in parts)
            finished.add(document_id)
            indexes = tuple(sorted(open_indexes.pop(document_id)))
            if not whole.strip():
                return expect.fail(INVALID, frozenset({paths.of("text")}), f"blank at {where}")
            count = self.chunk_count(whole, options)
            if isinstance(count, str):
                return expect.fail(EXHAUSTED, count, f"too many chunks at {where}")
            if indexes and indexes[-1] >= count:
                return expect.fail(INVALID, frozenset({paths.of("chunk_indexes")}),
                                   f"index past {count} chunks at {where}")
            expect.admitted[document_id] = indexes or tuple(range(count))
            expect.chunk_counts[document_id] = count
        if not half_close:
            return expect.fail(DEADLINE, None, "the client never half-closes")
        if open_parts:
            return expect.fail(INVALID, frozenset({paths.of("more_follows")}),
                               f"unfinished at the end: {sorted(open_parts)}")
        expect.why = "all well"
        return expect


# Running a stream ------------------------------------------------------------------------

@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    error: SynthQAError | None
    events: list[pb.GenerateResponse]
    cancelled: bool
    seconds: float


def run_stream(fuzz: Fuzz, method: str, payload: list[bytes] | bytes, end: End) -> Outcome:
    stop = threading.Event()
    ready = threading.Event()
    cancelled = threading.Event()
    holder: list[Any] = []

    def cancel() -> None:
        ready.wait(10)
        cancelled.set()
        holder[0].cancel()

    def requests() -> Iterator[bytes]:
        assert isinstance(payload, list)
        for number, message in enumerate(payload):
            if end.cancel_before_message == number:
                cancel()
                stop.wait(end.deadline)
                return
            yield message
        if end.half_close:
            if end.hold:
                stop.wait(end.hold)
            return
        stop.wait(end.deadline + 10)

    started = time.monotonic()
    if method == GENERATE:
        call = fuzz.generate(requests(), timeout=end.deadline)
    else:
        assert isinstance(payload, bytes)
        call = fuzz.generate_document(payload, timeout=end.deadline)
    holder.append(call)
    ready.set()
    timer = None
    if end.cancel_after_seconds is not None:
        timer = threading.Timer(end.cancel_after_seconds, cancel)
        timer.start()
    events: list[pb.GenerateResponse] = []
    try:
        for event in call:
            events.append(event)
            if end.cancel_after_events is not None and len(events) == end.cancel_after_events:
                cancel()
    except grpc.RpcError:
        pass
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
    code = call.code()
    error = None
    if code is not OK:
        # Details naming another code than the call's (cut here after the server's status
        # arrived) are left out by the client itself.
        error = SynthQAError.from_rpc_error(call)
    return Outcome(code, call.details() or "", error, events, cancelled.is_set(),
                   time.monotonic() - started)


def check_events(events: list[pb.GenerateResponse], expect: Expect, complete: bool) -> None:
    """Invariants of any prefix of a stream; with `complete`, of a whole OK stream."""
    started: dict[tuple[str, int], pb.ChunkStarted] = {}
    pairs: dict[tuple[str, int], set[int]] = {}
    outcomes: dict[tuple[str, int], pb.ChunkCompleted | pb.ChunkFailed] = {}
    done: dict[str, pb.DocumentCompleted] = {}
    for event in events:
        kind = event.WhichOneof("event")
        assert kind is not None, "an event with nothing in it"
        message = getattr(event, kind)
        document = message.document_id
        assert document in expect.admitted, f"{kind} for {document!r}, never taken"
        assert document not in done, f"{kind} for {document!r} after its document_completed"
        if kind == "document_completed":
            chunks = {k: v for k, v in outcomes.items() if k[0] == document}
            assert set(chunks) == {k for k in started if k[0] == document}, \
                f"{document!r} completed with chunks still running"
            assert message.chunk_count == len(chunks) == len(expect.admitted[document])
            completed = sum(isinstance(v, pb.ChunkCompleted) for v in chunks.values())
            assert message.completed_chunk_count == completed
            assert message.failed_chunk_count == len(chunks) - completed
            assert message.pair_count == sum(len(pairs[k]) for k in chunks)
            done[document] = message
            continue
        chunk = (document, message.chunk_index)
        if kind == "chunk_started":
            assert chunk not in started, f"chunk {chunk} started twice"
            assert message.chunk_index in expect.admitted[document], \
                f"chunk {chunk} not asked for: {expect.admitted[document][:10]}"
            assert message.chunk_count == expect.chunk_counts[document]
            started[chunk] = message
            pairs[chunk] = set()
            continue
        assert chunk in started, f"{kind} for chunk {chunk}, never started"
        assert chunk not in outcomes, f"{kind} for chunk {chunk} after its outcome"
        if kind in ("qa_pair", "record"):
            # Pairs, or records of a caller's pattern (record_regex).
            index = message.pair_index if kind == "qa_pair" else message.record_index
            assert 0 <= index < expect.num_pairs, message
            assert index not in pairs[chunk], f"{kind} {index} twice"
            assert (message.question and message.answer) if kind == "qa_pair" else message.json
            pairs[chunk].add(index)
        elif kind == "chunk_completed":
            assert message.pair_count == len(pairs[chunk]) == expect.num_pairs, message
            outcomes[chunk] = message
        else:
            assert message.pair_count == len(pairs[chunk]), message
            # A random model may run out of tokens, or write a record its pattern refuses;
            # nothing else may fail a chunk.
            assert message.error.message, message
            assert message.error.code == EXHAUSTED.value[0] or expect.custom_records, message
            outcomes[chunk] = message
    if complete:
        assert set(done) == set(expect.admitted), \
            f"documents without document_completed: {set(expect.admitted) - set(done)}"
        for document, indexes in expect.admitted.items():
            assert {i for d, i in started if d == document} == set(indexes), document


# The fuzzing context: one server, counters, the memory ledger -------------------------------

@dataclass(repr=False)
class Running:
    """A stream, run here or in a thread of its own."""

    label: str
    method: str
    payload: Any
    end: End
    expect: Expect
    chars: int
    held_at_start: int
    thread: threading.Thread | None = None
    outcome: Outcome | None = None
    failure: BaseException | None = None
    interval: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<{self.label} stream {id(self):#x}>"


class Fuzz:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.pid = server.process.pid if server.process else 0
        self.channel = grpc.insecure_channel(server.target, options=[
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self.stub = pb_grpc.SynthQAServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.generate = self.channel.stream_stream(
            GENERATE, request_serializer=None, response_deserializer=pb.GenerateResponse.FromString)
        self.generate_document = self.channel.unary_stream(
            GENERATE_DOCUMENT, request_serializer=None,
            response_deserializer=pb.GenerateResponse.FromString)
        self.chunk_raw = self.channel.unary_unary(
            "/synthqa.v1.SynthQAService/ChunkDocument", request_serializer=None,
            response_deserializer=pb.ChunkDocumentResponse.FromString)
        info = self.info()
        self.limits = info.limits
        self.defaults = info.defaults
        self.baseline_calls = info.load.active_calls
        self.model = Model(self)
        self.streams = 0
        self.statuses: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self.chunk_calls: Counter[str] = Counter()
        self.pairs = 0
        self.documents = 0
        self.chunk_failures = 0
        self.longest_idle_wait = 0.0
        self.longest_stream = 0.0
        # Everything that holds document characters on the server: [start, end, chars].
        self.ledger: list[list[float]] = []
        self.lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    def info(self) -> pb.GetServerInfoResponse:
        return self.stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=10)

    def chunk_document(self, text: str, options: pb.GenerationOptions) -> pb.ChunkDocumentResponse:
        entry = self.hold(len(text))
        try:
            for attempt in range(50):
                try:
                    return self.stub.ChunkDocument(
                        pb.ChunkDocumentRequest(text=text, options=options), timeout=60)
                except grpc.RpcError as raised:
                    error = SynthQAError.from_rpc_error(raised)
                    busy = error.quota_violations and error.quota_violations[0].field in (
                        "server memory", "calls per client")
                    if not busy or attempt == 49:
                        raise error from None
                    time.sleep(0.1)
            raise AssertionError("unreachable")
        finally:
            self.release(entry)

    def hold(self, chars: int) -> list[float]:
        entry = [time.monotonic(), math.inf, float(chars)]
        with self.lock:
            self.ledger.append(entry)
        return entry

    def release(self, entry: list[float]) -> None:
        with self.lock:
            entry[1] = time.monotonic()
            horizon = time.monotonic() - 60
            self.ledger = [e for e in self.ledger if e[1] > horizon]

    def others_held(self, entry: list[float]) -> float:
        """Characters that other holders may have held while `entry` ran (ended ones count for
        two more seconds: a cancelled call gives its memory back a moment later)."""
        with self.lock:
            return sum(e[2] for e in self.ledger
                       if e is not entry and e[0] <= entry[1] and e[1] + 2 >= entry[0])

    def check_serving(self) -> None:
        assert self.server.process is not None and self.server.process.poll() is None, \
            f"the server died; see {self.server.log_path}"
        reply = self.health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    def wait_idle(self) -> None:
        began = time.monotonic()
        while True:
            load = self.info().load
            if (load.engine_requests == 0 and load.in_flight_chunks == 0
                    and load.held_document_bytes == 0
                    and load.active_calls == self.baseline_calls):
                self.longest_idle_wait = max(self.longest_idle_wait, time.monotonic() - began)
                return
            assert time.monotonic() - began < IDLE_WITHIN, \
                f"not idle {IDLE_WITHIN} s after the streams ended: {load}"
            time.sleep(0.02)

    # Streams

    def prepare(self, label: str, method: str, spec: list[Message] | DocumentRequest,
                end: End) -> Running:
        # What the server may hold of it: a message over the cap never gets past the transport.
        limit = self.limits.max_message_bytes
        if isinstance(spec, DocumentRequest):
            payload: Any = spec.encode(self.limits)
            expect = self.model.predict_document(payload)
            chars = spec.chars(self.limits) if len(payload) <= limit else 0
        else:
            payload = [message.encode(self.limits) for message in spec]
            expect = self.model.predict_generate(payload, end)
            chars = sum(message.chars(self.limits) for message, data in zip(spec, payload,
                                                                            strict=True)
                        if len(data) <= limit)
        held = self.info().load.held_document_bytes
        return Running(label, method, payload, end, expect, chars, held)

    def run(self, running: Running) -> None:
        entry = self.hold(running.chars)
        try:
            running.outcome = run_stream(self, running.method, running.payload, running.end)
        finally:
            self.release(entry)
            running.interval = entry

    def start(self, running: Running) -> Running:
        def work() -> None:
            try:
                self.run(running)
            except BaseException as error:  # reported by finish()
                running.failure = error

        running.thread = threading.Thread(target=work, name=running.label, daemon=True)
        running.thread.start()
        return running

    def finish(self, running: Running) -> None:
        if running.thread is not None:
            running.thread.join(running.end.deadline + 30)
            assert not running.thread.is_alive(), f"{running.label}: the stream hangs"
        if running.failure is not None:
            raise running.failure
        self.verify(running)

    def verify(self, running: Running) -> None:
        out, expect, end = running.outcome, running.expect, running.end
        assert out is not None
        with self.lock:
            self.streams += 1
            self.methods[running.label] += 1
            self.statuses[out.code.name] += 1
            self.longest_stream = max(self.longest_stream, out.seconds)
            self.pairs += sum(e.HasField("qa_pair") for e in out.events)
            self.documents += sum(e.HasField("document_completed") for e in out.events)
            self.chunk_failures += sum(e.HasField("chunk_failed") for e in out.events)
        if VERBOSE:
            print(f"{self.streams:5d} {running.label:22s} {out.code.name:18s} {out.seconds:6.3f} s "
                  f"{len(out.events):3d} events; model: {expect.code.name} {expect.why}",
                  flush=True)
        context = (f"{running.label}: got {out.code.name} ({out.details!r}, "
                   f"{out.error.field_violations if out.error else ()}, "
                   f"{out.error.quota_violations if out.error else ()}) after {out.seconds:.3f} s; "
                   f"the model says {expect.code.name} {expect.detail!r}: {expect.why}")
        assert out.code in CLEAN_CODES, f"unclean status: {context}"
        if out.code is not OK:
            assert out.details.strip(), f"a status without a message: {context}"
            assert "Traceback" not in out.details, context
        allowed = {expect.code}
        if out.cancelled:
            allowed.add(CANCELLED)
        if end.short_deadline:
            allowed.add(DEADLINE)
        memory_may_run_out = ((expect.own_held + self.others_held(running.interval))
                              * MOST_BYTES_PER_CHARACTER + running.held_at_start
                              > self.limits.max_held_document_bytes)
        if memory_may_run_out:
            allowed.add(EXHAUSTED)
        assert out.code in allowed, f"unexpected status: {context}"
        if out.code is INVALID and expect.code is INVALID:
            assert out.error is not None
            assert frozenset(v.field for v in out.error.field_violations) == expect.detail, \
                context
            assert all(v.description for v in out.error.field_violations), context
        if out.code is EXHAUSTED:
            assert out.error is not None
            subject = (out.error.quota_violations[0].field if out.error.quota_violations
                       else None)
            if expect.code is EXHAUSTED and subject == expect.detail:
                pass
            else:
                assert memory_may_run_out and subject == "server memory", context
        try:
            check_events(out.events, expect, complete=out.code is OK)
        except AssertionError as broken:
            raise AssertionError(f"{broken}; {context}") from None


# The state machine -----------------------------------------------------------------------

class FuzzMachine(RuleBasedStateMachine):
    fuzz: ClassVar[Fuzz]
    background = Bundle("background")

    def __init__(self) -> None:
        super().__init__()
        self.running: list[Running] = []

    @rule(script=scripts(), end=ends())
    def generate(self, script: list[Message], end: End) -> None:
        running = self.fuzz.prepare("Generate", GENERATE, script, end)
        self.fuzz.run(running)
        self.fuzz.verify(running)

    @rule(request=document_requests(), end=ends(streaming=False))
    def generate_document(self, request: DocumentRequest, end: End) -> None:
        running = self.fuzz.prepare("GenerateDocument", GENERATE_DOCUMENT, request, end)
        self.fuzz.run(running)
        self.fuzz.verify(running)

    @precondition(lambda self: len(self.running) < MAX_BACKGROUND)
    @rule(target=background, script=scripts(huge=False), end=ends())
    def start_background(self, script: list[Message], end: End) -> Running:
        running = self.fuzz.start(self.fuzz.prepare("Generate (background)", GENERATE, script,
                                                    end))
        self.running.append(running)
        return running

    @rule(running=consumes(background))
    def finish_background(self, running: Running) -> None:
        self.running.remove(running)
        self.fuzz.finish(running)

    @rule(text=st.one_of(usable_texts(), hostile_texts(True)), options=any_options())
    def chunk_document(self, text: Text, options: Opts) -> None:
        body = utf8(text.value(self.fuzz.limits))
        request = (length_delimited(1, body) if body else b"") + length_delimited(
            2, options.payload())
        try:
            self.fuzz.chunk_raw(request, timeout=NORMAL_DEADLINE)
            code = OK
        except grpc.RpcError as error:
            code = error.code()
            assert code in (INVALID, EXHAUSTED), (code, error.details())
            assert error.details() and "Traceback" not in error.details()
        self.fuzz.chunk_calls[code.name] += 1

    @invariant()
    def serving(self) -> None:
        self.fuzz.check_serving()

    def teardown(self) -> None:
        failures = []
        for running in self.running:
            try:
                self.fuzz.finish(running)
            except BaseException as error:
                failures.append(error)
        self.running.clear()
        if failures:
            raise failures[0]
        self.fuzz.wait_idle()


def run_rounds(fuzz: Fuzz, until: int, first_seed: int) -> None:
    """State-machine runs, each reproducible from its seed, until `until` streams ran. A run
    starts with hypothesis's simplest example (ten ChunkDocument calls), so each asks for
    enough examples to reach the count in one go, with a margin."""
    FuzzMachine.fuzz = fuzz
    number = 0
    while fuzz.streams < until:
        examples = max(3, math.ceil((until - fuzz.streams) / (STEPS * 0.6)) + 1)
        run_state_machine_as_test(seed(first_seed + number)(FuzzMachine), settings=settings(
            max_examples=examples, stateful_step_count=STEPS, deadline=None, database=None,
            derandomize=False, phases=PHASES, print_blob=False,
            report_multiple_bugs=False, suppress_health_check=list(HealthCheck)))
        number += 1


# Hand-picked streams at the edges, in the warm-up (so their memory is in the baseline) -----

def edge_cases() -> list[tuple[str, list[Message] | DocumentRequest, End]]:
    options = Opts((("num_pairs", 1), ("max_generation_tokens", 64)))
    lighthouse = Huge("lighthouse ", "limit")
    return [
        ("a message over max_message_bytes", [options, Part(Txt("a"), Huge("x", "message+1"))],
         End()),
        ("a document of max_document_chars, all its chunks", [options, Part(Txt("a"), lighthouse)],
         End(deadline=120)),
        # The densest text in tokens (4 bytes a character, about 800,000 tokens): its legitimate
        # high-water mark belongs in the baseline.
        ("a document of max_document_chars of 4-byte characters, one chunk", [
            options, Part(Txt("a"), Huge("🙂", "limit"), chunk_indexes=(0,))], End()),
        ("one character past the limit, in parts", [
            options, Part(Txt("a"), Huge("é", "third"), True), Part(Txt("a"), Huge("é", "third"),
                                                                  True),
            Part(Txt("a"), Huge("é", "third"), True), Part(Txt("a"), Txt("é"), True),
            Part(Txt("a"), Txt("ab"))], End()),
        ("two open documents past the call's limit", [
            options, Part(Txt("a"), Huge("ab\n", "0.6"), True),
            Part(Txt("b"), Huge("ab\n", "0.6"), True)], End()),
        ("an empty stream", [], End()),
        ("options alone", [options], End()),
        ("fifty small documents", [options, *[Part(Txt(f"d{i}"), Txt(SAMPLE[i * 50:i * 50 + 80]))
                                              for i in range(50)]], End(deadline=120)),
        ("a document in 300 one-character parts", [
            options, *[Part(Txt("a"), Txt(SAMPLE[i]), True) for i in range(300)],
            Part(Txt("a"), Txt("."))], End()),
        ("5,000 copies of one chunk index", [options, Part(Txt("a"), Txt(SAMPLE[:300]),
                                                           chunk_indexes=Indexes((0,) * 5000))],
         End()),
        ("a document request with nothing set", DocumentRequest(Txt(""), Txt(""), None), End()),
    ]


# The test --------------------------------------------------------------------------------

MIB = 1024 * 1024


def idle_rss(fuzz: Fuzz, rss: ProcessTreeSampler) -> TreeRss:
    """The server's RSS once idle: it gives freed heap back within seconds of its last call."""
    fuzz.wait_idle()
    time.sleep(IDLE_TRIM_SECONDS)
    return rss.settled()


def test_hostile_streams_at_scale(server: ServerProcess) -> None:
    fuzz = Fuzz(server)
    log_start = server.log_path.stat().st_size
    began = time.monotonic()
    try:
        with ProcessTreeSampler(fuzz.pid, interval=0.5) as rss:
            start = rss.settled()
            for label, spec, end in edge_cases():
                method = GENERATE_DOCUMENT if isinstance(spec, DocumentRequest) else GENERATE
                running = fuzz.prepare(label, method, spec, end)
                fuzz.run(running)
                fuzz.verify(running)
                fuzz.wait_idle()
            run_rounds(fuzz, WARM_UP_STREAMS, SEED)
            checkpoints = [idle_rss(fuzz, rss)]
            warm_up_seconds = time.monotonic() - began
            remaining = STREAMS - fuzz.streams
            for quarter in range(1, 5):
                run_rounds(fuzz, STREAMS - remaining * (4 - quarter) // 4, SEED + 10_000 * quarter)
                checkpoints.append(idle_rss(fuzz, rss))
            fuzz.check_serving()
            baseline, after = checkpoints[1], checkpoints[-1]
        seconds = time.monotonic() - began
        growth = (after.root - baseline.root) / MIB
        print(
            f"\nfuzz: {fuzz.streams} streams in {seconds:.0f} s (warm-up {warm_up_seconds:.0f} s)"
            f": {dict(fuzz.methods)}\n"
            f"  statuses: {dict(fuzz.statuses.most_common())}\n"
            f"  ChunkDocument calls: {dict(fuzz.chunk_calls)}\n"
            f"  {fuzz.documents} documents completed, {fuzz.pairs} pairs, "
            f"{fuzz.chunk_failures} chunks failed (out of tokens); longest stream "
            f"{fuzz.longest_stream:.1f} s, longest wait for idle {fuzz.longest_idle_wait:.2f} s\n"
            f"  server RSS MiB, idle: start {start.root / MIB:.0f}, after the warm-up and each "
            f"quarter {[round(c.root / MIB) for c in checkpoints]}, peak "
            f"{rss.peak_root_rss / MIB:.0f}; last three quarters {growth:+.1f} (bound "
            f"+{RSS_BOUND_MIB:.0f}); whole tree: start {start.tree / MIB:.0f}, baseline "
            f"{baseline.tree / MIB:.0f}, peak {rss.peak_tree_rss / MIB:.0f}, after "
            f"{after.tree / MIB:.0f}")
    finally:
        fuzz.close()
    assert fuzz.streams >= STREAMS
    problems = []
    if growth > RSS_BOUND_MIB:
        problems.append(f"server RSS {after.root / MIB:.0f} MiB after the run, {growth:.1f} MiB "
                        f"over its level after the first quarter (bound {RSS_BOUND_MIB:.0f})")
    with server.log_path.open("rb") as log:
        log.seek(log_start)
        lines = log.read().decode(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or line.startswith("Traceback")
              or line.startswith(("ValueError", "RuntimeError", "AssertionError", "KeyError"))]
    if errors:
        problems.append(f"the server logged {sum(line.startswith('Traceback') for line in lines)} "
                        f"tracebacks during the fuzz ({server.log_path}); first lines: "
                        f"{errors[:6]}")
    assert not problems, "; ".join(problems)
