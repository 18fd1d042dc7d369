"""Record shapes: what the model writes for a chunk, how it is constrained, and how each record
it writes is checked and turned into what the client receives.

Every shape's output is one JSON object holding exactly `count` records in a list, so records
stream the same way whatever their shape. The built-in shapes are objects of bounded strings,
sized from the token budget; a custom shape is the caller's schema, regex or choices
(`custom_records`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synthqa.contract.options import CUSTOM_RECORD_OPTIONS, GenerationOptions

from .custom_records import CustomRecord, RecordOptionError, custom_record
from .schema import (
    COT_FIELDS,
    QA_FIELDS,
    SUMMARY_FIELDS,
    FieldBounds,
    TextField,
    field_bounds,
    min_generation_tokens,
    records_schema,
    text_record_schema,
)

REPLACEMENT_CHARACTER = "\ufffd"


class MalformedRecord(ValueError):
    """A record the model wrote is not one the shape allows."""


@dataclass(frozen=True)
class PromptText:
    """The words around a chunk: the system prompt, the task, the length guidance, the reply
    format, and the caller's instructions (added after the task text, or in its place)."""

    system: str
    task: str
    guidance: str
    reply: str
    instructions: str | None = None
    replace_task: bool = False


@dataclass(frozen=True)
class Record:
    """One checked record: its compact JSON text, and its question and answer for qa."""

    json: str
    question: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class RecordFormat:
    shape: str
    # The key of the record list in the output object.
    key: str
    count: int
    schema: dict[str, Any]
    prompt: PromptText
    # Records go out as QaPair events, as before records existed (the client asked for none).
    as_pairs: bool
    # Turns a parsed record into what is sent; raises MalformedRecord.
    accept: Callable[[Any, bool], Record]
    # The option a custom record came from, whose grammar is checked before use.
    custom_option: str | None = None


QA_SYSTEM_PROMPT = (
    "You write question and answer pairs for training language models. Every question must be "
    "answerable from the given text alone, and every answer must be correct according to it. "
    "Reply with JSON only."
)
RECORD_SYSTEM_PROMPT = (
    "You write records for training language models from a given text. Everything you write "
    "must be supported by the text alone. Reply with JSON only."
)


@dataclass(frozen=True)
class _BuiltIn:
    key: str
    fields: tuple[TextField, ...]
    task: str
    reply: str


_BUILT_IN = {
    "qa": _BuiltIn("pairs", QA_FIELDS,
                   "Write exactly {count} question and answer pairs about the text below.",
                   'Reply as {{"pairs":[{{"question":"...","answer":"..."}}]}}.'),
    "cot": _BuiltIn("records", COT_FIELDS,
                    "Write exactly {count} questions about the text below, each with the "
                    "step-by-step reasoning that answers it from the text alone, then the answer.",
                    'Reply as {{"records":[{{"question":"...","reasoning":"...",'
                    '"answer":"..."}}]}}.'),
    "summary": _BuiltIn("records", SUMMARY_FIELDS,
                        "Write exactly {count} summaries of the text below, each complete on "
                        "its own and true to the text.",
                        'Reply as {{"records":[{{"summary":"..."}}]}}.'),
}


