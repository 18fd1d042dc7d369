"""The resident memory and CPU time of a process and its descendants: a server's front end with
the engine core and workers it started. The one sampler of a process tree's memory, used by
the benchmark (`runner`, `slow_reader`) and by the tests (the fuzz and the soak of
tests/e2e/), which put bench/ on their path to import it. It needs psutil alone, nothing of
synthqa's or the benchmark's."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable
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
        self._loop_cpu_start = 0.0
        # The root's main thread alone: where an asyncio front end runs its event loop, so
        # the one thread its Python work per token cannot leave. Its other threads (the
        # tokenizer's, gRPC's) run beside it on other cores, mostly without the GIL.
        self.loop_cpu_seconds = 0.0

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

    def _loop_cpu(self) -> float:
        try:
            threads = self.root.threads()
        except psutil.NoSuchProcess:
            return 0.0
        return sum(float(t.user_time + t.system_time) for t in threads if t.id == self.root.pid)

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = tree_rss(self.root)
            self.peak_root_rss = max(self.peak_root_rss, now.root)
            self.peak_tree_rss = max(self.peak_tree_rss, now.tree)
            self._stop.wait(self._interval)

    def __enter__(self) -> ProcessTreeSampler:
        self._cpu_start = self._cpu()
        self._main_cpu_start = self._main_cpu()
        self._loop_cpu_start = self._loop_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_seconds = self._cpu() - self._cpu_start
        self.main_cpu_seconds = self._main_cpu() - self._main_cpu_start
        self.loop_cpu_seconds = self._loop_cpu() - self._loop_cpu_start


def exited_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a child process that has exited and is not yet reaped: its own, and that
    of the descendants it waited for (its workers). Waits for it to exit without reaping it;
    the caller reaps it after (Popen.wait). Exact: the kernel's own counts, no sampling."""
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    times = psutil.Process(pid).cpu_times()
    return (float(times.user + times.system),
            float(times.children_user + times.children_system))


class TreeCpuByKind:
    """CPU seconds of the processes `roots()` gives and their descendants, over the block it
    runs, summed per kind (`kind(process)` names it: "raylet", an actor's class...). Read every
    `interval` seconds; what a process used between two readings counts for the kind it has at
    the second (a worker that changes tasks changes kind). A process started during the block
    counts from its start; one that exits during it loses what it used after its last reading
    (at most `interval` seconds of CPU each: `exited` says how many). The readings' own CPU
    (this object's thread, in the caller's process) is `sampler_cpu_seconds`."""

    def __init__(self, roots: Callable[[], Iterable[psutil.Process]],
                 kind: Callable[[psutil.Process], str], interval: float = 0.1) -> None:
        self._roots = roots
        self._kind = kind
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._last: dict[int, float] = {}
        self._kinds: dict[int, str] = {}
        self._started = 0.0
        self.cpu_by_kind: dict[str, float] = {}
        self.processes_by_kind: dict[str, int] = {}
        self.exited = 0
        self.sampler_cpu_seconds = 0.0

    def _tree(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for root in self._roots():
            try:
                for process in (root, *root.children(recursive=True)):
                    found[process.pid] = process
            except psutil.NoSuchProcess:
                pass
        return list(found.values())

    def _read(self, first: bool = False) -> None:
        seen = set()
        for process in self._tree():
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu = float(times.user + times.system)
                    created = process.create_time()
                kind = self._kind(process)
            except psutil.Error:
                continue
            seen.add(process.pid)
            if process.pid not in self._last:
                # Seen at the start, or started before it and not seen then: from now on.
                began = 0.0 if not first and created >= self._started else cpu
                self._last[process.pid] = began
            if self._kinds.get(process.pid) != kind:
                self.processes_by_kind[kind] = self.processes_by_kind.get(kind, 0) + 1
                self._kinds[process.pid] = kind
            self.cpu_by_kind[kind] = (self.cpu_by_kind.get(kind, 0.0)
                                      + cpu - self._last[process.pid])
            self._last[process.pid] = cpu
        for pid in [pid for pid in self._last if pid not in seen]:
            del self._last[pid]
            self.exited += 1

    def _sample(self) -> None:
        began = time.thread_time()
        while not self._stop.wait(self._interval):
            self._read()
        self.sampler_cpu_seconds += time.thread_time() - began

    def __enter__(self) -> TreeCpuByKind:
        self._started = time.time() - 0.05  # create_time is rounded to the clock tick
        self._read(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        began = time.thread_time()
        self._read()
        self.sampler_cpu_seconds += time.thread_time() - began
