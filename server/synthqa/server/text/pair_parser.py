"""Parses question–answer pairs out of a `{"pairs":[...]}` record while it is still streaming,
so each pair can be sent the moment its closing brace arrives."""

from __future__ import annotations

import json
from dataclasses import dataclass

# Lenient: a string may hold raw control characters even though the schema forbids them.
_DECODER = json.JSONDecoder(strict=False)
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class ParsedPair:
    question: str
    answer: str


class MalformedOutput(ValueError):
    """The output cannot be a `{"pairs":[...]}` record."""


REPLACEMENT_CHARACTER = "\ufffd"


class PairStreamParser:
    """`drop_replacement_characters`: remove U+FFFD from pairs. The engine's grammar admits some
    invalid UTF-8 (overlong three-byte forms), which decodes to U+FFFD; when the source text has
    no U+FFFD, every one in the output is such an undecodable byte, not content."""

    def __init__(self, drop_replacement_characters: bool = False) -> None:
        self._drop_replacement = drop_replacement_characters
        self._text = ""
        self._pos = 0
        self._in_array = False
        self._array_closed = False
        # A pair can only complete at a closing brace: after a failed decode, the next try
        # waits for a brace past this point (it would fail the same way before one).
        self._retry_from = 0

    def feed(self, delta: str) -> list[ParsedPair]:
        """Add streamed text; return the pairs it completed."""
        self._text += delta
        pairs = []
        while (pair := self._next_pair()) is not None:
            pairs.append(pair)
        return pairs

    def closing_problem(self) -> str | None:
        """Why the record, as streamed so far, is not a closed `{"pairs":[...]}`; None if it is."""
        if not self._array_closed:
            return "the output ended before its list of pairs closed"
        # The opening was checked to be {"pairs":[, so only the object's brace may follow.
        if self._text[self._pos:].strip(_WHITESPACE) != "}":
            return "the output has more than the list of pairs"
        return None

    def _skip(self, chars: str) -> None:
        while self._pos < len(self._text) and self._text[self._pos] in chars:
            self._pos += 1

    def _next_pair(self) -> ParsedPair | None:
        if self._array_closed:
            return None
        if not self._in_array:
            opening = self._text.find("[", self._pos)
            if opening < 0:
                return None
            if not self._text[: opening].replace(" ", "").startswith('{"pairs":'):
                raise MalformedOutput('the output does not start with {"pairs":[')
            self._in_array = True
            self._pos = opening + 1
        self._skip(_WHITESPACE + ",")
        if self._pos >= len(self._text):
            return None
        if self._text[self._pos] == "]":
            self._array_closed = True
            self._pos += 1
            return None
        if self._text[self._pos] != "{":
            raise MalformedOutput(f"unexpected {self._text[self._pos]!r} in the list of pairs")
        if self._text.find("}", self._retry_from) < 0:
            return None
        try:
            item, end = _DECODER.raw_decode(self._text, self._pos)
        except json.JSONDecodeError:
            self._retry_from = len(self._text)
            return None  # not complete yet
        self._pos = self._retry_from = end
        return _as_pair(item, self._drop_replacement)


def _as_pair(item: object, drop_replacement: bool) -> ParsedPair:
    if not isinstance(item, dict):
        raise MalformedOutput("a pair is not a JSON object")
    question, answer = item.get("question"), item.get("answer")
    if not isinstance(question, str) or not isinstance(answer, str):
        raise MalformedOutput("a pair lacks a string question or answer")
    if drop_replacement:
        question = question.replace(REPLACEMENT_CHARACTER, "")
        answer = answer.replace(REPLACEMENT_CHARACTER, "")
    question, answer = question.strip(" "), answer.strip(" ")
    if not question or not answer:
        raise MalformedOutput("a pair has an empty question or answer")
    return ParsedPair(question=question, answer=answer)
