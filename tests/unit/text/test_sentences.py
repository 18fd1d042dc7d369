"""Numbered sentences for grounded records: found in any language, numbered in the prompt,
merged when the numbers would not fit, and cited only as numbers that exist."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthqa.contract.options import GenerationOptions
from synthqa.server.text.records import MalformedRecord, record_format
from synthqa.server.text.schema import (
    QA_FIELDS,
    SUMMARY_FIELDS,
    citations_schema,
    field_bounds,
    records_schema,
    text_record_schema,
)
from synthqa.server.text.sentences import fit_numbered, numbered, split_sentences

MIXED = ("Fresnel presented his lens in 1822. It used prisms! Why did it matter?\n\n"
         "灯台は夜に光る。船を導く。 Der Leuchtturm z.B. steht hier. Фонарь горит.")


def test_sentences_are_found_across_languages() -> None:
    sentences = split_sentences(MIXED)
    texts = [MIXED[s.start:s.end] for s in sentences]
    assert texts == ["Fresnel presented his lens in 1822.", "It used prisms!",
                     "Why did it matter?", "灯台は夜に光る。", "船を導く。",
                     "Der Leuchtturm z.B. steht hier.", "Фонарь горит."]
    assert [s.number for s in sentences] == list(range(1, 8))


@given(st.text(max_size=300))
def test_sentences_lie_inside_the_text_in_order(text: str) -> None:
    sentences = split_sentences(text)
    if not text.strip():
        assert sentences == []
        return
    assert sentences
    position = 0
    for sentence in sentences:
        piece = text[sentence.start:sentence.end]
        assert piece and piece == piece.strip() and sentence.start >= position
        position = sentence.end


def test_numbers_go_before_each_sentence_and_the_rest_is_kept() -> None:
    text = "  One. Two?\nThree "
    assert numbered(text, split_sentences(text)) == "  [1] One. [2] Two?\n[3] Three "


def test_sentences_are_cited_in_pairs_when_the_numbers_do_not_fit() -> None:
    text = "One. Two. Three. Four. Five."
    assert len(split_sentences(text)) == 5
    ids, sentences = fit_numbered(text, lambda t: list(t), room=len(text) + 8)
    # Five markers ("[1] " is 4 characters) need 20 more, three need 12, two fit.
    assert len(ids) <= len(text) + 8
    assert [text[s.start:s.end] for s in sentences] == ["One. Two. Three. Four.", "Five."]
    ids, sentences = fit_numbered(text, lambda t: list(t), room=1)
    assert len(sentences) == 1 and text[sentences[0].start:sentences[0].end] == text


def test_citations_are_only_numbers_the_chunk_has() -> None:
    schema = citations_schema(4)
    jsonschema.validate([1, 4], schema)
    for bad in ([], [5], [0], [1, 2, 3, 4]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert citations_schema(1)["maxItems"] == 1


@given(count=st.integers(1, 20), max_tokens=st.integers(1, 4096))
def test_longest_cited_records_fit_the_token_budget(count: int, max_tokens: int) -> None:
    bounds = field_bounds("records", SUMMARY_FIELDS, count, max_tokens, evidence=True)
    if bounds is None:
        return
    record = {"evidence": [999, 999, 999], "record": {"summary": "S" * bounds[0][1]}}
    output = json.dumps({"records": [record] * count}, separators=(",", ":"))
    schema = records_schema("records", text_record_schema(bounds), count, sentence_count=999)
    jsonschema.validate(json.loads(output), schema)
    assert len(output.encode()) + 1 <= max_tokens


def test_evidence_wraps_each_record_and_sorts_its_citations() -> None:
    form = record_format(GenerationOptions(evidence=True, num_pairs=2), frozenset({"evidence"}))
    assert not form.as_pairs and "numbered like [1]" in form.prompt.task
    assert form.prompt.reply == ('Reply as {"pairs":[{"evidence":[1],"record":'
                                 '{"question":"...","answer":"..."}}]}.')
    items = form.schema_for(3)["properties"]["pairs"]["items"]
    assert items["properties"]["evidence"]["items"]["enum"] == [1, 2, 3]
    record = form.accept({"evidence": [3, 1, 3], "record": {"question": "Why?",
                                                             "answer": "Light."}}, False)
    assert record.citations == (1, 3) and json.loads(record.json) == {"question": "Why?",
                                                                      "answer": "Light."}
    for bad in ({"question": "Why?", "answer": "Light."}, {"evidence": [], "record": {}},
                {"evidence": ["1"], "record": {"question": "Why?", "answer": "Light."}}):
        with pytest.raises(MalformedRecord):
            form.accept(bad, False)
    assert field_bounds("pairs", QA_FIELDS, 2, 512, evidence=True) != field_bounds(
        "pairs", QA_FIELDS, 2, 512)
