"""`synthqa export`: each format's shape (Parquet opened by `datasets.load_dataset`), cot and
summary records mapped as documented, custom records refused outside jsonl and parquet, splits
by source document that never share a document, the dataset card, corpus dedup and the
contamination guard, and a folder there whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthqa.client.cli import main
from synthqa.client.export import ExportError, ExportSettings, export_run, parse_split, split_of
from synthqa.client.record_lines import RunShape, Source, record_line
from synthqa.client.run_manifest import manifest_path
from synthqa.v1 import synthqa_pb2 as pb

TEMPLATE = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
            "{{ eos_token }}{% endfor %}")


def line(document_id: str, index: int, shape: str = "qa", **record: Any) -> dict[str, Any]:
    record = record or {"question": f"Q{index}?", "answer": f"A{index}."}
    return record_line(pb.Record(document_id=document_id, record_index=index,
                                 json=json.dumps(record)),
                       Source(document_id, "0" * 64), RunShape(shape, False), None)


def run_of(tmp_path: Path, lines: list[dict[str, Any]],
           manifest: dict[str, Any] | None = None) -> Path:
    run = tmp_path / "run.jsonl"
    run.write_text("".join(json.dumps(item) + "\n" for item in lines), encoding="utf-8")
    if manifest is not None:
        manifest_path(run).write_text(json.dumps(manifest), encoding="utf-8")
    return run


def exported(tmp_path: Path, lines: list[dict[str, Any]], manifest: dict[str, Any] | None = None,
             **settings: Any) -> Path:
    out = tmp_path / "dataset"
    export_run(run_of(tmp_path, lines, manifest), out, ExportSettings(**settings))
    return out


def written(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").split("\n") if text]


def front_matter(card: Path) -> dict[str, Any]:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def manifest(**server: Any) -> dict[str, Any]:
    return {"manifest_version": 1, "command": ["synthqa", "generate", "docs"],
            "server": {"model": "tiny-model", "version": "0.1.0", **server},
            "options": {"seed": 3, "pairs_per_chunk": 2},
            "inputs": [{"document_id": "a.txt", "sha256": "ab" * 32, "kind": "text",
                        "skipped": None},
                       {"document_id": "bad.pdf", "sha256": "cd" * 32, "kind": "pdf",
                        "skipped": "no text layer; OCR is not supported"}],
            "counts": {"documents_sent": 1, "documents_done": 1, "chunks_done": 2,
                       "chunks_failed": 0, "records": {"generated": 5, "invalid": 1,
                                                       "judged_out": 0, "duplicates": 1,
                                                       "kept": 3}}}


@pytest.mark.parametrize(("fmt", "expected"), [
    ("alpaca", {"instruction": "Q0?", "input": "", "output": "A0."}),
    ("sharegpt", {"conversations": [{"from": "human", "value": "Q0?"},
                                    {"from": "gpt", "value": "A0."}]}),
    ("openai", {"messages": [{"role": "user", "content": "Q0?"},
                             {"role": "assistant", "content": "A0."}]}),
])
def test_each_format_has_its_shape(tmp_path: Path, fmt: str, expected: dict[str, Any]) -> None:
    out = exported(tmp_path, [line("a.txt", 0)], fmt=fmt)
    assert written(out / "train.jsonl") == [expected]


def test_jsonl_keeps_the_lines_with_their_lineage(tmp_path: Path) -> None:
    lines = [line("a.txt", 0), line("b.txt", 1, "custom", term="Pharos")]
    assert written(exported(tmp_path, lines) / "train.jsonl") == lines


def test_cot_reasoning_goes_before_the_answer_and_summaries_answer_an_instruction(
    tmp_path: Path
) -> None:
    out = exported(tmp_path, [
        line("a.txt", 0, "cot", question="Why?", reasoning="Because.", answer="So."),
        line("a.txt", 1, "summary", summary="A tower.")], fmt="openai")
    cot, summary = written(out / "train.jsonl")
    assert cot["messages"][1]["content"] == "Because.\n\nAnswer: So."
    assert summary["messages"] == [{"role": "user", "content": "Summarize the passage."},
                                   {"role": "assistant", "content": "A tower."}]


def test_chatml_renders_the_models_template_from_the_manifest(tmp_path: Path) -> None:
    run = manifest(chat_template={"template": TEMPLATE,
                                  "special_tokens": {"bos_token": "<s>", "eos_token": "</s>"}})
    out = exported(tmp_path, [line("a.txt", 0)], run, fmt="chatml")
    assert written(out / "train.jsonl") == [{"text": "<s><user>Q0?</s><assistant>A0.</s>"}]


def test_chatml_takes_a_template_file_and_refuses_without_one(tmp_path: Path) -> None:
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
                        encoding="utf-8")
    out = exported(tmp_path, [line("a.txt", 0)], fmt="chatml", chat_template=template)
    assert written(out / "train.jsonl") == [{"text": "[user] Q0?\n[assistant] A0.\n"}]
    with pytest.raises(ExportError, match="needs a chat template.*--chat-template"):
        exported(tmp_path, [line("a.txt", 0)], manifest(), fmt="chatml", overwrite=True)
    template.write_text("{{ raise_exception('system turns only') }}", encoding="utf-8")
    with pytest.raises(ExportError, match="refused a record: system turns only"):
        exported(tmp_path, [line("a.txt", 0)], fmt="chatml", chat_template=template,
                 overwrite=True)


def test_a_template_cannot_reach_python_internals(tmp_path: Path) -> None:
    template = tmp_path / "template.jinja"
    template.write_text("{{ messages.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")
    with pytest.raises(ExportError, match="refused a record"):
        exported(tmp_path, [line("a.txt", 0)], fmt="chatml", chat_template=template)


def test_custom_records_are_refused_outside_jsonl_and_parquet_and_nothing_is_left(
    tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="--format jsonl or parquet exports it"):
        exported(tmp_path, [line("a.txt", 0), line("b.txt", 1, "custom", term="Pharos")],
                 fmt="alpaca")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]


def test_splits_are_by_document_seeded_and_never_share_one(tmp_path: Path) -> None:
    shares = parse_split("train=0.8,validation=0.1,test=0.1")
    lines = [line(f"doc{d}.txt", r) for d in range(200) for r in range(3)]
    out = tmp_path / "dataset"
    counts = export_run(run_of(tmp_path, lines), out, ExportSettings(shares=shares, seed=7)).counts
    assert sum(counts.values()) == 600 and all(counts.values())
    owners: dict[str, set[str]] = {}
    for split in shares:
        for record in written(out / f"{split}.jsonl"):
            owners.setdefault(record["document_id"], set()).add(split)
    assert all(len(splits) == 1 for splits in owners.values()), "a document in two splits"
    assert 120 <= counts["train"] / 3 <= 195
    assert split_of("doc1.txt", shares, 7) == split_of("doc1.txt", shares, 7)
    assert [split_of(f"doc{d}.txt", shares, 7) for d in range(50)] != \
        [split_of(f"doc{d}.txt", shares, 8) for d in range(50)]


def test_parquet_opens_with_load_dataset_with_its_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from datasets import load_dataset

    lines = [line(f"doc{d}.txt", r) for d in range(40) for r in range(2)]
    lines.append(line("custom.txt", 0, "custom", term="Pharos", year=280))
    out = exported(tmp_path, lines, fmt="parquet",
                   shares=parse_split("train=0.7,validation=0.3"), seed=1)
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"]
    dataset = load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(dataset) == {"train", "validation"}
    assert dataset["train"].num_rows + dataset["validation"].num_rows == len(lines)
    train = set(dataset["train"]["document_id"])
    assert train and not train & set(dataset["validation"]["document_id"])
    rows = {row["document_id"]: row for split in dataset.values() for row in split}
    assert rows["doc0.txt"]["messages"][0] in ({"role": "user", "content": "Q0?"},
                                               {"role": "user", "content": "Q1?"})
    assert rows["doc0.txt"]["source"]["sha256"] == "0" * 64
    assert json.loads(rows["custom.txt"]["record"]) == {"term": "Pharos", "year": 280}
    assert rows["custom.txt"]["messages"] is None


def test_the_jsonl_export_opens_with_load_dataset_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from datasets import load_dataset

    out = exported(tmp_path, [line(f"doc{d}.txt", 0) for d in range(20)], fmt="openai",
                   shares=parse_split("train=0.5,test=0.5"))
    dataset = load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(dataset) == {"train", "test"}
    assert dataset["train"].num_rows + dataset["test"].num_rows == 20


def test_the_card_has_hub_front_matter_and_the_runs_provenance(tmp_path: Path) -> None:
    lines = [line(f"doc{d}.txt", r) for d in range(10) for r in range(3)]
    out = exported(tmp_path, lines, manifest(), fmt="sharegpt",
                   shares=parse_split("train=0.8,validation=0.2"), languages=("en",))
    meta = front_matter(out / "README.md")
    files = {entry["split"]: entry["path"] for entry in meta["configs"][0]["data_files"]}
    assert files == {"train": ["train.jsonl"], "validation": ["validation.jsonl"]}
    assert meta["task_categories"] == ["question-answering"]
    assert meta["size_categories"] == ["n<1K"] and meta["language"] == ["en"]
    body = (out / "README.md").read_text(encoding="utf-8")
    per_split = {split: len(written(out / path[0])) for split, path in files.items()}
    assert sum(per_split.values()) == 30
    for split, count in per_split.items():
        assert f"| {split} | " in body and f"| {count} |" in body
    assert "| records in this dataset | 30 |" in body
    assert "tiny-model" in body and "ab" * 32 in body and "no text layer" in body
    assert "| records invalid | 1 |" in body and "yours to check" in body
    assert '`"pairs_per_chunk"`' not in body and "| pairs_per_chunk | `2` |" in body


def test_a_card_without_a_manifest_says_what_it_does_not_know(tmp_path: Path) -> None:
    out = exported(tmp_path, [line("a.txt", 0, "summary", summary="A tower.")])
    meta = front_matter(out / "README.md")
    assert meta["task_categories"] == ["summarization"] and "language" not in meta
    assert "manifest (`<run>.manifest.json`) was not found" in (out / "README.md").read_text()


def test_corpus_dedup_drops_repeats_across_documents_and_counts_them(tmp_path: Path) -> None:
    asked = "Who built the great lighthouse on the island of Pharos at Alexandria?"
    lines = [line("a.txt", 0, question=asked, answer="x"),
             line("b.txt", 0, question=asked.upper().rstrip("?"), answer="y"),
             line("c.txt", 0, question=asked.replace("at Alexandria?", "at Alexandria, then?"),
                  answer="z"),
             line("d.txt", 0, question="When did the harbour silt up?", answer="w")]
    out = tmp_path / "dataset"
    result = export_run(run_of(tmp_path, lines), out, ExportSettings(dedup=True))
    kept = [record["document_id"] for record in written(out / "train.jsonl")]
    assert kept == ["a.txt", "d.txt"] and result.duplicates == 2
    assert "dropped at export (threshold 0.85) | 2 |" in (out / "README.md").read_text()


def test_records_near_the_evaluation_set_are_dropped_and_counted(tmp_path: Path) -> None:
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text(
        json.dumps({"question": "Who built the lighthouse of Pharos?", "answer": "Sostratus"})
        + "\n" + json.dumps({"messages": [{"role": "user", "content": "What is a pharos?"}]})
        + "\n", encoding="utf-8")
    lines = [line("a.txt", 0, question="Who built the Lighthouse of Pharos?", answer="x"),
             line("b.txt", 0, question="what is a Pharos", answer="y"),
             line("c.txt", 0, question="When did the harbour silt up?", answer="w")]
    out = tmp_path / "dataset"
    result = export_run(run_of(tmp_path, lines), out, ExportSettings(exclude_near=evaluation))
    assert [r["document_id"] for r in written(out / "train.jsonl")] == ["c.txt"]
    assert result.near_eval == 2
    assert "near an item of `eval.jsonl` (2 items), dropped at export | 2 |" in \
        (out / "README.md").read_text()
    evaluation.write_text('{"answer": "no question here"}\n', encoding="utf-8")
    with pytest.raises(ExportError, match=r"eval.jsonl:1: no question found"):
        export_run(run_of(tmp_path, lines), tmp_path / "other", ExportSettings(
            exclude_near=evaluation))


def test_the_folder_is_replaced_only_when_asked_and_never_when_foreign(tmp_path: Path) -> None:
    out = exported(tmp_path, [line("a.txt", 0)], shares=parse_split("train=0.5,test=0.5"))
    with pytest.raises(ExportError, match="holds an earlier export; pass --overwrite"):
        exported(tmp_path, [line("a.txt", 0)])
    exported(tmp_path, [line("a.txt", 0)], overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "train.jsonl"]
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ExportError, match="holds files an export did not write \\(notes.txt"):
        exported(tmp_path, [line("a.txt", 0)], overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("text", ["train=0.9", "train=0.9,validation=0.2", "train",
                                  "train=x", "no good=1"])
def test_bad_splits_are_refused(text: str) -> None:
    with pytest.raises(ExportError, match="--split"):
        parse_split(text)


def test_the_command_exports_a_run_and_refuses_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_of(tmp_path, [line(f"d{n}", 0) for n in range(10)])
    assert main(["export", str(run), "--out", str(tmp_path / "data"), "--format", "sharegpt",
                 "--split", "train=0.5,validation=0.5", "--seed", "1"]) == 0
    total = sum(len(written(tmp_path / "data" / f"{s}.jsonl")) for s in ("train", "validation"))
    assert total == 10
    assert "exported records to" in capsys.readouterr().err
    old = tmp_path / "old.jsonl"
    old.write_text('{"document_id": "0:/abs/a.txt", "pair_index": 0}\n', encoding="utf-8")
    assert main(["export", str(old), "--out", str(tmp_path / "x")]) == 1
    assert "schema version 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_generate_checks_its_export_flags_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine", encoding="utf-8")
    base = ["--target", "localhost:1", "generate", str(tmp_path), "--out",
            str(tmp_path / "run.jsonl")]
    for extra, message in [
        (["--export-format", "openai"], "--export-format and --export-dir go together"),
        (["--export-format", "openai", "--export-dir", str(tmp_path / "taken")],
         "holds files an export did not write"),
        (["--export-format", "openai", "--export-dir", str(tmp_path / "new"),
          "--export-split", "train=2"], "the shares add up to 2"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            main(base + extra)
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err
