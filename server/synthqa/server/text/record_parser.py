"""Parses the records out of a `{"<key>":[...]}` output while it is still streaming, so each
record can be sent the moment it is complete."""

from __future__ import annotations

import json
import re
from typing import Any

# Lenient: a string may hold raw control characters even though the schema forbids them.
_DECODER = json.JSONDecoder(strict=False)
_WHITESPACE = " \t\r\n"
# Where a record can end: an object, array or string closes on one of these. A number, true,
# false or null has no closing character, so it is complete only once a separator follows.
_CLOSERS = '}]"'
_SEPARATORS = ",]"
_SCALAR_END = re.compile(r"[\s,\]]")


class MalformedOutput(ValueError):
    """The output cannot be a `{"<key>":[...]}` list of records."""


class RecordStreamParser:
    def __init__(self, key: str) -> None:
        self._opening = '{"' + key + '":'
        self._text = ""
        self._pos = 0
        self._in_array = False
        self._array_closed = False
        # A record can only complete at a closing character: after a failed decode, the next
        # try waits for one past this point (it would fail the same way before one).
        self._retry_from = 0

    def feed(self, delta: str) -> list[Any]:
        """Add streamed text; return the records it completed, as parsed JSON values."""
        self._text += delta
        records = []
        while (found := self._next_record()) is not None:
            records.append(found[0])
        return records

    def closing_problem(self) -> str | None:
        """Why the output, as streamed so far, is not a closed list of records; None if it is."""
        if not self._array_closed:
            return "the output ended before its list of records closed"
        # The opening was checked, so only the object's brace may follow.
        if self._text[self._pos:].strip(_WHITESPACE) != "}":
            return "the output has more than the list of records"
        return None

    def _skip(self, chars: str) -> None:
        while self._pos < len(self._text) and self._text[self._pos] in chars:
            self._pos += 1

    def _next_record(self) -> tuple[Any] | None:
        """The next complete record, in a 1-tuple (a record may be null), or None."""
        if self._array_closed:
            return None
        if not self._in_array and not self._open_array():
            return None
        self._skip(_WHITESPACE + ",")
        if self._pos >= len(self._text):
            return None
        if self._text[self._pos] == "]":
            self._array_closed = True
            self._pos += 1
            return None
        if not self._may_have_ended():
            return None
        return self._decode_record()

    def _open_array(self) -> bool:
        """Step into the list once its `[` has streamed; False before. Raises MalformedOutput
        when what comes before it is not the opening."""
        opening = self._text.find("[", self._pos)
        if opening < 0:
            return False
        if not self._text[:opening].replace(" ", "").startswith(self._opening):
            raise MalformedOutput(f"the output does not start with {self._opening}[")
        self._in_array = True
        self._pos = opening + 1
        return True

    def _may_have_ended(self) -> bool:
        """Whether a character a record can end on has streamed since the last failed decode."""
        return any(self._text.find(c, self._retry_from) >= 0 for c in _CLOSERS + _SEPARATORS)

    def _decode_record(self) -> tuple[Any] | None:
        """The record at the position, in a 1-tuple, once it is complete; None before."""
        try:
            record, end = _DECODER.raw_decode(self._text, self._pos)
        except json.JSONDecodeError:
            self._retry_from = len(self._text)
            return None  # not complete yet
        if self._text[end - 1] not in _CLOSERS:
            scalar = self._ended_scalar()
            if scalar is None:
                self._retry_from = len(self._text)
                return None
            record, end = scalar
        self._pos = self._retry_from = end
        return (record,)

    def _ended_scalar(self) -> tuple[Any, int] | None:
        """The number, true, false or null at the position, and where it ends, once a
        separator follows it ("12" or "-0." may still grow); None before. Raises
        MalformedOutput when the text up to the separator is not a JSON value."""
        boundary = _SCALAR_END.search(self._text, self._pos)
        if boundary is None:
            return None
        token = self._text[self._pos:boundary.start()]
        try:
            return json.loads(token), boundary.start()
        except json.JSONDecodeError:
            raise MalformedOutput(f"{token[:40]!r} is not a JSON value") from None
