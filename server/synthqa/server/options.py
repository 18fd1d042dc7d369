"""Generation options: the server's defaults, a client's overrides, and their validation."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from .errors import ViolationCollector

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UNSEEDED = -1


@dataclass(frozen=True)
class GenerationOptions:
    """Options with every field set. The defaults follow the reference data kit, with fewer pairs
    per chunk so that a useful pair still fits the generation budget."""

    num_pairs: int = 5
    max_generation_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    chunk_overlap_tokens: int = 64
    max_chunk_tokens: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class OptionOverrides:
    """What a client set; None means "take the default"."""

    num_pairs: int | None = None
    max_generation_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    chunk_overlap_tokens: int | None = None
    max_chunk_tokens: int | None = None
    seed: int | None = None


def apply_overrides(
    defaults: GenerationOptions,
    overrides: OptionOverrides,
    *,
    max_num_pairs: int,
    field_prefix: str = "options",
) -> GenerationOptions:
    """Merge overrides into defaults, rejecting every out-of-range field at once."""
    chosen = {
        f.name: getattr(overrides, f.name)
        for f in fields(overrides)
        if getattr(overrides, f.name) is not None
    }
    options = replace(defaults, **chosen)
    problems = ViolationCollector()

    def bad(name: str, description: str) -> None:
        problems.add(f"{field_prefix}.{name}", description)

    if not 1 <= options.num_pairs <= max_num_pairs:
        bad("num_pairs", f"must be between 1 and {max_num_pairs}, got {options.num_pairs}")
    if options.max_generation_tokens < 1:
        bad("max_generation_tokens", f"must be positive, got {options.max_generation_tokens}")
    if not (math.isfinite(options.temperature) and 0.0 <= options.temperature <= 2.0):
        bad("temperature", f"must be between 0 and 2, got {options.temperature}")
    if not (math.isfinite(options.top_p) and 0.0 < options.top_p <= 1.0):
        bad("top_p", f"must be greater than 0 and at most 1, got {options.top_p}")
    if options.chunk_overlap_tokens < 0:
        bad("chunk_overlap_tokens", f"must not be negative, got {options.chunk_overlap_tokens}")
    if options.max_chunk_tokens < 0:
        bad("max_chunk_tokens", f"must not be negative (0 = largest that fits), got "
            f"{options.max_chunk_tokens}")
    if options.seed is not None and not INT64_MIN <= options.seed <= INT64_MAX:
        bad("seed", "must fit in a signed 64-bit integer")
    elif options.seed == UNSEEDED:
        # vLLM reads -1 as "no seed": accepting it would break the reproducibility promise.
        bad("seed", "-1 is reserved; leave seed unset for unseeded sampling")
    problems.raise_if_any()
    return options
