"""Plans: the chunk budget is measured, and options that cannot fit the context are refused
with the field that is wrong."""

from __future__ import annotations

import pytest

from synthqa.contract.options import GenerationOptions
from synthqa.server.pipeline.errors import InvalidArgument
from synthqa.server.pipeline.planner import Planner
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
