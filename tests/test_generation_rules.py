"""Options, budgets, schema bounds and the streaming pair parser (no engine needed)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoTokenizer

from synthqa.server.errors import InvalidArgument
from synthqa.server.options import GenerationOptions, OptionOverrides, apply_overrides
from synthqa.server.pair_parser import MalformedOutput, PairStreamParser
from synthqa.server.planner import Planner
from synthqa.server.prompts import PromptBuilder
from synthqa.server.schema import min_generation_tokens, pair_bounds, qa_schema

from .serverproc import TINY_MODEL


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner(PromptBuilder(AutoTokenizer.from_pretrained(TINY_MODEL)), max_model_len=2048)


def violations(error: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


def test_unset_fields_take_the_defaults() -> None:
    options = apply_overrides(GenerationOptions(), OptionOverrides(num_pairs=3), max_num_pairs=50)
    assert options == GenerationOptions(num_pairs=3)
    assert (options.max_generation_tokens, options.temperature, options.top_p) == (512, 0.7, 0.95)
    assert (options.chunk_overlap_tokens, options.max_chunk_tokens, options.seed) == (64, 0, None)


def test_every_bad_field_is_reported_at_once() -> None:
    bad = OptionOverrides(num_pairs=0, temperature=2.5, top_p=0.0, chunk_overlap_tokens=-1,
                          max_chunk_tokens=-5, max_generation_tokens=0)
    with pytest.raises(InvalidArgument) as caught:
        apply_overrides(GenerationOptions(), bad, max_num_pairs=50)
    assert set(violations(caught.value)) == {
        "options.num_pairs", "options.temperature", "options.top_p",
        "options.chunk_overlap_tokens", "options.max_chunk_tokens",
        "options.max_generation_tokens",
    }


def test_nan_temperature_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        apply_overrides(GenerationOptions(), OptionOverrides(temperature=float("nan")),
                        max_num_pairs=50)


def test_budget_is_context_minus_generation_minus_measured_prompt(planner: Planner) -> None:
    plan = planner.plan(GenerationOptions())
    assert plan.frame.token_count > 20, "the prompt template's tokens are measured"
    assert plan.chunk_token_budget == 2048 - 512 - plan.frame.token_count
    smaller = planner.plan(GenerationOptions(max_generation_tokens=300))
    assert smaller.chunk_token_budget > plan.chunk_token_budget


def test_overlap_at_least_the_chunk_size_names_the_field(planner: Planner) -> None:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan(GenerationOptions(max_chunk_tokens=100, chunk_overlap_tokens=100))
    assert list(violations(caught.value)) == ["options.chunk_overlap_tokens"]


def test_chunk_larger_than_fits_is_rejected(planner: Planner) -> None:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan(GenerationOptions(max_chunk_tokens=4000))
    assert list(violations(caught.value)) == ["options.max_chunk_tokens"]


def test_too_little_room_per_pair_is_rejected(planner: Planner) -> None:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan(GenerationOptions(num_pairs=20, max_generation_tokens=200))
    description = violations(caught.value)["options.max_generation_tokens"]
    assert str(min_generation_tokens(20)) in description


def test_generation_larger_than_context_is_rejected(planner: Planner) -> None:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan(GenerationOptions(max_generation_tokens=2040))
    assert "options.max_generation_tokens" in violations(caught.value)


@given(num_pairs=st.integers(1, 50), max_tokens=st.integers(1, 8192))
def test_longest_valid_record_fits_the_token_budget(num_pairs: int, max_tokens: int) -> None:
    bounds = pair_bounds(num_pairs, max_tokens)
    if bounds is None:
        assert max_tokens < min_generation_tokens(num_pairs)
        return
    # The longest record the schema admits, in ASCII: one byte, so at most one token, a char.
    pair = {"question": "Q" * bounds.question_chars, "answer": "A" * bounds.answer_chars}
    record = json.dumps({"pairs": [pair] * num_pairs}, separators=(",", ":"))
    jsonschema.validate(json.loads(record), qa_schema(num_pairs, bounds))
    assert len(record.encode()) + 1 <= max_tokens  # + the end-of-sequence token


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
        {"question": "Q" * (bounds.question_chars + 1), "answer": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"pairs": [good, bad_pair]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"pairs": [good]}, schema)  # exactly num_pairs


RECORD = ('{"pairs":[{"question":"What did Fresnel make?","answer":"A lens."},'
          '{"question":"Where was Pharos?","answer":"Egypt, at Alexandria } ]"}]}')


@given(cuts=st.lists(st.integers(0, len(RECORD)), max_size=30))
def test_pairs_parse_the_same_however_the_stream_is_cut(cuts: list[int]) -> None:
    parser = PairStreamParser()
    bounds = sorted({0, len(RECORD), *cuts})
    pairs = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        pairs += parser.feed(RECORD[start:end])
    parser.finish()
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
    with pytest.raises(MalformedOutput):
        parser.finish()


def test_wrong_shape_is_malformed() -> None:
    with pytest.raises(MalformedOutput):
        PairStreamParser().feed('{"items":[{"question":"a","answer":"b"}]}')
    with pytest.raises(MalformedOutput):
        PairStreamParser().feed('{"pairs":[{"question":"a"}]}')


@pytest.mark.parametrize("num_pairs,max_tokens", [(1, 60), (1, 4096), (2, 512), (5, 512),
                                                  (50, 4096), (3, 1500)])
def test_schema_compiles_in_the_engine_grammar_backend(num_pairs: int, max_tokens: int) -> None:
    # xgrammar, with the real tokenizer, as the engine compiles it: long strings once broke it.
    import xgrammar

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    compiler = xgrammar.GrammarCompiler(
        xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer)))
    bounds = pair_bounds(num_pairs, max_tokens)
    assert bounds is not None
    compiler.compile_json_schema(json.dumps(qa_schema(num_pairs, bounds)),
                                 any_whitespace=False, separators=(",", ":"))


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


def test_undecodable_bytes_are_dropped_unless_the_source_has_them() -> None:
    # The grammar admits overlong UTF-8 (e.g. E0 88 B8), which decodes to U+FFFD characters.
    text = '{"pairs":[{"question":"Why\ufffd\ufffd\ufffd?","answer":"Because."}]}'
    cleaned = PairStreamParser(drop_replacement_characters=True).feed(text)
    assert [(p.question, p.answer) for p in cleaned] == [("Why?", "Because.")]
    kept = PairStreamParser(drop_replacement_characters=False).feed(text)
    assert kept[0].question == "Why\ufffd\ufffd\ufffd?"
    with pytest.raises(MalformedOutput):
        PairStreamParser(True).feed('{"pairs":[{"question":"\ufffd\ufffd","answer":"x"}]}')


def test_seed_minus_one_is_reserved() -> None:
    with pytest.raises(InvalidArgument) as caught:
        apply_overrides(GenerationOptions(), OptionOverrides(seed=-1), max_num_pairs=50)
    assert list(violations(caught.value)) == ["options.seed"]
    for seed in (0, -2, 2**63 - 1, -(2**63)):
        apply_overrides(GenerationOptions(), OptionOverrides(seed=seed), max_num_pairs=50)
