"""Turns resolved options into a generation plan: the record format (shape, schema, prompt
text), the prompt frame and the chunk budget, rejecting options that cannot fit the model's
context."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from synthqa.contract.options import GenerationOptions

from ..engine.types import Adapter
from ..quality.judge import JUDGE_MAX_TOKENS, Judge
from ..text.custom_records import RecordOptionError
from ..text.prompts import PromptBuilder, PromptFrame
from ..text.records import PromptText, RecordFormat, record_format
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
        """`client_set` names the options the caller set (the rest are defaults). Each step
        refuses the options, naming every field at fault, before the next one runs."""
        try:
            records = record_format(options, client_set)
        except RecordOptionError as error:
            _refuse(field_prefix, [(error.option, error.description)])
            raise
        frame = self._prompts.frame(records.prompt)
        room = self._room_for_text(options, records.prompt, frame, field_prefix)
        fit = _room_beside_sentence_numbers(room, field_prefix) if records.evidence else room
        budget = options.max_chunk_tokens or fit
        _refuse(field_prefix, _chunk_size_problems(options, records.evidence, fit, budget))
        return GenerationPlan(
            options=options,
            records=records,
            frame=frame,
            chunk_token_budget=budget,
            prompt_room=room,
        )

    def _room_for_text(
        self, options: GenerationOptions, text: PromptText, frame: PromptFrame,
        field_prefix: str,
    ) -> int:
        """Tokens a chunk may take beside the prompt and the generated tokens, and beside the
        judge's prompt when the call is judged. Raises InvalidArgument when either leaves none."""
        fit = self.max_model_len - options.max_generation_tokens - frame.token_count
        if fit < 1:
            _refuse(field_prefix, self._long_prompt(options, text, frame, field_prefix))
        if options.judge and self._judge is not None:
            judged = self._judge_room(options, options.judge_instructions)
            if judged < 1:
                _refuse(field_prefix, [self._long_judge_prompt(options)])
            fit = min(fit, judged)
        return fit

    def _long_prompt(
        self, options: GenerationOptions, text: PromptText, frame: PromptFrame,
        field_prefix: str,
    ) -> list[tuple[str, str]]:
        """Why the prompt leaves no room for text: the options whose own text made it long
        (instructions, a custom record's schema, regex or choices), or max_generation_tokens
        when the built-in prompt alone leaves none."""
        costs = {}
        built_in = text
        for name in text.caller_options:
            # Instructions that replace the task can be shorter than it: they cost nothing.
            cost = frame.token_count - self._prompts.frame(text.without(name)).token_count
            if cost > 0:
                costs[name] = cost
            built_in = built_in.without(name)
        built_in_tokens = self._prompts.frame(built_in).token_count
        room = self.max_model_len - options.max_generation_tokens - built_in_tokens
        if room < 1 or not costs:
            return [("max_generation_tokens",
                     f"{options.max_generation_tokens} generated tokens plus the "
                     f"{frame.token_count}-token prompt leave no room for text in the "
                     f"{self.max_model_len}-token context")]
        together = ""
        if len(costs) > 1:
            names = " and ".join(f"{field_prefix}.{name}" for name in costs)
            together = f" ({names} take {sum(costs.values())} together)"
        return [(name, f"takes {cost} tokens of the prompt{together}, leaving no room for text: "
                 f"the {self.max_model_len}-token context has {room} beside the "
                 f"{built_in_tokens}-token built-in prompt and the "
                 f"{options.max_generation_tokens} generated tokens; shorten it (or lower "
                 "max_generation_tokens)") for name, cost in costs.items()]

    def _judge_room(self, options: GenerationOptions, criteria: str | None) -> int:
        """Tokens left for text beside the judge's prompt and answer; its prompt also holds a
        record as long as the generation budget."""
        assert self._judge is not None
        return (self.max_model_len - options.max_generation_tokens - JUDGE_MAX_TOKENS
                - self._judge.prompt_tokens(criteria))

    def _long_judge_prompt(self, options: GenerationOptions) -> tuple[str, str]:
        """Why the judge's prompt leaves no room for text: the caller's criteria, when the
        built-in ones would leave some, or else the judge itself."""
        assert self._judge is not None
        room = self._judge_room(options, None)
        if options.judge_instructions and room >= 1:
            cost = (self._judge.prompt_tokens(options.judge_instructions)
                    - self._judge.prompt_tokens(None))
            return ("judge_instructions",
                    f"take {cost} tokens more of the judge's prompt than its built-in criteria, "
                    f"leaving no room for text: with the built-in ones the {self.max_model_len}-"
                    f"token context has {room} beside the judge's prompt, its answer and a "
                    f"record of up to {options.max_generation_tokens} tokens; shorten them")
        return ("judge", "the judge's prompt and answer leave no room for text in the "
                f"{self.max_model_len}-token context")


def _room_beside_sentence_numbers(room: int, field_prefix: str) -> int:
    """What is left of the room for text once evidence's sentence numbers have theirs. Raises
    InvalidArgument when nothing is."""
    # Sentence markers ("[12] ") take tokens of their own; a fifth of the room covers
    # sentences of 15 tokens or more, and shorter ones are numbered in pairs.
    fit = room - max(_MIN_MARKER_ROOM, room // 5)
    if fit < 1:
        _refuse(field_prefix, [("evidence", "leaves no room for text beside the prompt and the "
                                "sentence numbers in this model's context")])
    return fit


def _chunk_size_problems(
    options: GenerationOptions, evidence: bool, fit: int, budget: int
) -> list[tuple[str, str]]:
    """Why the chunk size the caller asked for cannot be used: larger than what fits, or an
    overlap that is not smaller than the chunk."""
    if options.max_chunk_tokens > fit:
        return [("max_chunk_tokens",
                 f"{options.max_chunk_tokens} is more than the {fit} tokens that fit beside the "
                 f"prompt{', the sentence numbers' if evidence else ''} and "
                 f"{options.max_generation_tokens} generated tokens; use 0 for the largest that "
                 "fits")]
    if options.chunk_overlap_tokens >= budget:
        return [("chunk_overlap_tokens",
                 f"must be smaller than the chunk size ({budget} tokens), got "
                 f"{options.chunk_overlap_tokens}")]
    return []


def _refuse(field_prefix: str, problems: Iterable[tuple[str, str]]) -> None:
    """Raise InvalidArgument naming each (option, description) under `field_prefix`, if any."""
    violations = ViolationCollector()
    for name, description in problems:
        violations.add(f"{field_prefix}.{name}", description)
    violations.raise_if_any()
