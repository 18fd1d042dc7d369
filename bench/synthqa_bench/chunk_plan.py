"""The engine requests synthqa would make for a workload, built with synthqa's own chunker,
prompt template and schema: what the arms without a synthqa server send."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from synthqa.contract.options import GenerationOptions
from synthqa.server.pipeline.planner import GenerationPlan, Planner
from synthqa.server.text.chunker import chunk_document, tokenize_document
from synthqa.server.text.prompts import PromptBuilder

from .workload import Workload


@dataclass(frozen=True)
class ChunkRequest:
    document_id: str
    chunk_index: int
    prompt_ids: list[int]
    # The document's options made into a plan: its schema and sampling.
    plan: GenerationPlan

    @property
    def num_pairs(self) -> int:
        return self.plan.options.num_pairs

    def sampling(self) -> dict[str, Any]:
        """The sampling fields every arm sends, by their vLLM names."""
        options = self.plan.options
        return {"max_tokens": options.max_generation_tokens, "temperature": options.temperature,
                "top_p": options.top_p, "seed": options.seed}


@dataclass(frozen=True)
class ChunkPlan:
    # Per document, in workload order: its chunks' requests.
    requests: dict[str, list[ChunkRequest]]

    @property
    def chunk_count(self) -> int:
        return sum(len(chunks) for chunks in self.requests.values())

    @property
    def pair_count(self) -> int:
        """Pairs the workload asks for: every chunk's num_pairs."""
        return sum(r.num_pairs for chunks in self.requests.values() for r in chunks)

    def warm_up_documents(self) -> list[str]:
        """A document of each distinct plan: warming them compiles every schema's grammar."""
        seen: dict[int, str] = {}
        for document_id, chunks in self.requests.items():
            if chunks:
                seen.setdefault(id(chunks[0].plan), document_id)
        return list(seen.values())


def plan_chunks(workload: Workload, tokenizer: Any, max_model_len: int) -> ChunkPlan:
    planner = Planner(PromptBuilder(tokenizer), max_model_len)
    plans: dict[str, GenerationPlan] = {}
    requests = {}
    for document in workload.documents:
        options = GenerationOptions(**workload.options_for(document.document_id))
        plan = plans.setdefault(repr(options), planner.plan(options))
        chunks = chunk_document(tokenize_document(tokenizer, document.text),
                                plan.chunk_token_budget, options.chunk_overlap_tokens)
        requests[document.document_id] = [
            ChunkRequest(document.document_id, chunk.index, plan.frame.wrap(chunk.token_ids),
                         plan)
            for chunk in chunks]
    return ChunkPlan(requests)


def count_pairs(output_text: str) -> int | None:
    """Pairs in a finished output, or None if it is not the schema's JSON."""
    try:
        pairs = json.loads(output_text)["pairs"]
    except (ValueError, KeyError, TypeError):
        return None
    return len(pairs) if isinstance(pairs, list) else None
