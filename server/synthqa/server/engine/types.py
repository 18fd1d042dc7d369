"""What the pipeline sees of an engine: plain requests, deltas and errors, no vLLM imports."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter the server was started with; `number` is unique per name."""

    name: str
    number: int
    path: str


@dataclass(frozen=True)
class SamplingRequest:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    json_schema: dict[str, Any]
    adapter: Adapter | None = None


@dataclass(frozen=True)
class EngineDelta:
    """New text and tokens of one request since the previous delta."""

    text: str
    new_token_count: int
    prompt_token_count: int
    finished: bool
    finish_reason: str | None


class EngineError(Exception):
    """The engine could not finish a request."""


class EngineDead(EngineError):
    """The engine is gone; every request in it is lost. A retry may succeed after a restart."""


class EngineRequestFailed(EngineError):
    """The engine failed this one request and goes on serving others."""


@dataclass(frozen=True)
class EngineLayout:
    """How the engine spreads the model over devices."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    device: str = ""
    executor: str = ""


class GenerationEngine(Protocol):
    """The engine as the pipeline uses it."""

    @property
    def model_name(self) -> str: ...

    @property
    def max_model_len(self) -> int: ...

    @property
    def layout(self) -> EngineLayout: ...

    @property
    def tokenizer(self) -> Any:
        """A Hugging Face fast tokenizer: the chunker and the prompt frame use it."""

    @property
    def unfinished_requests(self) -> int: ...

    def generate(
        self, prompt_ids: list[int], request: SamplingRequest, request_id: str,
        trace_headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[EngineDelta, None]:
        """`trace_headers` (W3C trace context) make the engine's own span a child of the
        caller's, when the engine traces."""

    async def abort(self, request_ids: Iterable[str]) -> None: ...
