"""`synthqa export`: each format's shape, cot and summary records mapped as documented, custom
records refused outside jsonl, and splits by source document that never share a document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthqa.client.cli import main
from synthqa.client.export import ExportError, export, parse_split, split_of
from synthqa.client.record_lines import RunShape, Source, record_line
from synthqa.v1 import synthqa_pb2 as pb


def line(document_id: str, index: int, shape: str = "qa", **record: Any) -> dict[str, Any]:
    record = record or {"question": f"Q{index}?", "answer": f"A{index}."}
    return record_line(pb.Record(document_id=document_id, record_index=index,
                                 json=json.dumps(record)),
                       Source(document_id, "0" * 64), RunShape(shape, False), None)


def written(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").split("\n") if text]


@pytest.mark.parametrize(("fmt", "expected"), [
    ("alpaca", {"instruction": "Q0?", "input": "", "output": "A0."}),
    ("sharegpt", {"conversations": [{"from": "human", "value": "Q0?"},
                                    {"from": "gpt", "value": "A0."}]}),
    ("openai", {"messages": [{"role": "user", "content": "Q0?"},
                             {"role": "assistant", "content": "A0."}]}),
])
def test_each_format_has_its_shape(tmp_path: Path, fmt: str, expected: dict[str, Any]) -> None:
    assert export([line("a.txt", 0)], tmp_path, fmt) == {"train": 1}
    assert written(tmp_path / "train.jsonl") == [expected]


def test_jsonl_keeps_the_lines_with_their_lineage(tmp_path: Path) -> None:
    lines = [line("a.txt", 0), line("b.txt", 1, "custom", term="Pharos")]
    export(lines, tmp_path, "jsonl")
    assert written(tmp_path / "train.jsonl") == lines


def test_cot_reasoning_goes_before_the_answer_and_summaries_answer_an_instruction(
    tmp_path: Path
) -> None:
    export([line("a.txt", 0, "cot", question="Why?", reasoning="Because.", answer="So."),
            line("a.txt", 1, "summary", summary="A tower.")], tmp_path, "openai")
    cot, summary = written(tmp_path / "train.jsonl")
    assert cot["messages"][1]["content"] == "Because.\n\nAnswer: So."
    assert summary["messages"] == [{"role": "user", "content": "Summarize the passage."},
                                   {"role": "assistant", "content": "A tower."}]


def test_custom_records_are_refused_outside_jsonl_and_nothing_is_left(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="only --format jsonl"):
        export([line("a.txt", 0), line("b.txt", 1, "custom", term="Pharos")], tmp_path, "alpaca")
    assert list(tmp_path.iterdir()) == []


def test_splits_are_by_document_seeded_and_never_share_one(tmp_path: Path) -> None:
    shares = parse_split("train=0.8,validation=0.1,test=0.1")
    lines = [line(f"doc{d}.txt", r) for d in range(200) for r in range(3)]
    counts = export(lines, tmp_path, "jsonl", shares, seed=7)
    assert sum(counts.values()) == 600 and all(counts.values())
    owners: dict[str, set[str]] = {}
    for split in shares:
        for record in written(tmp_path / f"{split}.jsonl"):
            owners.setdefault(record["document_id"], set()).add(split)
    assert all(len(splits) == 1 for splits in owners.values()), "a document in two splits"
    assert 120 <= counts["train"] / 3 <= 195
    assert split_of("doc1.txt", shares, 7) == split_of("doc1.txt", shares, 7)
    assert [split_of(f"doc{d}.txt", shares, 7) for d in range(50)] != \
        [split_of(f"doc{d}.txt", shares, 8) for d in range(50)]


@pytest.mark.parametrize("text", ["train=0.9", "train=0.9,validation=0.2", "train",
                                  "train=-1,validation=2"])
def test_bad_splits_are_refused(text: str) -> None:
    with pytest.raises(ExportError, match="--split"):
        parse_split(text)


def test_the_command_exports_a_run_and_refuses_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run.jsonl"
    run.write_text("".join(json.dumps(line(f"d{n}", 0)) + "\n" for n in range(10)),
                   encoding="utf-8")
    assert main(["export", str(run), "--out", str(tmp_path / "data"), "--format", "sharegpt",
                 "--split", "train=0.5,validation=0.5", "--seed", "1"]) == 0
    total = sum(len(written(tmp_path / "data" / f"{s}.jsonl")) for s in ("train", "validation"))
    assert total == 10
    assert "exported records to" in capsys.readouterr().err
    old = tmp_path / "old.jsonl"
    old.write_text('{"document_id": "0:/abs/a.txt", "pair_index": 0}\n', encoding="utf-8")
    assert main(["export", str(old), "--out", str(tmp_path / "x")]) == 1
    assert "schema version 1" in capsys.readouterr().err
