"""Extraction in worker processes, in order, a few files ahead: one large PDF never holds up
the calls' events (the work is CPU-bound and mostly holds the GIL), and memory holds only the
files in flight. Workers are spawned, not forked: the caller may already run gRPC's threads."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import ExtractionError
from .extract import extract_file
from .source_map import Extracted


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


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def extract_in_order(paths: Iterable[Path], workers: int | None = None
                     ) -> Iterator[tuple[Path, FileText | ExtractionError]]:
    """Each file's text (or why it has none), in the order given."""
    workers = workers or default_workers()
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context)
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
