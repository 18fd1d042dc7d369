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
                 interrupt_after: int | None = None) -> None:
        self.fail_chunk, self.raise_after = fail_chunk, raise_after
        self.interrupt_after = interrupt_after
        self.sent: list[str] = []

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
            yield pb.GenerateResponse(document_completed=pb.DocumentCompleted(
                document_id=document.document_id))


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
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_clean_run_exits_0_and_writes_every_pair(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pairs.jsonl"
    assert run(StandIn(), [files["good"]], out) == EXIT_OK
    assert len(lines(out)) == 2 and not out.with_name("pairs.jsonl.partial").exists()


def test_bad_files_are_named_skipped_and_make_exit_3(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client, out = StandIn(), tmp_path / "pairs.jsonl"
    assert run(client, [files["empty"], files["good"], files["latin1"], files["missing"]],
               out) == EXIT_SOME_FAILED
    assert client.sent == [f"1:{files['good']}"], "positions stay those on the command line"
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
    assert "failed: 0:" in capsys.readouterr().err


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
    assert len(err) == 1 and err[0].startswith("synthqa: interrupted; 1 pairs kept in")
