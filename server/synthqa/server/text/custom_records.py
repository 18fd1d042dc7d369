"""A caller's own record: a JSON schema, a regular expression or a list of choices, checked
before any work so that a schema the engine cannot constrain to is refused with the reason.

What is checked here needs no engine: the schema's JSON, size, depth, keywords (only those the
output grammar enforces; see SCHEMA_KEYWORDS), references, and its validity as a JSON schema.
Whether the grammar compiles is checked against the model's vocabulary by
`engine.grammar.GrammarCheck`. Each record the model writes is then validated again here
(`CustomRecord.problem`), so no record that breaks the caller's schema is ever sent.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema

from synthqa.contract.options import GenerationOptions

from . import patterns

# Nesting of objects and arrays in a schema document.
MAX_SCHEMA_DEPTH = 12
# Bounds on the sizes a schema may ask for: the record must fit a chunk's token budget, and
# the grammar's size grows with them.
MAX_STRING_LENGTH = 4_096
MAX_ARRAY_ITEMS = 256
MAX_OBJECT_PROPERTIES = 64

# Keywords the output grammar (xgrammar) enforces, plus annotations, which constrain nothing.
# Keywords it ignores (uniqueItems, contains, propertyNames, maxProperties, dependent*,
# unevaluated*) or only partly supports (allOf with several schemas) are refused, so every
# accepted schema is one the engine really constrains to.
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id",
                          "$comment", "deprecated", "readOnly", "writeOnly"})
SCHEMA_KEYWORDS = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minProperties", "anyOf",
    "oneOf", "$ref", "$defs", "definitions", "patternProperties",
}) | _ANNOTATIONS
# Keywords whose value is a schema, a map of schemas, or a list of schemas.
_SCHEMA_VALUED = frozenset({"items", "additionalProperties"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SCHEMA_LISTS = frozenset({"prefixItems", "anyOf", "oneOf"})
_SIZE_CAPS = {"minLength": MAX_STRING_LENGTH, "maxLength": MAX_STRING_LENGTH,
              "minItems": MAX_ARRAY_ITEMS, "maxItems": MAX_ARRAY_ITEMS,
              "minProperties": MAX_OBJECT_PROPERTIES}
_LOCAL_REF = re.compile(r"#/(\$defs|definitions)/([^/]+)(/.*)?")


class RecordOptionError(ValueError):
    """An option that describes records is unusable; `option` names it."""

    def __init__(self, option: str, description: str) -> None:
        super().__init__(f"{option}: {description}")
        self.option = option
        self.description = description


@dataclass(frozen=True)
class CustomRecord:
    # The schema of one record, without its definitions, which go to the output's root.
    schema: dict[str, Any]
    definitions: dict[str, Any] | None
    # Finishes "Reply as {"records":[...]}, where ...": what a record is, for the prompt.
    description: str
    # Why a parsed record breaks the constraint, or None.
    problem: Callable[[Any], str | None]
    # The option the constraint came from, for errors.
    option: str


def custom_record(options: GenerationOptions) -> CustomRecord:
    """The custom record the options describe. Raises RecordOptionError."""
    given = [name for name, value in (("record_schema", options.record_schema),
                                      ("record_regex", options.record_regex),
                                      ("record_choices", options.record_choices)) if value]
    if len(given) != 1:
        raise RecordOptionError(
            "record_shape",
            "custom records need exactly one of record_schema, record_regex and "
            f"record_choices; got {', '.join(given) if given else 'none'}")
    if options.record_schema:
        return _from_schema(options.record_schema)
    if options.record_regex:
        return _from_regex(options.record_regex)
    assert options.record_choices
    return _from_choices(options.record_choices)


def _from_schema(text: str) -> CustomRecord:
    def bad(description: str) -> RecordOptionError:
        return RecordOptionError("record_schema", description)

    try:
        schema = json.loads(text)
    except RecursionError:
        raise bad(f"is nested too deeply (at most {MAX_SCHEMA_DEPTH} levels)") from None
    except json.JSONDecodeError as error:
        raise bad(f"is not valid JSON: {error}") from None
    if not isinstance(schema, dict):
        raise bad("must be a JSON object (a JSON schema for one record)")
    depth = _depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise bad(f"is nested {depth} levels deep; at most {MAX_SCHEMA_DEPTH} are allowed")
    definitions = {key: schema.get(key) for key in ("$defs", "definitions")}
    problem = _keyword_problem(schema, "", definitions)
    if problem is not None:
        raise bad(problem)
    try:
        validator_class = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.path) or "the root"
        raise bad(f"is not a valid JSON schema at {where}: {error.message}") from None
    if not _can_produce(schema, definitions):
        raise bad("no record can match it: something it requires can never be written (an "
                  "empty enum, a property that is false, or references that only loop back)")
    validator = BoundedValidator(validator_class, schema)

    def problem_of(record: Any) -> str | None:
        return validator.problem(record)

    # $defs may hold both spellings; each reference resolves against its own at the root.
    record_schema = {k: v for k, v in schema.items() if k not in ("$defs", "definitions",
                                                                    "$schema", "$id")}
    root_definitions = {key: schema[key] for key in ("$defs", "definitions") if key in schema}
    compact = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return CustomRecord(
        schema=record_schema,
        definitions=root_definitions or None,
        description=f"each record matches this JSON schema: {compact}",
        problem=problem_of,
        option="record_schema",
    )


def _from_regex(pattern: str) -> CustomRecord:
    problem = _pattern_problem(pattern)
    if problem is not None:
        raise RecordOptionError("record_regex", problem)

    # The record as decoded is what the client gets, so that is what must match; an escape
    # the grammar let through as two characters decodes to one, and such a record is dropped.
    def problem_of(record: Any) -> str | None:
        if not isinstance(record, str):
            return "a record is not a string"
        if not patterns.fullmatch(pattern, record):
            return "a record does not match record_regex"
        return None

    return CustomRecord(
        schema={"type": "string", "pattern": pattern},
        definitions=None,
        description="each record is a string matching the regular expression "
                    f"{json.dumps(pattern, ensure_ascii=False)}",
        problem=problem_of,
        option="record_regex",
    )


def _from_choices(choices: tuple[str, ...]) -> CustomRecord:
    seen: set[str] = set()
    for choice in choices:
        if choice in seen:
            raise RecordOptionError("record_choices", f"{choice!r} is given more than once")
        seen.add(choice)
    allowed = frozenset(choices)

    def problem_of(record: Any) -> str | None:
        return None if record in allowed else "a record is not one of record_choices"

    return CustomRecord(
        schema={"enum": list(choices)},
        definitions=None,
        description="each record is one of these strings: "
                    + json.dumps(list(choices), ensure_ascii=False),
        problem=problem_of,
        option="record_choices",
    )


def _pattern_problem(pattern: str, keys: bool = False) -> str | None:
    """Why a caller's pattern cannot be used, or None."""
    try:
        patterns.linear_pattern(pattern)
    except patterns.PatternError as error:
        return str(error)
    # A property name is written as a JSON string as well.
    if not patterns.writable_without_quotes(pattern):
        what = "a property name" if keys else "a record"
        return (f"{pattern!r} only matches text containing a double quote or a backslash, "
                f"which {what} cannot hold as written in the output's JSON; no record could "
                "be made")
    return None


