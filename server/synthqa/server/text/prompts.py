"""The chat prompt that asks for question–answer pairs about one chunk.

The template is rendered once per shape with a placeholder where the chunk goes, and split
there. A prompt is then prefix ids + the chunk's own token ids + suffix ids: the engine sees
exactly the tokens the chunker counted, and the template's token count is measured, not guessed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .schema import PairBounds

_PLACEHOLDER = "\u2063SYNTHQA_CHUNK\u2063"

SYSTEM_PROMPT = (
    "You write question and answer pairs for training language models. Every question must be "
    "answerable from the given text alone, and every answer must be correct according to it. "
    "Reply with JSON only."
)

USER_PROMPT = (
    "Write exactly {num_pairs} question and answer pairs about the text below. Keep each question "
    "under {question_chars} characters and each answer under {answer_chars} characters. Reply as "
    '{{"pairs":[{{"question":"...","answer":"..."}}]}}.\n\nText:\n{chunk}'
)


@dataclass(frozen=True)
class PromptFrame:
    """Token ids that go before and after a chunk."""

    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]

    @property
    def token_count(self) -> int:
        return len(self.prefix_ids) + len(self.suffix_ids)

    def wrap(self, chunk_ids: tuple[int, ...]) -> list[int]:
        return [*self.prefix_ids, *chunk_ids, *self.suffix_ids]


class PromptBuilder:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.frame = functools.lru_cache(maxsize=256)(self._frame)

    def messages(self, num_pairs: int, bounds: PairBounds, chunk: str) -> list[dict[str, str]]:
        user = USER_PROMPT.format(
            num_pairs=num_pairs,
            question_chars=bounds.question_chars,
            answer_chars=bounds.answer_chars,
            chunk=chunk,
        )
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _frame(self, num_pairs: int, bounds: PairBounds) -> PromptFrame:
        rendered = self._tokenizer.apply_chat_template(
            self.messages(num_pairs, bounds, _PLACEHOLDER),
            tokenize=False,
            add_generation_prompt=True,
        )
        prefix, found, suffix = rendered.partition(_PLACEHOLDER)
        if not found:
            raise RuntimeError("the model's chat template dropped the chunk placeholder")
        # The rendered template already holds any BOS token as text.
        encode = functools.partial(self._tokenizer.encode, add_special_tokens=False)
        return PromptFrame(prefix_ids=tuple(encode(prefix)), suffix_ids=tuple(encode(suffix)))
