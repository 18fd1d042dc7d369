"""The CLI's one line schema: every key on every line whatever the options, typed fields for
the built-in shapes, the judge's rating and the cited sentences' text, and lines that validate
against the published JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from synthqa.client.cli_generate import document_ids
from synthqa.client.record_lines import (
    LINE_SCHEMA_VERSION,
    RunShape,
    Source,
    pair_line,
    record_line,
    run_shape,
)
from synthqa.v1 import synthqa_pb2 as pb

SOURCE = Source("notes/pharos.txt", "a" * 64)
TEXT = "The Pharos stood on an island. It was built of limestone. Ships saw it far off."


def schema() -> dict[str, Any]:
    text = resources.files("synthqa.client").joinpath(
        f"schemas/record-line-v{LINE_SCHEMA_VERSION}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def valid(line: dict[str, Any]) -> dict[str, Any]:
    jsonschema.Draft202012Validator(schema()).validate(json.loads(json.dumps(line)))
    return line


def test_a_pair_and_a_judged_evidenced_record_have_the_same_keys() -> None:
    pair = valid(pair_line(pb.QaPair(document_id="notes/pharos.txt", chunk_index=1,
                                     pair_index=2, question="Where?", answer="An island."),
                           SOURCE))
    record = pb.Record(
        document_id="notes/pharos.txt", chunk_index=0, record_index=3, pass_index=1,
        json=json.dumps({"question": "Of what?", "answer": "Limestone."}), rating=8,
        rating_reason="grounded", cached=True,
        evidence=[pb.EvidenceSpan(sentence=2, char_start=31, char_end=57)])
    judged = valid(record_line(record, SOURCE, RunShape("qa", judged=True), TEXT))
    assert pair.keys() == judged.keys()
    assert (pair["question"], pair["answer"], pair["record_index"]) == \
        ("Where?", "An island.", 2)
    assert (pair["rating"], pair["evidence"], pair["cached"]) == (None, None, False)
    assert (judged["rating"], judged["rating_reason"]) == (8, "grounded")
    assert judged["evidence"] == [{"sentence": 2, "text": "It was built of limestone.",
                                   "char_start": 31, "char_end": 57, "page": None,
                                   "slide": None}]
    assert (judged["pass_index"], judged["cached"]) == (1, True)
    assert judged["source"] == {"path": "notes/pharos.txt", "sha256": "a" * 64, "pages": None,
                                "slides": None}


@pytest.mark.parametrize(("shape", "record", "typed"), [
    ("cot", {"question": "Why?", "reasoning": "Because.", "answer": "So."},
     {"question": "Why?", "reasoning": "Because.", "answer": "So.", "summary": None}),
    ("summary", {"summary": "A tall light."},
     {"question": None, "reasoning": None, "answer": None, "summary": "A tall light."}),
    ("custom", {"question": "not lifted", "term": "Pharos"},
     {"question": None, "reasoning": None, "answer": None, "summary": None}),
    ("custom", "a string record",
     {"question": None, "reasoning": None, "answer": None, "summary": None}),
])
def test_built_in_shapes_lift_their_fields_and_custom_ones_stay_in_record(
    shape: str, record: Any, typed: dict[str, Any]
) -> None:
    line = valid(record_line(pb.Record(document_id="d", json=json.dumps(record)), SOURCE,
                             RunShape(shape, judged=False), TEXT))
    assert {name: line[name] for name in typed} == typed
    assert line["record"] == record and line["shape"] == shape
    assert line["rating"] is None and line["rating_reason"] is None


def test_the_shape_comes_from_the_options_over_the_servers_defaults() -> None:
    assert run_shape({}, {}) == RunShape("qa", False)
    assert run_shape({"record_shape": None}, {"record_shape": "cot", "judge": True}) == \
        RunShape("cot", True)
    assert run_shape({"record_schema": "{}"}, {"record_shape": "summary"}).shape == "custom"
    assert run_shape({"judge": False}, {"judge": True}).judged is False


def test_document_ids_are_paths_within_the_inputs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    one, two = tmp_path / "a" / "one.txt", tmp_path / "a" / "b" / "two.txt"
    assert document_ids([one, two]) == {one: "one.txt", two: "b/two.txt"}
    monkeypatch.chdir(tmp_path / "a" / "b")
    relative = [Path("../one.txt"), Path("two.txt")]
    assert list(document_ids(relative).values()) == ["one.txt", "b/two.txt"], \
        "the same ids from any working directory"