# Work allowed to check one record against a caller's schema, in keyword checks: per JSON value
# in the record, and once. A schema checks each value with a few keywords and a few alternatives;
# nested oneOf or anyOf alternatives that all descend can multiply the checks exponentially in
# the record's depth, and the check runs on the event loop.
SCHEMA_CHECKS_PER_VALUE = 32
SCHEMA_CHECKS_BASE = 2_048


class _TooMuchWork(Exception):
    pass


_budget = threading.local()


def _counted(check: Callable[..., Any]) -> Callable[..., Any]:
    def counted(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        _budget.remaining -= 1
        if _budget.remaining < 0:
            raise _TooMuchWork
        return check(validator, value, instance, schema)

    return counted


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not patterns.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, by_pattern: dict[str, Any], instance: Any,
                        schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in by_pattern.items():
        for name, value in instance.items():
            if patterns.search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any,
                           schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    by_pattern = list(schema.get("patternProperties", {}))
    extras = [name for name in instance if name not in named
              and not any(patterns.search(pattern, name) for pattern in by_pattern)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(extra) for extra in sorted(extras))
        yield jsonschema.ValidationError(
            f"additional properties are not allowed ({listed} unexpected)")


_LINEAR_KEYWORDS = {"pattern": _pattern, "patternProperties": _pattern_properties,
                    "additionalProperties": _additional_properties}


@functools.cache
def _bounded_class(validator_class: Any) -> Any:
    """`validator_class` with RE2 for every pattern and each keyword check counted."""
    checks = {**validator_class.VALIDATORS, **_LINEAR_KEYWORDS}
    return jsonschema.validators.extend(
        validator_class, {name: _counted(check) for name, check in checks.items()})


class BoundedValidator:
    """Checks records against a caller's schema in bounded time: patterns by RE2, and at most
    SCHEMA_CHECKS_PER_VALUE keyword checks per value of the record (plus a base); a record
    that needs more is refused as invalid, never checked for longer."""

    def __init__(self, validator_class: Any, schema: dict[str, Any]) -> None:
        self._validator = _bounded_class(validator_class)(schema)

    def problem(self, record: Any) -> str | None:
        _budget.remaining = SCHEMA_CHECKS_BASE + SCHEMA_CHECKS_PER_VALUE * _values(record)
        try:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(record))
        except _TooMuchWork:
            return ("a record could not be checked against record_schema within its budget "
                    "of checks (alternatives in the schema multiply the work on deep records)")
        return None if error is None else f"a record does not match record_schema: {error.message}"


