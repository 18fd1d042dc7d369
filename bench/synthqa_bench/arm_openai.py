"""The `vllm-openai` and `batch-wait` arms: vLLM's OpenAI-compatible server, sent the chunk
prompts synthqa would make (as token ids, so the prompts are identical) with its JSON schema
as `response_format`, through the `openai` async client. `vllm-openai` sends every chunk of
the documents in flight at once; `batch-wait` sends fixed batches of chunks and waits for
each batch to finish before sending the next, as batch data pipelines do."""

from __future__ import annotations

import asyncio
import time

import openai

from .chunk_plan import ChunkPlan, ChunkRequest, count_pairs
from .measure import RunRecorder, for_each_document


class OpenAIArms:
    def __init__(self, base_url: str, model: str, chunk_plan: ChunkPlan) -> None:
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0,
                                          timeout=3600)
        self._model = model
        self._plan = chunk_plan

    async def close(self) -> None:
        await self._client.close()

    async def warm_up(self) -> None:
        """A document of each schema, unmeasured: compiles their grammars."""
        for document_id in self._plan.warm_up_documents():
            await asyncio.gather(*(self._complete(r, RunRecorder())
                                   for r in self._plan.requests[document_id]))

    async def _complete(self, request: ChunkRequest, recorder: RunRecorder) -> None:
        started = time.monotonic()
        tokens = 0
        pairs = None
        try:
            response_format = {"type": "json_schema", "json_schema": {
                "name": "qa_pairs", "schema": request.plan.records.schema}}
            response = await self._client.completions.create(
                model=self._model, prompt=request.prompt_ids,
                extra_body={"response_format": response_format}, **request.sampling())
            pairs = count_pairs(response.choices[0].text)
            tokens = response.usage.completion_tokens if response.usage else 0
        except openai.APIError:
            pass  # counted as a failed chunk
        recorder.pair(request.document_id, pairs or 0)
        recorder.chunk_done(time.monotonic() - started, tokens,
                            pairs == request.num_pairs)

    async def all_at_once(self, concurrency: int) -> RunRecorder:
        recorder = RunRecorder()

        async def run_document(document_id: str) -> None:
            recorder.sent(document_id)
            await asyncio.gather(*(self._complete(r, recorder)
                                   for r in self._plan.requests[document_id]))
            recorder.documents_completed += 1

        await for_each_document(list(self._plan.requests), concurrency, run_document)
        recorder.stop()
        return recorder

    async def batch_and_wait(self, batch_size: int) -> RunRecorder:
        recorder = RunRecorder()
        requests = [r for chunks in self._plan.requests.values() for r in chunks]
        left = {d: len(chunks) for d, chunks in self._plan.requests.items()}

        async def run_chunk(request: ChunkRequest) -> None:
            await self._complete(request, recorder)
            left[request.document_id] -= 1
            if left[request.document_id] == 0:
                recorder.documents_completed += 1

        for start in range(0, len(requests), batch_size):
            batch = requests[start:start + batch_size]
            for request in batch:
                recorder.sent(request.document_id)
            await asyncio.gather(*(run_chunk(r) for r in batch))
        recorder.stop()
        return recorder

