"""Documents in, pairs out, through the real server, engine and clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
from jsonschema import Draft202012Validator

from synthqa.client import AsyncSynthQAClient, Document, SynthQAClient
from synthqa.client.events import events_in
from synthqa.v1 import synthqa_pb2 as pb
from synthqa.v1 import synthqa_pb2_grpc as pb_grpc

from ..paths import REPO
from .helpers import SAMPLE, assert_document_complete, by_document, jsonl
from .serverproc import ServerProcess, free_port


def test_server_info_describes_model_budget_and_defaults(client: SynthQAClient) -> None:
    info = client.server_info()
    assert info.model.endswith("tiny-model")
    assert info.max_model_len == 2048
    assert info.prompt_template_tokens > 0
    assert info.max_chunk_tokens == 2048 - 512 - info.prompt_template_tokens
    d = info.defaults
    assert (d.num_pairs, d.max_generation_tokens, d.chunk_overlap_tokens, d.max_chunk_tokens) == (
        5, 512, 64, 0)
    assert abs(d.temperature - 0.7) < 1e-9 and abs(d.top_p - 0.95) < 1e-9
    assert not d.HasField("seed")
    assert info.limits.max_document_chars == 200000
    assert info.limits.max_in_flight_chunks_per_call == 8
    assert info.limits.max_chunks_per_document == 1000
    assert info.version
    layout = info.engine_layout
    assert (layout.tensor_parallel_size, layout.pipeline_parallel_size,
            layout.data_parallel_size, layout.device) == (1, 1, 1, "cpu")
    assert layout.executor


def test_interleaved_documents_on_one_stream(client: SynthQAClient) -> None:
    options = dict(num_pairs=2, max_chunk_tokens=200, chunk_overlap_tokens=16)
    documents = [
        Document("sample", SAMPLE),
        Document("short", "The Tower of Hercules in Spain is still in use as a lighthouse."),
        # Sent in parts of 700 characters: the server must join them before chunking.
        Document("in-parts", SAMPLE[2000:5000]),
    ]
    events = list(client.generate(documents, part_chars=700, **options))
    grouped = by_document(events)
    assert set(grouped) == {"sample", "short", "in-parts"}
    for document in documents:
        assert_document_complete(grouped[document.document_id], num_pairs=2)
        # What Generate used is what ChunkDocument reports.
        chunked = client.chunk(document.text, **options)
        started = sorted(grouped[document.document_id].started, key=lambda s: s.chunk_index)
        assert [(s.token_count, s.char_start, s.char_end) for s in started] == [
            (c.token_count, c.char_start, c.char_end) for c in chunked.chunks]
        assert all(s.chunk_count == len(chunked.chunks) for s in started)
        assert grouped[document.document_id].done[0].token_count == chunked.token_count
    assert len(grouped["sample"].started) >= 5
    # Interleaved: another document's events arrive before "sample" is done.
    kinds = [(e.WhichOneof("event"), getattr(e, e.WhichOneof("event")).document_id)
             for e in events]
    sample_done = kinds.index(("document_completed", "sample"))
    assert {doc for _, doc in kinds[:sample_done]} >= {"short", "in-parts"}


def test_chunk_indexes_generate_only_the_chunks_asked_for(client: SynthQAClient) -> None:
    chunking = client.chunk(SAMPLE, max_chunk_tokens=150)
    assert len(chunking.chunks) > 3
    picked = (1, len(chunking.chunks) - 1)
    events = list(client.generate(
        [Document("some", SAMPLE, chunk_indexes=picked)], num_pairs=1, max_chunk_tokens=150))
    document = by_document(events)["some"]
    assert sorted(s.chunk_index for s in document.started) == list(picked)
    assert all(s.chunk_count == len(chunking.chunks) for s in document.started)
    by_index = {c.index: c for c in chunking.chunks}
    for started in document.started:  # the same chunks an unrestricted call makes
        assert (started.char_start, started.char_end) == (
            by_index[started.chunk_index].char_start, by_index[started.chunk_index].char_end)
    done = document.done[0]
    assert done.chunk_count == 2
    assert done.completed_chunk_count + done.failed_chunk_count == 2
    one = list(client.generate_document(SAMPLE, chunk_indexes=(0,), num_pairs=1,
                                        max_chunk_tokens=150))
    assert [e.chunk_started.chunk_index for e in one if e.HasField("chunk_started")] == [0]


def test_chunk_text_matches_the_document_span(client: SynthQAClient) -> None:
    response = client.chunk(SAMPLE, max_chunk_tokens=300, chunk_overlap_tokens=32)
    assert len(response.chunks) > 1
    for chunk in response.chunks:
        assert chunk.text == SAMPLE[chunk.char_start:chunk.char_end]
        assert chunk.token_count <= 300
    assert response.chunks[0].char_start == 0 and response.chunks[-1].char_end == len(SAMPLE)
    assert response.chunk_token_budget == 300


def test_document_within_budget_is_one_chunk(client: SynthQAClient) -> None:
    response = client.chunk(SAMPLE)
    assert len(response.chunks) == 1 and response.chunks[0].text == SAMPLE


def test_generate_document_streams_one_document(client: SynthQAClient) -> None:
    events = list(client.generate_document(SAMPLE[:1500], num_pairs=3, max_chunk_tokens=150))
    grouped = by_document(events)
    assert list(grouped) == ["document"]
    assert_document_complete(grouped["document"], num_pairs=3)
    assert events[-1].WhichOneof("event") == "document_completed"


def test_same_seed_gives_same_pairs(client: SynthQAClient) -> None:
    def pairs(seed: int) -> list[tuple[str, str]]:
        events = client.generate_document(SAMPLE[:800], num_pairs=2, seed=seed)
        return [(e.qa_pair.question, e.qa_pair.answer) for e in events if e.HasField("qa_pair")]

    first = pairs(7)
    assert len(first) == 2
    assert pairs(7) == first
    assert pairs(8) != first


def test_async_client_streams_an_async_iterable(server: ServerProcess) -> None:
    async def scenario() -> dict:
        async def documents():
            for index in range(3):
                yield Document(f"async-{index}", SAMPLE[index * 900:(index + 1) * 900])

        async with AsyncSynthQAClient(server.target, timeout=300) as client:
            info = await client.server_info()
            assert info.max_model_len == 2048
            return by_document([e async for e in client.generate(documents(), num_pairs=1)])

    grouped = asyncio.run(scenario())
    assert set(grouped) == {"async-0", "async-1", "async-2"}
    for events in grouped.values():
        assert_document_complete(events, num_pairs=1)


def run_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synthqa.client.cli", "--target", server.target, *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )


def test_cli_generate_writes_valid_jsonl(server: ServerProcess, tmp_path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(SAMPLE[:1200], encoding="utf-8")
    second.write_text(SAMPLE[3000:4000], encoding="utf-8")
    out = tmp_path / "nested" / "pairs.jsonl"
    result = run_cli(server, "generate", str(first), str(second), "--out", str(out),
                     "--num-pairs", "2", "--max-chunk-tokens", "128", "--show", "1")
    assert result.returncode == 0, result.stderr
    records = jsonl(out)
    chunk_counts = {}
    for path in (first, second):
        chunked = run_cli(server, "chunk", str(path), "--max-chunk-tokens", "128", "--json")
        chunk_counts[path] = len(json.loads(chunked.stdout)["chunks"])
    assert len(records) == 2 * sum(chunk_counts.values())
    for record in records:
        assert {"document_id", "chunk_index", "question", "answer"} <= set(record)
        assert record["question"] and record["answer"]
    assert {r["document_id"] for r in records} == {"first.txt", "second.txt"}
    assert str(tmp_path) not in out.read_text(encoding="utf-8"), "no absolute path written"
    assert "Q: " in result.stdout, "--show prints pairs"
    assert f"wrote {len(records)} records" in result.stderr


def test_cli_lines_of_a_judged_evidenced_run_carry_rating_and_cited_text(
    server: ServerProcess, tmp_path
) -> None:
    source, out, summary = tmp_path / "doc.txt", tmp_path / "o.jsonl", tmp_path / "s.json"
    text = SAMPLE[:1500]
    source.write_text(text, encoding="utf-8")
    result = run_cli(server, "generate", str(source), "--out", str(out), "--num-pairs", "2",
                     "--judge", "--min-rating", "1", "--evidence", "--max-chunk-tokens", "256",
                     "--seed", "3", "--summary-json", str(summary))
    assert result.returncode in (0, 3), result.stderr  # the tiny model may fail a chunk
    lines = jsonl(out)
    assert lines, result.stderr
    validator = Draft202012Validator(json.loads(
        resources.files("synthqa.client").joinpath("schemas/record-line-v1.json")
        .read_text(encoding="utf-8")))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    for line in lines:
        validator.validate(line)
        assert line["source"] == {"path": "doc.txt", "sha256": digest, "pages": None,
                                  "slides": None}
        assert 1 <= line["rating"] <= 10 and isinstance(line["rating_reason"], str)
        assert line["evidence"], "every evidenced record cites a sentence"
        for span in line["evidence"]:
            assert span["text"] == text[span["char_start"]:span["char_end"]] != ""
        assert line["question"] == line["record"]["question"]
    counts = json.loads(summary.read_text(encoding="utf-8"))["records"]
    assert counts["kept"] == len(lines)
    assert counts["generated"] == (counts["kept"] + counts["invalid"] + counts["judged_out"]
                                   + counts["duplicates"])


def test_cli_names_a_document_short_of_its_target_and_exits_3(
    server: ServerProcess, tmp_path
) -> None:
    # Two choices and dedup: no document can reach five distinct records.
    source, out, summary = tmp_path / "doc.txt", tmp_path / "o.jsonl", tmp_path / "s.json"
    source.write_text(SAMPLE[:1200], encoding="utf-8")
    result = run_cli(server, "generate", str(source), "--out", str(out), "--num-pairs", "2",
                     "--record-choices", "yes", "--record-choices", "no", "--dedup",
                     "--target-records", "5", "--patience", "2", "--max-chunk-tokens", "256",
                     "--summary-json", str(summary))
    assert result.returncode == 3, result.stderr
    assert "short of target: doc.txt: patience: passes in a row sent no new record" \
        in result.stderr
    written = json.loads(summary.read_text(encoding="utf-8"))
    kept = len(jsonl(out))
    assert written["records"]["kept"] == kept <= 2
    assert written["records"]["duplicates"] >= 1
    assert written["records"]["generated"] == kept + written["records"]["duplicates"] + \
        written["records"]["invalid"] + written["records"]["judged_out"]


def test_cli_info_and_chunk(server: ServerProcess) -> None:
    info = run_cli(server, "info")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["max_model_len"] == 2048
    chunked = run_cli(server, "chunk", str(REPO / "samples" / "lighthouses.txt"),
                      "--max-chunk-tokens", "256")
    assert chunked.returncode == 0 and "chunk(s)" in chunked.stdout


def test_cli_reports_bad_options_with_field(server: ServerProcess, tmp_path) -> None:
    source = tmp_path / "doc.txt"
    source.write_text("Some text about lighthouses.", encoding="utf-8")
    result = run_cli(server, "generate", str(source), "--out", str(tmp_path / "o.jsonl"),
                     "--top-p", "1.5")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "options.top_p" in result.stderr


def test_an_error_in_the_callers_documents_reaches_the_caller(client: SynthQAClient) -> None:
    def documents():
        yield Document("fine", SAMPLE[:500])
        raise ValueError("the source broke")

    with pytest.raises(ValueError, match="the source broke"):
        list(client.generate(documents(), num_pairs=1))


def test_cli_skips_a_file_with_no_text_by_name_and_exits_3(
    server: ServerProcess, tmp_path
) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "blob.txt"
    good.write_text(SAMPLE[:600], encoding="utf-8")
    bad.write_bytes(b"Phare\x00\x01\x02 de Cordouan")
    out = tmp_path / "o.jsonl"
    result = run_cli(server, "generate", str(good), str(bad), "--out", str(out),
                     "--num-pairs", "1")
    assert result.returncode == 3, result.stderr
    assert "blob.txt: a binary file" in result.stderr
    assert {line["document_id"] for line in jsonl(out)} == {
        "good.txt"}
    strict = run_cli(server, "generate", str(good), str(bad), "--out", str(out), "--strict")
    assert strict.returncode == 1 and "blob.txt" in strict.stderr


def test_cli_keeps_an_earlier_output_when_the_server_is_down(tmp_path) -> None:
    source, out = tmp_path / "doc.txt", tmp_path / "pairs.jsonl"
    source.write_text("Some text about lighthouses.", encoding="utf-8")
    out.write_text('{"earlier": 1}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "synthqa.client.cli", "--target", f"127.0.0.1:{free_port()}",
         "--timeout", "5", "generate", str(source), "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr
    assert out.read_text(encoding="utf-8") == '{"earlier": 1}\n'
    assert "Traceback" not in result.stderr


def test_async_client_raises_the_callers_document_error(server: ServerProcess) -> None:
    async def scenario() -> None:
        async def documents():
            yield Document("fine", SAMPLE[:500])
            raise ValueError("the async source broke")

        async with AsyncSynthQAClient(server.target, timeout=120) as client:
            with pytest.raises(ValueError, match="the async source broke"):
                async for _ in client.generate(documents(), num_pairs=1):
                    pass

    asyncio.run(scenario())


def readme_python_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("\n```", start)]


def test_the_readme_python_example_prints_judged_records(server: ServerProcess, tmp_path) -> None:
    """The README's example as written, on the test server, with the judge on (every record
    comes as a `record` event then), keeping every rating."""
    code = readme_python_example()
    assert '"localhost:50051"' in code and "num_pairs=3, seed=42" in code
    code = code.replace('"localhost:50051"', repr(server.target)).replace(
        "num_pairs=3, seed=42", "num_pairs=3, seed=42, judge=True, min_rating=1")
    (tmp_path / "intro.txt").write_text(SAMPLE[:900], encoding="utf-8")
    (tmp_path / "manual.txt").write_text(SAMPLE[2000:2900], encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].isdigit(), "max_chunk_tokens first"
    printed = [line for line in lines[1:] if line.startswith(("intro ", "manual "))]
    assert printed, result.stdout
    for line in printed:
        # document id, chunk index, the record's JSON, its rating
        document_id, chunk_index, rest = line.split(" ", 2)
        assert chunk_index.isdigit() and rest.startswith("{") and rest.split()[-1].isdigit()


def test_cli_generates_from_a_folder_of_real_documents_with_their_pages(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PDF, web page, Word, PowerPoint, Markdown, UTF-16 text and a .gz in nested folders:
    records from every file, each with its source, sha256 and pages or slides; an encrypted
    PDF, a PDF without text and a binary file named and skipped."""
    from .. import made_files

    corpus = tmp_path / "corpus"
    (corpus / "web" / "old").mkdir(parents=True)
    good = {
        "pharos.pdf": made_files.pdf(corpus / "pharos.pdf"),
        "web/keepers.html": made_files.html(corpus / "web" / "keepers.html"),
        "oils.docx": made_files.docx(corpus / "oils.docx"),
        "lenses.pptx": made_files.pptx(corpus / "lenses.pptx"),
        "web/old/notes.md": made_files.markdown(corpus / "web" / "old" / "notes.md"),
        "phare.txt": made_files.utf16_text(corpus / "phare.txt"),
    }
    good["notes.md.gz"] = made_files.gzipped(corpus / "notes.md.gz", good["web/old/notes.md"])
    made_files.pdf(corpus / "locked.pdf", password="secret")
    made_files.scanned_pdf(corpus / "scan.pdf")
    (corpus / "blob.bin").write_bytes(b"\x00\x01\x02\xff" * 64)
    out = tmp_path / "o.jsonl"
    dataset = tmp_path / "dataset"
    result = run_cli(server, "generate", str(corpus), "--out", str(out), "--num-pairs", "1",
                     "--max-chunk-tokens", "256", "--export-format", "parquet",
                     "--export-dir", str(dataset), "--export-split", "train=0.5,validation=0.5",
                     "--report")
    assert result.returncode == 3, result.stderr  # the three bad files
    for name, reason in (("locked.pdf", "encrypted PDF"), ("scan.pdf", "no text layer"),
                         ("blob.bin", "a binary file")):
        assert f"skipped: {corpus / name}: " in result.stderr and reason in result.stderr
    lines = jsonl(out)
    assert {line["document_id"] for line in lines} == set(good)
    for line in lines:
        path = good[line["document_id"]]
        assert line["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    pdf_pages = {page for line in lines if line["document_id"] == "pharos.pdf"
                 for page in line["source"]["pages"]}
    assert pdf_pages and pdf_pages <= {1, 2}
    slides = {slide for line in lines if line["document_id"] == "lenses.pptx"
              for slide in line["source"]["slides"]}
    assert slides and slides <= {1, 2}
    assert all(line["source"]["pages"] is None for line in lines
               if line["document_id"] != "pharos.pdf")
    # The run's manifest: the server, the options, and every input with what became of it.
    manifest = json.loads((tmp_path / "o.jsonl.manifest.json").read_text(encoding="utf-8"))
    assert manifest["server"]["model"] and manifest["options"]["num_pairs"] == 1
    assert manifest["command"][:2] == ["synthqa", "--target"]
    inputs = {entry["document_id"]: entry for entry in manifest["inputs"]}
    assert inputs["pharos.pdf"]["kind"] == "pdf" and inputs["lenses.pptx"]["kind"] == "pptx"
    assert inputs["pharos.pdf"]["pages"] == 2 and inputs["lenses.pptx"]["slides"] == 2
    assert inputs["phare.txt"]["pages"] is None and inputs["phare.txt"]["slides"] is None
    assert inputs["phare.txt"]["sha256"] == hashlib.sha256(good["phare.txt"].read_bytes()) \
        .hexdigest()
    assert "encrypted PDF" in inputs["locked.pdf"]["skipped"]
    assert manifest["extraction"]["pypdfium2"] and manifest["counts"]["records"]["kept"] == \
        len(lines)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _check_the_runs_dataset(dataset, lines, tmp_path)
    _check_the_runs_report(tmp_path / "o.html", lines)
    # chatml with the model's own chat template, which GetServerInfo gave the manifest.
    chat = tmp_path / "chat"
    exported = run_cli(server, "export", str(out), "--out", str(chat), "--format", "chatml")
    assert exported.returncode == 0, exported.stderr
    texts = [row["text"] for row in jsonl(chat / "train.jsonl")]
    assert len(texts) == len(lines)
    assert all(text.startswith("<|bos|><|header|>user<|/header|>\n") for text in texts)
    assert all("<|eot|><|header|>assistant<|/header|>\n" in text for text in texts)


