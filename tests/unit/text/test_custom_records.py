"""Custom records and the built-in shapes: what each asks of the model, what is refused up
front (with the option at fault), and how each record is checked before it is sent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from synthqa.contract.options import GenerationOptions
from synthqa.server.engine.grammar import GrammarCheck
from synthqa.server.text.custom_records import RecordOptionError
from synthqa.server.text.records import MalformedRecord, RecordFormat, record_format

PERSON = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 40},
                         "age": {"type": "integer", "minimum": 0, "maximum": 150},
                         "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"},
                                  "maxItems": 3}},
          "required": ["name", "age"],
          "$defs": {"tag": {"enum": ["a", "b"]}}}


def custom(**options: Any) -> RecordFormat:
    return record_format(GenerationOptions(**options), frozenset(options))


def refusal(**options: Any) -> RecordOptionError:
    with pytest.raises(RecordOptionError) as raised:
        custom(**options)
    return raised.value


def test_default_qa_keeps_pair_events_and_any_record_option_asks_for_records() -> None:
    assert record_format(GenerationOptions(), frozenset()).as_pairs
    assert not custom(record_shape="qa").as_pairs
    assert not custom(record_shape="cot").as_pairs
    # The server's default shape, when not qa, gives records too.
    assert not record_format(GenerationOptions(record_shape="summary"), frozenset()).as_pairs


def test_built_in_shapes_ask_for_their_fields() -> None:
    cot = custom(record_shape="cot", num_pairs=2, max_generation_tokens=400)
    item = cot.schema["properties"]["records"]["items"]
    assert list(item["properties"]) == ["question", "reasoning", "answer"]
    assert "reasoning under" in cot.prompt.guidance
    summary = custom(record_shape="summary")
    assert summary.prompt.reply == 'Reply as {"records":[{"summary":"..."}]}.'
    record = summary.accept({"summary": " A short one. "}, False)
    assert json.loads(record.json) == {"summary": "A short one."} and record.question is None
    with pytest.raises(MalformedRecord):
        summary.accept({"summary": ""}, False)


def test_a_custom_schema_keeps_its_definitions_at_the_root_and_checks_records() -> None:
    form = custom(record_schema=json.dumps(PERSON), num_pairs=2)
    assert form.shape == "custom" and form.custom_option == "record_schema"
    assert form.schema["$defs"] == PERSON["$defs"]
    assert form.schema["properties"]["records"]["minItems"] == 2
    assert json.dumps(PERSON["properties"]["tags"]) in json.dumps(form.schema)
    assert "matches this JSON schema" in form.prompt.reply
    assert json.loads(form.accept({"name": "Ann", "age": 3, "tags": ["a"]}, False).json)["age"] == 3
    for bad in ({"name": "Ann"}, {"name": "Ann", "age": 200}, {"name": "A", "age": 1,
                                                               "tags": ["c"]}):
        with pytest.raises(MalformedRecord):
            form.accept(bad, False)


def test_regex_and_choices() -> None:
    regex = custom(record_regex=r"[A-Z]{3}-[0-9]{2}")
    assert regex.accept("ABC-12", False).json == '"ABC-12"'
    with pytest.raises(MalformedRecord):
        regex.accept("abc-12", False)
    choices = custom(record_choices=("yes", "no", "née"))
    assert choices.accept("née", False).json == '"née"'
    with pytest.raises(MalformedRecord):
        choices.accept("maybe", False)


@pytest.mark.parametrize("options,option,words", [
    ({"record_schema": "{not json"}, "record_schema", "not valid JSON"),
    ({"record_schema": "[1, 2]"}, "record_schema", "must be a JSON object"),
    ({"record_schema": '{"type": "strin"}'}, "record_schema", "not a valid JSON schema"),
    ({"record_schema": '{"type": "array", "uniqueItems": true}'}, "record_schema",
     "'uniqueItems'"),
    ({"record_schema": '{"allOf": [{"type": "string"}]}'}, "record_schema", "allOf"),
    ({"record_schema": '{"type": "string", "maxLength": 100000}'}, "record_schema",
     "at most 4096"),
    ({"record_schema": '{"$ref": "https://example.com/s.json"}'}, "record_schema",
     "own $defs"),
    ({"record_schema": '{"$ref": "#"}'}, "record_schema", "own $defs"),
    ({"record_schema": '{"items": ' * 20 + "{}" + "}" * 20}, "record_schema", "levels"),
    ({"record_schema": "[" * 5000 + "]" * 5000}, "record_schema", "nested too deeply"),
    ({"record_schema": '{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}'},
     "record_schema", "no record can match it"),
    ({"record_schema": json.dumps({"$defs": {"n": {"type": "object", "properties": {
        "next": {"$ref": "#/$defs/n"}}, "required": ["next"]}}, "$ref": "#/$defs/n"})},
     "record_schema", "no record can match it"),
    ({"record_schema": '{"anyOf": []}'}, "record_schema", "not a valid JSON schema"),
    ({"record_choices": ("a", "a")}, "record_choices", "more than once"),
    ({"record_shape": "custom"}, "record_shape", "exactly one"),
    ({"record_shape": "custom", "record_regex": "a", "record_choices": ("a",)}, "record_shape",
     "exactly one"),
    ({"record_shape": "qa", "record_regex": "a"}, "record_regex", "for custom records"),
])
def test_unusable_custom_records_are_refused_naming_the_option(
    options: dict[str, Any], option: str, words: str
) -> None:
    error = refusal(**options)
    assert error.option == option and words in error.description, error.description


def test_recursive_schemas_that_can_end_are_accepted() -> None:
    tree = {"$defs": {"node": {"type": "object", "properties": {
        "label": {"type": "string", "maxLength": 8},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["label", "children"]}}, "$ref": "#/$defs/node"}
    form = custom(record_schema=json.dumps(tree))
    assert form.accept({"label": "a", "children": [{"label": "b", "children": []}]}, False)


def test_the_callers_custom_option_replaces_the_servers_default() -> None:
    defaults = GenerationOptions(record_shape="custom", record_choices=("x", "y"))
    form = record_format(GenerationOptions(**{**defaults.__dict__, "record_regex": "[a-z]+"}),
                         frozenset({"record_regex"}))
    assert form.schema["properties"]["records"]["items"] == {"type": "string",
                                                             "pattern": "[a-z]+"}


def test_grammar_check_refuses_what_the_engine_could_not_compile(tokenizer: Any) -> None:
    check = GrammarCheck(tokenizer)

    def problem(item: dict[str, Any]) -> str | None:
        schema = {"type": "object", "properties": {"records": {
            "type": "array", "items": item, "minItems": 2, "maxItems": 2}}}
        return asyncio.run(check.problem(schema))

    assert problem({"type": "string", "pattern": "[a-z]+"}) is None
    assert "parenthesis is not closed" in (problem({"type": "string", "pattern": "(a"}) or "")


# A backtracking matcher takes 2^40 steps on this pattern's near misses: minutes per record.
@pytest.mark.timeout(20)
def test_a_catastrophic_regex_is_matched_in_linear_time() -> None:
    form = custom(record_regex=r"(a?){40}a{40}\n")
    assert form.accept("a" * 40 + "\n", False).json == json.dumps("a" * 40 + "\n")
    with pytest.raises(MalformedRecord, match="does not match record_regex"):
        form.accept("a" * 39 + "b\n", False)


@pytest.mark.timeout(20)
def test_schema_patterns_are_matched_in_linear_time() -> None:
    slow = "^(a?){40}a{40}$"
    schema = {"type": "object", "properties": {"word": {"type": "string", "pattern": slow}},
              "patternProperties": {"^x(y?){40}y{40}$": {"type": "integer"}},
              "additionalProperties": False}
    form = custom(record_schema=json.dumps(schema))
    assert form.accept({"word": "a" * 40, "x" + "y" * 40: 1}, False)
    for near_miss in ({"word": "a" * 39 + "b"}, {"x" + "y" * 39 + "z": 1}):
        with pytest.raises(MalformedRecord, match="does not match record_schema"):
            form.accept(near_miss, False)


@pytest.mark.parametrize("options,option,words", [
    ({"record_regex": "(?=a)b"}, "record_regex", "lookarounds"),
    ({"record_regex": r"(a)\1"}, "record_regex", "backreferences"),
    ({"record_regex": '"'}, "record_regex", "double quote or a backslash"),
    ({"record_regex": r'x"|y\\+'}, "record_regex", "double quote or a backslash"),
    ({"record_regex": r'[\\"]{2,}'}, "record_regex", "double quote or a backslash"),
    ({"record_schema": json.dumps({"type": "string", "pattern": "(?<=a)b"})}, "record_schema",
     "pattern at /pattern"),
    ({"record_schema": json.dumps({"type": "object", "patternProperties": {'^"': {}}})},
     "record_schema", "a property name cannot hold"),
])
def test_patterns_that_cannot_run_or_cannot_be_written_are_refused(
    options: dict[str, Any], option: str, words: str
) -> None:
    error = refusal(**options)
    assert error.option == option and words in error.description, error.description


def test_patterns_that_may_avoid_quotes_and_code_point_escapes_are_accepted() -> None:
    assert custom(record_regex='"*[a-z]+').accept("abc", False)
    assert custom(record_regex='[^"]+').accept("abc", False)
    # A code point as \u00e9 (the grammar's dialect) and as \U0010FFFF (Python's) both read.
    assert custom(record_regex=r"\u00e9+").accept("éé", False)
    assert custom(record_regex=r"[^\x00-\U0010FFFF]")


@pytest.mark.timeout(20)
def test_a_schema_whose_alternatives_multiply_on_deep_records_fails_the_record_not_the_loop(
) -> None:
    # Both alternatives descend into every level: 2^depth checks for a record nested that deep.
    node = {"oneOf": [{"type": "array", "items": {"$ref": "#/$defs/n"}, "minItems": 1},
                      {"type": "array", "items": {"$ref": "#/$defs/n"}}]}
    form = custom(record_schema=json.dumps({"$defs": {"n": node}, "$ref": "#/$defs/n"}))
    record: list[Any] = []
    for _ in range(40):
        record = [record]
    with pytest.raises(MalformedRecord, match="budget of checks"):
        form.accept(record, False)


# What a caller sees when a schema uses a keyword, size or reference the grammar cannot
# enforce: the first problem in the schema's own order, with its path, a nested schema's
# problems before those of the keywords after it.
@pytest.mark.parametrize("schema,description", [
    ({"type": "object", "properties": {"a": 3}},
     "/properties/a must be a schema (a JSON object or a boolean)"),
    ({"items": [{"type": "string"}]}, "/items must be a schema (a JSON object or a boolean)"),
    ({"properties": {"a": {"uniqueItems": True}}, "allOf": []},
     "keyword 'uniqueItems' at /properties/a/uniqueItems is not supported: the output grammar "
     "cannot enforce it"),
    ({"type": "string", "minLength": 1, "allOf": [], "uniqueItems": True},
     "allOf at /allOf is not supported; merge its schemas into one"),
    ({"type": "array", "items": {"type": "string", "minLength": 5000}},
     "minLength at /items/minLength is 5000; at most 4096 is allowed"),
    ({"type": "array", "maxItems": 256.5},
     "maxItems at /maxItems is 256.5; at most 256 is allowed"),
    ({"anyOf": [{"type": "string"}, {"not": {}}]},
     "keyword 'not' at /anyOf/1/not is not supported: the output grammar cannot enforce it"),
    ({"$defs": {"a": {"if": {}}}},
     "keyword 'if' at /$defs/a/if is not supported: the output grammar cannot enforce it"),
    ({"$defs": {"a": {}}, "$ref": "#/$defs/b"},
     "$ref '#/$defs/b' at /$ref must point into this schema's own $defs or definitions"),
    ({"$ref": 3}, "$ref 3 at /$ref must point into this schema's own $defs or definitions"),
    ({"definitions": {"a": {}}, "$ref": "#/$defs/a"},
     "$ref '#/$defs/a' at /$ref must point into this schema's own $defs or definitions"),
])
def test_a_schema_is_refused_for_its_first_unsupported_part(
    schema: dict[str, Any], description: str
) -> None:
    error = refusal(record_schema=json.dumps(schema))
    assert error.option == "record_schema" and error.description == description


def test_patterns_nested_in_a_schema_are_refused_with_their_path() -> None:
    nested = {"type": "object", "properties": {"a": {"type": "object", "patternProperties": {
        "ok": {}, '^"': {}}}}}
    assert refusal(record_schema=json.dumps(nested)).description.startswith(
        "patternProperties at /properties/a/patternProperties: ")
    word = {"type": "array", "items": {"type": "string", "pattern": "(?=a)b"}}
    assert refusal(record_schema=json.dumps(word)).description.startswith(
        "pattern at /items/pattern: ")


# Schemas whose every record would need something that can never be written.
@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": False}, "required": ["a"]},
    {"enum": []},
    {"anyOf": [False, {"enum": []}]},
    {"type": "string", "oneOf": [False]},
    {"type": "array", "prefixItems": [{"type": "string"}, False], "minItems": 2},
    {"type": "array", "items": False, "minItems": 1},
    {"type": "array", "prefixItems": [{}], "items": False, "minItems": 2},
    {"$defs": {"a": {"oneOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
    {"definitions": {"x": {"$ref": "#/definitions/x"}}, "$ref": "#/definitions/x"},
])
def test_a_schema_no_record_can_match_is_refused(schema: dict[str, Any]) -> None:
    error = refusal(record_schema=json.dumps(schema))
    assert error.description.startswith("no record can match it"), error.description


# What can never be written but is never needed, and references that end after a detour.
@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": False}},
    {"type": "array", "items": False},
    {"type": "array", "prefixItems": [{}], "items": False, "minItems": 1},
    {"anyOf": [False, {"type": "string"}]},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
    {"$defs": {"a": {"$ref": "#/$defs/b"},
               "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "string"}]}},
     "$ref": "#/$defs/a"},
    {"$defs": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
     "$ref": "#/$defs/a/properties/b"},
])
def test_a_schema_some_record_can_match_is_accepted(schema: dict[str, Any]) -> None:
    assert custom(record_schema=json.dumps(schema)).custom_option == "record_schema"
