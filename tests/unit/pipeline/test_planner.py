"""Plans: the chunk budget is measured, and options that cannot fit the context are refused
with the field that is wrong: the option whose own text made the prompt too long, or
max_generation_tokens when the generation headroom is what leaves no room."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from synthqa.contract.options import GenerationOptions
from synthqa.server.pipeline.errors import InvalidArgument
from synthqa.server.pipeline.planner import Planner
from synthqa.server.quality.judge import Judge
from synthqa.server.text.prompts import PromptBuilder
from synthqa.server.text.schema import QA_FIELDS, min_generation_tokens

from ..helpers import violations


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
    assert str(min_generation_tokens("pairs", QA_FIELDS, 20)) in description


def test_generation_larger_than_context_is_rejected(planner: Planner) -> None:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan(GenerationOptions(max_generation_tokens=2040))
    assert "options.max_generation_tokens" in violations(caught.value)


LONG_PROMPT = re.compile(
    r"takes (\d+) tokens of the prompt(?: \(.*\))?, leaving no room for text: the 2048-token "
    r"context has (\d+) beside the (\d+)-token built-in prompt and the 512 generated tokens; "
    r"shorten it \(or lower max_generation_tokens\)")
LONG_CHOICES = tuple(f"choice {n}: " + "x" * 240 for n in range(64))
LONG_INSTRUCTIONS = ("Answer in the style of a careful historian. " * 90)[:4000]
LARGE_ENUM_SCHEMA = json.dumps({"enum": [f"value number {n} of a long list" for n in range(400)]})


def refusal(planner: Planner, **options: Any) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        planner.plan(GenerationOptions(**options), client_set=frozenset(options))
    return violations(caught.value)


@pytest.mark.parametrize(("option", "value", "shorter"), [
    ("record_choices", LONG_CHOICES, LONG_CHOICES[:4]),
    ("record_schema", LARGE_ENUM_SCHEMA, json.dumps({"enum": ["a", "b"]})),
    ("instructions", LONG_INSTRUCTIONS, LONG_INSTRUCTIONS[:400]),
])
def test_a_prompt_made_too_long_by_an_option_names_that_option(
    planner: Planner, option: str, value: Any, shorter: Any
) -> None:
    found = refusal(planner, **{option: value})
    assert list(found) == [f"options.{option}"]
    measured = LONG_PROMPT.fullmatch(found[f"options.{option}"])
    assert measured, found
    cost, room, built_in = map(int, measured.groups())
    assert cost >= room and room + built_in + 512 == 2048
    planner.plan(GenerationOptions(**{option: shorter}), client_set=frozenset({option}))


def test_options_that_make_the_prompt_too_long_together_are_each_named(
    planner: Planner
) -> None:
    found = refusal(planner, instructions=LONG_INSTRUCTIONS[:2400],
                    record_choices=LONG_CHOICES[:4])
    assert sorted(found) == ["options.instructions", "options.record_choices"]
    assert "(options.instructions and options.record_choices take " in \
        found["options.record_choices"]


def test_a_prompt_too_long_for_the_generation_headroom_names_max_generation_tokens(
    planner: Planner
) -> None:
    found = refusal(planner, instructions="Be brief.", max_generation_tokens=2040)
    assert list(found) == ["options.max_generation_tokens"]


def test_judge_instructions_too_long_for_the_judge_prompt_are_named(tokenizer: Any) -> None:
    judging = Planner(PromptBuilder(tokenizer), max_model_len=2048,
                      judge=Judge(SimpleNamespace(tokenizer=tokenizer)))  # type: ignore[arg-type]
    found = refusal(judging, judge=True, judge_instructions=LONG_INSTRUCTIONS)
    assert list(found) == ["options.judge_instructions"]
    assert "tokens more of the judge's prompt than its built-in criteria" in \
        found["options.judge_instructions"]
    judging.plan(GenerationOptions(judge=True, judge_instructions=LONG_INSTRUCTIONS[:400]),
                 client_set=frozenset({"judge", "judge_instructions"}))


def test_evidence_keeps_room_for_the_sentence_numbers(planner: Planner) -> None:
    plan = planner.plan(GenerationOptions(evidence=True), client_set=frozenset({"evidence"}))
    room = 2048 - 512 - plan.frame.token_count
    assert plan.prompt_room == room
    assert plan.chunk_token_budget == room - max(16, room // 5)
    found = refusal(planner, evidence=True, max_chunk_tokens=plan.chunk_token_budget + 1)
    assert found["options.max_chunk_tokens"].startswith(
        f"{plan.chunk_token_budget + 1} is more than the {plan.chunk_token_budget} tokens that "
        "fit beside the prompt, the sentence numbers and 512 generated tokens")


def test_evidence_with_no_room_left_for_text_names_evidence(planner: Planner) -> None:
    frame = planner.plan(GenerationOptions(evidence=True),
                         client_set=frozenset({"evidence"})).frame
    # 10 tokens beside the prompt: fewer than the sentence numbers need.
    found = refusal(planner, evidence=True,
                    max_generation_tokens=2048 - frame.token_count - 10)
    assert found == {"options.evidence": "leaves no room for text beside the prompt and the "
                     "sentence numbers in this model's context"}
