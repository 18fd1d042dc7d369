"""The `synthqa-bidi` and `synthqa-unary` arms: the real server through the async client.
`synthqa-bidi` sends every document on one Generate stream, keeping `concurrency` documents
in flight (a stream per distinct set of options, as options are per call, sharing those
slots); `synthqa-unary` makes one GenerateDocument call per document, `concurrency` at a
time. Retries are off: a failed chunk is counted, not hidden."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from synthqa.client import AsyncSynthQAClient, Document

from .measure import RunRecorder, for_each_document
from .workload import BenchDocument, Workload

ChunkKey = tuple[str, int]


class SynthQAArms:
    def __init__(self, target: str, workload: Workload) -> None:
        self._client = AsyncSynthQAClient(target, timeout=3600, retries=0)
        self._workload = workload
        self._texts = {d.document_id: d.text for d in workload.documents}
        self._groups = workload.option_groups()

    async def close(self) -> None:
        await self._client.close()

    async def warm_up(self) -> None:
        """A document of each set of options, unmeasured: compiles their schemas' grammars."""
        for options, documents in self._groups:
            async for _ in self._client.generate_document(documents[0].text, **options):
                pass

    async def bidi(self, concurrency: int) -> RunRecorder:
        recorder = RunRecorder()
        slots = asyncio.Semaphore(concurrency)

        started: dict[ChunkKey, float] = {}
        first_pairs: dict[ChunkKey, float] = {}
        # Slots are taken in workload order across the streams, as one stream would.
        turns = [document.document_id for document in self._workload.documents]
        turn = asyncio.Condition()

        async def documents(group: list[BenchDocument]) -> AsyncIterator[Document]:
            for document in group:
                async with turn:
                    await turn.wait_for(lambda first=document.document_id: turns[0] == first)
                await slots.acquire()
                recorder.sent(document.document_id)
                async with turn:
                    turns.pop(0)
                    turn.notify_all()
                yield Document(document.document_id, document.text)

        async def stream(options: dict[str, Any], group: list[BenchDocument]) -> None:
            async for event in self._client.generate(documents(group), **options):
                if record(event, recorder, started, first_pairs):
                    slots.release()

        await asyncio.gather(*(stream(options, group) for options, group in self._groups))
        recorder.stop()
        return recorder

    async def unary(self, concurrency: int) -> RunRecorder:
        recorder = RunRecorder()
        started: dict[ChunkKey, float] = {}
        first_pairs: dict[ChunkKey, float] = {}

        async def run_document(document_id: str) -> None:
            recorder.sent(document_id)
            events = self._client.generate_document(
                self._texts[document_id], document_id=document_id,
                **self._workload.options_for(document_id))
            async for event in events:
                record(event, recorder, started, first_pairs)

        await for_each_document(list(self._texts), concurrency, run_document)
        recorder.stop()
        return recorder


def record(event: Any, recorder: RunRecorder, started: dict[ChunkKey, float],
           first_pairs: dict[ChunkKey, float]) -> bool:
    """Note one event (`started` and `first_pairs` hold per-chunk times between events);
    True when it completes a document."""
    kind = event.WhichOneof("event")
    now = time.monotonic()
    if kind == "chunk_started":
        started[(event.chunk_started.document_id, event.chunk_started.chunk_index)] = now
    elif kind == "qa_pair":
        recorder.pair(event.qa_pair.document_id)
        key = (event.qa_pair.document_id, event.qa_pair.chunk_index)
        first_pairs.setdefault(key, now)
    elif kind in ("chunk_completed", "chunk_failed"):
        done = getattr(event, kind)
        key = (done.document_id, done.chunk_index)
        began = started.pop(key, now)
        first = first_pairs.pop(key, None)
        recorder.chunk_done(now - began, done.generated_token_count, kind == "chunk_completed",
                            first_pair_after=None if first is None else first - began)
    elif kind == "document_completed":
        recorder.documents_completed += 1
        return True
    return False

