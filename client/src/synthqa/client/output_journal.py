"""The CLI's output while a run is unfinished, kept so that `--resume` can finish it.

Pairs go to `<out>.partial` as they arrive; each document whose document_completed has arrived
is then named in `<out>.partial.done`, after a first line that identifies the run (its
document ids and options). Every line is appended with one unbuffered write, so a killed
process leaves at most its last line torn, and resuming cuts that line off. On resume, pairs of
documents the journal does not name are dropped and those documents sent again: no pair is
written twice. A finished run moves the partial file onto `<out>` and removes the journal.
A run holds `<out>.lock` throughout (OutputLock), so a second run on the same `<out>` stops
before touching the first one's files.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# 2: document ids relative to the inputs' folder, lines in record_lines' schema 1.
JOURNAL_VERSION = 2
_TAIL_BLOCK_BYTES = 1 << 16


class ResumeError(Exception):
    """The unfinished run cannot be resumed by this command."""


class OutputBusy(Exception):
    """Another run holds the output."""


class OutputLock:
    """An exclusive flock on `<out>.lock` for the length of a run: two runs on one `<out>`
    would truncate and rename each other's partial file. The kernel drops the lock with its
    process, so a killed run's lock file stops no one."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.with_name(out.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        """Raises OutputBusy at once if another run holds it."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputBusy(
                    f"{self.out} is being written by another synthqa run (it holds "
                    f"{self.path}); wait for it to end or choose another --out") from None
            if _is_file_at(fd, self.path):
                self._fd = fd
                return self
            # The holder removed the file as it finished, after it was opened here: a lock on
            # the removed file would exclude no one, so lock the file now at the path.
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        # Removed while still held: a run that opened it meanwhile finds it gone (above).
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _is_file_at(fd: int, path: Path) -> bool:
    try:
        at_path = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def run_key(document_ids: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues."""
    return {
        "journal": JOURNAL_VERSION,
        "documents": document_ids,
        "options": {name: value for name, value in sorted(options.items()) if value is not None},
    }


class OutputJournal:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        self.journal = out.with_name(out.name + ".partial.done")
        self._pairs_fd: int | None = None
        self._journal_fd: int | None = None

    def start(self, key: dict[str, Any]) -> None:
        """A new run: any earlier unfinished one is discarded."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._pairs_fd = _open_append(self.partial, truncate=True)
        self._journal_fd = _open_append(self.journal, truncate=True)
        _append_line(self._journal_fd, json.dumps(key))

    def resume(self, key: dict[str, Any]) -> tuple[dict[str, int], int]:
        """Continue the unfinished run, if there is one (else start one): the documents
        already done (id: chunks that failed), and the pairs kept for them."""
        header, done = self._read_journal()
        if header is None:
            self.start(key)
            return {}, 0
        if header.get("journal") != key["journal"]:
            raise ResumeError(
                f"{self.journal} was written by another version of synthqa (its journal "
                f"version {header.get('journal')}, this one {key['journal']}), whose output "
                "lines differ; run without --resume to start over")
        if header != key:
            raise ResumeError(
                f"{self.journal} belongs to a run with other input files or options; run "
                "without --resume to start over")
        repair_torn_tail(self.partial)
        kept = _keep_pairs_of(self.partial, set(done))
        self._pairs_fd = _open_append(self.partial, truncate=False)
        self._journal_fd = _open_append(self.journal, truncate=False)
        return done, kept

    def write_pair(self, record: dict[str, Any]) -> None:
        assert self._pairs_fd is not None
        _append_line(self._pairs_fd, json.dumps(record, ensure_ascii=False))

    def document_done(self, document_id: str, failed_chunks: int) -> None:
        """Only after the document's pairs are written: the journal must never name a
        document whose pairs a crash could lose."""
        assert self._journal_fd is not None
        _append_line(self._journal_fd, json.dumps(
            {"done": document_id, "failed_chunks": failed_chunks}, ensure_ascii=False))

    def finish(self) -> None:
        self.close()
        os.replace(self.partial, self.out)
        self.journal.unlink(missing_ok=True)

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    def close(self) -> None:
        for fd in (self._pairs_fd, self._journal_fd):
            if fd is not None:
                os.close(fd)
        self._pairs_fd = self._journal_fd = None

    def _read_journal(self) -> tuple[dict[str, Any] | None, dict[str, int]]:
        if not self.journal.exists() or not self.partial.exists():
            return None, {}
        repair_torn_tail(self.journal)
        lines = iter(_lines(self.journal))
        header = next(lines, None)
        if header is None:
            return None, {}  # killed before the run began
        done = {}
        for line in lines:
            entry = json.loads(line)
            done[entry["done"]] = entry["failed_chunks"]
        return json.loads(header), done


def repair_torn_tail(path: Path) -> bool:
    """Cut a last line that has no newline (a write cut short by a kill); True if cut."""
    with path.open("r+b") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return False
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return False
        end = size
        while end > 0:  # back to the last newline, a block at a time
            start = max(0, end - _TAIL_BLOCK_BYTES)
            file.seek(start)
            newline = file.read(end - start).rfind(b"\n")
            if newline >= 0:
                file.truncate(start + newline + 1)
                return True
            end = start
        file.truncate(0)
        return True


def _keep_pairs_of(partial: Path, documents: set[str]) -> int:
    """Drop the pairs of documents not done (they will be generated again); the pairs kept."""
    kept = 0
    rewritten = partial.with_name(partial.name + ".tmp")
    with rewritten.open("w", encoding="utf-8") as sink:
        for line in _lines(partial):
            if json.loads(line)["document_id"] in documents:
                sink.write(line + "\n")
                kept += 1
    os.replace(rewritten, partial)
    return kept


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as source:
        for line in source:
            if line.strip():
                yield line.rstrip("\n")


def _open_append(path: Path, *, truncate: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.open(path, flags, 0o644)


def _append_line(fd: int, text: str) -> None:
    data = (text + "\n").encode("utf-8")
    while data:  # a regular file takes it whole unless a signal cuts the write short
        written = os.write(fd, data)
        data = data[written:]
