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
    # Per document, options that replace some of `options` (the straggle workload's mix).
    document_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_for(self, document_id: str) -> dict[str, Any]:
        return {**self.options, **self.document_options.get(document_id, {})}

    def option_groups(self) -> list[tuple[dict[str, Any], list[BenchDocument]]]:
        """The documents by their options, each group in workload order; groups in order of
        their first document."""
        groups: dict[str, tuple[dict[str, Any], list[BenchDocument]]] = {}
        for document in self.documents:
            options = self.options_for(document.document_id)
            key = repr(sorted(options.items()))
            groups.setdefault(key, (options, []))[1].append(document)
        return list(groups.values())

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "documents": len(self.documents),
            "characters": sum(len(d.text) for d in self.documents),
            "options": self.options,
            "option_mix": [{"options": {k: v for k, v in options.items()
                                        if v != self.options.get(k)},
                            "documents": len(documents)}
                           for options, documents in self.option_groups()]
            if self.document_options else [],
        }


# Pair counts with a generation budget to match: a mixed workload takes them in turn.
ONE_PAIR = {"num_pairs": 1, "max_generation_tokens": 64}
TWO_PAIRS = {"num_pairs": 2, "max_generation_tokens": 192}
SIXTEEN_PAIRS = {"num_pairs": 16, "max_generation_tokens": 1024}
MIXED_PROFILES: tuple[dict[str, Any], ...] = (ONE_PAIR, TWO_PAIRS, SIXTEEN_PAIRS)
# Mostly short answers and now and then a long one: a fixed batch that holds one long answer
# waits for it with most of its slots done.
STRAGGLE_TURNS = (ONE_PAIR, ONE_PAIR, TWO_PAIRS, ONE_PAIR, ONE_PAIR, SIXTEEN_PAIRS)


@dataclass(frozen=True)
class WorkloadShape:
    short_documents: int
    long_documents: int
    # About one chunk of max_chunk_tokens, and ten or more.
    short_chars: int = 400
    long_chars: int = 10_000
    # Any length between the two, not one or the other.
    mixed_lengths: bool = False
    # Per document, in turn: options that replace the defaults'.
    profiles: tuple[dict[str, Any], ...] = ()


SHAPES = {
    # Two options, so every arm shows it takes options per document.
    "smoke": WorkloadShape(short_documents=2, long_documents=0, profiles=({}, ONE_PAIR)),
    # Mixed lengths and pair counts: fixed batches wait for their slowest chunk.
    "straggle": WorkloadShape(short_documents=40, long_documents=8, long_chars=4_000,
                              mixed_lengths=True, profiles=STRAGGLE_TURNS),
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


def build_workload(name: str, option_overrides: dict[str, Any] | None = None,
                   sample_seed: int = 20261123) -> Workload:
    # The overrides are a dict, not keyword arguments: an option named `seed` must never
    # reach the sampling seed (it once did, and the inprocess arm, which rebuilds the workload
    # from its options, measured other documents than the other arms).
    shape = SHAPES[name]
    rng = random.Random(sample_seed)
    pool = sentences(CORPUS.read_text(encoding="utf-8"))
    kinds = ["long"] * shape.long_documents + ["short"] * shape.short_documents
    rng.shuffle(kinds)  # long documents spread through the stream, the same way every time
    documents = []
    document_options = {}
    for index, kind in enumerate(kinds):
        size = shape.long_chars if kind == "long" else shape.short_chars
        if shape.mixed_lengths:
            size = rng.randint(shape.short_chars, shape.long_chars)
        document = BenchDocument(f"{kind}-{index:03d}", sample_document(rng, pool, size))
        documents.append(document)
        if shape.profiles:
            document_options[document.document_id] = dict(
                shape.profiles[index % len(shape.profiles)])
    return Workload(name, tuple(documents), {**DEFAULT_OPTIONS, **(option_overrides or {})},
                    document_options)
