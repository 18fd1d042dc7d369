"""The CLI's `generate` command: checks the input files, streams their pairs into JSONL, and
says what failed.

Exit codes: 0 everything was generated; 3 the call finished but some chunks, documents or
input files failed, or a document stopped short of target_records (the summary names them);
1 the call itself failed, or nothing was sent (--strict found a bad file, no file has text,
another run is writing --out, --resume cannot resume); 130 interrupted.
Output goes to `<out>.partial` and replaces `<out>` only when the call finishes, so a failed or
interrupted run never destroys an earlier file; `--resume` finishes an unfinished run,
sending only the documents not yet done (output_journal.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from synthqa.v1 import synthqa_pb2 as pb

from .documents import Document
from .events import pair_record, record_line
from .file_kinds import non_text_kind
from .output_journal import OutputBusy, OutputJournal, OutputLock, ResumeError, run_key
from .sync import SynthQAClient

EXIT_OK = 0
EXIT_CALL_FAILED = 1
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """An input file that cannot be sent: unreadable, not UTF-8, or with no text."""


def read_text(path: Path) -> str:
    try:
        kind = non_text_kind(path)
        if kind is not None:
            raise InputError(f"{path} is {kind}, not text: its markup or bytes would reach the "
                             "model as if they were the document; extract its text first")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") \
            from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None
    if not text.strip():
        raise InputError(f"{path} is empty or only whitespace")
    return text


# Why a document stopped short of target_records, in words.
STOP_REASONS = {
    pb.STOP_REASON_PATIENCE: "patience: passes in a row sent no new record",
    pb.STOP_REASON_INVALID_FRACTION: "too many invalid records (max_invalid_fraction)",
    pb.STOP_REASON_MAX_PASSES: "the most passes were done (max_passes)",
}


@dataclass
class RunReport:
    pairs: int = 0
    pairs_carried_over: int = 0
    documents_carried_over: int = 0
    chunks_done: int = 0
    chunks_failed: int = 0
    documents_done: int = 0
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # From the server's document_completed events of this run.
    records_generated: int = 0
    records_invalid: int = 0
    records_judged_out: int = 0
    records_duplicates: int = 0
    cached_chunks: int = 0
    # Documents that stopped short of target_records: "id: reason (N of M records)".
    short_of_target: list[str] = field(default_factory=list)
    # Chunks of the documents started so far (each document's count comes with its first).
    chunks_known: int = 0
    counted_documents: set[str] = field(default_factory=set)
    # Records written per document not finished yet: an interrupted run's are made again.
    unfinished_records: dict[str, int] = field(default_factory=dict)

    def as_json(self, documents_sent: int, out: Path) -> dict[str, Any]:
        return {
            "out": str(out), "documents_sent": documents_sent,
            "documents_done": self.documents_done,
            "documents_carried_over": self.documents_carried_over,
            "records_written": self.pairs, "records_carried_over": self.pairs_carried_over,
            "chunks_done": self.chunks_done, "chunks_failed": self.chunks_failed,
            "cached_chunks": self.cached_chunks,
            "records": {"generated": self.records_generated, "invalid": self.records_invalid,
                        "judged_out": self.records_judged_out,
                        "duplicates": self.records_duplicates, "kept": self.pairs},
            "failures": self.failures, "skipped": self.skipped,
            "short_of_target": self.short_of_target,
        }


class Progress:
    """A bar on a terminal; elsewhere (CI, logs) a plain line every PLAIN_SECONDS, unless off.
    Counts what moves while documents are worked on: chunks of the chunks known so far, and
    records."""

    PLAIN_SECONDS = 10.0

    def __init__(self, total_documents: int, done: int, enabled: bool, terminal: bool) -> None:
        self.bar = tqdm(total=total_documents, initial=done, unit="doc",
                        disable=not (enabled and terminal), file=sys.stderr)
        self.plain = enabled and not terminal
        self.total_documents = total_documents
        self.started = self.last_line = time.monotonic()

    def update(self, report: RunReport) -> None:
        now = time.monotonic()
        rate = report.pairs / max(now - self.started, 1e-9)
        counts = (f"chunks {report.chunks_done}/{report.chunks_known} "
                  f"({report.chunks_failed} failed), records {report.pairs}, "
                  f"{rate:.1f} records/s")
        if self.plain:
            if now - self.last_line >= self.PLAIN_SECONDS:
                self.last_line = now
                done = report.documents_done + report.documents_carried_over
                print(f"synthqa: progress: documents {done}/{self.total_documents}, {counts}",
                      file=sys.stderr, flush=True)
            return
        self.bar.set_postfix_str(counts, refresh=False)
        self.bar.refresh()


def distinct_files(files: Sequence[str | Path]) -> dict[Path, int]:
    """Each file once, with its first position on the command line: a file named twice by any
    spelling (bsd.txt and ./bsd.txt, its absolute path, a link to it) is one document, and
    each repeat is named in a warning."""
    first_spelling: dict[object, str] = {}
    positions: dict[Path, int] = {}
    for position, spelling in enumerate(files):
        identity = _file_identity(Path(spelling))
        if identity in first_spelling:
            print(f"synthqa: {spelling} is the same file as {first_spelling[identity]}; "
                  "sending it once", file=sys.stderr)
            continue
        first_spelling[identity] = str(spelling)
        positions[Path(spelling)] = position
    return positions


def _file_identity(path: Path) -> object:
    try:
        found = path.stat()
    except OSError:  # reported when the file is read; its spelling is all there is to compare
        return os.path.abspath(path)
    return (found.st_dev, found.st_ino)


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


def documents(files: list[Path], positions: dict[Path, int],
              done: Collection[str] = ()) -> Iterator[Document]:
    for path in files:
        if (document_id := document_id_of(path, positions)) not in done:
            yield Document(document_id, read_text(path))


def document_id_of(path: Path, positions: dict[Path, int]) -> str:
    # Two files may share a name; the position keeps document ids unique in the call.
    return f"{positions[path]}:{path}"


def run_generate(
    client: SynthQAClient,
    files: Sequence[str | Path],
    out: Path,
    options: dict[str, Any],
    *,
    show: int,
    progress_enabled: bool,
    strict: bool,
    resume: bool = False,
    streams: int = 1,
    summary_json: Path | None = None,
) -> int:
    """`files` as the command line spelled them (a repeated file's warning names both)."""
    try:
        with OutputLock(out):
            return _generate(client, files, out, options, show=show,
                             progress_enabled=progress_enabled, strict=strict, resume=resume,
                             streams=streams, summary_json=summary_json)
    except OutputBusy as error:
        print(f"synthqa: {error}", file=sys.stderr)
        return EXIT_CALL_FAILED


def _generate(
    client: SynthQAClient,
    files: Sequence[str | Path],
    out: Path,
    options: dict[str, Any],
    *,
    show: int,
    progress_enabled: bool,
    strict: bool,
    resume: bool,
    streams: int,
    summary_json: Path | None,
) -> int:
    report = RunReport()
    positions = distinct_files(files)
    try:
        usable = usable_files(list(positions), report, strict)
    except InputError as error:
        print(f"synthqa: {error} (--strict: nothing was sent)", file=sys.stderr)
        return EXIT_CALL_FAILED
    if not usable:
        print("synthqa: no input file has text to send", file=sys.stderr)
        return EXIT_CALL_FAILED
    journal = OutputJournal(out)
    key = run_key([document_id_of(path, positions) for path in usable], options)
    done: dict[str, int] = {}
    if resume:
        try:
            done, report.pairs_carried_over = journal.resume(key)
        except ResumeError as error:
            print(f"synthqa: {error}", file=sys.stderr)
            return EXIT_CALL_FAILED
        report.documents_carried_over = len(done)
        report.failures += [f"{document_id}: {failed} chunk(s) failed in the resumed run"
                            for document_id, failed in done.items() if failed]
        if done:
            print(f"synthqa: resuming: {len(done)} of {len(usable)} document(s) done, "
                  f"{report.pairs_carried_over} pairs kept", file=sys.stderr)
    else:
        journal.start(key)
    progress = Progress(len(usable), len(done), enabled=progress_enabled,
                        terminal=sys.stderr.isatty())
    outcome = "failed"
    try:
        if len(done) < len(usable):
            events = client.generate(documents(usable, positions, done), streams=streams,
                                     **options)
            for event in events:
                _record(event, report, journal, progress.bar, show,
                        options.get("target_records"))
                progress.update(report)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
        return EXIT_INTERRUPTED
    finally:
        progress.bar.close()
        if outcome != "finished":
            _keep_partial(journal, report, outcome)
    journal.finish()
    return _summarize(report, len(usable), out, summary_json)


def _keep_partial(journal: OutputJournal, report: RunReport, outcome: str) -> None:
    """After a call that did not finish: keep what arrived beside the earlier output."""
    pairs = report.pairs + report.pairs_carried_over
    done = report.documents_done + report.documents_carried_over
    if not pairs and not done:
        journal.discard()
        kept = "no records arrived"
    else:
        journal.close()
        again = sum(report.unfinished_records.values())
        kept = (f"{pairs - again} records of {done} finished document(s) kept in "
                f"{journal.partial}: the same command with --resume keeps them and sends the "
                f"rest, making again the {again} records of unfinished documents")
    earlier = f"; {journal.out} left as it was" if journal.out.exists() else ""
    what = "interrupted" if outcome == "interrupted" else "the call did not finish"
    print(f"synthqa: {what}; {kept}{earlier}", file=sys.stderr)


def _record(event: pb.GenerateResponse, report: RunReport, journal: OutputJournal, bar: tqdm,
            show: int, target_records: int | None = None) -> None:
    kind = event.WhichOneof("event")
    if kind == "qa_pair":
        journal.write_pair(pair_record(event.qa_pair))
        report.pairs += 1
        _count_unfinished(report, event.qa_pair.document_id)
        if report.pairs <= show:
            pair = event.qa_pair
            bar.write(f"[{pair.document_id} #{pair.chunk_index}.{pair.pair_index}] "
                      f"Q: {pair.question}", file=sys.stdout)
            bar.write(f"    A: {pair.answer}", file=sys.stdout)
    elif kind == "record":
        record = event.record
        journal.write_pair(record_line(record))
        report.pairs += 1
        _count_unfinished(report, record.document_id)
        if report.pairs <= show:
            bar.write(f"[{record.document_id} #{record.chunk_index}.{record.record_index}] "
                      f"{record.json}", file=sys.stdout)
    elif kind == "chunk_started":
        started = event.chunk_started
        if started.document_id not in report.counted_documents:
            report.counted_documents.add(started.document_id)
            report.chunks_known += started.chunk_count
    elif kind == "chunk_completed":
        report.chunks_done += 1
    elif kind == "chunk_failed":
        report.chunks_done += 1
        report.chunks_failed += 1
        failed = event.chunk_failed
        report.failures.append(f"{failed.document_id} chunk {failed.chunk_index}: "
                               f"{failed.error.message}")
    elif kind == "document_completed":
        completed = event.document_completed
        journal.document_done(completed.document_id, completed.failed_chunk_count)
        report.documents_done += 1
        report.unfinished_records.pop(completed.document_id, None)
        counts = completed.record_counts
        report.records_generated += counts.generated
        report.records_invalid += counts.invalid
        report.records_judged_out += counts.dropped_by_judge
        report.records_duplicates += counts.duplicates
        report.cached_chunks += completed.cached_chunk_count
        if completed.stop_reason in STOP_REASONS and target_records:
            report.short_of_target.append(
                f"{completed.document_id}: {STOP_REASONS[completed.stop_reason]} "
                f"({completed.pair_count} of {target_records} records)")
        bar.update(1)


def _count_unfinished(report: RunReport, document_id: str) -> None:
    report.unfinished_records[document_id] = report.unfinished_records.get(document_id, 0) + 1


def _summarize(report: RunReport, documents_sent: int, out: Path,
               summary_json: Path | None = None) -> int:
    carried = (f" (and {report.pairs_carried_over} pairs of {report.documents_carried_over} "
               "document(s) from the resumed run)" if report.documents_carried_over else "")
    print(f"wrote {report.pairs} pairs from {report.documents_done} of "
          f"{documents_sent - report.documents_carried_over} document(s), "
          f"{report.chunks_done} chunk(s) ({report.chunks_failed} failed), to {out}{carried}",
          file=sys.stderr)
    print(f"  records: {report.records_generated} generated, {report.records_invalid} invalid, "
          f"{report.records_judged_out} judged out, {report.records_duplicates} duplicates, "
          f"{report.pairs} kept; {report.cached_chunks} chunk(s) from the cache",
          file=sys.stderr)
    for failure in report.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    for short in report.short_of_target:
        print(f"  short of target: {short}", file=sys.stderr)
    for skipped in report.skipped:
        print(f"  skipped: {skipped}", file=sys.stderr)
    if summary_json is not None:
        summary_json.write_text(json.dumps(report.as_json(documents_sent, out), indent=2) + "\n",
                                encoding="utf-8")
    done = report.documents_done + report.documents_carried_over
    incomplete = (report.failures or report.skipped or report.short_of_target
                  or done < documents_sent)
    return EXIT_SOME_FAILED if incomplete else EXIT_OK
