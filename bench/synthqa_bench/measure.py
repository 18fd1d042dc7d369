"""What one run records, and the figures made from it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class RunRecorder:
    """Timestamps and counts from the client's side of one run."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    chunk_latencies: list[float] = field(default_factory=list)
    # Per chunk with pairs: when its first pair arrived, as a share of its whole time.
    first_pair_shares: list[float] = field(default_factory=list)
    document_sent: dict[str, float] = field(default_factory=dict)
    first_pair: dict[str, float] = field(default_factory=dict)
    output_tokens: int = 0
    pairs: int = 0
    chunks_completed: int = 0
    chunks_failed: int = 0
    documents_completed: int = 0

    def sent(self, document_id: str) -> None:
        self.document_sent.setdefault(document_id, time.monotonic())

    def pair(self, document_id: str, count: int = 1) -> None:
        if count > 0:
            self.pairs += count
            self.first_pair.setdefault(document_id, time.monotonic())

    def chunk_done(self, latency: float, output_tokens: int, ok: bool,
                   first_pair_after: float | None = None) -> None:
        """`first_pair_after`: seconds from the chunk's start to its first pair, for arms
        that stream pairs; the others deliver every pair with the finished chunk."""
        self.chunk_latencies.append(latency)
        if latency > 0 and (ok or first_pair_after is not None):
            first = latency if first_pair_after is None else first_pair_after
            self.first_pair_shares.append(first / latency)
        self.output_tokens += output_tokens
        if ok:
            self.chunks_completed += 1
        else:
            self.chunks_failed += 1

    def stop(self) -> None:
        self.finished = time.monotonic()

    def figures(self) -> dict[str, Any]:
        assert self.finished is not None, "stop() the recorder first"
        wall = self.finished - self.started
        ttfp = [self.first_pair[d] - self.document_sent[d]
                for d in self.first_pair if d in self.document_sent]
        return {
            "wall_seconds": wall,
            "output_tokens": self.output_tokens,
            "pairs": self.pairs,
            "chunks_completed": self.chunks_completed,
            "chunks_failed": self.chunks_failed,
            "documents_completed": self.documents_completed,
            "output_tokens_per_second": self.output_tokens / wall,
            "pairs_per_second": self.pairs / wall,
            "documents_per_second": self.documents_completed / wall,
            "chunk_latency_p50": percentile(self.chunk_latencies, 0.50),
            "chunk_latency_p90": percentile(self.chunk_latencies, 0.90),
            "chunk_latency_p99": percentile(self.chunk_latencies, 0.99),
            # How full the engine was kept: requests in it on average over the run (each
            # chunk counted from entering the engine, or being sent, to its end).
            "chunks_in_flight_mean": sum(self.chunk_latencies) / wall,
            "time_to_first_pair_p50": percentile(ttfp, 0.50),
            "time_to_first_pair_p99": percentile(ttfp, 0.99),
            "time_to_first_pair_samples": sorted(ttfp),
            "chunk_first_pair_share_p50": percentile(self.first_pair_shares, 0.50),
            # All of them: a run whose pairs came with their chunk's end shows as a mass at 1.0.
            "chunk_first_pair_share_samples": sorted(self.first_pair_shares),
        }


async def for_each_document(
    document_ids: Sequence[str], concurrency: int,
    run_document: Callable[[str], Awaitable[None]],
) -> None:
    """Run documents with at most `concurrency` in flight, starting the next as one ends."""
    pending = iter(document_ids)

    async def worker() -> None:
        for document_id in pending:
            await run_document(document_id)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(document_ids)))))
