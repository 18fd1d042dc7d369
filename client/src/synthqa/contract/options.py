"""The generation options, each declared once.

A field of `GenerationOptions` is an option: its name is the proto field's name, its annotation
the type, its default the server's default, and its metadata the bounds and help text. Server
flags, validation with field details, proto conversion, client keyword arguments and CLI flags
are all derived from these declarations: adding an option is the proto field plus one line here.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

OptionValue = int | float


@dataclass(frozen=True)
class Bounds:
    """What makes a value valid. `maximum_limit` names a server limit that caps the value."""

    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    maximum_limit: str | None = None
    # Values the type admits but the option refuses, with the reason.
    reserved: Mapping[int, str] = dataclasses.field(default_factory=dict)


def option(default: OptionValue | None, help: str, **bounds: Any) -> Any:
    """Declares one option (used as a dataclass field default)."""
    return dataclasses.field(default=default, metadata={"help": help, "bounds": Bounds(**bounds)})


@dataclass(frozen=True)
class GenerationOptions:
    """Every option with a value. Defaults keep a useful pair inside the generation budget."""

    num_pairs: int = option(5, "question-answer pairs per chunk", minimum=1,
                            maximum_limit="max_num_pairs")
    max_generation_tokens: int = option(512, "generated tokens per chunk (bounds pair length)",
                                        minimum=1, maximum=INT32_MAX)
    temperature: float = option(0.7, "sampling temperature, 0 (greedy) to 2",
                                minimum=0.0, maximum=2.0)
    top_p: float = option(0.95, "nucleus sampling mass, above 0 and at most 1",
                          minimum=0.0, exclusive_minimum=True, maximum=1.0)
    chunk_overlap_tokens: int = option(64, "tokens shared by consecutive chunks",
                                       minimum=0, maximum=INT32_MAX)
    max_chunk_tokens: int = option(0, "largest chunk in tokens (0 = the largest that fits)",
                                   minimum=0, maximum=INT32_MAX)
    # vLLM reads -1 as "no seed": accepting it would break the reproducibility promise.
    seed: int | None = option(None, "sampling seed for reproducible pairs",
                              minimum=INT64_MIN, maximum=INT64_MAX,
                              reserved={-1: "-1 is reserved; leave seed unset for unseeded "
                                            "sampling"})


@dataclass(frozen=True)
class OptionSpec:
    """One option as the derived layers see it."""

    name: str
    kind: type[int] | type[float]
    default: OptionValue | None
    help: str
    bounds: Bounds

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def problem(self, value: OptionValue, limits: Mapping[str, int]) -> str | None:
        """Why `value` is not valid for this option, or None."""
        bounds = self.bounds
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if isinstance(value, int) and value in bounds.reserved:
            return bounds.reserved[value]
        maximum = bounds.maximum
        if bounds.maximum_limit is not None:
            maximum = limits[bounds.maximum_limit]
        low_ok = bounds.minimum is None or (
            value > bounds.minimum if bounds.exclusive_minimum else value >= bounds.minimum)
        high_ok = maximum is None or value <= maximum
        if low_ok and high_ok:
            return None
        return f"must be {_describe_range(bounds, maximum, self.kind)}, got {value}"


def _describe_range(bounds: Bounds, maximum: float | None, kind: type) -> str:
    def show(number: float) -> str:
        return str(kind(number))

    low = bounds.minimum
    if low is not None and maximum is not None and not bounds.exclusive_minimum:
        return f"between {show(low)} and {show(maximum)}"
    parts = []
    if low is not None:
        parts.append(f"{'greater than' if bounds.exclusive_minimum else 'at least'} {show(low)}")
    if maximum is not None:
        parts.append(f"at most {show(maximum)}")
    return " and ".join(parts)


def _specs() -> tuple[OptionSpec, ...]:
    hints = typing.get_type_hints(GenerationOptions)
    specs = []
    for field in dataclasses.fields(GenerationOptions):
        kind = float if float in typing.get_args(hints[field.name]) + (hints[field.name],) else int
        default = typing.cast(OptionValue | None, field.default)
        specs.append(OptionSpec(field.name, kind, default, field.metadata["help"],
                                field.metadata["bounds"]))
    return tuple(specs)


OPTIONS: tuple[OptionSpec, ...] = _specs()
OPTIONS_BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}


def check_names(names: typing.Iterable[str]) -> None:
    """Raise TypeError for a name that is not an option (a client's keyword argument)."""
    unknown = sorted(set(names) - OPTIONS_BY_NAME.keys())
    if unknown:
        raise TypeError(f"unknown generation option(s): {', '.join(unknown)}; "
                        f"known: {', '.join(OPTIONS_BY_NAME)}")


def iter_set(values: Mapping[str, OptionValue | None]) -> Iterator[tuple[str, OptionValue]]:
    """The options in `values` that are set (not None), in declaration order."""
    check_names(values)
    for spec in OPTIONS:
        value = values.get(spec.name)
        if value is not None:
            yield spec.name, value
