"""A call's curation: each checked record is judged and checked for duplicates before it is
sent. Records of one call are reviewed concurrently, so a duplicate is checked twice: before
the judge (a record that repeats a kept one costs no judge request) and again when kept."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from synthqa.contract.dedup import Deduplicator
from synthqa.contract.options import GenerationOptions

from ..text.chunker import Chunk
from ..text.records import Record
from .judge import Judge, Rating


class Drop(enum.Enum):
    JUDGE = "judge"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Verdict:
    drop: Drop | None
    rating: Rating | None = None


class Curator:
    """One per call. `judge` is shared by the server's calls; duplicates are per call."""

    def __init__(self, options: GenerationOptions, judge: Judge | None) -> None:
        self._options = options
        self._judge = judge if options.judge else None
        self._dedup = Deduplicator(options.dedup_threshold) if options.dedup else None

    @staticmethod
    def active(options: GenerationOptions) -> bool:
        return options.judge or options.dedup

    async def review(
        self, chunk: Chunk, record: Record, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> Verdict:
        compared = record.question if record.question is not None else record.json
        if self._dedup is not None and self._dedup.duplicate_of_kept(compared):
            return Verdict(Drop.DUPLICATE)
        rating = None
        if self._judge is not None:
            rating = await self._judge.rate(chunk, record.json,
                                            self._options.judge_instructions, request_id,
                                            trace_headers)
            if rating is None or rating.score < self._options.min_rating:
                return Verdict(Drop.JUDGE, rating)
        if self._dedup is not None and not self._dedup.keep(compared):
            return Verdict(Drop.DUPLICATE, rating)
        return Verdict(None, rating)


