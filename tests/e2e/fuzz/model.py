"""The model of the protocol: what the server must answer. `Model` predicts how a stream ends
(the status, the fields or quota named, the documents taken and their chunks) by parsing each
message as the server will and applying its rules in order; `check_events` checks what a
stream received against the prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError

from synthqa.client import SynthQAError
from synthqa.contract.options import OPTIONS
from synthqa.contract.wire import options_from_message
from synthqa.server.pipeline.assembler import CHUNK_INDEX_BYTES
from synthqa.server.pipeline.budget import text_bytes
from synthqa.v1 import synthqa_pb2 as pb

from .wire import End

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
CANCELLED = grpc.StatusCode.CANCELLED
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
CLEAN_CODES = {OK, INVALID, EXHAUSTED, CANCELLED, DEADLINE}

# The most a character of a document can cost the server's budget: 4 bytes of text, and up to
# 4 tokens (one a UTF-8 byte), each 48 bytes tokenized and 80 in chunks with their numbered
# sentences (pipeline/chunking.py).
MOST_BYTES_PER_CHARACTER = 4 + 4 * (48 + 80)


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


class Oracle(Protocol):
    """What the model asks the live server (harness.Fuzz is one): its limits, its default
    options, and how ChunkDocument chunks a text."""

    limits: pb.Limits
    defaults: pb.GenerationOptions

    def chunk_document(self, text: str,
                       options: pb.GenerationOptions) -> pb.ChunkDocumentResponse: ...


class Model:
    """The server's protocol, restated: parse each message as the server will, then apply its
    rules in order. Options beyond the contract's bounds (planning) and chunk counts come from
    ChunkDocument, which the server keeps consistent with Generate."""

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle
        self.limits = oracle.limits
        self._plans: dict[bytes, frozenset[str] | None] = {}
        self._chunks: dict[tuple[int, str, bytes], int | str] = {}

    def options_problem(self, options: pb.GenerationOptions) -> frozenset[str] | None:
        limits = {f.name: getattr(self.limits, f.name) for f in pb.Limits.DESCRIPTOR.fields}
        bad = set()
        chosen = {**options_from_message(self.oracle.defaults), **options_from_message(options)}
        for spec in OPTIONS:
            value = chosen.get(spec.name)
            if value is not None and spec.problem(value, limits) is not None:
                bad.add(f"options.{spec.name}")
        if bad:
            return frozenset(bad)
        serialized = options.SerializeToString(deterministic=True)
        if serialized not in self._plans:
            try:
                self.oracle.chunk_document("x", options)
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
                self._chunks[cache_key] = len(self.oracle.chunk_document(text, options).chunks)
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
        expect = Expect(num_pairs=self.oracle.defaults.num_pairs)
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