def _values(value: Any) -> int:
    """How many JSON values `value` is made of, itself included."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _depth(value: Any) -> int:
    """Nesting depth of objects and arrays, without recursion (json.loads bounds it anyway)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _keyword_problem(node: Any, path: str, definitions: dict[str, Any]) -> str | None:
    """The first unsupported keyword, size or reference in the schema at `node`, or None.
    Keywords go in the schema's order, each one's own value before the schemas it holds."""
    if isinstance(node, bool):
        return None
    if not isinstance(node, dict):
        return f"{path or 'the root'} must be a schema (a JSON object or a boolean)"
    for keyword, value in node.items():
        where = f"{path}/{keyword}"
        problem = _own_problem(keyword, value, where, definitions)
        if problem is not None:
            return problem
        for child, child_path in _subschemas(keyword, value, where):
            problem = _keyword_problem(child, child_path, definitions)
            if problem is not None:
                return problem
    return None


def _own_problem(keyword: str, value: Any, where: str, definitions: dict[str, Any]) -> str | None:
    """What is wrong with one keyword and its value, not counting the schemas it holds."""
    if keyword == "allOf":
        return f"allOf at {where} is not supported; merge its schemas into one"
    if keyword not in SCHEMA_KEYWORDS:
        return (f"keyword {keyword!r} at {where} is not supported: the output grammar "
                "cannot enforce it")
    check = _VALUE_CHECKS.get(keyword)
    return None if check is None else check(keyword, value, where, definitions)


def _size_problem(keyword: str, value: Any, where: str, definitions: dict[str, Any]) -> str | None:
    cap = _SIZE_CAPS[keyword]
    if isinstance(value, int | float) and value > cap:
        return f"{keyword} at {where} is {value}; at most {cap} is allowed"
    return None


def _value_pattern_problem(keyword: str, value: Any, where: str,
                           definitions: dict[str, Any]) -> str | None:
    problem = _pattern_problem(value) if isinstance(value, str) else None
    return None if problem is None else f"pattern at {where}: {problem}"


def _key_patterns_problem(keyword: str, value: Any, where: str,
                          definitions: dict[str, Any]) -> str | None:
    for name in value if isinstance(value, dict) else ():
        problem = _pattern_problem(name, keys=True)
        if problem is not None:
            return f"patternProperties at {where}: {problem}"
    return None


def _ref_problem(keyword: str, value: Any, where: str, definitions: dict[str, Any]) -> str | None:
    match = _LOCAL_REF.fullmatch(value) if isinstance(value, str) else None
    target = definitions.get(match.group(1)) if match else None
    if match is None or not isinstance(target, dict) or match.group(2) not in target:
        return (f"$ref {value!r} at {where} must point into this schema's own $defs or "
                "definitions")
    return None


