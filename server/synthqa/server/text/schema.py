"""The JSON schema that constrains each chunk's output, sized so valid records fit the budget.

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
# The shortest useful text field: a budget that leaves less is refused up front.
MIN_FIELD_CHARS = 8
# xgrammar fails to compile a repetition count above ~128 ("per_rule_fsm_hashes" check), so
# long strings are a sequence of bounded repetitions.
_MAX_REPEAT = 128
# The end-of-sequence token after the JSON.
_EOS_TOKENS = 1


@dataclass(frozen=True)
class TextField:
    """One string of a built-in record: its share of the record's characters, and a cap
    (grammar compile time grows fast with string length: measured with xgrammar 0.2.8, a
    256 + 512 character pair compiled in ~0.5 s, 3,000 characters in ~37 s)."""

    name: str
    share: float
    max_chars: int


QA_FIELDS = (TextField("question", 0.4, 256), TextField("answer", 0.6, 512))
COT_FIELDS = (TextField("question", 0.2, 256), TextField("reasoning", 0.5, 1024),
              TextField("answer", 0.3, 512))
SUMMARY_FIELDS = (TextField("summary", 1.0, 1024),)

# Longest text of each field, by name, in the fields' order.
FieldBounds = tuple[tuple[str, int], ...]


# The most sentences one record may cite, and the largest sentence number (sentences.py).
MAX_CITATIONS = 3
_WIDEST_CITATIONS = [999] * MAX_CITATIONS


def skeleton_bytes(
    key: str, fields: tuple[TextField, ...], count: int, evidence: bool = False
) -> int:
    """Bytes of `count` records whose strings are all empty: the structure they pay for (with
    evidence, each record wrapped with the widest citations)."""
    empty: dict[str, Any] = {field.name: "" for field in fields}
    if evidence:
        empty = cited(empty, _WIDEST_CITATIONS)
    return len(json.dumps({key: [empty] * count}, separators=(",", ":")).encode())


def cited(record: Any, citations: Any) -> dict[str, Any]:
    """A record with the sentences it cites, as the model writes it under evidence."""
    return {"evidence": citations, "record": record}


def citations_schema(sentence_count: int) -> dict[str, Any]:
    """One to three sentence numbers, each one that exists in the chunk."""
    return {"type": "array", "items": {"enum": list(range(1, sentence_count + 1))},
            "minItems": 1, "maxItems": min(MAX_CITATIONS, sentence_count)}


def _split(fields: tuple[TextField, ...], per_record: int) -> list[int]:
    sizes = [int(per_record * field.share) for field in fields[:-1]]
    return [*sizes, per_record - sum(sizes)]


def field_bounds(
    key: str, fields: tuple[TextField, ...], count: int, max_generation_tokens: int,
    evidence: bool = False,
) -> FieldBounds | None:
    """The longest text per field such that `count` records fit; None if too little room is
    left for useful records."""
    room = (max_generation_tokens - skeleton_bytes(key, fields, count, evidence)
            - _EOS_TOKENS)
    sizes = _split(fields, room // count)
    if min(sizes) < MIN_FIELD_CHARS:
        return None
    return tuple((field.name, min(size, field.max_chars))
                 for field, size in zip(fields, sizes, strict=True))


def min_generation_tokens(
    key: str, fields: tuple[TextField, ...], count: int, evidence: bool = False
) -> int:
    """The smallest max_generation_tokens that leaves room for `count` useful records."""
    per_record = MIN_FIELD_CHARS * len(fields)
    while min(_split(fields, per_record)) < MIN_FIELD_CHARS:
        per_record += 1
    return skeleton_bytes(key, fields, count, evidence) + _EOS_TOKENS + per_record * count


def bounded_string(max_chars: int) -> dict[str, Any]:
    # xgrammar rejects pattern together with maxLength, so the bound lives in the pattern.
    rest = max_chars - 1
    full_runs, last_run = divmod(rest, _MAX_REPEAT)
    runs = [_MAX_REPEAT] * full_runs + ([last_run] if last_run else [])
    tail = "".join(f"{_NEXT_CHAR}{{0,{run}}}" for run in runs)
    return {"type": "string", "pattern": f"^{_FIRST_CHAR}{tail}$"}


def text_record_schema(bounds: FieldBounds) -> dict[str, Any]:
    """One built-in record: an object of bounded strings, every one required."""
    return {
        "type": "object",
        "properties": {name: bounded_string(chars) for name, chars in bounds},
        "required": [name for name, _ in bounds],
        "additionalProperties": False,
    }


def records_schema(
    key: str, record: dict[str, Any], count: int, definitions: dict[str, Any] | None = None,
    sentence_count: int | None = None,
) -> dict[str, Any]:
    """Exactly `count` records under `key`. `definitions` hold the record schema's own
    "$defs" and "definitions", which its references resolve against at the root. With a
    `sentence_count`, each record is wrapped with its citations of the chunk's sentences."""
    if sentence_count is not None:
        record = {
            "type": "object",
            "properties": cited(record, citations_schema(sentence_count)),
            "required": ["evidence", "record"],
            "additionalProperties": False,
        }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            key: {"type": "array", "items": record, "minItems": count, "maxItems": count}
        },
        "required": [key],
        "additionalProperties": False,
    }
    schema.update(definitions or {})
    return schema