def record_format(options: GenerationOptions, client_set: frozenset[str]) -> RecordFormat:
    """The record format the options ask for. `client_set` names the options the caller set:
    a qa call that set no record option gets QaPair events, as before. The caller's custom
    record options replace the server's default ones; a custom option the caller set implies
    record_shape custom. Raises RecordOptionError naming the option at fault."""
    client_custom = [name for name in CUSTOM_RECORD_OPTIONS if name in client_set]
    if client_custom:
        dropped: dict[str, Any] = {name: None for name in CUSTOM_RECORD_OPTIONS
                                   if name not in client_set}
        options = dataclasses.replace(options, **dropped)
        if "record_shape" not in client_set:
            options = dataclasses.replace(options, record_shape="custom")
    shape = options.record_shape
    if shape == "custom":
        return _custom_format(options)
    if client_custom:
        raise RecordOptionError(client_custom[0],
                                f"is for custom records; record_shape is {shape}")
    built_in = _BUILT_IN[shape]
    bounds = field_bounds(built_in.key, built_in.fields, options.num_pairs,
                          options.max_generation_tokens)
    if bounds is None:
        needed = min_generation_tokens(built_in.key, built_in.fields, options.num_pairs)
        raise RecordOptionError(
            "max_generation_tokens",
            f"{options.max_generation_tokens} tokens leave too little room for "
            f"{options.num_pairs} {shape} records; at least {needed} are needed (or ask for "
            "fewer with num_pairs)")
    as_pairs = shape == "qa" and not client_set & _RECORD_OPTIONS
    return RecordFormat(
        shape=shape,
        key=built_in.key,
        count=options.num_pairs,
        schema=records_schema(built_in.key, text_record_schema(bounds), options.num_pairs),
        prompt=_prompt(options, shape, built_in.task.format(count=options.num_pairs),
                       _guidance(bounds), built_in.reply.format()),
        as_pairs=as_pairs,
        accept=_text_record_acceptor(shape == "qa"),
    )


_RECORD_OPTIONS = frozenset({"record_shape", *CUSTOM_RECORD_OPTIONS})


def _custom_format(options: GenerationOptions) -> RecordFormat:
    custom: CustomRecord = custom_record(options)
    return RecordFormat(
        shape="custom",
        key="records",
        count=options.num_pairs,
        schema=records_schema("records", custom.schema, options.num_pairs, custom.definitions),
        prompt=_prompt(options, "custom",
                       f"Write exactly {options.num_pairs} records about the text below.", "",
                       f'Reply as {{"records":[...]}}, where {custom.description}.'),
        as_pairs=False,
        accept=_custom_acceptor(custom),
        custom_option=custom.option,
    )


def _prompt(
    options: GenerationOptions, shape: str, task: str, guidance: str, reply: str
) -> PromptText:
    system = QA_SYSTEM_PROMPT if shape == "qa" else RECORD_SYSTEM_PROMPT
    return PromptText(system, task, guidance, reply, options.instructions,
                      options.instructions_mode == "replace")


def _guidance(bounds: FieldBounds) -> str:
    limits = [f"each {name} under {chars} characters" for name, chars in bounds]
    joined = limits[0] if len(limits) == 1 else ", ".join(limits[:-1]) + " and " + limits[-1]
    return f"Keep {joined}."


def _drop_replacement(value: Any) -> Any:
    """`value` with U+FFFD removed from every string in it."""
    if isinstance(value, str):
        return value.replace(REPLACEMENT_CHARACTER, "")
    if isinstance(value, list):
        return [_drop_replacement(item) for item in value]
    if isinstance(value, dict):
        return {key: _drop_replacement(item) for key, item in value.items()}
    return value


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as error:  # a number too large for a float
        raise MalformedRecord(f"the record cannot be written as JSON: {error}") from None


def _text_record_acceptor(is_qa: bool) -> Callable[[Any, bool], Record]:
    def accept(item: Any, drop_replacement: bool) -> Record:
        if not isinstance(item, dict):
            raise MalformedRecord("a record is not a JSON object")
        if drop_replacement:
            item = _drop_replacement(item)
        cleaned = {}
        for name, value in item.items():
            if not isinstance(value, str):
                raise MalformedRecord(f"a record's {name} is not a string")
            cleaned[name] = value.strip(" ")
            if not cleaned[name]:
                raise MalformedRecord(f"a record has an empty {name}")
        if is_qa:
            if set(cleaned) != {"question", "answer"}:
                raise MalformedRecord("a pair lacks a string question or answer")
            return Record(_compact(cleaned), cleaned["question"], cleaned["answer"])
        return Record(_compact(cleaned))

    return accept


def _custom_acceptor(custom: CustomRecord) -> Callable[[Any, bool], Record]:
    def accept(item: Any, drop_replacement: bool) -> Record:
        if drop_replacement:
            item = _drop_replacement(item)
        problem = custom.problem(item)
        if problem is not None:
            raise MalformedRecord(problem)
        return Record(_compact(item))

    return accept
