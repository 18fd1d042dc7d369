"""What a generation call reports, as plain data. The servicer turns these into protobuf.
Every field is passed by name: several events carry many counts of one type, and a swap by
position would pass both mypy and any test that does not check that field."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureCode(enum.IntEnum):
    """The google.rpc.Code values a failed chunk can carry."""

    RESOURCE_EXHAUSTED = 8
    ABORTED = 10
    INTERNAL = 13
    UNAVAILABLE = 14


class FinishReason(enum.Enum):
    UNSPECIFIED = "unspecified"
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    ERROR = "error"

    @classmethod
    def from_engine(cls, reason: str | None) -> FinishReason:
        return {"stop": cls.STOP, "length": cls.LENGTH, "abort": cls.ABORT, "error": cls.ERROR}.get(
            reason or "", cls.UNSPECIFIED
        )


class StopReason(enum.Enum):
    """Why generation for a document ended."""

    COMPLETE = "complete"
    TARGET_MET = "target_met"
    PATIENCE = "patience"
    INVALID_FRACTION = "invalid_fraction"
    MAX_PASSES = "max_passes"


@dataclass(frozen=True, kw_only=True)
class RecordCounts:
    """What became of the records the model wrote: sent = generated - invalid - dropped."""

    generated: int = 0
    invalid: int = 0
    dropped_by_judge: int = 0
    duplicates: int = 0

    def __add__(self, other: RecordCounts) -> RecordCounts:
        return RecordCounts(generated=self.generated + other.generated,
                            invalid=self.invalid + other.invalid,
                            dropped_by_judge=self.dropped_by_judge + other.dropped_by_judge,
                            duplicates=self.duplicates + other.duplicates)


@dataclass(frozen=True, kw_only=True)
class ChunkStarted:
    document_id: str
    chunk_index: int
    chunk_count: int
    token_count: int
    char_start: int
    char_end: int
    pass_index: int = 0


@dataclass(frozen=True, kw_only=True)
class EvidenceSpan:
    """A sentence a record cites: its number in the chunk, its span in the document."""

    sentence: int
    char_start: int
    char_end: int


@dataclass(frozen=True, kw_only=True)
class RecordGenerated:
    """One record. `as_pair`: sent as a QaPair event (qa records for a client that asked for
    no record option), else as a Record event carrying `json`, and the pair where it is qa."""

    document_id: str
    chunk_index: int
    record_index: int
    json: str
    question: str | None = None
    answer: str | None = None
    as_pair: bool = False
    evidence: tuple[EvidenceSpan, ...] = ()
    # The judge's rating (1 to 10) and reason; 0 without the judge.
    rating: int = 0
    rating_reason: str = ""
    pass_index: int = 0
    cached: bool = False


@dataclass(frozen=True, kw_only=True)
class ChunkCompleted:
    document_id: str
    chunk_index: int
    prompt_token_count: int
    generated_token_count: int
    finish_reason: FinishReason
    pair_count: int
    counts: RecordCounts = RecordCounts()
    pass_index: int = 0
    cached: bool = False


@dataclass(frozen=True, kw_only=True)
class ChunkFailed:
    document_id: str
    chunk_index: int
    code: FailureCode
    message: str
    pair_count: int
    generated_token_count: int
    finish_reason: FinishReason
    counts: RecordCounts = RecordCounts()
    pass_index: int = 0


@dataclass(frozen=True, kw_only=True)
class DocumentCompleted:
    document_id: str
    chunk_count: int
    completed_chunk_count: int
    failed_chunk_count: int
    pair_count: int
    token_count: int
    counts: RecordCounts = RecordCounts()
    stop_reason: StopReason = StopReason.COMPLETE
    pass_count: int = 1
    cached_chunk_count: int = 0


GenerationEvent = ChunkStarted | RecordGenerated | ChunkCompleted | ChunkFailed | DocumentCompleted
