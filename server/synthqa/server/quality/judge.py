"""The judge: each record rated on the same engine, as soon as it is generated, under a schema
(an integer from 1 to 10 and a short reason), greedily so the same record gets the same rating.

The judge's prompt is the chunk (its own token ids, as the generator sent them) and the record,
framed like the generation prompt: the template is rendered once per set of criteria with
placeholders and split there, so a prompt is assembled from ids.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.types import EngineDead, GenerationEngine, SamplingRequest
from ..text.chunker import Chunk, token_ids_of
from ..text.schema import bounded_string

MAX_REASON_CHARS = 160
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rating": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": bounded_string(MAX_REASON_CHARS),
    },
    "required": ["rating", "reason"],
    "additionalProperties": False,
}
# {"rating":10,"reason":"…"} at its longest, in byte-level tokens, and the end of sequence.
JUDGE_MAX_TOKENS = len('{"rating":10,"reason":""}') + MAX_REASON_CHARS + 1

JUDGE_SYSTEM_PROMPT = ("You rate records written for training language models. "
                       "Reply with JSON only.")
JUDGE_CRITERIA = (
    "Rate the record below as training data about the text, from 1 (wrong, not supported by "
    "the text, or useless) to 10 (correct according to the text, clear and useful).")
JUDGE_REPLY = 'Reply as {"rating":1,"reason":"..."} with a short reason.'

_CHUNK = "\u2063SYNTHQA_CHUNK\u2063"
_RECORD = "\u2063SYNTHQA_RECORD\u2063"


@dataclass(frozen=True)
class Rating:
    score: int
    reason: str


@dataclass(frozen=True)
class _JudgeFrame:
    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]

    @property
    def token_count(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


class Judge:
    def __init__(self, engine: GenerationEngine) -> None:
        self._engine = engine
        self._frame = functools.lru_cache(maxsize=64)(self._build_frame)

    def prompt_tokens(self, criteria: str | None) -> int:
        """Tokens the judge's prompt adds around the chunk and the record."""
        return self._frame(criteria).token_count

    async def rate(
        self, chunk: Chunk, record_json: str, criteria: str | None, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> Rating | None:
        """The record's rating, or None if the judge's answer could not be read. Raises
        EngineDead if the engine died."""
        frame = self._frame(criteria)
        record_ids = token_ids_of(self._engine.tokenizer, record_json)
        prompt = [*frame.prefix, *chunk.token_ids, *frame.middle, *record_ids, *frame.suffix]
        request = SamplingRequest(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, top_p=1.0,
                                  seed=None, json_schema=JUDGE_SCHEMA)
        text = []
        try:
            stream = self._engine.generate(prompt, request, request_id, trace_headers)
            async with contextlib.aclosing(stream):
                async for delta in stream:
                    text.append(delta.text)
        except EngineDead:
            raise
        except Exception:  # the engine failed this request: the record goes unrated
            return None
        return _read_rating("".join(text))

    def _build_frame(self, criteria: str | None) -> _JudgeFrame:
        user = (f"{criteria or JUDGE_CRITERIA} {JUDGE_REPLY}\n\nText:\n{_CHUNK}\n\n"
                f"Record:\n{_RECORD}")
        rendered = self._engine.tokenizer.apply_chat_template(
            [{"role": "system", "content": JUDGE_SYSTEM_PROMPT},
             {"role": "user", "content": user}],
            tokenize=False, add_generation_prompt=True)
        prefix, found_chunk, rest = rendered.partition(_CHUNK)
        middle, found_record, suffix = rest.partition(_RECORD)
        if not (found_chunk and found_record):
            raise RuntimeError("the model's chat template dropped the judge's placeholders")

        def encode(text: str) -> tuple[int, ...]:
            ids: Sequence[int] = self._engine.tokenizer.encode(text, add_special_tokens=False)
            return tuple(ids)

        return _JudgeFrame(encode(prefix), encode(middle), encode(suffix))


def _read_rating(text: str) -> Rating | None:
    try:
        answer = json.JSONDecoder(strict=False).decode(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    score, reason = answer.get("rating"), answer.get("reason")
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 10:
        return None
    return Rating(score, reason.strip() if isinstance(reason, str) else "")
