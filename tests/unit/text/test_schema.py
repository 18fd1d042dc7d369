"""The output schema: valid records of every built-in shape always fit their token budget,
strings stay strict, and the engine's grammar backend compiles and enforces it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthqa.server.engine.grammar import json_schema_grammar
from synthqa.server.text.schema import (
    COT_FIELDS,
    QA_FIELDS,
    SUMMARY_FIELDS,
    FieldBounds,
    field_bounds,
    min_generation_tokens,
    records_schema,
    text_record_schema,
)

SHAPES = {"pairs": QA_FIELDS, "cot": COT_FIELDS, "summary": SUMMARY_FIELDS}


def pair_bounds(num_pairs: int, max_tokens: int) -> dict[str, int] | None:
    bounds = field_bounds("pairs", QA_FIELDS, num_pairs, max_tokens)
    return None if bounds is None else dict(bounds)


def qa_schema(num_pairs: int, bounds: dict[str, int]) -> dict[str, Any]:
    return records_schema("pairs", text_record_schema(tuple(bounds.items())), num_pairs)


def longest(bounds: FieldBounds) -> dict[str, str]:
    return {name: name[0].upper() * chars for name, chars in bounds}


@given(shape=st.sampled_from(sorted(SHAPES)), count=st.integers(1, 50),
       max_tokens=st.integers(1, 8192))
def test_longest_valid_records_fit_the_token_budget(
    shape: str, count: int, max_tokens: int
) -> None:
    key = "pairs" if shape == "pairs" else "records"
    bounds = field_bounds(key, SHAPES[shape], count, max_tokens)
    if bounds is None:
        assert max_tokens < min_generation_tokens(key, SHAPES[shape], count)
        return
    assert min(chars for _, chars in bounds) >= 8
    # The longest records the schema admits, in ASCII: one byte, so at most one token, a char.
    output = json.dumps({key: [longest(bounds)] * count}, separators=(",", ":"))
    jsonschema.validate(json.loads(output), records_schema(key, text_record_schema(bounds), count))
    assert len(output.encode()) + 1 <= max_tokens  # + the end-of-sequence token


def test_schema_rejects_blank_escaped_and_overlong_strings() -> None:
    bounds = pair_bounds(2, 512)
    assert bounds is not None
    schema = qa_schema(2, bounds)
    good = {"question": "Why?", "answer": "Because."}
    jsonschema.validate({"pairs": [good, good]}, schema)
    for bad_pair in (
        {"question": " leading space", "answer": "x"},
        {"question": "", "answer": "x"},
        {"question": "line\nbreak", "answer": "x"},
        {"question": "a \"quote\"", "answer": "x"},
        {"question": "Q" * (bounds["question"] + 1), "answer": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"pairs": [good, bad_pair]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"pairs": [good]}, schema)  # exactly num_pairs


@pytest.mark.parametrize("num_pairs,max_tokens", [(1, 60), (1, 4096), (2, 512), (5, 512),
                                                  (50, 4096), (3, 1500)])
def test_schema_compiles_in_the_engine_grammar_backend(
    tokenizer: Any, num_pairs: int, max_tokens: int
) -> None:
    # xgrammar, with the real tokenizer, as the engine compiles it: long strings once broke it.
    import xgrammar
    from xgrammar.testing import _is_grammar_accept_string

    compiler = xgrammar.GrammarCompiler(
        xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer)))
    bounds = pair_bounds(num_pairs, max_tokens)
    assert bounds is not None
    schema = json.dumps(qa_schema(num_pairs, bounds))
    compiler.compile_json_schema(schema, any_whitespace=False, separators=(",", ":"))
    # The server sends the schema as EBNF text (engine/grammar.py); the engine compiles that.
    sent = json_schema_grammar(qa_schema(num_pairs, bounds))
    compiler.compile_grammar(sent)
    grammars = [
        xgrammar.Grammar.from_json_schema(schema, any_whitespace=False, separators=(",", ":")),
        xgrammar.Grammar.from_ebnf(sent),
    ]
    # Both take exactly num_pairs pairs of at most the longest strings, with no whitespace.
    pair = {"question": "Q" * bounds["question"], "answer": "A" * bounds["answer"]}
    exact = json.dumps({"pairs": [pair] * num_pairs}, separators=(",", ":"))
    overlong = {"question": "Q" * (bounds["question"] + 1), "answer": "A"}
    cases = {
        exact: True,
        json.dumps({"pairs": [pair] * (num_pairs + 1)}, separators=(",", ":")): False,
        exact.replace(":", ": ", 1): False,
        json.dumps({"pairs": [overlong] * num_pairs}, separators=(",", ":")): False,
    }
    for grammar in grammars:
        for text, accepted in cases.items():
            assert _is_grammar_accept_string(grammar, text.encode()) is accepted, text[:80]


def test_string_grammar_admits_only_valid_utf8_without_escapes() -> None:
    import xgrammar
    from xgrammar.testing import _is_grammar_accept_string

    bounds = pair_bounds(1, 200)
    assert bounds is not None
    pair = qa_schema(1, bounds)["properties"]["pairs"]["items"]
    pattern = pair["properties"]["answer"]["pattern"]
    grammar = xgrammar.Grammar.from_regex(pattern)
    for good in ("Fresnel.", "灯台 at night", "faro 🏝"):
        assert _is_grammar_accept_string(grammar, good.encode())
    # A surrogate's bytes would decode to replacement characters; quotes and escapes need
    # strict-JSON care; a leading space makes a blank-looking pair.
    for bad in (b"ab\xed\xa0\x80", b'say "hi"', b"back\\slash", b" lead", b"new\nline"):
        assert not _is_grammar_accept_string(grammar, bad)
