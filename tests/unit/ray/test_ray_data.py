"""synthqa.ray against a stand-in server (canned events over real gRPC, no engine; see
canned_server.py): shards and their keys, ExtractDocuments and GenerateRecords called as Ray
would call them, then generate_dataset on a local Ray over a mixed folder: the shard files
hold every document's lines once, as the CLI makes them, the bad file is reported, a second
run finds every shard done and writes nothing, and a killed actor and a document with a
failed chunk end, through Ray's retries, with every record exactly once."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import ray

from synthqa.client.export import read_lines
from synthqa.client.ingest import extract_file
from synthqa.ray import (
    DOCUMENT_SCHEMA,
    ExtractDocuments,
    GenerateRecords,
    IncompleteDocument,
    generate_dataset,
    options_hash,
    shard_key,
    shard_of,
)
from synthqa.ray.records import InFlightWindow

from ... import made_files
from ...e2e.serverproc import free_port
from . import canned_server
from .canned_server import CannedService, expected_lines

NUM_SHARDS = 3
# Two small actors and the reads fit the two CPUs the test cluster has.
SMALL = {"concurrency": 1, "extract_concurrency": 1, "extract_num_cpus": 0.5}


@pytest.fixture(scope="module")
def service() -> Iterator[CannedService]:
    service = CannedService()
    server = canned_server.start(service, free_port())
    yield service
    server.stop(0)


@pytest.fixture
def target(service: CannedService) -> str:
    service.reset()
    return service.target


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "a.txt").write_text("The keeper climbs the stairs at dusk.\n\nHe trims the wick "
                                  "and lights the lamp before the ships come in.",
                                  encoding="utf-8")
    (folder / "notes").mkdir()
    (folder / "notes" / "b.txt").write_text("Fog came in from the sea at noon.\n\nThe keeper "
                                            "sounded the horn every minute.", encoding="utf-8")
    made_files.pdf(folder / "paper.pdf")
    made_files.docx(folder / "lamp.docx")
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 8)
    # Left out, as the CLI leaves hidden files and folders out.
    (folder / ".draft.txt").write_text("Not for the dataset.", encoding="utf-8")
    (folder / "notes" / ".cache").mkdir()
    (folder / "notes" / ".cache" / "c.txt").write_text("Not either.", encoding="utf-8")
    return folder


SENT = ("a.txt", "notes/b.txt", "paper.pdf", "lamp.docx")


def expected(corpus: Path) -> dict[str, list[dict[str, Any]]]:
    """Each document's lines, as the CLI's line function makes them of the canned events."""
    lines = {}
    for document_id in SENT:
        extracted, data = extract_file(corpus / document_id)
        lines[document_id] = expected_lines(document_id, extracted.text,
                                            hashlib.sha256(data).hexdigest(), extracted)
    return lines


def by_document(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        grouped[line["document_id"]].append(line)
    return dict(grouped)


def files_table(corpus: Path) -> pa.Table:
    """Rows as ray.data.read_binary_files(paths, include_paths=True) gives them."""
    paths = sorted(path for path in corpus.rglob("*") if path.is_file()
                   and not any(part.startswith(".") for part in path.relative_to(corpus).parts))
    return pa.table({"bytes": [path.read_bytes() for path in paths],
                     "path": [str(path) for path in paths]})


def test_shards_follow_the_bytes_and_the_options_not_their_spelling() -> None:
    assert options_hash({"num_pairs": 3, "seed": None}) == options_hash({"num_pairs": 3})
    assert options_hash({"temperature": 1}) == options_hash({"temperature": 1.0})
    assert options_hash({"num_pairs": 3}) != options_hash({"num_pairs": 4})
    digest, sha = options_hash({"num_pairs": 3}), "ab" * 32
    assert shard_of(sha, digest, 7) == shard_of(sha, digest, 7) < 7
    assert shard_key(digest, ["b", "a"]) == shard_key(digest, ["a", "b"])
    assert shard_key(digest, ["a", "b"]) != shard_key(digest, ["a", "b", "c"])
    assert shard_key(digest, ["a"]) != shard_key(options_hash({}), ["a"])
    with pytest.raises(TypeError, match="no_such_option"):
        options_hash({"no_such_option": 1})


def test_extract_documents_reads_each_file_and_says_why_one_was_skipped(corpus: Path) -> None:
    extract = ExtractDocuments(str(corpus), options={"num_pairs": 2}, num_shards=NUM_SHARDS)
    table = extract(files_table(corpus))
    assert table.schema == DOCUMENT_SCHEMA
    rows = {row["document_id"]: row for row in table.to_pylist()}
    assert sorted(rows) == sorted([*SENT, "blob.bin"])
    assert {row["kind"] for row in rows.values()} == {"text", "pdf", "docx", None}
    assert "a binary file" in rows["blob.bin"]["skipped"]
    assert rows["blob.bin"]["text"] is None
    pdf = rows["paper.pdf"]
    assert pdf["skipped"] is None
    assert pdf["sha256"] == hashlib.sha256((corpus / "paper.pdf").read_bytes()).hexdigest()
    assert [region["page"] for region in json.loads(pdf["source_map"])] == [1, 2]
    assert all(0 <= row["shard"] < NUM_SHARDS for row in rows.values())
    # The same rows from Ray's default batch format, columns of NumPy arrays.
    numpy_batch = {name: column.to_numpy(zero_copy_only=False)
                   for name, column in zip(files_table(corpus).column_names,
                                           files_table(corpus).columns, strict=True)}
    assert extract(numpy_batch) == table
    with pytest.raises(ValueError, match="not below the root"):
        ExtractDocuments(str(corpus / "notes"))(files_table(corpus))


def test_generate_records_returns_the_clis_lines_and_raises_for_a_failed_chunk(
    corpus: Path, target: str, service: CannedService,
) -> None:
    documents = ExtractDocuments(str(corpus))(files_table(corpus))
    generate = GenerateRecords(target, options={"num_pairs": 2}, max_in_flight=2)
    try:
        table = generate(documents)
        assert by_document(read_rows(table)) == expected(corpus)
        pdf_lines = [line for line in read_rows(table) if line["document_id"] == "paper.pdf"]
        assert [line["source"]["pages"] for line in pdf_lines] == [[1], [1], [2], [2]]
        assert pdf_lines[0]["evidence"][0]["text"] == made_files.PDF_PAGES[0][:12]
        assert service.sent["blob.bin"] == 0  # a skipped file is not sent

        service.reset(fail_once={"notes/b.txt"})
        with pytest.raises(IncompleteDocument, match=r"notes/b\.txt: 1 of 2 chunk\(s\) failed "
                                                     r".*the stand-in failed this chunk"):
            generate(documents)
    finally:
        generate.close()


def read_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The lines of a GenerateRecords table (Parquet export rows)."""
    rows = table.to_pylist()
    for row in rows:
        row["record"] = json.loads(row["record"])
        del row["messages"]
    return rows


