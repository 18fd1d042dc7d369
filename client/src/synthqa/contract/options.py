"""The generation options, each declared once.

A field of `GenerationOptions` is an option: its name is the proto field's name, its annotation
the type, its default the server's default, and its metadata the bounds and help text. Server
flags, validation with field details, proto conversion, client keyword arguments and CLI flags
are all derived from these declarations: adding an option is the proto field plus one line here.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

OptionValue = bool | int | float | str | tuple[str, ...]
# What a caller may pass for an option: a list option also takes a list.
OptionArgument = OptionValue | list[str]

# Shapes a record may take; "custom" takes the caller's schema, regex or choices.
RECORD_SHAPES = ("qa", "cot", "summary", "custom")
INSTRUCTIONS_MODES = ("extend", "replace")
# The options that describe a custom record; each needs record_shape "custom" (or unset).
CUSTOM_RECORD_OPTIONS = ("record_schema", "record_regex", "record_choices")
MAX_RECORD_SCHEMA_CHARS = 16_384
MAX_RECORD_REGEX_CHARS = 1_024
MAX_RECORD_CHOICES = 64
MAX_CHOICE_CHARS = 256
MAX_INSTRUCTIONS_CHARS = 4_000
MAX_TARGET_RECORDS = 100_000
# Passes over one document's chunks, at most, whatever its target.
MAX_PASSES = 32


@dataclass(frozen=True)
class Bounds:
    """What makes a value valid. `maximum_limit` names a server limit that caps the value."""

    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    maximum_limit: str | None = None
    # Values the type admits but the option refuses, with the reason.
    reserved: Mapping[int, str] = dataclasses.field(default_factory=dict)
    # Text options: the values allowed (an enum on the wire), or the longest text.
    choices: tuple[str, ...] | None = None
    max_chars: int | None = None
    # List options: the most items (each item bounded by max_chars).
    max_items: int | None = None
    # For an enum on the wire: the prefix of its value names (RECORD_SHAPE_ + "COT").
    proto_enum: str | None = None


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
    record_shape: str = option("qa", "what each record holds: qa, cot (question, reasoning, "
                               "answer), summary, or custom", choices=RECORD_SHAPES,
                               proto_enum="RECORD_SHAPE")
    record_schema: str | None = option(None, "custom records: a JSON schema each record matches",
                                       max_chars=MAX_RECORD_SCHEMA_CHARS)
    record_regex: str | None = option(None, "custom records: a regular expression each record "
                                      "(a string) matches whole", max_chars=MAX_RECORD_REGEX_CHARS)
    record_choices: tuple[str, ...] | None = option(
        None, "custom records: the strings a record may be (repeat the flag for each)",
        max_items=MAX_RECORD_CHOICES, max_chars=MAX_CHOICE_CHARS)
    instructions: str | None = option(None, "instructions for the model, added to or replacing "
                                      "the built-in task text",
                                      max_chars=MAX_INSTRUCTIONS_CHARS)
    instructions_mode: str = option("extend", "how instructions combine with the built-in task "
                                    "text: extend or replace", choices=INSTRUCTIONS_MODES,
                                    proto_enum="INSTRUCTIONS_MODE")
    evidence: bool = option(False, "cite the chunk's sentences each record rests on (evidence "
                            "spans with every record)")
    judge: bool = option(False, "rate each record on the same engine and drop those under "
                         "min_rating")
    min_rating: int = option(6, "the judge's lowest rating a kept record may have, 1 to 10",
                             minimum=1, maximum=10)
    judge_instructions: str | None = option(None, "the judge's rating criteria, replacing the "
                                            "built-in ones", max_chars=MAX_INSTRUCTIONS_CHARS)
    dedup: bool = option(False, "drop records that repeat one already sent in the call, "
                         "exactly or nearly")
    dedup_threshold: float = option(0.85, "similarity (Jaccard, character 4-grams) from which "
                                    "a record is a near duplicate; 1 = exact repeats only",
                                    minimum=0.0, exclusive_minimum=True, maximum=1.0)
    adapter: str | None = option(None, "a LoRA adapter the server has (GetServerInfo lists "
                                 "them); unset uses the base model", max_chars=256)
    target_records: int = option(0, "records to keep per document: more passes over its chunks, "
                                 "with new seeds, until that many are kept (0 = one pass)",
                                 minimum=0, maximum=MAX_TARGET_RECORDS)
    patience: int = option(2, "passes in a row that keep no new record before a document stops "
                           "short of target_records", minimum=1, maximum=MAX_PASSES)
    max_invalid_fraction: float = option(0.5, "share of a document's records that may be "
                                         "invalid before it stops short of target_records",
                                         minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class OptionSpec:
    """One option as the derived layers see it."""

    name: str
    # The type of a value, or of each item for a list option.
    kind: type[bool] | type[int] | type[float] | type[str]
    default: OptionValue | None
    help: str
    bounds: Bounds
    is_list: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def add_flag(self, group: Any, flag: str, default: OptionValue | None, help: str) -> None:
        """This option as an argparse flag of `group`."""
        extra: dict[str, Any] = {}
        if self.kind is bool:
            group.add_argument(flag, default=default, help=help,
                               action=argparse.BooleanOptionalAction)
            return
        if self.bounds.choices is not None:
            extra["choices"] = self.bounds.choices
        if self.is_list:
            extra["action"] = "append"
        group.add_argument(flag, type=self.kind, default=default, help=help, **extra)

    def from_flag(self, value: Any) -> OptionValue | None:
        """The option's value from its parsed flag (a list flag gives a list)."""
        return tuple(value) if self.is_list and value is not None else value

    def problem(self, value: OptionValue, limits: Mapping[str, int]) -> str | None:
        """Why `value` is not valid for this option, or None."""
        bounds = self.bounds
        if self.kind is str or isinstance(value, str | tuple):
            return self._text_problem(value)
        if self.kind is bool or isinstance(value, bool):
            return None if isinstance(value, bool) else f"must be true or false, got {value}"
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

    def _text_problem(self, value: OptionValue) -> str | None:
        bounds = self.bounds
        if bounds.choices is not None and value not in bounds.choices:
            return f"must be one of {', '.join(bounds.choices)}, got {value!r}"
        items = value if isinstance(value, tuple) else (value,)
        if bounds.max_items is not None and len(items) > bounds.max_items:
            return f"may have at most {bounds.max_items} items, got {len(items)}"
        for item in items:
            if not isinstance(item, str):
                return f"must be text, got {type(item).__name__}"
            if bounds.max_chars is not None and len(item) > bounds.max_chars:
                what = "each item" if self.is_list else "the text"
                return f"{what} may have at most {bounds.max_chars} characters, got {len(item)}"
        return None


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
        types = typing.get_args(hints[field.name]) + (hints[field.name],)
        is_list = any(typing.get_origin(t) is tuple for t in types)
        kind: type[bool] | type[int] | type[float] | type[str] = (
            str if is_list or str in types else bool if bool in types
            else float if float in types else int)
        default = typing.cast(OptionValue | None, field.default)
        specs.append(OptionSpec(field.name, kind, default, field.metadata["help"],
                                field.metadata["bounds"], is_list))
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
