"""Documents to record lines on Ray: `GenerateRecords` sends a batch of ExtractDocuments rows
as one Generate stream (or `streams` of them) through the Python client, and returns each
record's line exactly as the CLI writes it (record_lines.py), pages and cited sentences
included. The client's own retries run inside the task; what they could not save raises
IncompleteDocument, for Ray's task retries above them."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import pyarrow as pa

from synthqa.client.channel import Credentials, Target
from synthqa.client.documents import Document
from synthqa.client.errors import SynthQAError
from synthqa.client.record_lines import (
    Locator,
    Place,
    RunShape,
    Source,
    pair_line,
    record_line,
    run_shape,
)
from synthqa.client.retry import DEFAULT_RETRIES, DEFAULT_RETRY_WAIT_SECONDS
from synthqa.client.sync import SynthQAClient
from synthqa.contract.wire import options_from_message
from synthqa.v1 import synthqa_pb2 as pb

from .batches import Batch, batch_rows, lines_table
from .shards import Options, canonical_options

DOCUMENT_COLUMNS = ("document_id", "sha256", "kind", "text", "source_map", "skipped")
# Documents sent and not yet completed, per GenerateRecords call: each holds its text and
# its lines so far in the actor, and its chunks on the server.
DEFAULT_MAX_IN_FLIGHT = 16
DEFAULT_READY_WITHIN_SECONDS = 120.0
# How many chunk errors an IncompleteDocument names.
_ERRORS_NAMED = 3


class IncompleteDocument(RuntimeError):
    """A document still had failed chunks after the client's retries: its records are not
    all there, so nothing of its batch may be kept. Raised for Ray to retry the task."""


class ReplicaUnavailable(RuntimeError):
    """The batch's call was lost to a server gone (UNAVAILABLE) and the client could not place
    it again: a call whose replica died before it answered is not retried by the client, which
    reports a server that never answered at once. Raised for Ray to retry the task, by when the
    channel has left the dead replica out."""


class GenerateRecords:
    """A callable class for `Dataset.map_batches` over ExtractDocuments rows (batch_format
    "pyarrow" or "numpy"): returns the record lines of the batch's documents as a pyarrow
    Table in the Parquet export's columns (line_rows.py: `record` as JSON text, and
    `messages`), so every batch has one schema, whatever shape the records take. Skipped rows
    send nothing and have no lines.

    The client is made here, once per actor, from plain arguments (the Python client's own:
    `target` as one address, a `dns:///` name or a list of replicas; `credentials`; `options`
    as a dict or a GenerationOptions message), and never pickled. `max_in_flight` bounds the
    documents sent and not yet completed. `ready_within`: seconds to wait for the server to be
    SERVING before the first batch (None: do not wait).
    """

    def __init__(
        self, target: Target, *, options: Options | None = None,
        credentials: Credentials | None = None, streams: int = 1,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, timeout: float | None = None,
        retries: int = DEFAULT_RETRIES, retry_wait: float = DEFAULT_RETRY_WAIT_SECONDS,
        ready_within: float | None = DEFAULT_READY_WITHIN_SECONDS,
    ) -> None:
        if streams < 1 or max_in_flight < 1:
            raise ValueError("streams and max_in_flight must be at least 1")
        # Keyword arguments of the client's generate, as the CLI passes its options.
        self._options: dict[str, Any] = dict(canonical_options(options))
        self._streams = streams
        self._max_in_flight = max_in_flight
        self._shape: RunShape | None = None
        self._client = SynthQAClient(target, timeout=timeout, retries=retries,
                                     retry_wait=retry_wait, credentials=credentials)
        try:
            if ready_within is not None:
                self._client.wait_ready(ready_within)
        except BaseException:
            self._client.close()
            raise

    def close(self) -> None:
        self._client.close()

    def __call__(self, batch: Batch) -> pa.Table:
        return lines_table(self.lines(batch_rows(batch, DOCUMENT_COLUMNS)))

    def lines(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """The lines of the rows' documents, a document's lines together once its
        document_completed has come, in the order documents complete."""
        documents: dict[str, SentDocument] = {}
        for row in rows:
            if row["skipped"] is not None:
                continue
            if row["document_id"] in documents:
                raise ValueError(f"{row['document_id']} is in the batch twice; document ids "
                                 "must be unique within a batch")
            documents[row["document_id"]] = SentDocument.from_row(row)
        if not documents:
            return
        window = InFlightWindow(self._max_in_flight)
        lines = EventLines(documents, self._run_shape)
        events = self._client.generate(
            window.feed(sent.document for sent in documents.values()), streams=self._streams,
            **self._options)
        try:
            for event in events:
                finished = lines.handle(event)
                if finished is not None:
                    window.release()
                    yield from finished
        except SynthQAError as error:
            if error.code != grpc.StatusCode.UNAVAILABLE:
                raise
            raise ReplicaUnavailable(f"the call was lost to a server gone: {error}") from None
        finally:
            window.close()
            if isinstance(events, Generator):
                events.close()  # cancels the calls now, when a document failed

    def _run_shape(self) -> RunShape:
        """The records' shape, from the options over the server's defaults: asked for once,
        when the first record comes (as the CLI does)."""
        if self._shape is None:
            defaults = options_from_message(self._client.server_info().defaults)
            self._shape = run_shape(self._options, defaults)
        return self._shape


@dataclass(frozen=True)
class SentDocument:
    """A document of the batch, and what its lines need: its source, and the source map when
    the file has pages or slides."""

    document: Document
    source: Source
    locator: Locator | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SentDocument:
        document_id, text = row["document_id"], row["text"]
        regions = json.loads(row["source_map"] or "[]")
        locator = None
        if any("page" in region or "slide" in region for region in regions):
            # Pages and slides exist only where the ingest extra read the file.
            from synthqa.client.ingest import Extracted, Region

            locator = Extracted(text, row["kind"], tuple(map(Region.from_json, regions)))
        return cls(Document(document_id, text), Source(document_id, row["sha256"]), locator)


class EventLines:
    """Turns a Generate stream's events into lines, held per document until its
    document_completed: then they are all there, or the document failed."""

    def __init__(self, documents: Mapping[str, SentDocument],
                 shape: Callable[[], RunShape]) -> None:
        self._documents = documents
        self._shape = shape
        # Each running chunk's range of its document's text, for the pages it spans.
        self._spans: dict[tuple[str, int], tuple[int, int]] = {}
        self._lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._errors: dict[str, list[str]] = defaultdict(list)

    def handle(self, event: pb.GenerateResponse) -> list[dict[str, Any]] | None:
        """The document's lines when `event` completes it; None for any other event. Raises
        IncompleteDocument for a document completed with failed chunks."""
        kind = event.WhichOneof("event")
        if kind == "record":
            self._record(event.record)
        elif kind == "qa_pair":
            pair = event.qa_pair
            self._lines[pair.document_id].append(pair_line(
                pair, self._documents[pair.document_id].source,
                self._place(pair.document_id, pair.chunk_index)))
        elif kind == "chunk_started":
            started = event.chunk_started
            self._spans[(started.document_id, started.chunk_index)] = (started.char_start,
                                                                       started.char_end)
        elif kind == "chunk_failed":
            failed = event.chunk_failed
            self._errors[failed.document_id].append(
                f"chunk {failed.chunk_index}: {failed.error.message}")
        elif kind == "document_completed":
            return self._completed(event.document_completed)
        return None

    def _record(self, record: pb.Record) -> None:
        sent = self._documents[record.document_id]
        self._lines[record.document_id].append(record_line(
            record, sent.source, self._shape(), sent.document.text,
            self._place(record.document_id, record.chunk_index)))

    def _place(self, document_id: str, chunk_index: int) -> Place | None:
        span = self._spans.get((document_id, chunk_index))
        if span is None:
            return None
        return Place(self._documents[document_id].locator, *span)

    def _completed(self, completed: pb.DocumentCompleted) -> list[dict[str, Any]]:
        document_id = completed.document_id
        for key in [key for key in self._spans if key[0] == document_id]:
            del self._spans[key]
        lines = self._lines.pop(document_id, [])
        errors = self._errors.pop(document_id, [])
        if completed.failed_chunk_count:
            named = "; ".join(errors[:_ERRORS_NAMED]) or "no chunk_failed event came"
            raise IncompleteDocument(
                f"{document_id}: {completed.failed_chunk_count} of {completed.chunk_count} "
                f"chunk(s) failed after the client's retries ({named}); the task's records "
                "are not kept, and Ray's retry generates them again")
        return lines


class InFlightWindow:
    """Lets a document out only while fewer than `limit` are sent and not completed. The
    blocking client reads documents on worker threads, so `feed` may wait there while the
    events flow; `close` frees a waiting reader when the stream ends early."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._sent = 0
        self._closed = False
        self._changed = threading.Condition()

    def feed(self, documents: Iterable[Document]) -> Iterator[Document]:
        for document in documents:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or self._sent < self._limit)
                if self._closed:
                    return
                self._sent += 1
            yield document

    def release(self) -> None:
        """A document completed."""
        with self._changed:
            self._sent -= 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
