"""Generation options on the wire: a `GenerationOptions` message from option values and back.

Text options with fixed values (`record_shape`, `instructions_mode`) are proto enums on the
wire and their lower-case names here; list options are repeated fields, empty when unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthqa.v1 import synthqa_pb2 as pb

from .options import OPTIONS, OptionSpec, OptionValue, iter_set


def options_message(values: Mapping[str, OptionValue | None]) -> pb.GenerationOptions:
    """A message with exactly the set (not None) options of `values`. An unknown name raises
    TypeError; an enum option's unknown value raises ValueError."""
    fields: dict[str, Any] = {}
    for name, value in iter_set(values):
        spec = _BY_NAME[name]
        if spec.bounds.proto_enum is not None:
            fields[name] = _enum_number(spec, value)
        elif spec.is_list:
            fields[name] = list(value) if isinstance(value, tuple | list) else [value]
        else:
            fields[name] = value
    return pb.GenerationOptions(**fields)


def options_from_message(message: pb.GenerationOptions) -> dict[str, OptionValue]:
    """The options the message sets. An enum's unspecified value counts as unset; a number the
    enum does not know is kept as the number, for validation to refuse."""
    values: dict[str, OptionValue] = {}
    for spec in OPTIONS:
        if spec.is_list:
            items = tuple(getattr(message, spec.name))
            if items:
                values[spec.name] = items
        elif message.HasField(spec.name):  # type: ignore[arg-type]
            value = getattr(message, spec.name)
            if spec.bounds.proto_enum is not None:
                if value == 0:
                    continue
                value = _enum_name(spec, value)
            values[spec.name] = value
    return values


def _enum_type(spec: OptionSpec) -> Any:
    return pb.GenerationOptions.DESCRIPTOR.fields_by_name[spec.name].enum_type


def _enum_number(spec: OptionSpec, value: OptionValue) -> int:
    prefix = spec.bounds.proto_enum
    choices = spec.bounds.choices or ()
    if value not in choices:
        raise ValueError(f"{spec.name} must be one of {', '.join(choices)}, got {value!r}")
    number: int = _enum_type(spec).values_by_name[f"{prefix}_{str(value).upper()}"].number
    return number


def _enum_name(spec: OptionSpec, number: int) -> OptionValue:
    known = _enum_type(spec).values_by_number.get(number)
    if known is None:
        return number
    return str(known.name).removeprefix(f"{spec.bounds.proto_enum}_").lower()


_BY_NAME = {spec.name: spec for spec in OPTIONS}
