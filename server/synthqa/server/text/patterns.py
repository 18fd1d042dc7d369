"""Callers' regular expressions, matched in time linear in the text.

A pattern from a request (`record_regex`, a schema's `pattern` or `patternProperties`) is run
by RE2 (google-re2), never by Python's backtracking `re`: `(a?){29}a{29}` would take 2^29 steps
there, on the event loop, and freeze the server for every caller. RE2 has no backreferences or
lookaround, which the output grammar cannot enforce either; a pattern using them is refused up
front with RE2's reason.

The output grammar (xgrammar) holds the characters between a JSON string's quotes to the
pattern as written, escapes included: a record the pattern allows can hold neither `"` nor `\\`
(either would end or escape the string). `writable_without_quotes` finds, before any work, a
pattern whose every match needs one of them, so that it is refused instead of failing every
chunk.
"""

from __future__ import annotations

import functools
import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parser  # type: ignore[import-not-found]
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to its caller, not to stderr
# RE2's own memory for a compiled pattern (its default is 8 MiB); a pattern needing more is
# refused rather than made slow.
_OPTIONS.max_mem = 32 << 20


class PatternError(ValueError):
    """A caller's pattern that cannot be matched in linear time, or not at all."""


@functools.lru_cache(maxsize=1024)
def linear_pattern(pattern: str) -> Any:
    """The pattern compiled by RE2. Raises PatternError with RE2's reason."""
    try:
        return re2.compile(_in_re2_escapes(pattern), _OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(
            error.args[0], bytes) else str(error)
        if "repetition size" in reason:
            raise PatternError(f"{pattern!r}: a repetition bound is too large ({reason}); keep "
                               "counts such as {0,N} at 128 or below") from None
        raise PatternError(
            f"{pattern!r} is not a usable pattern: {reason} (patterns run in linear time, on "
            "RE2: lookarounds, backreferences and possessive repetitions are not supported)"
        ) from None


# Code points as \u plus four hex digits (ECMAScript, which the grammar reads) and \U plus
# eight (Python), written as RE2 writes them.
_CODE_POINT_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})|\\.", re.DOTALL)


def _in_re2_escapes(pattern: str) -> str:
    def rewrite(match: re.Match[str]) -> str:
        code = match.group(1) or match.group(2)
        return match.group(0) if code is None else "\\x{" + code + "}"

    return _CODE_POINT_ESCAPE.sub(rewrite, pattern)


def search(pattern: str, text: str) -> bool:
    return linear_pattern(pattern).search(text) is not None


def fullmatch(pattern: str, text: str) -> bool:
    return linear_pattern(pattern).fullmatch(text) is not None


# The two characters a JSON string cannot hold as written.
_STRING_BREAKERS = frozenset({ord('"'), ord("\\")})


def writable_without_quotes(pattern: str) -> bool:
    """Whether some text without `"` or `\\` matches `pattern` (True where Python's parser
    does not read the pattern: the grammar check decides then)."""
    try:
        parsed = sre_parser.parse(pattern)
    except (re.error, OverflowError, RecursionError):
        return True
    return _writable(list(parsed))


def _writable(items: list[tuple[Any, Any]]) -> bool:
    return all(_item_writable(op, value) for op, value in items)


def _item_writable(op: Any, value: Any) -> bool:
    c = sre_constants
    if op is c.LITERAL:
        return value not in _STRING_BREAKERS
    if op is c.IN:
        return _class_writable(value)
    if op is c.SUBPATTERN:
        return _writable(list(value[-1]))
    if op is c.BRANCH:
        return any(_writable(list(alternative)) for alternative in value[1])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        low, _, body = value
        return low == 0 or _writable(list(body))
    if op is c.ATOMIC_GROUP:
        return _writable(list(value))
    # Anything else (any character, a negated literal, anchors, categories) can be written
    # without either character.
    return True


def _class_writable(members: list[tuple[Any, Any]]) -> bool:
    c = sre_constants
    if any(op is c.NEGATE for op, _ in members):
        return True
    for op, value in members:
        if op is c.LITERAL and value not in _STRING_BREAKERS:
            return True
        if op is c.RANGE:
            low, high = value
            if high - low + 1 > sum(low <= breaker <= high for breaker in _STRING_BREAKERS):
                return True
        if op is c.CATEGORY:
            return True
    return False
