"""The streaming record parser: records released as they close, however the stream is cut,
whatever their JSON type; and the built-in shapes' checks of each record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthqa.contract.options import GenerationOptions
from synthqa.server.text.record_parser import MalformedOutput, RecordStreamParser
from synthqa.server.text.records import MalformedRecord, record_format

PAIRS = ('{"pairs":[{"question":"What did Fresnel make?","answer":"A lens."},'
         '{"question":"Where was Pharos?","answer":"Egypt, at Alexandria } ]"}]}')
MIXED = '{"records":[12,"a, b ] }",true,null,-0.5e3,[1,[2]],{"k":"}"}]}'


def parse_in_pieces(key: str, output: str, cuts: list[int]) -> list[object]:
    parser = RecordStreamParser(key)
    bounds = sorted({0, len(output), *cuts})
    records = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        records += parser.feed(output[start:end])
    assert parser.closing_problem() is None
    return records


@given(cuts=st.lists(st.integers(0, len(PAIRS)), max_size=30))
def test_pairs_parse_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    assert parse_in_pieces("pairs", PAIRS, cuts) == json.loads(PAIRS)["pairs"]


@given(cuts=st.lists(st.integers(0, len(MIXED)), max_size=30))
def test_records_of_any_json_type_parse_however_the_stream_is_cut(cuts: list[int]) -> None:
    assert parse_in_pieces("records", MIXED, cuts) == json.loads(MIXED)["records"]


def test_each_record_is_released_as_soon_as_it_closes() -> None:
    parser = RecordStreamParser("pairs")
    first_pair_end = PAIRS.index("},") + 1
    assert parser.feed(PAIRS[:first_pair_end - 1]) == []
    assert len(parser.feed(PAIRS[first_pair_end - 1:first_pair_end])) == 1


def test_a_number_waits_for_what_follows_it() -> None:
    parser = RecordStreamParser("records")
    assert parser.feed('{"records":[12') == []  # may become 123
    assert parser.feed("3") == []
    assert parser.feed(",4") == [123]
    assert parser.feed("]}") == [4]


def test_truncated_output_is_malformed() -> None:
    parser = RecordStreamParser("pairs")
    records = parser.feed(PAIRS[:-30])
    assert len(records) == 1
    assert parser.closing_problem() == "the output ended before its list of records closed"


def test_wrong_key_is_malformed() -> None:
    with pytest.raises(MalformedOutput):
        RecordStreamParser("pairs").feed('{"items":[{"question":"a","answer":"b"}]}')


def test_qa_records_need_both_strings_and_drop_undecodable_bytes() -> None:
    accept = record_format(GenerationOptions(), frozenset()).accept
    # The grammar admits overlong UTF-8 (e.g. E0 88 B8), which decodes to U+FFFD characters.
    record = accept({"question": "Why\ufffd\ufffd\ufffd?", "answer": "Because."}, True)
    assert (record.question, record.answer) == ("Why?", "Because.")
    assert json.loads(record.json) == {"question": "Why?", "answer": "Because."}
    kept = accept({"question": "Why\ufffd?", "answer": "Because."}, False)
    assert kept.question == "Why\ufffd?"
    for bad in ({"question": "\ufffd\ufffd", "answer": "x"}, {"question": "a"}, ["a", "b"],
                {"question": "a", "answer": 3}):
        with pytest.raises(MalformedRecord):
            accept(bad, True)


def test_a_scalar_that_is_not_json_is_malformed_once_it_ends() -> None:
    parser = RecordStreamParser("records")
    assert parser.feed('{"records":[1, 12x') == [1]  # "12x" may still end as anything
    with pytest.raises(MalformedOutput, match=r"^'12x' is not a JSON value$"):
        parser.feed(",3]}")


def test_an_output_that_opens_with_something_else_is_malformed_at_its_bracket() -> None:
    parser = RecordStreamParser("records")
    assert parser.feed('{"rec') == []
    with pytest.raises(MalformedOutput, match=r'^the output does not start with \{"records":\[$'):
        parser.feed('ord": [')
    # Spaces around the key are no difference.
    spaced = RecordStreamParser("records")
    assert spaced.feed('{ "records" : [ "a" ]}') == ["a"] and spaced.closing_problem() is None