def _check_the_runs_report(page: Path, lines: list[dict[str, Any]]) -> None:
    """The report written at the end of the run, opened in Chromium: its counts are the run's,
    and it renders with no error and nothing fetched."""
    import re

    from ..browser import Browser, chromium

    text = page.read_text(encoding="utf-8")
    kept = re.search(r'data-count="kept"><th>[^<]*</th><td class="number">([^<]*)</td>', text)
    assert kept is not None and kept[1] == str(len(lines))
    with Browser(chromium()) as browser:
        rendered = browser.open(page, "[data-plot]")
    assert rendered.errors() == []
    assert [url for url in rendered.requests if not url.startswith(("file:", "data:"))] == []
    assert all(element["width"] > 0 and element["height"] > 0
               for element in rendered.elements)
    drawn = {element["id"] for element in rendered.elements if element["tag"] == "img"}
    assert {"plot-records-per-document", "plot-records-per-page", "plot-lengths"} <= drawn


def _check_the_runs_dataset(dataset: Path, lines: list[dict[str, Any]], tmp_path: Path) -> None:
    """The export at the end of the run: Parquet that datasets.load_dataset opens with its
    splits, no document in two, and a card whose counts are the run's."""
    import yaml
    from datasets import load_dataset

    loaded = load_dataset(str(dataset), cache_dir=str(tmp_path / "hf"))
    assert sum(split.num_rows for split in loaded.values()) == len(lines)
    owners = [set(split["document_id"]) for split in loaded.values()]
    assert not set.intersection(*owners) if len(owners) > 1 else owners
    card = (dataset / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert {entry["split"] for entry in meta["configs"][0]["data_files"]} == set(loaded)
    assert f"| records in this dataset | {len(lines)} |" in card
    assert f"| records kept by the run | {len(lines)} |" in card


def readme_dataset_commands() -> list[list[str]]:
    """The commands of the README's "From a folder of documents to a dataset", as written."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## From a folder of documents to a dataset"):]
    start = section.index("```sh\n") + len("```sh\n")
    block = section[start:section.index("\n```", start)]
    return [shlex.split(line.split("  #")[0]) for line in block.splitlines() if line.strip()]


def test_the_readmes_four_dataset_commands_work_as_written(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """extract, generate, export, report on a folder of a PDF, a web page and notes: each ends
    0, and what each makes is there (the Parquet opens with load_dataset)."""
    from datasets import load_dataset

    from .. import made_files

    commands = readme_dataset_commands()
    steps = ("extract", "generate", "export", "report")
    assert [next(arg for arg in command if arg in steps) for command in commands] == list(steps)
    docs = tmp_path / "my-docs"
    docs.mkdir()
    made_files.pdf(docs / "pharos.pdf")
    made_files.html(docs / "keepers.html")
    made_files.markdown(docs / "notes.md")
    for command in commands:
        assert command[0] == ".venv/bin/synthqa"
        args = [server.target if arg == "127.0.0.1:50051" else arg for arg in command[1:]]
        result = subprocess.run([sys.executable, "-m", "synthqa.client.cli", *args],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    assert len(jsonl(tmp_path / "docs.jsonl")) == 3
    records = jsonl(tmp_path / "run.jsonl")
    assert {line["document_id"] for line in records} == {"pharos.pdf", "keepers.html",
                                                          "notes.md"}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset = load_dataset(str(tmp_path / "my-dataset"), cache_dir=str(tmp_path / "hf"))
    assert set(dataset) <= {"train", "validation"}
    assert 0 < sum(split.num_rows for split in dataset.values()) <= len(records)
    assert 'data-plot="records-per-page"' in (tmp_path / "run.html").read_text(encoding="utf-8")


def test_a_raw_call_gets_batches_only_when_its_metadata_asks(server: ServerProcess) -> None:
    # A client built from the protos alone, as in any language: without the metadata every
    # message is one event; with it, events ready together (a document's last chunk and its
    # completion) come in one EventBatch, and the events are the same.
    requests = [pb.GenerateRequest(options=pb.GenerationOptions(
                    num_pairs=1, max_generation_tokens=64, seed=3)),
                pb.GenerateRequest(document=pb.DocumentPart(document_id="b", text=SAMPLE[:300]))]

    def call(metadata: tuple[tuple[str, str], ...]) -> list[pb.GenerateResponse]:
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.SynthQAServiceStub(channel)
            return list(stub.Generate(iter(requests), timeout=300, metadata=metadata))

    plain = call(())
    batched = call((("synthqa-events-per-message", "16"),))
    assert all(message.WhichOneof("event") != "batch" for message in plain)
    batches = [message.batch for message in batched if message.WhichOneof("event") == "batch"]
    assert batches, "the last chunk's completion and the document's came apart"
    assert [event.WhichOneof("event") for event in batches[-1].events][-2:] == [
        "chunk_completed", "document_completed"]
    unbatched = [event for message in batched for event in events_in(message)]
    assert [e.WhichOneof("event") for e in unbatched] == [
        e.WhichOneof("event") for e in plain]
