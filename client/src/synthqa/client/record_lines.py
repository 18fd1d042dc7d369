"""The one shape of the CLI's output lines, whatever the options: every key on every line, null
where the run has nothing for it, so a converter or a dataset loader sees one schema.
Documented, with an example line per shape, in docs/clients.md ("Output lines")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from synthqa.v1 import synthqa_pb2 as pb

# Bumped when a key changes meaning or goes away (adding one is not a change).
LINE_SCHEMA_VERSION = 1
# The built-in shapes' fields, lifted from the record to the line.
TYPED_FIELDS = ("question", "reasoning", "answer", "summary")
BUILT_IN_SHAPES = ("qa", "cot", "summary")
_CUSTOM_OPTIONS = ("record_schema", "record_regex", "record_choices")


@dataclass(frozen=True)
class Source:
    """Where a document came from: its path relative to the inputs' common folder (never the
    absolute path), and the sha256 of the file's bytes."""

    path: str
    sha256: str

    def as_json(self, place: Place | None = None) -> dict[str, Any]:
        pages, slides = place.spans() if place is not None else (None, None)
        return {"path": self.path, "sha256": self.sha256, "pages": pages, "slides": slides}


class Locator(Protocol):
    """A source map (ingest.Extracted): the pages and slides a range of the text came from."""

    def pages(self, start: int, end: int) -> list[int]: ...

    def slides(self, start: int, end: int) -> list[int]: ...


@dataclass(frozen=True)
class Place:
    """A range of a document's text and its source map, when the file had pages or slides."""

    locator: Locator | None
    start: int
    end: int

    def spans(self) -> tuple[list[int] | None, list[int] | None]:
        """The pages and slides of the range; None where the file has none."""
        if self.locator is None:
            return None, None
        pages = self.locator.pages(self.start, self.end)
        slides = self.locator.slides(self.start, self.end)
        return pages or None, slides or None


@dataclass(frozen=True)
class RunShape:
    """What the run's records are, from the options the server will use."""

    shape: str
    judged: bool


def run_shape(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> RunShape:
    """The record shape and whether the judge rates: the caller's options over the server's
    defaults; a custom option without a shape means custom."""
    given = {name: value for name, value in options.items() if value is not None}
    if "record_shape" in given:
        shape = str(given["record_shape"])
    elif any(name in given for name in _CUSTOM_OPTIONS):
        shape = "custom"
    else:
        shape = str(defaults.get("record_shape") or "qa")
    judged = bool(given.get("judge", defaults.get("judge", False)))
    return RunShape(shape, judged)


def pair_line(pair: pb.QaPair, source: Source, chunk: Place | None = None) -> dict[str, Any]:
    """A qa_pair event's line: a qa record without judge, evidence or cache. `chunk`: the
    chunk's range of the text, for the pages or slides it spans."""
    record = {"question": pair.question, "answer": pair.answer}
    return _line(pair.document_id, source.as_json(chunk), pair.chunk_index, 0,
                 pair.pair_index, "qa", record, rating=None, rating_reason=None,
                 evidence=None, cached=False)


def record_line(record: pb.Record, source: Source, run: RunShape, text: str | None,
                chunk: Place | None = None) -> dict[str, Any]:
    """A record event's line. `text`: the document's text, for the cited sentences';
    `chunk`: the chunk's range, for the pages or slides it and each cited sentence span."""
    judged = run.judged and record.rating > 0  # a judged record is rated 1 to 10
    evidence = None
    if record.evidence:
        locator = chunk.locator if chunk is not None else None
        evidence = [_cited(span, text, locator) for span in record.evidence]
    return _line(record.document_id, source.as_json(chunk), record.chunk_index,
                 record.pass_index, record.record_index, run.shape, json.loads(record.json),
                 rating=record.rating if judged else None,
                 rating_reason=record.rating_reason if judged else None,
                 evidence=evidence, cached=record.cached)


def _cited(span: pb.EvidenceSpan, text: str | None, locator: Locator | None) -> dict[str, Any]:
    page, slide = Place(locator, span.char_start, span.char_end).spans()
    return {"sentence": span.sentence,
            "text": text[span.char_start:span.char_end] if text is not None else None,
            "char_start": span.char_start, "char_end": span.char_end,
            "page": page[0] if page else None, "slide": slide[0] if slide else None}


def _line(document_id: str, source: dict[str, Any], chunk_index: int, pass_index: int,
          record_index: int, shape: str, record: Any, *, rating: int | None,
          rating_reason: str | None, evidence: list[dict[str, Any]] | None,
          cached: bool) -> dict[str, Any]:
    typed = isinstance(record, dict) and shape in BUILT_IN_SHAPES
    line: dict[str, Any] = {
        "schema_version": LINE_SCHEMA_VERSION,
        "document_id": document_id,
        "source": source,
        "chunk_index": chunk_index,
        "pass_index": pass_index,
        "record_index": record_index,
        "shape": shape,
    }
    for name in TYPED_FIELDS:
        line[name] = record.get(name) if typed else None
    line.update(record=record, rating=rating, rating_reason=rating_reason, evidence=evidence,
                cached=cached)
    return line