# The keywords whose value itself is checked, and how; each check gets the keyword, its value,
# its path and the schema's definitions (by spelling), and says what is wrong or None.
_VALUE_CHECKS: dict[str, Callable[[str, Any, str, dict[str, Any]], str | None]] = {
    **dict.fromkeys(_SIZE_CAPS, _size_problem),
    "pattern": _value_pattern_problem,
    "patternProperties": _key_patterns_problem,
    "$ref": _ref_problem,
}


def _subschemas(keyword: str, value: Any, where: str) -> list[tuple[Any, str]]:
    """The schemas a keyword's value holds, each with its path; none for other keywords."""
    if keyword in _SCHEMA_VALUED:
        return [(value, where)]
    if keyword in _SCHEMA_MAPS and isinstance(value, dict):
        return [(child, f"{where}/{name}") for name, child in value.items()]
    if keyword in _SCHEMA_LISTS and isinstance(value, list):
        return [(child, f"{where}/{index}") for index, child in enumerate(value)]
    return []


def _can_produce(schema: dict[str, Any], definitions: dict[str, Any]) -> bool:
    """Whether any value matches the schema, as far as its references go: a definition that
    can only refer back to itself (`a` is `$ref a`, or an object that requires an `a`) matches
    nothing, and its grammar would leave the model no token to write."""
    return _produces(schema, _productive_definitions(definitions))


def _productive_definitions(definitions: dict[str, Any]) -> set[tuple[str, str]]:
    """The definitions some value matches, as (spelling, name). Found as a fixpoint: a
    definition is productive once one way of writing it uses only productive ones."""
    named = [((kind, name), body) for kind, group in definitions.items()
             if isinstance(group, dict) for name, body in group.items()]
    productive: set[tuple[str, str]] = set()
    changed = True
    while changed:
        changed = False
        for key, body in named:
            if key not in productive and _produces(body, productive):
                productive.add(key)
                changed = True
    return productive


def _produces(node: Any, productive: set[tuple[str, str]]) -> bool:
    """Whether some value matches the schema at `node`, given the productive definitions."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        return True
    if "$ref" in node:
        return _ref_produces(node["$ref"], productive)
    return all(needs(node, productive) for needs in _NEEDS)


def _ref_produces(ref: Any, productive: set[tuple[str, str]]) -> bool:
    match = _LOCAL_REF.fullmatch(str(ref))
    # Only whole definitions are tracked; a reference into one's inside is taken as productive.
    if match is None or match.group(3) is not None:
        return True
    return (match.group(1), match.group(2)) in productive


def _some_alternative_produces(node: dict[str, Any], productive: set[tuple[str, str]]) -> bool:
    return all(any(_produces(alternative, productive) for alternative in node[keyword])
               for keyword in ("anyOf", "oneOf") if isinstance(node.get(keyword), list))


def _enum_not_empty(node: dict[str, Any], productive: set[tuple[str, str]]) -> bool:
    return "enum" not in node or bool(node["enum"])


def _required_properties_produce(node: dict[str, Any],
                                 productive: set[tuple[str, str]]) -> bool:
    properties: dict[str, Any] = (node["properties"]
                                  if isinstance(node.get("properties"), dict) else {})
    required = node["required"] if isinstance(node.get("required"), list) else []
    return all(_produces(properties[name], productive)
               for name in required if name in properties)


def _required_items_produce(node: dict[str, Any], productive: set[tuple[str, str]]) -> bool:
    """The first minItems items: from prefixItems, then from items once those run out."""
    min_items = node.get("minItems")
    if not isinstance(min_items, int) or min_items <= 0:
        return True
    prefix: list[Any] = node["prefixItems"] if isinstance(node.get("prefixItems"), list) else []
    if not all(_produces(item, productive) for item in prefix[:min_items]):
        return False
    return min_items <= len(prefix) or _produces(node.get("items", True), productive)


# What a schema that is not a reference needs for some value to match it, checked in order.
_NEEDS: tuple[Callable[[dict[str, Any], set[tuple[str, str]]], bool], ...] = (
    _some_alternative_produces,
    _enum_not_empty,
    _required_properties_produce,
    _required_items_produce,
)
