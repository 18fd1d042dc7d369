"""The chat prompt that asks for records (question–answer pairs by default) about one chunk.

The template is rendered once per shape with a placeholder where the chunk goes, and split
there. A prompt is then prefix ids + the chunk's own token ids + suffix ids: the engine sees
exactly the tokens the chunker counted, and the template's token count is measured, not guessed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .records import PromptText

_PLACEHOLDER = "\u2063SYNTHQA_CHUNK\u2063"

def user_prompt(text: PromptText, chunk: str) -> str:
    """The task (or the caller's instructions in its place, or after it), the length guidance
    and the reply format, then the chunk."""
    if text.instructions and text.replace_task:
        request = [text.instructions]
    elif text.instructions:
        request = [text.task, text.instructions]
    else:
        request = [text.task]
    request += [text.guidance, text.reply]
    return " ".join(part for part in request if part) + "\n\nText:\n" + chunk


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

    def messages(self, text: PromptText, chunk: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": text.system},
                {"role": "user", "content": user_prompt(text, chunk)}]

    def _frame(self, text: PromptText) -> PromptFrame:
        rendered = self._tokenizer.apply_chat_template(
            self.messages(text, _PLACEHOLDER),
            tokenize=False,
            add_generation_prompt=True,
        )
        prefix, found, suffix = rendered.partition(_PLACEHOLDER)
        if not found:
            raise RuntimeError("the model's chat template dropped the chunk placeholder")
        # The rendered template already holds any BOS token as text.
        encode = functools.partial(self._tokenizer.encode, add_special_tokens=False)
        return PromptFrame(prefix_ids=tuple(encode(prefix)), suffix_ids=tuple(encode(suffix)))
