"""The JSON schema that constrains each chunk's output, sized so a valid record fits its budget.

The engine's tokenizer is byte-level, so a token holds at least one byte and a record of B bytes
costs at most B tokens. Strings forbid quotes, backslashes and control characters (no escapes:
every ASCII character is one byte), so a string of L ASCII characters costs at most L tokens.
Bounding the strings from the token budget therefore guarantees that an ASCII record fits.
Characters outside ASCII take 2 to 4 bytes; output heavy in them may still run out of tokens,
which the generator reports as a truncated chunk rather than dropping it silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# What a string may hold: no quote, backslash or control character, and no leading space, so
# strict JSON parsing works and a pair is never blank. Surrogate code points are excluded: xgrammar
# would otherwise emit their (invalid) UTF-8 bytes, which decode to replacement characters.
_FIRST_CHAR = r'[^"\\\x00-\x20\ud800-\udfff]'
_NEXT_CHAR = r'[^"\\\x00-\x1f\ud800-\udfff]'
MIN_QUESTION_CHARS = 8
MIN_ANSWER_CHARS = 8
# Upper caps: grammar compile time grows fast with string length (measured with xgrammar 0.2.8:
# a 256 + 512 character pair compiles in ~0.5 s, 3,000 characters in ~37 s).
MAX_QUESTION_CHARS = 256
MAX_ANSWER_CHARS = 512
# xgrammar fails to compile a repetition count above ~128 ("per_rule_fsm_hashes" check), so
# long strings are a sequence of bounded repetitions.
_MAX_REPEAT = 128
# Share of a pair's characters that goes to the question; answers get the rest.
QUESTION_SHARE = 0.4
# The end-of-sequence token after the JSON.
_EOS_TOKENS = 1


@dataclass(frozen=True)
class PairBounds:
    question_chars: int
    answer_chars: int


def skeleton_bytes(num_pairs: int) -> int:
    """Bytes of a record whose strings are all empty: the structure every record pays for."""
    empty_pair = {"question": "", "answer": ""}
    skeleton = {"pairs": [empty_pair] * num_pairs}
    return len(json.dumps(skeleton, separators=(",", ":")).encode())


def pair_bounds(num_pairs: int, max_generation_tokens: int) -> PairBounds | None:
    """The longest question and answer such that `num_pairs` of them fit; None if too little
    room is left for a useful pair."""
    room = max_generation_tokens - skeleton_bytes(num_pairs) - _EOS_TOKENS
    per_pair = room // num_pairs
    question = int(per_pair * QUESTION_SHARE)
    answer = per_pair - question
    if question < MIN_QUESTION_CHARS or answer < MIN_ANSWER_CHARS:
        return None
    return PairBounds(
        question_chars=min(question, MAX_QUESTION_CHARS),
        answer_chars=min(answer, MAX_ANSWER_CHARS),
    )


def min_generation_tokens(num_pairs: int) -> int:
    """The smallest max_generation_tokens that leaves room for `num_pairs` useful pairs."""
    per_pair = MIN_QUESTION_CHARS + MIN_ANSWER_CHARS
    while int(per_pair * QUESTION_SHARE) < MIN_QUESTION_CHARS:
        per_pair += 1
    return skeleton_bytes(num_pairs) + _EOS_TOKENS + per_pair * num_pairs


def _bounded_string(max_chars: int) -> dict[str, Any]:
    # xgrammar rejects pattern together with maxLength, so the bound lives in the pattern.
    rest = max_chars - 1
    full_runs, last_run = divmod(rest, _MAX_REPEAT)
    runs = [_MAX_REPEAT] * full_runs + ([last_run] if last_run else [])
    tail = "".join(f"{_NEXT_CHAR}{{0,{run}}}" for run in runs)
    return {"type": "string", "pattern": f"^{_FIRST_CHAR}{tail}$"}


def qa_schema(num_pairs: int, bounds: PairBounds) -> dict[str, Any]:
    pair = {
        "type": "object",
        "properties": {
            "question": _bounded_string(bounds.question_chars),
            "answer": _bounded_string(bounds.answer_chars),
        },
        "required": ["question", "answer"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "pairs": {
                "type": "array",
                "items": pair,
                "minItems": num_pairs,
                "maxItems": num_pairs,
            }
        },
        "required": ["pairs"],
        "additionalProperties": False,
    }
