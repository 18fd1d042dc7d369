"""The CLI's generate command on a stand-in client: exit codes, skipped files, and output that
a failed or interrupted run never destroys. (tests/e2e/test_cli.py runs it on the real server.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from synthqa.client import SynthQAError
from synthqa.client.cli_generate import (
    EXIT_CALL_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    run_generate,
)
from synthqa.v1 import synthqa_pb2 as pb


def pair(document_id: str, index: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(qa_pair=pb.QaPair(
        document_id=document_id, chunk_index=0, pair_index=index, question=f"Q{index}?",
        answer=f"A{index}."))


class StandIn:
    """Answers each document with two pairs; `fail_chunk`, `raise_after` and `interrupt_after`
    script the trouble."""

    def __init__(self, fail_chunk: bool = False, raise_after: int | None = None,
                 interrupt_after: int | None = None,
                 stop_reasons: dict[int, int] | None = None) -> None:
        self.fail_chunk, self.raise_after = fail_chunk, raise_after
        self.interrupt_after = interrupt_after
        # The nth document's stop reason (and record counts that say how it got there).
        self.stop_reasons = stop_reasons or {}
        self.sent: list[str] = []

    def server_info(self) -> pb.GetServerInfoResponse:
        return pb.GetServerInfoResponse()

    def generate(self, documents: Any, **options: Any) -> Iterator[pb.GenerateResponse]:
        emitted = 0
        for document in documents:
            self.sent.append(document.document_id)
            for index in range(2):
                if emitted == self.raise_after:
                    raise SynthQAError(grpc.StatusCode.UNAVAILABLE, "the server went away")
                if emitted == self.interrupt_after:
                    raise KeyboardInterrupt
                yield pair(document.document_id, index)
                emitted += 1
            if self.fail_chunk:
                yield pb.GenerateResponse(chunk_failed=pb.ChunkFailed(
                    document_id=document.document_id, chunk_index=1))
            reason = self.stop_reasons.get(len(self.sent) - 1, pb.STOP_REASON_COMPLETE)
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id, failed_chunk_count=int(self.fail_chunk),
                pair_count=2, stop_reason=reason, cached_chunk_count=1,
                record_counts=pb.RecordCounts(generated=9, invalid=1, dropped_by_judge=2,
                                              duplicates=4)))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"good": tmp_path / "good.txt", "empty": tmp_path / "empty.txt",
             "latin1": tmp_path / "latin1.txt", "missing": tmp_path / "missing.txt"}
    paths["good"].write_text("Lighthouses guide ships.", encoding="utf-8")
    paths["empty"].write_text("  \n", encoding="utf-8")
    paths["latin1"].write_bytes("Phare, \u00e9t\u00e9".encode("latin-1"))
    return paths


def run(client: StandIn, files: list[Path], out: Path, strict: bool = False) -> int:
    return run_generate(client, files, out, {}, show=0, progress_enabled=False,  # type: ignore[arg-type]
                        strict=strict)


def lines(path: Path) -> list[dict[str, Any]]:
    # "\n" only: str.splitlines also splits at U+2028 and the like, which JSON keeps raw.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def test_a_clean_run_exits_0_and_writes_every_pair(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pairs.jsonl"
    assert run(StandIn(), [files["good"]], out) == EXIT_OK
    assert len(lines(out)) == 2 and not out.with_name("pairs.jsonl.partial").exists()


@pytest.fixture
def without_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the base client is installed, without the ingest extra: UTF-8 text only."""
    monkeypatch.setattr("synthqa.client.documents_in.ingest_available", lambda: False)


def test_bad_files_are_named_skipped_and_make_exit_3(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    without_ingest: None,
) -> None:
    client, out = StandIn(), tmp_path / "pairs.jsonl"
    assert run(client, [files["empty"], files["good"], files["latin1"], files["missing"]],
               out) == EXIT_SOME_FAILED
    assert client.sent == ["good.txt"], "named by its path within the inputs' folder"
    assert len(lines(out)) == 2
    err = capsys.readouterr().err
    for name in ("empty.txt is empty", "latin1.txt is not UTF-8", "missing.txt"):
        assert name in err


def test_strict_stops_before_any_work(files: dict[str, Path], tmp_path: Path) -> None:
    client, out = StandIn(), tmp_path / "pairs.jsonl"
    assert run(client, [files["good"], files["empty"]], out, strict=True) == EXIT_CALL_FAILED
    assert client.sent == [] and not out.exists()


