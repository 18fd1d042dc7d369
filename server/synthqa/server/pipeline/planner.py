"""Turns resolved options into a generation plan: the record format (shape, schema, prompt
text), the prompt frame and the chunk budget, rejecting options that cannot fit the model's
context."""

from __future__ import annotations

from dataclasses import dataclass

from synthqa.contract.options import GenerationOptions

from ..engine.types import Adapter
from ..quality.judge import JUDGE_MAX_TOKENS, Judge
from ..text.custom_records import RecordOptionError
from ..text.prompts import PromptBuilder, PromptFrame
from ..text.records import RecordFormat, record_format
from .errors import ViolationCollector


@dataclass(frozen=True)
class GenerationPlan:
    options: GenerationOptions
    records: RecordFormat
    frame: PromptFrame
    # The largest chunk, in tokens, under these options.
    chunk_token_budget: int
    # Tokens the chunk may take in the prompt: the budget, plus room for sentence numbers
    # under evidence.
    prompt_room: int = 0
    # The LoRA adapter the call named, checked by the service.
    adapter: Adapter | None = None


# Room for at least one sentence marker, whatever the chunk.
_MIN_MARKER_ROOM = 16


class Planner:
    def __init__(
        self, prompts: PromptBuilder, max_model_len: int, judge: Judge | None = None
    ) -> None:
        self._prompts = prompts
        self.max_model_len = max_model_len
        self._judge = judge

    def plan(
        self, options: GenerationOptions, field_prefix: str = "options",
        client_set: frozenset[str] = frozenset(),
    ) -> GenerationPlan:
        """`client_set` names the options the caller set (the rest are defaults)."""
        problems = ViolationCollector()

        def bad(name: str, description: str) -> None:
            problems.add(f"{field_prefix}.{name}", description)

        try:
            records = record_format(options, client_set)
        except RecordOptionError as error:
            bad(error.option, error.description)
            problems.raise_if_any()
            raise
        frame = self._prompts.frame(records.prompt)
        fit = self.max_model_len - options.max_generation_tokens - frame.token_count
        if fit < 1:
            bad("max_generation_tokens",
                f"{options.max_generation_tokens} generated tokens plus the {frame.token_count}-"
                f"token prompt leave no room for text in the {self.max_model_len}-token context")
            problems.raise_if_any()
        if options.judge and self._judge is not None:
            # The judge's prompt holds the chunk and a record as long as the generation budget.
            judged = (self.max_model_len - options.max_generation_tokens - JUDGE_MAX_TOKENS
                      - self._judge.prompt_tokens(options.judge_instructions))
            if judged < 1:
                bad("judge", "the judge's prompt and answer leave no room for text in the "
                    f"{self.max_model_len}-token context")
                problems.raise_if_any()
            fit = min(fit, judged)
        room = fit
        if records.evidence:
            # Sentence markers ("[12] ") take tokens of their own; a fifth of the room covers
            # sentences of 15 tokens or more, and shorter ones are numbered in pairs.
            fit -= max(_MIN_MARKER_ROOM, fit // 5)
            if fit < 1:
                bad("evidence", "leaves no room for text beside the prompt and the sentence "
                    "numbers in this model's context")
                problems.raise_if_any()
        budget = options.max_chunk_tokens or fit
        if options.max_chunk_tokens > fit:
            bad("max_chunk_tokens",
                f"{options.max_chunk_tokens} is more than the {fit} tokens that fit beside the "
                f"prompt{', the sentence numbers' if records.evidence else ''} and "
                f"{options.max_generation_tokens} generated tokens; use 0 for the largest that "
                "fits")
        elif options.chunk_overlap_tokens >= budget:
            bad("chunk_overlap_tokens",
                f"must be smaller than the chunk size ({budget} tokens), got "
                f"{options.chunk_overlap_tokens}")
        problems.raise_if_any()
        return GenerationPlan(
            options=options,
            records=records,
            frame=frame,
            chunk_token_budget=budget,
            prompt_room=room,
        )
