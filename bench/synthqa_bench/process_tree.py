"""The resident memory and CPU time of a process and its descendants: a server's front end with
the engine core and workers it started. The one sampler of a process tree's memory, used by
the benchmark (`runner`, `slow_reader`) and by the tests (the fuzz and the soak of
tests/e2e/), which put bench/ on their path to import it. It needs psutil alone, nothing of
synthqa's or the benchmark's."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class TreeRss:
    """Resident memory in bytes: of the root process alone, and of it with its descendants."""

    root: int
    tree: int


def tree_rss(root: psutil.Process) -> TreeRss:
    """One reading. A descendant that exits while it is read counts nothing; a root that is gone
    reads as 0 for both."""
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return TreeRss(0, 0)
    sizes = []
    for process in tree:
        try:
            sizes.append(process.memory_info().rss)
        except psutil.NoSuchProcess:
            sizes.append(0)
    return TreeRss(sizes[0], sum(sizes))


def settled_rss(root: psutil.Process, readings: int = 5, spacing: float = 0.2) -> TreeRss:
    """The median of a few readings `spacing` seconds apart: a level, not a moment's spike."""
    samples = []
    for _ in range(readings):
        samples.append(tree_rss(root))
        time.sleep(spacing)
    return TreeRss(int(statistics.median(s.root for s in samples)),
                   int(statistics.median(s.tree for s in samples)))


class ProcessTreeSampler:
    """Over the block it runs: peak resident memory of the root and of the whole tree, read on
    entry and then every `interval` seconds (a shorter peak can be missed), and the CPU seconds
    of the tree and of the root alone."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak_root_rss = 0
        self.peak_tree_rss = 0
        self._cpu_start = 0.0
        self._main_cpu_start = 0.0
        self.cpu_seconds = 0.0
        # The root process alone: the API front end (synthqa's server, vLLM's API server, or
        # the in-process arm), without the engine core and workers it spawned.
        self.main_cpu_seconds = 0.0

    def rss(self) -> TreeRss:
        return tree_rss(self.root)

    def settled(self) -> TreeRss:
        return settled_rss(self.root)

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
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
            times = self.root.cpu_times()
        except psutil.NoSuchProcess:
            return 0.0
        return float(times.user + times.system)

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = tree_rss(self.root)
            self.peak_root_rss = max(self.peak_root_rss, now.root)
            self.peak_tree_rss = max(self.peak_tree_rss, now.tree)
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
