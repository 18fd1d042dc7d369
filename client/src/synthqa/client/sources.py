"""The caller's documents, read one at a time by whichever call needs the next one."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import cast

from .documents import Document


class DocumentSource:
    """Reads a plain or async iterable of documents, and takes back documents read but not
    sent (a call broke as it read one; a retry round's documents), to hand them out first.

    A read cut short by its reader's cancellation is not lost: the read goes on, shielded,
    and the next reader gets its document. `on_read` sees each of the caller's documents as
    it first comes (the retries start following it). Readers take `lock` around a read and
    what they do with its document: a call of a round that has ended may still be reading
    (gRPC reads a request stream on a task of its own), and two readers must never get the
    same document."""

    def __init__(self, documents: Iterable[Document] | AsyncIterable[Document],
                 on_read: Callable[[Document], object] = lambda document: None) -> None:
        self._async: AsyncIterator[Document] | None = None
        self._sync: Iterator[Document] | None = None
        if isinstance(documents, AsyncIterable):
            self._async = aiter(documents)
        else:
            self._sync = iter(documents)
        self._on_read = on_read
        self._returned: deque[Document] = deque()
        self._reading: asyncio.Future[Document | None] | None = None
        self._ended = False
        self.lock = asyncio.Lock()

    @property
    def exhausted(self) -> bool:
        """Every document has been handed out and none came back."""
        return self._ended and not self._returned and self._reading is None

    def give_back(self, documents: Iterable[Document]) -> None:
        self._returned.extend(documents)

    async def next(self) -> Document | None:
        """The next document, or None at the end."""
        if self._returned:
            return self._returned.popleft()
        if self._ended:
            return None
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        document = await asyncio.shield(self._reading)
        self._reading = None
        if document is None:
            self._ended = True
        else:
            self._on_read(document)
        return document

    async def _read(self) -> Document | None:
        if self._async is not None:
            return await anext(self._async, None)
        assert self._sync is not None
        return next(self._sync, None)


async def read_in_threads(documents: Iterable[Document]) -> AsyncIterator[Document]:
    """A blocking iterable read off the event loop, each document in a worker thread: the
    blocking client's caller may read files or wait for its own events between documents,
    and the calls' events must keep flowing meanwhile."""
    iterator = iter(documents)
    end = object()
    while (document := await asyncio.to_thread(next, iterator, end)) is not end:
        yield cast(Document, document)
