"""Turns resolved options into a generation plan: pair bounds, schema, prompt frame and the
chunk budget, rejecting options that cannot fit the model's context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthqa.contract.options import GenerationOptions

from ..text.prompts import PromptBuilder, PromptFrame
from ..text.schema import PairBounds, min_generation_tokens, pair_bounds, qa_schema
from .errors import ViolationCollector


@dataclass(frozen=True)
class GenerationPlan:
    options: GenerationOptions
    bounds: PairBounds
    frame: PromptFrame
    # The largest chunk, in tokens, under these options.
    chunk_token_budget: int
    schema: dict[str, Any]


class Planner:
    def __init__(self, prompts: PromptBuilder, max_model_len: int) -> None:
        self._prompts = prompts
        self.max_model_len = max_model_len

    def plan(self, options: GenerationOptions, field_prefix: str = "options") -> GenerationPlan:
        problems = ViolationCollector()

        def bad(name: str, description: str) -> None:
            problems.add(f"{field_prefix}.{name}", description)

        bounds = pair_bounds(options.num_pairs, options.max_generation_tokens)
        if bounds is None:
            needed = min_generation_tokens(options.num_pairs)
            bad("max_generation_tokens",
                f"{options.max_generation_tokens} tokens leave too little room for "
                f"{options.num_pairs} pairs; at least {needed} are needed (or ask for fewer "
                "pairs with num_pairs)")
            problems.raise_if_any()
        assert bounds is not None
        frame = self._prompts.frame(options.num_pairs, bounds)
        fit = self.max_model_len - options.max_generation_tokens - frame.token_count
        if fit < 1:
            bad("max_generation_tokens",
                f"{options.max_generation_tokens} generated tokens plus the {frame.token_count}-"
                f"token prompt leave no room for text in the {self.max_model_len}-token context")
            problems.raise_if_any()
        budget = options.max_chunk_tokens or fit
        if options.max_chunk_tokens > fit:
            bad("max_chunk_tokens",
                f"{options.max_chunk_tokens} is more than the {fit} tokens that fit beside the "
                f"prompt and {options.max_generation_tokens} generated tokens; use 0 for the "
                "largest that fits")
        elif options.chunk_overlap_tokens >= budget:
            bad("chunk_overlap_tokens",
                f"must be smaller than the chunk size ({budget} tokens), got "
                f"{options.chunk_overlap_tokens}")
        problems.raise_if_any()
        return GenerationPlan(
            options=options,
            bounds=bounds,
            frame=frame,
            chunk_token_budget=budget,
            schema=qa_schema(options.num_pairs, bounds),
        )
