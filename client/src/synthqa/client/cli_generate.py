"""The CLI's `generate` command: checks the input files, streams their pairs into JSONL, and
says what failed.

Exit codes: 0 everything was generated; 3 the call finished but some chunks, documents or
input files failed (the summary names them); 1 the call itself failed; 130 interrupted.
Output goes to `<out>.partial` and replaces `<out>` only when the call finishes, so a failed or
interrupted run never destroys an earlier file; the partial file is valid JSONL.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from synthqa.v1 import synthqa_pb2 as pb

from .documents import Document
from .events import pair_record
from .sync import SynthQAClient

EXIT_OK = 0
EXIT_CALL_FAILED = 1
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """An input file that cannot be sent: unreadable, not UTF-8, or with no text."""


def read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") \
            from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None
    if not text.strip():
        raise InputError(f"{path} is empty or only whitespace")
    return text


@dataclass
class RunReport:
    pairs: int = 0
    chunks_done: int = 0
    chunks_failed: int = 0
    documents_done: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Progress:
    def __init__(self, total_documents: int, enabled: bool) -> None:
        self.bar = tqdm(total=total_documents, unit="doc", disable=not enabled, file=sys.stderr)
        self.started = time.monotonic()

    def update(self, report: RunReport) -> None:
        rate = report.pairs / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(
            f"chunks {report.chunks_done} ({report.chunks_failed} failed), pairs "
            f"{report.pairs}, {rate:.1f} pairs/s", refresh=False)
        self.bar.refresh()


def usable_files(files: list[Path], report: RunReport, strict: bool) -> list[Path]:
    """The files that can be sent; the others are reported and skipped (with `strict`, the
    first bad one ends the command before any work)."""
    # Each file is read here and again when sent: files are streamed lazily from gRPC's
    # sending thread, where an error would only cancel the call, so a bad file must be found
    # first; holding every text in memory instead would not scale to large inputs.
    usable = []
    for path in files:
        try:
            read_text(path)
        except InputError as error:
            if strict:
                raise
            report.skipped.append(str(error))
            print(f"synthqa: skipping {error}", file=sys.stderr)
            continue
        usable.append(path)
    return usable


def documents(files: list[Path], positions: dict[Path, int]) -> Iterator[Document]:
    for path in files:
        # Two files may share a name; the position keeps document ids unique in the call.
        yield Document(f"{positions[path]}:{path}", read_text(path))


def run_generate(
    client: SynthQAClient,
    files: list[Path],
    out: Path,
    options: dict[str, Any],
    *,
    show: int,
    progress_enabled: bool,
    strict: bool,
) -> int:
    report = RunReport()
    positions = {path: index for index, path in enumerate(files)}
    try:
        usable = usable_files(files, report, strict)
    except InputError as error:
        print(f"synthqa: {error} (--strict: nothing was sent)", file=sys.stderr)
        return EXIT_CALL_FAILED
    if not usable:
        print("synthqa: no input file has text to send", file=sys.stderr)
        return EXIT_CALL_FAILED
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    progress = Progress(len(usable), enabled=progress_enabled)
    outcome = "failed"
    try:
        with partial.open("w", encoding="utf-8") as sink:
            for event in client.generate(documents(usable, positions), **options):
                _record(event, report, sink, progress.bar, show)
                progress.update(report)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
        return EXIT_INTERRUPTED
    finally:
        progress.bar.close()
        if outcome != "finished":
            _keep_partial(partial, out, report.pairs, outcome)
    os.replace(partial, out)
    return _summarize(report, len(usable), out)


def _keep_partial(partial: Path, out: Path, pairs: int, outcome: str) -> None:
    """After a call that did not finish: keep what arrived beside the earlier output."""
    kept = f"{pairs} pairs kept in {partial}" if pairs else "no pairs arrived"
    if not pairs:
        partial.unlink(missing_ok=True)
    earlier = f"; {out} left as it was" if out.exists() else ""
    what = "interrupted" if outcome == "interrupted" else "the call did not finish"
    print(f"synthqa: {what}; {kept}{earlier}", file=sys.stderr)


def _record(event: pb.GenerateResponse, report: RunReport, sink: TextIO, bar: tqdm,
            show: int) -> None:
    kind = event.WhichOneof("event")
    if kind == "qa_pair":
        # One whole line per write: an interrupted run leaves valid JSONL.
        sink.write(json.dumps(pair_record(event.qa_pair), ensure_ascii=False) + "\n")
        report.pairs += 1
        if report.pairs <= show:
            pair = event.qa_pair
            bar.write(f"[{pair.document_id} #{pair.chunk_index}.{pair.pair_index}] "
                      f"Q: {pair.question}", file=sys.stdout)
            bar.write(f"    A: {pair.answer}", file=sys.stdout)
    elif kind == "chunk_completed":
        report.chunks_done += 1
    elif kind == "chunk_failed":
        report.chunks_done += 1
        report.chunks_failed += 1
        failed = event.chunk_failed
        report.failures.append(f"{failed.document_id} chunk {failed.chunk_index}: "
                               f"{failed.error.message}")
    elif kind == "document_completed":
        report.documents_done += 1
        bar.update(1)


def _summarize(report: RunReport, documents_sent: int, out: Path) -> int:
    print(f"wrote {report.pairs} pairs from {report.documents_done} of {documents_sent} "
          f"document(s), {report.chunks_done} chunk(s) ({report.chunks_failed} failed), "
          f"to {out}", file=sys.stderr)
    for failure in report.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    for skipped in report.skipped:
        print(f"  skipped: {skipped}", file=sys.stderr)
    incomplete = report.failures or report.skipped or report.documents_done < documents_sent
    return EXIT_SOME_FAILED if incomplete else EXIT_OK
