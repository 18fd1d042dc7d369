"""Extraction in worker processes, in order, a few files ahead: one large PDF never holds up
the calls' events (the work is CPU-bound and mostly holds the GIL), and memory holds only the
files in flight. Workers are spawned, not forked: the caller may already run gRPC's threads."""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import ExtractionError
from .extract import extract_file
from .source_map import Extracted

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class FileText:
    """A file's text with its source map, and the sha256 of its bytes."""

    path: Path
    extracted: Extracted
    sha256: str


def extract_one(path: Path) -> FileText | ExtractionError:
    try:
        extracted, data = extract_file(path)
    except ExtractionError as error:
        return error
    return FileText(path, extracted, hashlib.sha256(data).hexdigest())


def _die_with_parent(parent_pid: int) -> None:
    """In each worker: end with the process that started it. A worker waits on a pipe whose
    write end it holds itself, so a parent killed outright (kill -9, the OOM killer) would
    otherwise leave it behind for good. (Linux sends the signal when the thread that started
    the worker ends: the threads that read documents live as long as the pool.)"""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent was gone before the signal was armed


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def extract_in_order(paths: Iterable[Path], workers: int | None = None
                     ) -> Iterator[tuple[Path, FileText | ExtractionError]]:
    """Each file's text (or why it has none), in the order given."""
    workers = workers or default_workers()
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_die_with_parent,
                               initargs=(os.getpid(),))
    pending: deque[tuple[Path, Future[FileText | ExtractionError]]] = deque()
    try:
        for path in paths:
            pending.append((path, pool.submit(extract_one, path)))
            if len(pending) > 2 * workers:
                done_path, future = pending.popleft()
                yield done_path, future.result()
        while pending:
            done_path, future = pending.popleft()
            yield done_path, future.result()
    finally:
        # A caller that stops early (Ctrl-C, a failed call) waits for no file in flight.
        pool.shutdown(wait=False, cancel_futures=True)
