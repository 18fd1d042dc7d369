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


@dataclass(frozen=True)
class ChunkPlan:
    plan: GenerationPlan
    # Per document, in workload order: its chunks' requests.
    requests: dict[str, list[ChunkRequest]]

    @property
    def schema(self) -> dict[str, Any]:
        return self.plan.schema

    @property
    def chunk_count(self) -> int:
        return sum(len(chunks) for chunks in self.requests.values())

    def sampling(self) -> dict[str, Any]:
        """The sampling fields every arm sends, by their vLLM names."""
        options = self.plan.options
        return {"max_tokens": options.max_generation_tokens, "temperature": options.temperature,
                "top_p": options.top_p, "seed": options.seed}


def plan_chunks(workload: Workload, tokenizer: Any, max_model_len: int) -> ChunkPlan:
    options = GenerationOptions(**workload.options)
    plan = Planner(PromptBuilder(tokenizer), max_model_len).plan(options)
    requests = {}
    for document in workload.documents:
        chunks = chunk_document(tokenize_document(tokenizer, document.text),
                                plan.chunk_token_budget, options.chunk_overlap_tokens)
        requests[document.document_id] = [
            ChunkRequest(document.document_id, chunk.index, plan.frame.wrap(chunk.token_ids))
            for chunk in chunks]
    return ChunkPlan(plan, requests)


def count_pairs(output_text: str) -> int | None:
    """Pairs in a finished output, or None if it is not the schema's JSON."""
    try:
        pairs = json.loads(output_text)["pairs"]
    except (ValueError, KeyError, TypeError):
        return None
    return len(pairs) if isinstance(pairs, list) else None