def test_failed_chunks_make_exit_3_with_a_summary(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(StandIn(fail_chunk=True), [files["good"]], tmp_path / "o.jsonl") == \
        EXIT_SOME_FAILED
    assert "failed: good.txt chunk 1" in capsys.readouterr().err


def test_a_failed_call_keeps_the_earlier_file_and_the_partial_pairs(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "pairs.jsonl"
    out.write_text('{"earlier": true}\n', encoding="utf-8")
    with pytest.raises(SynthQAError):
        run(StandIn(raise_after=1), [files["good"]], out)
    assert out.read_text(encoding="utf-8") == '{"earlier": true}\n'
    assert len(lines(out.with_name("pairs.jsonl.partial"))) == 1


def test_an_interrupt_says_one_line_and_leaves_valid_jsonl(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs.jsonl"
    out.write_text('{"earlier": true}\n', encoding="utf-8")
    assert run(StandIn(interrupt_after=1), [files["good"]], out) == EXIT_INTERRUPTED
    assert out.read_text(encoding="utf-8") == '{"earlier": true}\n'
    assert len(lines(out.with_name("pairs.jsonl.partial"))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synthqa: interrupted; 0 records of 0 finished ")
    assert "making again the 1 records of unfinished documents" in err[0]


def run_resumed(client: StandIn, files: list[Path], out: Path,
                options: dict[str, Any] | None = None) -> int:
    return run_generate(client, files, out, options or {}, show=0,  # type: ignore[arg-type]
                        progress_enabled=False, strict=False, resume=True)


@pytest.fixture
def three_files(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / f"doc{n}.txt" for n in range(3)]
    for path in paths:
        path.write_text(f"Text of {path.name}.", encoding="utf-8")
    return paths


def test_resume_sends_only_unfinished_documents_and_writes_no_pair_twice(
    three_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs.jsonl"
    # The first document finishes; the second is cut after one of its pairs.
    assert run(StandIn(interrupt_after=3), three_files, out) == EXIT_INTERRUPTED
    said = capsys.readouterr().err
    assert "interrupted; 2 records of 1 finished document(s) kept in" in said
    assert "with --resume keeps them and sends the rest, making again the 1 records of " \
        "unfinished documents" in said
    again = StandIn()
    assert run_resumed(again, three_files, out) == EXIT_OK
    assert again.sent == [three_files[1].name, three_files[2].name]
    written = [(record["document_id"], record["record_index"]) for record in lines(out)]
    assert sorted(written) == sorted(
        (path.name, index) for path in three_files for index in range(2))
    assert "and 2 records of 1 document(s) from the resumed run" in capsys.readouterr().err
    assert not out.with_name("pairs.jsonl.partial").exists()
    assert not out.with_name("pairs.jsonl.partial.done").exists()


def test_resume_cuts_a_torn_last_line(three_files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "pairs.jsonl"
    assert run(StandIn(interrupt_after=2), three_files, out) == EXIT_INTERRUPTED
    partial = out.with_name("pairs.jsonl.partial")
    with partial.open("ab") as torn:  # a kill in the middle of a write
        torn.write(b'{"document_id": "1:x", "question": "Wh')
    with out.with_name("pairs.jsonl.partial.done").open("ab") as torn:
        torn.write(b'{"done": "1:')
    assert run_resumed(StandIn(), three_files, out) == EXIT_OK
    assert len(lines(out)) == 6


def test_resume_refuses_a_run_with_other_options(
    three_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs.jsonl"
    assert run(StandIn(interrupt_after=3), three_files, out) == EXIT_INTERRUPTED
    client = StandIn()
    assert run_resumed(client, three_files, out, {"num_pairs": 4}) == EXIT_CALL_FAILED
    assert client.sent == []
    assert "other input files or options" in capsys.readouterr().err
    assert run_resumed(client, three_files[:2], out) == EXIT_CALL_FAILED


def test_resume_with_nothing_unfinished_is_a_fresh_run(
    three_files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "pairs.jsonl"
    client = StandIn()
    assert run_resumed(client, three_files, out) == EXIT_OK
    assert len(client.sent) == 3 and len(lines(out)) == 6


def test_resume_reports_chunks_that_failed_before(
    three_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs.jsonl"
    # The first document ends with a failed chunk, then the call is interrupted.
    assert run(StandIn(fail_chunk=True, interrupt_after=3), three_files, out) == \
        EXIT_INTERRUPTED
    assert run_resumed(StandIn(), three_files, out) == EXIT_SOME_FAILED
    assert "1 chunk(s) failed in the resumed run" in capsys.readouterr().err


def test_a_file_named_twice_by_any_spelling_is_sent_once_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bsd.txt").write_text("The BSD license is short.", encoding="utf-8")
    (tmp_path / "other.txt").write_text("Another text.", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(tmp_path / "bsd.txt")
    spellings = ["bsd.txt", "./bsd.txt", str(tmp_path / "bsd.txt"), "link.txt", "other.txt"]
    client, out = StandIn(), tmp_path / "pairs.jsonl"
    assert run_generate(client, spellings, out, {}, show=0,  # type: ignore[arg-type]
                        progress_enabled=False, strict=False) == EXIT_OK
    assert client.sent == ["bsd.txt", "other.txt"]
    assert len(lines(out)) == 4
    warnings = capsys.readouterr().err.splitlines()
    for repeat in spellings[1:4]:
        assert f"synthqa: {repeat} is the same file as bsd.txt; sending it once" in warnings


class SecondRunMidway(StandIn):
    """While its first document is sent, starts a second run on the same output."""

    def __init__(self, files: list[Path], out: Path) -> None:
        super().__init__()
        self.files, self.out = files, out
        self.second = StandIn()
        self.second_exit: int | None = None

    def generate(self, documents: Any, **options: Any) -> Iterator[pb.GenerateResponse]:
        for event in super().generate(documents, **options):
            if self.second_exit is None:
                self.second_exit = run(self.second, self.files, self.out)
            yield event


def test_a_second_run_on_the_same_out_stops_before_any_call(
    three_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pairs.jsonl"
    first = SecondRunMidway(three_files, out)
    assert run(first, three_files, out) == EXIT_OK
    assert first.second_exit == EXIT_CALL_FAILED and first.second.sent == []
    assert f"synthqa: {out} is being written by another synthqa run" in capsys.readouterr().err
    assert len(lines(out)) == 6, "the first run's output is whole"
    assert not out.with_name("pairs.jsonl.lock").exists()
    assert run(StandIn(), three_files, out) == EXIT_OK, "a finished run leaves no lock"


def test_a_lock_file_left_by_a_killed_run_stops_no_one(
    three_files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "pairs.jsonl"
    out.with_name("pairs.jsonl.lock").write_bytes(b"")
    assert run(StandIn(), three_files, out) == EXIT_OK


# A real, ASCII-only PDF: valid UTF-8, so before content was looked at its operators went to the
# model as the document's text.
ASCII_PDF = b"""%PDF-1.3
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R
  /Resources << /Font << /F1 5 0 R >> >> >> endobj
4 0 obj << /Length 44 >> stream
BT /F1 12 Tf 20 50 Td (Lighthouses) Tj ET
endstream endobj
5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj
trailer << /Root 1 0 R >>
%%EOF
"""


def test_markup_and_binary_files_that_decode_are_named_and_skipped_not_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], without_ingest: None,
) -> None:
    import zipfile

    made = {"report.txt": ASCII_PDF,  # a PDF under a text name: content decides
            "page.html": b"\n  <!DOCTYPE html><html><body><nav>Home</nav><p>Lamps.</p>",
            "feed.xml": b'<?xml version="1.0"?><rss><item>Lamps</item></rss>',
            "blob.txt": b"Lamps\x00\x01\x02 and more",
            "notes.md": b"# Lamps\n\nSome <b>bold</b> text and a <br> tag are still Markdown.\n"}
    for name, content in made.items():
        (tmp_path / name).write_bytes(content)
    with zipfile.ZipFile(tmp_path / "memo.docx", "w") as docx:
        docx.writestr("[Content_Types].xml", "<Types/>")
        docx.writestr("word/document.xml", "<w:document>Lamps</w:document>")
    client = StandIn()
    inputs = [tmp_path / name for name in (*made, "memo.docx")]
    assert run(client, inputs, tmp_path / "o.jsonl") == EXIT_SOME_FAILED
    assert client.sent == ["notes.md"], "only the Markdown is sent"
    err = capsys.readouterr().err
    for name, kind in (("report.txt", "a PDF document"), ("page.html", "an HTML page"),
                       ("feed.xml", "an XML document"), ("blob.txt", "a binary file"),
                       ("memo.docx", "a Word document (DOCX)")):
        assert f"{name} is {kind}, not text" in err, err


@pytest.mark.parametrize("name", ["records.parquet", "records.csv", "records"])
def test_an_out_file_named_for_another_format_is_refused_before_any_call(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthqa.client.cli import main

    source = tmp_path / "doc.txt"
    source.write_text("Lighthouses guide ships.", encoding="utf-8")
    with pytest.raises(SystemExit) as caught:
        main(["--target", "127.0.0.1:9", "generate", str(source), "--out", str(tmp_path / name)])
    assert caught.value.code == 2
    assert "synthqa generate writes JSON Lines" in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def test_a_document_short_of_its_target_is_named_with_why_and_makes_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = []
    for name in ("a.txt", "b.txt"):
        sources.append(tmp_path / name)
        sources[-1].write_text("Lighthouses guide ships.", encoding="utf-8")
    summary = tmp_path / "summary.json"
    client = StandIn(stop_reasons={1: pb.STOP_REASON_PATIENCE})
    code = run_generate(client, sources, tmp_path / "o.jsonl", {"target_records": 20},  # type: ignore[arg-type]
                        show=0, progress_enabled=False, strict=False, summary_json=summary)
    assert code == EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert (f"short of target: {sources[1].name}: patience: passes in a row sent no new record "
            "(2 of 20 records)") in err
    assert "records: 18 generated, 2 invalid, 4 judged out, 8 duplicates, 4 kept; " \
        "2 chunk(s) from the cache" in err
    written = json.loads(summary.read_text(encoding="utf-8"))
    assert written["records"] == {"generated": 18, "invalid": 2, "judged_out": 4,
                                  "duplicates": 8, "kept": 4}
    assert written["short_of_target"] == [
        f"{sources[1].name}: patience: passes in a row sent no new record (2 of 20 records)"]
    # Without a target, the same stop reasons are not a shortfall.
    assert run(StandIn(stop_reasons={1: pb.STOP_REASON_PATIENCE}), sources,
               tmp_path / "p.jsonl") == EXIT_OK


def test_progress_off_a_terminal_is_a_plain_line_with_chunks_known_and_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthqa.client.cli_generate import Progress

    monkeypatch.setattr(Progress, "PLAIN_SECONDS", 0.0)
    source = tmp_path / "doc.txt"
    source.write_text("Lighthouses guide ships.", encoding="utf-8")

    class Started(StandIn):
        def generate(self, documents: Any, **options: Any) -> Iterator[pb.GenerateResponse]:
            for event in super().generate(documents, **options):
                if event.HasField("qa_pair") and event.qa_pair.pair_index == 0:
                    yield pb.GenerateResponse(chunk_started=pb.ChunkStarted(
                        document_id=event.qa_pair.document_id, chunk_index=0, chunk_count=3))
                yield event

    assert run_generate(Started(), [source], tmp_path / "o.jsonl", {},  # type: ignore[arg-type]
                        show=0, progress_enabled=True, strict=False) == EXIT_OK
    progress = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("synthqa: progress:")]
    assert progress and progress[-1].startswith(
        "synthqa: progress: documents 1/1, files read 1/1, chunks 0/3 (0 failed), records 2, ")


def test_progress_with_targets_shows_targets_met_and_the_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthqa.client.cli_generate import Progress

    monkeypatch.setattr(Progress, "PLAIN_SECONDS", 0.0)
    sources = []
    for name in ("a.txt", "b.txt"):
        sources.append(tmp_path / name)
        sources[-1].write_text("Lighthouses guide ships.", encoding="utf-8")

    class SecondPass(StandIn):
        def generate(self, documents: Any, **options: Any) -> Iterator[pb.GenerateResponse]:
            for event in super().generate(documents, **options):
                if event.HasField("qa_pair") and event.qa_pair.pair_index == 0:
                    yield pb.GenerateResponse(chunk_started=pb.ChunkStarted(
                        document_id=event.qa_pair.document_id, chunk_count=1, pass_index=1))
                yield event

    client = SecondPass(stop_reasons={0: pb.STOP_REASON_TARGET_MET,
                                      1: pb.STOP_REASON_PATIENCE})
    assert run_generate(client, sources, tmp_path / "o.jsonl",  # type: ignore[arg-type]
                        {"target_records": 2}, show=0, progress_enabled=True,
                        strict=False) == EXIT_SOME_FAILED
    progress = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("synthqa: progress:")]
    assert progress[-1].endswith("target 2 met by 1 of 2 done, pass 2"), progress[-1]
