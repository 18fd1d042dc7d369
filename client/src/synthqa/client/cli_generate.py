"""The CLI's `generate` command: checks the input files, streams their records into JSONL (one
line schema, record_lines.py), and says what failed.

Exit codes: 0 everything was generated; 3 the call finished but some chunks, documents or
input files failed, or a document stopped short of target_records (the summary names them);
1 the call itself failed, or nothing was sent (--strict found a bad file, no file has text,
another run is writing --out, --resume cannot resume); 130 interrupted.
Output goes to `<out>.partial` and replaces `<out>` only when the call finishes, so a failed or
interrupted run never destroys an earlier file; `--resume` finishes an unfinished run,
sending only the documents not yet done (output_journal.py).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from synthqa.contract.wire import options_from_message
from synthqa.v1 import synthqa_pb2 as pb

from .documents_in import InFlight, InputError, check_all, document_ids
from .errors import SynthQAError
from .output_journal import OutputBusy, OutputJournal, OutputLock, ResumeError, run_key
from .record_lines import Place, RunShape, pair_line, record_line, run_shape
from .run_manifest import now, write_manifest
from .sync import SynthQAClient

EXIT_OK = 0
EXIT_CALL_FAILED = 1
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130


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
    # Files read (or extracted) and handed to the calls, this run.
    files_read: int = 0
    # With target_records: documents that met it, and the furthest pass begun (from 0).
    targets_met: int = 0
    highest_pass: int = 0
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

    def __init__(self, total_documents: int, done: int, enabled: bool, terminal: bool,
                 target_records: int | None = None) -> None:
        self.bar = tqdm(total=total_documents, initial=done, unit="doc",
                        disable=not (enabled and terminal), file=sys.stderr)
        self.plain = enabled and not terminal
        self.total_documents = total_documents
        self.target_records = target_records
        self.started = self.last_line = time.monotonic()

    def update(self, report: RunReport) -> None:
        now = time.monotonic()
        rate = report.pairs / max(now - self.started, 1e-9)
        counts = (f"files read {report.files_read}/{self.total_documents}, "
                  f"chunks {report.chunks_done}/{report.chunks_known} "
                  f"({report.chunks_failed} failed), records {report.pairs}, "
                  f"{rate:.1f} records/s")
        if self.target_records:
            # With targets a document takes passes over its chunks until it has enough.
            counts += (f", target {self.target_records} met by {report.targets_met} of "
                       f"{report.documents_done} done, pass {report.highest_pass + 1}")
        if self.plain:
            if now - self.last_line >= self.PLAIN_SECONDS:
                self.last_line = now
                done = report.documents_done + report.documents_carried_over
                print(f"synthqa: progress: documents {done}/{self.total_documents}, {counts}",
                      file=sys.stderr, flush=True)
            return
        self.bar.set_postfix_str(counts, refresh=False)
        self.bar.refresh()


def distinct_files(files: Sequence[str | Path]) -> list[Path]:
    """Each file once, in the order first named: a file named twice by any spelling (bsd.txt
    and ./bsd.txt, its absolute path, a link to it) is one document, and each repeat is named
    in a warning."""
    first_spelling: dict[object, str] = {}
    distinct: list[Path] = []
    for spelling in files:
        identity = _file_identity(Path(spelling))
        if identity in first_spelling:
            print(f"synthqa: {spelling} is the same file as {first_spelling[identity]}; "
                  "sending it once", file=sys.stderr)
            continue
        first_spelling[identity] = str(spelling)
        distinct.append(Path(spelling))
    return distinct


def _file_identity(path: Path) -> object:
    try:
        found = path.stat()
    except OSError:  # reported when the file is read; its spelling is all there is to compare
        return os.path.abspath(path)
    return (found.st_dev, found.st_ino)


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
    started = now()
    usable = distinct_files(files)
    if strict:
        try:
            check_all(usable)
        except InputError as error:
            print(f"synthqa: {error} (--strict: nothing was sent)", file=sys.stderr)
            return EXIT_CALL_FAILED
    ids = document_ids(usable)
    journal = OutputJournal(out)
    done = _open_journal(journal, run_key([ids[path] for path in usable], options), resume,
                         report, len(usable))
    if done is None:
        return EXIT_CALL_FAILED
    progress = Progress(len(usable), len(done), enabled=progress_enabled,
                        terminal=sys.stderr.isatty(),
                        target_records=options.get("target_records"))
    in_flight = InFlight(skip=lambda reason: _skip(report, progress, reason))
    outcome = "failed"
    try:
        if len(done) < len(usable):
            # The record shape takes the server's defaults into account: asked for when the
            # first record comes (a qa_pair needs none, and a server that is down is then
            # reported by the generate call itself).
            shape = functools.cache(lambda: run_shape(
                options, options_from_message(client.server_info().defaults)))
            writer = LineWriter(journal, report, in_flight, shape, progress.bar, show,
                                options.get("target_records"))
            for event in client.generate(in_flight.documents(usable, ids, done),
                                         streams=streams, **options):
                writer.handle(event)
                report.files_read = in_flight.files_read
                progress.update(report)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
        return EXIT_INTERRUPTED
    finally:
        progress.bar.close()
        if outcome != "finished":
            _keep_partial(journal, report, outcome)
    if not in_flight.files_read and not done:
        journal.discard()
        print("synthqa: no input file has text to send", file=sys.stderr)
        return EXIT_CALL_FAILED
    journal.finish()
    code = _summarize(report, len(usable), out, summary_json)
    _write_manifest(client, out, started, options, usable, ids, in_flight, report)
    return code


def _write_manifest(client: SynthQAClient, out: Path, started: str, options: dict[str, Any],
                    files: list[Path], ids: dict[Path, str], in_flight: InFlight,
                    report: RunReport) -> None:
    try:
        server = client.server_info()
    except SynthQAError:
        server = None  # the run is written; the manifest says the server could not be asked
    inputs = []
    for path in files:
        document_id = ids[path]
        source = in_flight.sources.get(document_id)
        inputs.append({"document_id": document_id,
                       "sha256": source.sha256 if source is not None else None,
                       "kind": in_flight.kinds.get(document_id),
                       "skipped": in_flight.skipped.get(document_id),
                       **in_flight.extent(document_id)})
    written = write_manifest(out, started=started, options=options, server=server,
                             inputs=inputs, counts=report.as_json(len(files), out))
    print(f"  manifest: {written}", file=sys.stderr)


def _skip(report: RunReport, progress: Progress, reason: str) -> None:
    report.skipped.append(reason)
    progress.bar.write(f"synthqa: skipping {reason}", file=sys.stderr)


def _open_journal(journal: OutputJournal, key: dict[str, Any], resume: bool,
                  report: RunReport, documents: int) -> dict[str, int] | None:
    """Starts the run's journal, or resumes it: the documents already done (id: chunks that
    failed); None when the run cannot resume (said on stderr)."""
    if not resume:
        journal.start(key)
        return {}
    try:
        done, report.pairs_carried_over = journal.resume(key)
    except ResumeError as error:
        print(f"synthqa: {error}", file=sys.stderr)
        return None
    report.documents_carried_over = len(done)
    report.failures += [f"{document_id}: {failed} chunk(s) failed in the resumed run"
                        for document_id, failed in done.items() if failed]
    if done:
        print(f"synthqa: resuming: {len(done)} of {documents} document(s) done, "
              f"{report.pairs_carried_over} records kept", file=sys.stderr)
    return done


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


class LineWriter:
    """Writes each record's line (record_lines.py) and counts every event into the report."""

    def __init__(self, journal: OutputJournal, report: RunReport, in_flight: InFlight,
                 shape: Callable[[], RunShape], bar: tqdm, show: int,
                 target_records: int | None) -> None:
        self.journal, self.report, self.in_flight = journal, report, in_flight
        self.shape, self.bar, self.show = shape, bar, show
        self.target_records = target_records
        # Each running chunk's range of its document's text, for the pages it spans.
        self.chunk_spans: dict[tuple[str, int], tuple[int, int]] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {
            "qa_pair": self._pair, "record": self._record, "chunk_started": self._chunk_started,
            "chunk_completed": self._chunk_completed, "chunk_failed": self._chunk_failed,
            "document_completed": self._document_completed,
        }

    def handle(self, event: pb.GenerateResponse) -> None:
        kind = event.WhichOneof("event")
        if kind is not None:
            self._handlers[kind](getattr(event, kind))

    def _write(self, line: dict[str, Any], label: str, shown: str) -> None:
        self.journal.write_pair(line)
        self.report.pairs += 1
        _count_unfinished(self.report, line["document_id"])
        if self.report.pairs <= self.show:
            self.bar.write(f"[{label}] {shown}", file=sys.stdout)

    def _place(self, document_id: str, chunk_index: int) -> Place | None:
        span = self.chunk_spans.get((document_id, chunk_index))
        if span is None:
            return None
        return Place(self.in_flight.extracted.get(document_id), *span)

    def _pair(self, pair: pb.QaPair) -> None:
        line = pair_line(pair, self.in_flight.sources[pair.document_id],
                         self._place(pair.document_id, pair.chunk_index))
        self._write(line, f"{pair.document_id} #{pair.chunk_index}.{pair.pair_index}",
                    f"Q: {pair.question}\n    A: {pair.answer}")

    def _record(self, record: pb.Record) -> None:
        document_id = record.document_id
        line = record_line(record, self.in_flight.sources[document_id], self.shape(),
                           self.in_flight.texts.get(document_id),
                           self._place(document_id, record.chunk_index))
        self._write(line, f"{document_id} #{record.chunk_index}.{record.record_index}",
                    record.json)

    def _chunk_started(self, started: pb.ChunkStarted) -> None:
        self.chunk_spans[(started.document_id, started.chunk_index)] = (started.char_start,
                                                                        started.char_end)
        self.report.highest_pass = max(self.report.highest_pass, started.pass_index)
        if started.document_id not in self.report.counted_documents:
            self.report.counted_documents.add(started.document_id)
            self.report.chunks_known += started.chunk_count

    def _chunk_completed(self, completed: pb.ChunkCompleted) -> None:
        self.report.chunks_done += 1

    def _chunk_failed(self, failed: pb.ChunkFailed) -> None:
        self.report.chunks_done += 1
        self.report.chunks_failed += 1
        self.report.failures.append(f"{failed.document_id} chunk {failed.chunk_index}: "
                                    f"{failed.error.message}")

    def _document_completed(self, completed: pb.DocumentCompleted) -> None:
        report = self.report
        self.journal.document_done(completed.document_id, completed.failed_chunk_count)
        self.in_flight.finished(completed.document_id)
        for key in [key for key in self.chunk_spans if key[0] == completed.document_id]:
            del self.chunk_spans[key]
        report.documents_done += 1
        report.unfinished_records.pop(completed.document_id, None)
        counts = completed.record_counts
        report.records_generated += counts.generated
        report.records_invalid += counts.invalid
        report.records_judged_out += counts.dropped_by_judge
        report.records_duplicates += counts.duplicates
        report.cached_chunks += completed.cached_chunk_count
        report.targets_met += completed.stop_reason == pb.STOP_REASON_TARGET_MET
        if completed.stop_reason in STOP_REASONS and self.target_records:
            report.short_of_target.append(
                f"{completed.document_id}: {STOP_REASONS[completed.stop_reason]} "
                f"({completed.pair_count} of {self.target_records} records)")
        self.bar.update(1)


def _count_unfinished(report: RunReport, document_id: str) -> None:
    report.unfinished_records[document_id] = report.unfinished_records.get(document_id, 0) + 1


def _summarize(report: RunReport, documents_sent: int, out: Path,
               summary_json: Path | None = None) -> int:
    carried = (f" (and {report.pairs_carried_over} records of {report.documents_carried_over} "
               "document(s) from the resumed run)" if report.documents_carried_over else "")
    print(f"wrote {report.pairs} records from {report.documents_done} of "
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
