"""A run as a folder of shard files (synthqa.ray's output): `read_lines` takes the folder's
JSONL and Parquet shards in name order, Parquet rows back to the lines they were made from,
a shard still being written left out, and anything not a run refused by name; `synthqa export`
takes the folder as it takes one JSONL file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthqa.client.cli import main
from synthqa.client.export import ExportError, ExportSettings, export_run, read_lines
from synthqa.client.export.line_rows import line_row, line_schema
from synthqa.client.record_lines import Place, RunShape, Source, record_line
from synthqa.v1 import synthqa_pb2 as pb


class TwoPages:
    """A source map whose text has a page break at character 10."""

    def pages(self, start: int, end: int) -> list[int]:
        return [page for page, (first, last) in ((1, (0, 10)), (2, (10, 20)))
                if first < end and start < last]

    def slides(self, start: int, end: int) -> list[int]:
        return []


def line(document_id: str, index: int, record: Any = None, shape: str = "qa",
         evidence: bool = False) -> dict[str, Any]:
    record = record if record is not None else {"question": f"Q{index}?", "answer": f"A{index}."}
    spans = [pb.EvidenceSpan(sentence=0, char_start=2, char_end=14)] if evidence else []
    return record_line(pb.Record(document_id=document_id, record_index=index,
                                 json=json.dumps(record), evidence=spans, rating=7,
                                 rating_reason="grounded"),
                       Source(document_id, "ab" * 32), RunShape(shape, judged=True),
                       "0123456789abcdefghij", Place(TwoPages(), 0, 20))


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in lines),
                    encoding="utf-8")


def write_parquet(path: Path, lines: list[dict[str, Any]]) -> None:
    pq.write_table(pa.Table.from_pylist([line_row(item) for item in lines],
                                        schema=line_schema(pa)), path)


def test_a_folder_of_shards_reads_in_name_order_and_parquet_rows_come_back_as_lines(
    tmp_path: Path,
) -> None:
    first = [line("a.pdf", 0, evidence=True), line("a.pdf", 1)]
    second = [line("b.txt", 0, record={"name": "Ada", "born": 1815}, shape="custom"),
              line("c.txt", 0, record="just text", shape="custom")]
    third = [line("d.txt", 0)]
    write_parquet(tmp_path / "1f.parquet", second)
    write_jsonl(tmp_path / "0e.jsonl", first)
    write_parquet(tmp_path / "2a.parquet", third)
    # A shard being written, and files that are not shards, are not part of the run.
    write_jsonl(tmp_path / ".3b.jsonl.partial", [line("e.txt", 0)])
    (tmp_path / "summary.txt").write_text("not a shard", encoding="utf-8")

    lines = list(read_lines(tmp_path))

    assert lines == first + second + third
    assert lines[0]["source"]["pages"] == [1, 2]
    assert lines[0]["evidence"][0]["page"] == 1


def test_a_parquet_export_reads_back_as_its_run(tmp_path: Path) -> None:
    run = tmp_path / "run.jsonl"
    lines = [line("a.txt", n) for n in range(3)]
    write_jsonl(run, lines)
    export_run(run, tmp_path / "dataset", ExportSettings(fmt="parquet"))
    exported = tmp_path / "dataset" / "data" / "train-00000-of-00001.parquet"
    assert list(read_lines(exported)) == lines


def test_the_export_command_takes_a_folder_of_shards(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "a.jsonl", [line("a.txt", 0)])
    write_parquet(shards / "b.parquet", [line("b.txt", 0), line("b.txt", 1)])
    assert main(["export", str(shards), "--out", str(tmp_path / "data"), "--format",
                 "openai"]) == 0
    rows = (tmp_path / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(row)["messages"][0]["content"] for row in rows] == ["Q0?", "Q0?", "Q1?"]


def test_what_is_not_a_run_is_refused_by_name(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExportError, match="holds no shard files"):
        list(read_lines(empty))

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    write_jsonl(foreign / "a.jsonl", [line("a.txt", 0)])
    (foreign / "b.jsonl").write_text('{"document_id": "x", "pair_index": 0}\n',
                                     encoding="utf-8")
    with pytest.raises(ExportError, match=r"b\.jsonl:1 is not a synthqa record line"):
        list(read_lines(foreign))

    table = tmp_path / "table.parquet"
    pq.write_table(pa.table({"question": ["Q?"]}), table)
    with pytest.raises(ExportError, match=r"table\.parquet row 1 is not a synthqa record line"):
        list(read_lines(table))

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(ExportError, match="not a readable Parquet file"):
        list(read_lines(broken))
