"""The `inprocess` arm: synthqa's chunks, prompts and schema sent straight to vLLM's AsyncLLM,
in one process with no gRPC and no per-token parsing: the floor for any service overhead.
`inprocess-deltas` is the same floor asking for what synthqa asks for, a delta every
STREAM_INTERVAL_TOKENS tokens, read and joined: what streaming itself costs vLLM's side.

Runs as its own process so the runner can measure its CPU and memory like a server's:
`python -m synthqa_bench.arm_inprocess SPEC_JSON` starts the engine, answers `ready`, then
reads one run (a JSON line with the concurrency) at a time from stdin and answers with its
figures as one JSON line; end of input ends it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from .chunk_plan import ChunkPlan, ChunkRequest, count_pairs, plan_chunks
from .inprocess_worker import ANSWER
from .measure import RunRecorder, for_each_document
from .workload import build_workload


async def run(
    llm: Any, chunk_plan: ChunkPlan, concurrency: int, only: list[str] | None = None,
    deltas: bool = False,
) -> RunRecorder:
    from vllm.inputs import TokensPrompt

    from synthqa.server.engine.types import SamplingRequest
    from synthqa.server.engine.vllm_engine import sampling_params

    # The engine request synthqa makes, the final output only unless `deltas`: the same
    # grammar and sampling.
    params_by_plan: dict[int, Any] = {}

    def params_for(request: ChunkRequest) -> Any:
        key = id(request.plan)
        if key not in params_by_plan:
            params_by_plan[key] = sampling_params(SamplingRequest(
                **request.sampling(), json_schema=request.plan.records.schema), stream=deltas)
        return params_by_plan[key]

    run_id = uuid.uuid4().hex[:8]
    recorder = RunRecorder()

    async def run_chunk(request: ChunkRequest) -> None:
        started = time.monotonic()
        texts: list[str] = []
        token_count = 0
        prompt = TokensPrompt(prompt_token_ids=request.prompt_ids)
        request_id = f"bench-{run_id}-{request.document_id}-{request.chunk_index}"
        # Final only: one output, the whole completion; deltas: each holds what is new.
        async for output in llm.generate(prompt, params_for(request), request_id):
            texts.append(output.outputs[0].text)
            token_count += len(output.outputs[0].token_ids)
        assert texts
        pairs = count_pairs("".join(texts))
        recorder.pair(request.document_id, pairs or 0)
        recorder.chunk_done(time.monotonic() - started, token_count, pairs == request.num_pairs)

    async def run_document(document_id: str) -> None:
        recorder.sent(document_id)
        await asyncio.gather(*(run_chunk(r) for r in chunk_plan.requests[document_id]))
        recorder.documents_completed += 1

    document_ids = only or list(chunk_plan.requests)
    await for_each_document(document_ids, concurrency, run_document)
    recorder.stop()
    return recorder


async def serve(spec: dict[str, Any]) -> None:
    from synthqa.server import config
    from synthqa.server.engine.vllm_engine import create_async_llm, prepare_engine_args

    engine_args, _ = config.parse(["--model", spec["model"], *spec["engine_args"]])
    llm = create_async_llm(prepare_engine_args(engine_args))
    workload = build_workload(spec["workload"], spec["options"])
    chunk_plan = plan_chunks(workload, llm.get_tokenizer(), llm.model_config.max_model_len)
    # Compiles the schema's grammar and warms the engine, as the servers' own warm-ups do.
    await run(llm, chunk_plan, concurrency=1, only=chunk_plan.warm_up_documents())
    print(ANSWER + "ready", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            asked = json.loads(line)
            recorder = await run(llm, chunk_plan, asked["concurrency"],
                                 deltas=asked.get("deltas", False))
            print(ANSWER + json.dumps(recorder.figures()), flush=True)
    finally:
        llm.shutdown()


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
