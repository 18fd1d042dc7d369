"""The blocking client: the asyncio client, driven on an event loop of its own."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator

from synthqa.contract.options import OptionArgument
from synthqa.v1 import synthqa_pb2 as pb

from .aio import AsyncSynthQAClient
from .channel import Credentials, Target
from .documents import DEFAULT_PART_CHARS, Document
from .loop_thread import LoopThread
from .retry import DEFAULT_RETRIES, DEFAULT_RETRY_WAIT_SECONDS
from .sources import read_in_threads


class SynthQAClient:
    """A connection to a synthqa server, blocking; AsyncSynthQAClient has the same methods
    for asyncio programs, and this client runs it on a private event-loop thread.

    `timeout` (seconds) is the deadline of each call; None means none. Options not given take
    the server's defaults. Failures raise SynthQAError with the status and field details.
    Chunks that fail with UNAVAILABLE (the server's engine died under them) are asked for
    again, up to `retries` more times, once the server is SERVING (waiting up to
    `retry_wait` seconds); the caller sees each chunk's final outcome only.
    """

    def __init__(
        self, target: Target = "localhost:50051", *, timeout: float | None = None,
        retries: int = DEFAULT_RETRIES, retry_wait: float = DEFAULT_RETRY_WAIT_SECONDS,
        trace: bool = False, credentials: Credentials | None = None,
    ) -> None:
        self._loop = LoopThread("synthqa-client")
        try:
            # Made on the loop: a grpc.aio channel belongs to the loop it was made on.
            self._core = self._loop.run(_make_core(
                target, timeout=timeout, retries=retries, retry_wait=retry_wait, trace=trace,
                credentials=credentials))
        except BaseException:
            self._loop.stop()
            raise
        # A client dropped without close() still stops its thread.
        self._finalizer = weakref.finalize(self, _shut, self._loop, self._core)

    @property
    def target(self) -> str:
        return self._core.target

    @property
    def timeout(self) -> float | None:
        return self._core.timeout

    @property
    def retries(self) -> int:
        return self._core.retries

    @property
    def retry_wait(self) -> float:
        return self._core.retry_wait

    def __enter__(self) -> SynthQAClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    def wait_ready(self, within: float = 120.0) -> None:
        """Block until the server reports SERVING (the engine is up and warm)."""
        self._loop.run(self._core.wait_ready(within))

    def server_info(self) -> pb.GetServerInfoResponse:
        return self._loop.run(self._core.server_info())

    def chunk(self, text: str, **options: OptionArgument | None) -> pb.ChunkDocumentResponse:
        return self._loop.run(self._core.chunk(text, **options))

    def generate_document(
        self, text: str, *, document_id: str = "", chunk_indexes: tuple[int, ...] = (),
        **options: OptionArgument | None,
    ) -> Iterator[pb.GenerateResponse]:
        """Events for one document, as the server produces them."""
        return self._loop.iterate(self._core.generate_document(
            text, document_id=document_id, chunk_indexes=chunk_indexes, **options))

    def generate(
        self,
        documents: Iterable[Document],
        *,
        streams: int = 1,
        part_chars: int = DEFAULT_PART_CHARS,
        **options: OptionArgument | None,
    ) -> Iterator[pb.GenerateResponse]:
        """Stream documents in and events out; see AsyncSynthQAClient.generate. The documents
        are read on worker threads, one at a time, so a slow reader never holds up events."""
        if streams < 1:
            raise ValueError("streams must be at least 1")
        return self._loop.iterate(self._core.generate(
            read_in_threads(documents), streams=streams, part_chars=part_chars, **options))


async def _make_core(target: Target, **settings: object) -> AsyncSynthQAClient:
    return AsyncSynthQAClient(target, **settings)  # type: ignore[arg-type]


def _shut(loop: LoopThread, core: AsyncSynthQAClient) -> None:
    try:
        loop.run(core.close())
    finally:
        loop.stop()
