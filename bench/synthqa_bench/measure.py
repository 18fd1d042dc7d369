"""What one run records, and the figures made from it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil


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
            "time_to_first_pair_p50": percentile(ttfp, 0.50),
            "time_to_first_pair_p99": percentile(ttfp, 0.99),
            "time_to_first_pair_samples": sorted(ttfp),
            "chunk_first_pair_share_p50": percentile(self.first_pair_shares, 0.50),
            # All of them: a run whose pairs came with their chunk's end shows as a mass at 1.0.
            "chunk_first_pair_share_samples": sorted(self.first_pair_shares),
        }


def tree_rss(root: psutil.Process) -> int:
    """Resident memory of a process and its descendants, in bytes."""
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class ProcessTreeSampler:
    """CPU seconds and peak resident memory of a process and its descendants over a run.
    Memory is sampled every `interval` seconds, so a shorter peak can be missed."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self._root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak_rss = 0
        self._cpu_start = 0.0
        self._main_cpu_start = 0.0
        self.cpu_seconds = 0.0
        # The root process alone: the API front end (synthqa's server, vLLM's API server, or
        # the in-process arm), without the engine core and workers it spawned.
        self.main_cpu_seconds = 0.0

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _cpu(self) -> float:
        total = 0.0
        for process in self._tree():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def _main_cpu(self) -> float:
        try:
            times = self._root.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return float(times.user + times.system)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, tree_rss(self._root))
            self._stop.wait(self._interval)

    def __enter__(self) -> ProcessTreeSampler:
        self._cpu_start = self._cpu()
        self._main_cpu_start = self._main_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_seconds = self._cpu() - self._cpu_start
        self.main_cpu_seconds = self._main_cpu() - self._main_cpu_start


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
