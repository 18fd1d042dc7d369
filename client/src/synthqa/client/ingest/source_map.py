"""Extracted text and where each part of it came from: a page of a PDF, a slide of a deck, a
heading path of a web page, Word file or Markdown file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Between blocks of extracted text: a paragraph break, which the chunker's sentence and
# window logic treats as the boundary it is.
BLOCK_SEPARATOR = "\n\n"


@dataclass(frozen=True, kw_only=True)
class Region:
    """Characters [start, end) of the extracted text (code points, as the server counts) and
    their place in the file: 1-based page or slide, and the headings above them."""

    start: int
    end: int
    page: int | None = None
    slide: int | None = None
    heading: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, place: dict[str, Any]) -> Region:
        """The region `as_json` gave."""
        return cls(start=place["start"], end=place["end"], page=place.get("page"),
                   slide=place.get("slide"), heading=tuple(place.get("heading", ())))

    def as_json(self) -> dict[str, Any]:
        place: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.page is not None:
            place["page"] = self.page
        if self.slide is not None:
            place["slide"] = self.slide
        if self.heading:
            place["heading"] = list(self.heading)
        return place


@dataclass(frozen=True)
class Extracted:
    """A file's text as it will be sent, with its source map."""

    text: str
    kind: str  # pdf, html, docx, pptx, markdown, text
    regions: tuple[Region, ...] = ()
    # The file's pages (PDF) or slides (deck), those without text included, so that a report
    # can name the ones that gave nothing; None for files without pages or slides.
    page_count: int | None = None
    slide_count: int | None = None

    def pages(self, start: int, end: int) -> list[int]:
        """The pages the characters [start, end) come from, in order."""
        return sorted({r.page for r in self._overlapping(start, end) if r.page is not None})

    def slides(self, start: int, end: int) -> list[int]:
        return sorted({r.slide for r in self._overlapping(start, end) if r.slide is not None})

    def _overlapping(self, start: int, end: int) -> list[Region]:
        return [r for r in self.regions if r.start < end and start < r.end]

    def source_map(self) -> list[dict[str, Any]]:
        return [region.as_json() for region in self.regions]


@dataclass
class TextBuilder:
    """Joins blocks of text with paragraph breaks, recording each block's region."""

    kind: str
    page_count: int | None = None
    slide_count: int | None = None
    _parts: list[str] = field(default_factory=list)
    _regions: list[Region] = field(default_factory=list)
    _length: int = 0

    def add(self, text: str, *, page: int | None = None, slide: int | None = None,
            heading: tuple[str, ...] = ()) -> None:
        text = text.strip()
        if not text:
            return
        if self._parts:
            self._parts.append(BLOCK_SEPARATOR)
            self._length += len(BLOCK_SEPARATOR)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        self._regions.append(Region(start=start, end=self._length, page=page, slide=slide,
                                    heading=heading))

    def build(self) -> Extracted:
        return Extracted("".join(self._parts), self.kind, tuple(self._regions),
                         page_count=self.page_count, slide_count=self.slide_count)
