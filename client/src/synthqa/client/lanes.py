"""Several Generate calls at once, fed from one source of documents, their events merged into
one stream. With several replicas behind a round_robin channel each call lands on another
replica, so the documents spread across them; a call that breaks hands back the documents it
took."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import grpc

from synthqa.v1 import synthqa_pb2 as pb

from .documents import Document
from .errors import SynthQAError

# Events waiting for the caller, per run: a slow caller holds the calls back (gRPC's flow
# control then reaches the server) instead of piling events up in memory.
MAX_WAITING_EVENTS = 1024
_PUT_POLL_SECONDS = 0.2

StartCall = Callable[[Iterable[Document]], "grpc._CallIterator[pb.GenerateResponse]"]


@dataclass(frozen=True)
class LostCall:
    """A call broke: the error, and the documents it had taken."""

    error: SynthQAError
    document_ids: list[str]


class SharedDocuments:
    """One source for several calls: each document goes to exactly one call, and a call that
    broke takes no more. With a `window`, a call takes another document only while its
    unfinished chunks number fewer (as the server's per-call window would hold them), so
    documents go to whichever replica has room: gRPC itself reads a request stream as fast as
    the connection takes it, which would hand everything to the first call."""

    def __init__(self, first: list[Document], rest: Iterator[Document],
                 window: int | None = None) -> None:
        self._room = threading.Condition()
        # One reader of the source at a time. Separate from `_room`: the source may block
        # (a slow reader of files, a generator that waits), and events must still be settled.
        self._pulling = threading.Lock()
        self._first = deque(first)
        self._rest = rest
        self._window = window
        self._owners: dict[str, Lane] = {}
        self.exhausted = False

    def lane(self) -> Lane:
        return Lane(self)

    def left_over(self) -> list[Document]:
        """The documents of `first` no call took (and any a call took as it broke)."""
        with self._pulling:
            left, self._first = list(self._first), deque()
            return left

    def settle(self, event: pb.GenerateResponse) -> None:
        """Follow each call's unfinished chunks from its events."""
        kind = event.WhichOneof("event")
        if kind not in _PROGRESS:
            return
        document_id = getattr(event, kind).document_id
        with self._room:
            lane = self._owners.get(document_id)
            if lane is None:
                return
            if lane.settle(kind, event) == _DONE:
                del self._owners[document_id]
            self._room.notify_all()

    def _take(self, lane: Lane) -> Document:
        """The next document for `lane`, once it has room."""
        with self._room:
            while not lane.closed and self._window and lane.unfinished_chunks() >= self._window:
                self._room.wait()
            if lane.closed:
                raise StopIteration
        # The whole pull under `_pulling`, handing back included: left_over() takes the
        # same lock, so a document pulled while its call broke is never put back after the
        # round has collected what was left, and a closed call pulls nothing more.
        with self._pulling:
            with self._room:
                if lane.closed:
                    raise StopIteration
            if self._first:
                document = self._first.popleft()
            else:
                try:
                    document = next(self._rest)
                except StopIteration:
                    self.exhausted = True
                    raise
            with self._room:
                if not lane.closed:
                    lane.took(document)
                    self._owners[document.document_id] = lane
                    return document
            # The call broke meanwhile: the document goes to the next round.
            self._first.appendleft(document)
        raise StopIteration


_PROGRESS = ("chunk_started", "chunk_completed", "chunk_failed", "document_completed")
_DONE = "done"


@dataclass
class _Held:
    """A document a call took, until its document_completed."""

    document: Document
    chunks: int = 1  # until its first chunk_started says
    finished: int = 0


class Lane:
    """The documents one call takes, as an iterator gRPC reads from its own thread."""

    def __init__(self, shared: SharedDocuments) -> None:
        self._shared = shared
        self.closed = False
        self._held: dict[str, _Held] = {}
        # gRPC reads requests on its own thread, where an exception only cancels the call:
        # kept, to be raised to the caller instead of an opaque CANCELLED.
        self.failure: Exception | None = None

    def __iter__(self) -> Lane:
        return self

    def __next__(self) -> Document:
        try:
            return self._shared._take(self)
        except StopIteration:
            raise  # the end, not a failure
        except Exception as error:
            self.failure = error
            raise

    def took(self, document: Document) -> None:
        self._held[document.document_id] = _Held(document)

    def unfinished_chunks(self) -> int:
        return sum(max(held.chunks - held.finished, 0) for held in self._held.values())

    def settle(self, kind: str, event: pb.GenerateResponse) -> str | None:
        message = getattr(event, kind)
        held = self._held[message.document_id]
        if kind == "chunk_started":
            held.chunks = len(held.document.chunk_indexes) or message.chunk_count
        elif kind == "document_completed":
            del self._held[message.document_id]
            return _DONE
        else:
            held.finished += 1
        return None

    def close(self) -> list[str]:
        """Take no more; the ids of the documents taken and not completed."""
        with self._shared._room:
            self.closed = True
            self._shared._room.notify_all()
            return list(self._held)


_END = object()


def run_lanes(
    start_call: StartCall, shared: SharedDocuments, streams: int
) -> Iterator[pb.GenerateResponse | LostCall]:
    """Events of `streams` calls as they come, and a LostCall for each call that broke with
    UNAVAILABLE. Any other failure cancels every call and is raised."""
    events: queue.Queue[tuple[Lane, object]] = queue.Queue(MAX_WAITING_EVENTS)
    stopping = threading.Event()
    calls: list[grpc._CallIterator[pb.GenerateResponse]] = []
    calls_lock = threading.Lock()

    def put(item: tuple[Lane, object]) -> bool:
        while not stopping.is_set():
            try:
                events.put(item, timeout=_PUT_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def run(lane: Lane) -> None:
        try:
            call = start_call(lane)
            with calls_lock:
                calls.append(call)
            if stopping.is_set():
                call.cancel()
            for event in call:
                if not put((lane, event)):
                    return
            put((lane, _END))
        except grpc.RpcError as error:
            put((lane, lane.failure or SynthQAError.from_rpc_error(error)))
        except Exception as error:
            put((lane, error))

    lanes = [shared.lane() for _ in range(streams)]
    # Each call's thread runs in a copy of the caller's context: the caller's trace (its
    # current span) must reach the calls.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, lane),
                                name=f"synthqa-lane-{n}", daemon=True)
               for n, lane in enumerate(lanes)]
    for thread in threads:
        thread.start()
    running = len(lanes)
    try:
        while running:
            lane, item = events.get()
            if isinstance(item, pb.GenerateResponse):
                shared.settle(item)
                yield item
                continue
            running -= 1
            if item is _END:
                continue
            taken = lane.close()
            if isinstance(item, SynthQAError) and item.code == grpc.StatusCode.UNAVAILABLE:
                yield LostCall(item, taken)
                continue
            assert isinstance(item, Exception)
            raise item
    finally:
        stopping.set()
        for lane in lanes:
            lane.close()  # a call waiting for room in its window stops waiting
        with calls_lock:
            for call in calls:
                call.cancel()  # no-op when finished; stops the server's work when abandoned
