"""The engine adapter over vLLM: AsyncLLM's creation, generation, abort, health and shutdown,
with vLLM's errors turned into the plain ones of `engine.types`. Besides it, only the entry
point imports vLLM (config.py for the engine's flags, lifecycle.py to start it):
tests/unit/test_layers.py checks that."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from typing import Any

import psutil
from vllm import SamplingParams
from vllm import envs as vllm_envs
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.inputs import TokensPrompt
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from .grammar import built_here, json_schema_grammar
from .process_group import mark_server_process
from .process_tree import descendants, ipc_names, remove_ipc, terminate
from .types import EngineDead, EngineDelta, EngineLayout, EngineRequestFailed, SamplingRequest

log = logging.getLogger(__name__)

# A random or weak model may emit JSON whitespace forever; xgrammar ignores the per-request
# flag, so whitespace is turned off for the whole engine.
STRUCTURED_OUTPUTS_CONFIG = {"backend": "xgrammar", "disable_any_whitespace": True}


class VllmEngine:
    """AsyncLLM in this process, as a `GenerationEngine`."""

    def __init__(
        self, llm: AsyncLLM, model_name: str, processes: list[psutil.Process] | None = None,
        ipc: set[str] | None = None,
    ) -> None:
        self._llm = llm
        self.model_name = model_name
        # The engine core and its workers, recorded at start: a worker whose core was killed
        # is no longer anyone's descendant, and must still be stopped.
        self.processes = processes or []
        # The engine's shared-memory queues and semaphores: a killed process leaves them.
        self._ipc = ipc or set()
        self.max_model_len: int = llm.model_config.max_model_len
        parallel = llm.vllm_config.parallel_config
        executor = parallel.distributed_executor_backend
        self.layout = EngineLayout(
            tensor_parallel_size=parallel.tensor_parallel_size,
            pipeline_parallel_size=parallel.pipeline_parallel_size,
            data_parallel_size=parallel.data_parallel_size,
            device=str(llm.vllm_config.device_config.device_type),
            executor=executor if isinstance(executor, str) else getattr(executor, "__name__", ""))
        self.tokenizer = llm.get_tokenizer()

    @classmethod
    def start(cls, engine_args: AsyncEngineArgs) -> VllmEngine:
        """Blocks while the engine loads (seconds to minutes): call it off the event loop.
        `engine_args` is left as it was, so it can start the next engine too."""
        _skip_rechecking_own_grammars()
        engine_args = prepare_engine_args(engine_args)
        mark_server_process()
        before = {process.pid for process in descendants(os.getpid())}
        ipc_before = ipc_names()
        # With tracing on, vLLM tries to install a tracer provider of its own; synthqa's is
        # already in place and takes the engine's spans, which is what OpenTelemetry warns of.
        with _quieter(("opentelemetry.trace",)):
            llm = create_async_llm(engine_args)
        # vLLM looks its settings up in the environment at every use, one a request an engine
        # step in its statistics alone; its engine processes cache them once started, and so
        # does this one (nothing here sets vLLM's variables later; a restart sets the same).
        vllm_envs.enable_envs_cache()
        processes = [p for p in descendants(os.getpid()) if p.pid not in before]
        ipc = ipc_names() - ipc_before
        name = engine_args.served_model_name or engine_args.model
        if isinstance(name, list):
            name = name[0]
        return cls(llm, str(name), processes, ipc)

    async def generate(
        self, prompt_ids: list[int], request: SamplingRequest, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[EngineDelta, None]:
        params = sampling_params(request, stream=True)
        prompt = TokensPrompt(prompt_token_ids=prompt_ids)
        lora = None
        if request.adapter is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest(request.adapter.name, request.adapter.number,
                               request.adapter.path)
        outputs = self._llm.generate(prompt, params, request_id, lora_request=lora,
                                     trace_headers=trace_headers)
        try:
            # Closing vLLM's stream early is what aborts the request in the engine.
            async with contextlib.aclosing(outputs):
                async for output in outputs:
                    completion = output.outputs[0]
                    yield EngineDelta(
                        text=completion.text,
                        new_token_count=len(completion.token_ids),
                        prompt_token_count=len(output.prompt_token_ids or prompt_ids),
                        finished=output.finished,
                        finish_reason=completion.finish_reason,
                    )
        except EngineDeadError as error:
            raise EngineDead("the engine core stopped") from error
        except EngineGenerateError as error:
            raise EngineRequestFailed(str(error)) from error

    async def abort(self, request_ids: Iterable[str]) -> None:
        ids = list(request_ids)
        if ids:
            with contextlib.suppress(EngineDeadError):  # a dead engine runs nothing to abort
                await self._llm.abort(ids)

    @property
    def unfinished_requests(self) -> int:
        return int(self._llm.get_num_unfinished_requests())

    async def check_health(self) -> None:
        """Raises EngineDead if the engine core is gone (vLLM's own health check)."""
        try:
            await self._llm.check_health()
        except EngineDeadError as error:
            raise EngineDead("the engine core stopped") from error

    async def shutdown(self) -> None:
        """Stop the engine's processes at once. The server drains its calls first, so nothing
        in the engine is worth waiting for, and vLLM's graceful teardown costs several seconds
        of interpreter shutdown per process on a small CPU machine."""
        # Stop reading outputs first: a reader that sees the kill logs it as an engine error.
        handler = self._llm.output_handler
        if handler is not None and not handler.done():
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
        await asyncio.to_thread(self._kill)

    def _kill(self) -> None:
        # vLLM warns when it kills instead of waiting; here that is the plan, not a problem.
        with _quieter(_VLLM_KILL_LOGGERS):
            self._llm.shutdown(timeout=0)
        # A worker orphaned by a killed engine core is not in vLLM's process tree.
        terminate(self.processes, timeout=0)
        remove_ipc(self._ipc)


# A streaming request's output reaches the server every this many tokens (and at its first
# and last): a pair is seen at most this many tokens late, and the per-token work of building,
# queueing and parsing outputs is cut by as much. vLLM's --stream-interval can raise it.
STREAM_INTERVAL_TOKENS = 8


def sampling_params(request: SamplingRequest, *, stream: bool) -> SamplingParams:
    """The engine request for `request`: deltas every STREAM_INTERVAL_TOKENS tokens when
    streaming, else the final output only."""
    return SamplingParams(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        structured_outputs=StructuredOutputsParams(grammar=json_schema_grammar(request.json_schema)),
        output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
        stream_interval=STREAM_INTERVAL_TOKENS if stream else None,
    )


_VLLM_KILL_LOGGERS = ("vllm.v1.utils", "vllm.utils.system_utils")


def _skip_rechecking_own_grammars() -> None:
    """vLLM parses every request's grammar again to validate it (`Grammar.from_ebnf`, 0.195
    ms of the API thread per request for the pair grammar here). A grammar synthqa made from
    a schema with xgrammar needs no such check; any other still gets vLLM's."""
    from vllm.v1.structured_output import backend_xgrammar

    validate = getattr(backend_xgrammar, "validate_xgrammar_grammar", None)
    if validate is None or getattr(validate, "skips_synthqa_grammars", False):
        return  # another vLLM layout, or done already

    def validate_unless_ours(params: SamplingParams) -> None:
        request = params.structured_outputs
        if request is not None and built_here(request.grammar) and not (
                request.json or request.regex or request.choice or request.structural_tag):
            return
        validate(params)

    validate_unless_ours.skips_synthqa_grammars = True  # type: ignore[attr-defined]
    backend_xgrammar.validate_xgrammar_grammar = validate_unless_ours


@contextlib.contextmanager
def _quieter(names: Iterable[str]) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def create_async_llm(prepared_args: AsyncEngineArgs) -> AsyncLLM:
    """The engine for args from `prepare_engine_args`. Sized as vLLM sizes its own API server
    (batch sizes default by usage context), so both serve the same number of sequences."""
    return AsyncLLM.from_engine_args(prepared_args, usage_context=UsageContext.OPENAI_API_SERVER)


def prepare_engine_args(engine_args: AsyncEngineArgs) -> AsyncEngineArgs:
    """A copy of `engine_args` with what synthqa needs of the engine forced on."""
    # vLLM fills in engine args as it builds its config; a restart needs them pristine.
    engine_args = copy.deepcopy(engine_args)
    engine_args.structured_outputs_config = _merge_structured_outputs(
        engine_args.structured_outputs_config
    )
    _keep_prompts_whole_on_cpu(engine_args)
    if engine_args.otlp_traces_endpoint and engine_args.disable_log_stats:
        # vLLM builds its request span from the per-request stats; without them it fails.
        log.warning("--disable-log-stats is ignored: tracing needs the engine's request stats")
        engine_args.disable_log_stats = False
    return engine_args


def forced_engine_flags() -> list[str]:
    """What `prepare_engine_args` changes, as vLLM command-line flags: another vLLM
    server given these runs the same engine (the benchmark compares against one)."""
    flags = ["--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS_CONFIG)]
    if current_platform.is_cpu():
        flags += ["--no-enable-chunked-prefill", "--long-prefill-token-threshold", "0"]
    return flags


def _keep_prompts_whole_on_cpu(engine_args: AsyncEngineArgs) -> None:
    """On the CPU build, a seeded request whose prompt is prefilled over several engine steps
    kills the engine: vLLM rewinds the request's random generator after a partial prefill with
    `Generator.set_offset`, which CPU generators lack. Without chunked prefill a prompt is
    always prefilled in one step (vLLM raises max_num_batched_tokens to max_model_len), so no
    rewind happens. The cost: a long prefill holds up the decode steps of other requests, and
    vLLM warns that disabling chunked prefill is not officially supported for the model."""
    if not current_platform.is_cpu():
        return
    if engine_args.enable_chunked_prefill:
        log.warning("--enable-chunked-prefill is turned off on CPU: with it, a seeded request "
                    "can crash the engine (CPU generators have no offset to rewind)")
    engine_args.enable_chunked_prefill = False
    # A long-prefill threshold cuts a prompt before that check, so it must stay off too.
    engine_args.long_prefill_token_threshold = 0


def _merge_structured_outputs(config: Any) -> Any:
    """Keep what the operator set, but force xgrammar without free whitespace."""
    if config is None:
        return dict(STRUCTURED_OUTPUTS_CONFIG)
    if isinstance(config, dict):
        return {**config, **STRUCTURED_OUTPUTS_CONFIG}
    for key, value in STRUCTURED_OUTPUTS_CONFIG.items():
        setattr(config, key, value)
    return config
