"""The streams the fuzz sends: hypothesis strategies for texts, ids, chunk indexes, options,
whole scripts of messages (well-formed, mutated, or random) and the ways a client ends a
stream; and the hand-picked edge cases the run starts with."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hypothesis import strategies as st

from synthqa.contract.options import INT32_MAX, INT64_MAX, INT64_MIN, OPTIONS

from ..helpers import SAMPLE
from .wire import (
    Concat,
    DocumentRequest,
    End,
    Huge,
    Message,
    Opts,
    Part,
    Raw,
    Text,
    Txt,
    key,
    length_delimited,
    varint,
)

INT32_MIN = -(2**31)
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