def test_the_window_lets_out_no_more_documents_than_its_limit() -> None:
    window = InFlightWindow(2)
    taken: list[object] = []
    reader = threading.Thread(target=lambda: taken.extend(window.feed(iter("abcde"))))
    reader.start()
    assert until(lambda: len(taken) == 2)
    window.release()  # a document completed: one more may go
    assert until(lambda: len(taken) == 3)
    reader.join(0.2)
    assert taken == ["a", "b", "c"] and reader.is_alive()
    window.close()  # a stream that ended early frees the reader
    reader.join(5)
    assert not reader.is_alive() and len(taken) == 3


def until(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_corpus_becomes_shard_files_and_a_second_run_writes_nothing(
    corpus: Path, target: str, service: CannedService, local_ray: None, tmp_path: Path,
) -> None:
    out = tmp_path / "shards"
    summaries = generate_dataset(corpus, target=target, out=out, options={"num_pairs": 2},
                                 num_shards=NUM_SHARDS, **SMALL)

    assert by_document(list(read_lines(out))) == expected(corpus)
    assert sum(summary["documents"] for summary in summaries) == len(SENT)
    assert sum(summary["records"] for summary in summaries) == 4 * len(SENT)
    assert not any(summary["skipped_existing"] for summary in summaries)
    skipped = [item for summary in summaries for item in summary["skipped"]]
    assert [item["document_id"] for item in skipped] == ["blob.bin"]
    assert "a binary file" in skipped[0]["reason"]
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{summary['key']}.parquet" for summary in summaries)
    rows = ray.data.read_parquet(str(out), file_extensions=["parquet"]).take_all()
    assert sorted(json.loads(row["record"])["question"] for row in rows) == sorted(
        line["record"]["question"] for lines in expected(corpus).values() for line in lines)
    written = {path: path.stat().st_mtime_ns for path in out.iterdir()}

    service.reset()
    again = generate_dataset(corpus, target=target, out=out, options={"num_pairs": 2},
                             num_shards=NUM_SHARDS, **SMALL)

    assert all(summary["skipped_existing"] for summary in again)
    assert [(s["key"], s["records"]) for s in again] == [
        (s["key"], s["records"]) for s in summaries]
    assert service.generate_calls == 0
    assert {path: path.stat().st_mtime_ns for path in out.iterdir()} == written


def test_a_killed_actor_and_a_failed_chunk_end_with_every_record_once(
    corpus: Path, target: str, service: CannedService, local_ray: None, tmp_path: Path,
) -> None:
    service.reset(kill_once={"paper.pdf"}, fail_once={"a.txt"})
    out = tmp_path / "shards"
    summaries = generate_dataset(corpus, target=target, out=out, options={"num_pairs": 2},
                                 num_shards=NUM_SHARDS, format="jsonl", **SMALL)

    assert len(service.killed) == 1 and service.failed == ["a.txt"]
    lines = list(read_lines(out))
    assert by_document(lines) == expected(corpus)
    once = Counter((line["document_id"], line["chunk_index"], line["record_index"])
                   for line in lines)
    assert set(once.values()) == {1}
    assert sum(summary["records"] for summary in summaries) == len(lines)
    # Nothing of the attempts that died or raised is left beside the shards.
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{summary['key']}.jsonl" for summary in summaries)
