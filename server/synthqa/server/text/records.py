"""Record shapes: what the model writes for a chunk, how it is constrained, and how each record
it writes is checked and turned into what the client receives.

Every shape's output is one JSON object holding exactly `count` records in a list, so records
stream the same way whatever their shape. The built-in shapes are objects of bounded strings,
sized from the token budget; a custom shape is the caller's schema, regex or choices
(`custom_records`).
"""

from __future__ import annotations

import dataclasses
import functools
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
    # Custom records: the option whose record description ends the reply format, and the
    # reply format without it.
    record_option: str | None = None
    plain_reply: str = ""

    @property
    def caller_options(self) -> tuple[str, ...]:
        """The options whose own text is in the prompt."""
        instructions = ("instructions",) if self.instructions else ()
        return instructions + ((self.record_option,) if self.record_option else ())

    def without(self, option: str) -> PromptText:
        """This text with what `option` wrote into it taken out, to measure what it costs."""
        if option == "instructions":
            return dataclasses.replace(self, instructions=None, replace_task=False)
        if option == self.record_option:
            return dataclasses.replace(self, reply=self.plain_reply, record_option=None)
        raise ValueError(f"{option} wrote nothing into the prompt")


@dataclass(frozen=True)
class Record:
    """One checked record: its compact JSON text, its question and answer for qa, and the
    sentence numbers it cites (sorted, each once) under evidence."""

    json: str
    question: str | None = None
    answer: str | None = None
    citations: tuple[int, ...] = ()


@dataclass(frozen=True)
class RecordFormat:
    shape: str
    # The key of the record list in the output object.
    key: str
    count: int
    # The schema of one record, and what its references resolve against at the root.
    record_schema: dict[str, Any]
    definitions: dict[str, Any] | None
    prompt: PromptText
    # Records go out as QaPair events, as before records existed (the client asked for none).
    as_pairs: bool
    # Turns a parsed record into what is sent; raises MalformedRecord.
    accept_record: Callable[[Any, bool], Record]
    # The option a custom record came from, whose grammar is checked before use.
    custom_option: str | None = None
    # Each record cites the chunk's numbered sentences.
    evidence: bool = False

    @functools.cached_property
    def schema(self) -> dict[str, Any]:
        """The output's schema without evidence (with it, see schema_for)."""
        return records_schema(self.key, self.record_schema, self.count, self.definitions)

    def schema_for(self, sentence_count: int) -> dict[str, Any]:
        """The output's schema for a chunk of `sentence_count` numbered sentences."""
        if not self.evidence:
            return self.schema
        return records_schema(self.key, self.record_schema, self.count, self.definitions,
                              sentence_count=sentence_count)

    def accept(self, item: Any, drop_replacement: bool) -> Record:
        if not self.evidence:
            return self.accept_record(item, drop_replacement)
        if not isinstance(item, dict) or set(item) != {"evidence", "record"}:
            raise MalformedRecord("a record is not wrapped with its evidence")
        numbers = item["evidence"]
        if not isinstance(numbers, list) or not numbers or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            raise MalformedRecord("a record's evidence is not a list of sentence numbers")
        record = self.accept_record(item["record"], drop_replacement)
        return dataclasses.replace(record, citations=tuple(sorted(set(numbers))))


QA_SYSTEM_PROMPT = (
    "You write question and answer pairs for training language models. Every question must be "
    "answerable from the given text alone, and every answer must be correct according to it. "
    "Reply with JSON only."
)
RECORD_SYSTEM_PROMPT = (
    "You write records for training language models from a given text. Everything you write "
    "must be supported by the text alone. Reply with JSON only."
)
EVIDENCE_TASK = ("The text's sentences are numbered like [1]; with each record, give in "
                 "evidence the numbers of the one to three sentences it rests on.")


@dataclass(frozen=True)
class _BuiltIn:
    key: str
    fields: tuple[TextField, ...]
    task: str
    # One record as the reply format shows it.
    example: str


_BUILT_IN = {
    "qa": _BuiltIn("pairs", QA_FIELDS,
                   "Write exactly {count} question and answer pairs about the text below.",
                   '{"question":"...","answer":"..."}'),
    "cot": _BuiltIn("records", COT_FIELDS,
                    "Write exactly {count} questions about the text below, each with the "
                    "step-by-step reasoning that answers it from the text alone, then the answer.",
                    '{"question":"...","reasoning":"...","answer":"..."}'),
    "summary": _BuiltIn("records", SUMMARY_FIELDS,
                        "Write exactly {count} summaries of the text below, each complete on "
                        "its own and true to the text.",
                        '{"summary":"..."}'),
}
# Options that ask for Record events rather than QaPair events.
_RECORD_OPTIONS = frozenset({"record_shape", "evidence", "judge", *CUSTOM_RECORD_OPTIONS})


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
    evidence = options.evidence
    bounds = field_bounds(built_in.key, built_in.fields, options.num_pairs,
                          options.max_generation_tokens, evidence)
    if bounds is None:
        needed = min_generation_tokens(built_in.key, built_in.fields, options.num_pairs,
                                       evidence)
        raise RecordOptionError(
            "max_generation_tokens",
            f"{options.max_generation_tokens} tokens leave too little room for "
            f"{options.num_pairs} {shape} records{' with evidence' if evidence else ''}; at "
            f"least {needed} are needed (or ask for fewer with num_pairs)")
    return RecordFormat(
        shape=shape,
        key=built_in.key,
        count=options.num_pairs,
        record_schema=text_record_schema(bounds),
        definitions=None,
        prompt=_prompt(options, shape, built_in.task.format(count=options.num_pairs),
                       _guidance(bounds), _reply(built_in.key, built_in.example, evidence)),
        as_pairs=(shape == "qa" and not client_set & _RECORD_OPTIONS and not evidence
                  and not options.judge),
        accept_record=_text_record_acceptor(shape == "qa"),
        evidence=evidence,
    )


def _custom_format(options: GenerationOptions) -> RecordFormat:
    custom: CustomRecord = custom_record(options)
    plain_reply = _reply("records", "...", options.evidence)
    prompt = _prompt(options, "custom",
                     f"Write exactly {options.num_pairs} records about the text below.", "",
                     plain_reply[:-1] + f", where {custom.description}.")
    return RecordFormat(
        shape="custom",
        key="records",
        count=options.num_pairs,
        record_schema=custom.schema,
        definitions=custom.definitions,
        prompt=dataclasses.replace(prompt, record_option=custom.option,
                                   plain_reply=plain_reply),
        as_pairs=False,
        accept_record=_custom_acceptor(custom),
        custom_option=custom.option,
        evidence=options.evidence,
    )


def _reply(key: str, example: str, evidence: bool) -> str:
    if evidence:
        example = '{"evidence":[1],"record":' + example + "}"
    return f'Reply as {{"{key}":[{example}]}}.'


def _prompt(
    options: GenerationOptions, shape: str, task: str, guidance: str, reply: str
) -> PromptText:
    system = QA_SYSTEM_PROMPT if shape == "qa" else RECORD_SYSTEM_PROMPT
    if options.evidence:
        task = f"{task} {EVIDENCE_TASK}"
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
