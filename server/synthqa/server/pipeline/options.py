"""Resolving a client's options against the server's defaults, with every bad field reported.

The options themselves are declared once, in `synthqa.contract.options`; the checks here are
derived from those declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from synthqa.contract.options import OPTIONS, GenerationOptions, OptionValue, iter_set

from .errors import ViolationCollector

# What a client set: option name to value; an absent name takes the default.
Overrides = Mapping[str, OptionValue]


def resolve_options(
    defaults: GenerationOptions,
    overrides: Overrides,
    *,
    limits: Mapping[str, int],
    field_prefix: str = "options",
) -> GenerationOptions:
    """Merge overrides into defaults, rejecting every out-of-range field at once."""
    chosen: dict[str, Any] = dict(iter_set(overrides))
    options = replace(defaults, **chosen)
    problems = ViolationCollector()
    for spec in OPTIONS:
        value = getattr(options, spec.name)
        if value is not None and (problem := spec.problem(value, limits)) is not None:
            problems.add(f"{field_prefix}.{spec.name}", problem)
    problems.raise_if_any()
    return options
