"""The streaming pair parser: pairs released as they close, however the stream is cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthqa.server.text.pair_parser import MalformedOutput, PairStreamParser

RECORD = ('{"pairs":[{"question":"What did Fresnel make?","answer":"A lens."},'
          '{"question":"Where was Pharos?","answer":"Egypt, at Alexandria } ]"}]}')


@given(cuts=st.lists(st.integers(0, len(RECORD)), max_size=30))
def test_pairs_parse_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    parser = PairStreamParser()
    bounds = sorted({0, len(RECORD), *cuts})
    pairs = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        pairs += parser.feed(RECORD[start:end])
    assert parser.closing_problem() is None
    assert [(p.question, p.answer) for p in pairs] == [
        ("What did Fresnel make?", "A lens."),
        ("Where was Pharos?", "Egypt, at Alexandria } ]"),
    ]


def test_each_pair_is_released_as_soon_as_it_closes() -> None:
    parser = PairStreamParser()
    first_pair_end = RECORD.index("},") + 1
    assert parser.feed(RECORD[:first_pair_end - 1]) == []
    assert len(parser.feed(RECORD[first_pair_end - 1:first_pair_end])) == 1


def test_truncated_output_is_malformed() -> None:
    parser = PairStreamParser()
    pairs = parser.feed(RECORD[:-30])
    assert len(pairs) == 1
    assert parser.closing_problem() == "the output ended before its list of pairs closed"


def test_wrong_shape_is_malformed() -> None:
    with pytest.raises(MalformedOutput):
        PairStreamParser().feed('{"items":[{"question":"a","answer":"b"}]}')
    with pytest.raises(MalformedOutput):
        PairStreamParser().feed('{"pairs":[{"question":"a"}]}')


def test_undecodable_bytes_are_dropped_unless_the_source_has_them() -> None:
    # The grammar admits overlong UTF-8 (e.g. E0 88 B8), which decodes to U+FFFD characters.
    text = '{"pairs":[{"question":"Why\ufffd\ufffd\ufffd?","answer":"Because."}]}'
    cleaned = PairStreamParser(drop_replacement_characters=True).feed(text)
    assert [(p.question, p.answer) for p in cleaned] == [("Why?", "Because.")]
    kept = PairStreamParser(drop_replacement_characters=False).feed(text)
    assert kept[0].question == "Why\ufffd\ufffd\ufffd?"
    with pytest.raises(MalformedOutput):
        PairStreamParser(True).feed('{"pairs":[{"question":"\ufffd\ufffd","answer":"x"}]}')
