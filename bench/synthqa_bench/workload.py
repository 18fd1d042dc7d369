"""The benchmark's documents and options: the same seed gives the same documents anywhere.

Documents are sentences drawn with a seeded generator from `corpus.txt`: public-domain text
(Lincoln's Gettysburg Address and Second Inaugural, the Preamble and the opening of the
Declaration of Independence, four Shakespeare sonnets, and the first lines of novels by
Dickens, Melville and Austen). Sizes are in characters, not tokens, so the documents do not
depend on the model; how many chunks they make does.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("corpus.txt")


@dataclass(frozen=True)
class BenchDocument:
    document_id: str
    text: str


@dataclass(frozen=True)
class Workload:
    name: str
    documents: tuple[BenchDocument, ...]
    # Generation options, the same in every arm; chunking is fixed by max_chunk_tokens.
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "documents": len(self.documents),
            "characters": sum(len(d.text) for d in self.documents),
            "options": self.options,
        }


@dataclass(frozen=True)
class WorkloadShape:
    short_documents: int
    long_documents: int
    # About one chunk of max_chunk_tokens, and ten or more.
    short_chars: int = 400
    long_chars: int = 10_000


SHAPES = {
    "smoke": WorkloadShape(short_documents=1, long_documents=0),
    # Enough work that a run at saturation lasts seconds, not a fraction of one.
    "quick": WorkloadShape(short_documents=48, long_documents=8),
    "full": WorkloadShape(short_documents=96, long_documents=16),
}

DEFAULT_OPTIONS: dict[str, Any] = {
    "num_pairs": 2,
    "max_generation_tokens": 256,
    "max_chunk_tokens": 256,
    "chunk_overlap_tokens": 0,
    "temperature": 0.7,
    "top_p": 0.95,
    "seed": 7,
}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?;])\s+", text.replace("\n", " ")) if s.strip()]


def sample_document(rng: random.Random, pool: list[str], chars: int) -> str:
    """Sentences drawn with replacement until the text reaches `chars` characters."""
    parts: list[str] = []
    length = 0
    while length < chars:
        sentence = rng.choice(pool)
        parts.append(sentence)
        length += len(sentence) + 1
    return " ".join(parts)


def build_workload(name: str, seed: int = 20261123, **option_overrides: Any) -> Workload:
    shape = SHAPES[name]
    rng = random.Random(seed)
    pool = sentences(CORPUS.read_text(encoding="utf-8"))
    kinds = ["long"] * shape.long_documents + ["short"] * shape.short_documents
    rng.shuffle(kinds)  # long documents spread through the stream, the same way every time
    documents = []
    for index, kind in enumerate(kinds):
        size = shape.long_chars if kind == "long" else shape.short_chars
        documents.append(BenchDocument(f"{kind}-{index:03d}", sample_document(rng, pool, size)))
    return Workload(name, tuple(documents), {**DEFAULT_OPTIONS, **option_overrides})
