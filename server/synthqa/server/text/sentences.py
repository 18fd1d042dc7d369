"""A chunk's sentences, numbered for the model to cite.

Sentences are found with sentencex (Wikimedia's segmenter, rules for many languages with
fallbacks between them; its English rules also end sentences at CJK full stops). The chunk goes
to the model with a marker such as "[3] " before each sentence, and a record cites sentence
numbers, which the server turns back into character spans of the document. When markers would
not fit the chunk's room, neighbouring sentences are cited as one, halving the markers until
they fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sentencex

# sentencex picks its rules by language; English rules with their fallbacks suit any text
# whose language the caller did not say.
_LANGUAGE = "en"
# The most sentences a chunk numbers: a record's evidence is an enum of 1..N in its grammar.
MAX_SENTENCES = 999


@dataclass(frozen=True)
class Sentence:
    number: int
    # Offsets in the chunk's text, in code points, without surrounding whitespace.
    start: int
    end: int


def split_sentences(text: str) -> list[Sentence]:
    spans = []
    for boundary in sentencex.get_sentence_boundaries(_LANGUAGE, text):
        start, end = boundary["start_index"], boundary["end_index"]
        piece = text[start:end]
        stripped = piece.strip()
        if not stripped:
            continue  # a paragraph break
        start += len(piece) - len(piece.lstrip())
        spans.append((start, start + len(stripped)))
    if not spans and text.strip():
        stripped_start = len(text) - len(text.lstrip())
        spans = [(stripped_start, stripped_start + len(text.strip()))]
    while len(spans) > MAX_SENTENCES:
        spans = _merged_pairs(spans)
    return [Sentence(number, start, end) for number, (start, end) in enumerate(spans, 1)]


def numbered(text: str, sentences: list[Sentence]) -> str:
    """The text with "[n] " before each sentence; the text between sentences is kept."""
    parts, position = [], 0
    for sentence in sentences:
        parts.append(text[position:sentence.start])
        parts.append(f"[{sentence.number}] {text[sentence.start:sentence.end]}")
        position = sentence.end
    parts.append(text[position:])
    return "".join(parts)


def fit_numbered(
    text: str, encode: Callable[[str], Sequence[int]], room: int
) -> tuple[Sequence[int], list[Sentence]]:
    """The numbered text's token ids and its sentences, merging neighbours until it takes at
    most `room` tokens (one sentence, the whole chunk, fits the room the plan reserved)."""
    sentences = split_sentences(text)
    while True:
        ids = encode(numbered(text, sentences))
        if len(sentences) <= 1 or len(ids) <= room:
            return ids, sentences
        spans = _merged_pairs([(s.start, s.end) for s in sentences])
        sentences = [Sentence(number, start, end) for number, (start, end) in enumerate(spans, 1)]


def _merged_pairs(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(spans[i][0], spans[min(i + 1, len(spans) - 1)][1]) for i in range(0, len(spans), 2)]
