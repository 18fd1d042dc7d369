"""Record shapes through the real server and engine: built-in shapes, the caller's schema,
regex and choices, instructions, hostile schemas refused while the server keeps serving, and
a client built from the contract before records still served as before."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest

from synthqa.client import Document, SynthQAClient, SynthQAError
from synthqa.server.text.schema import (
    COT_FIELDS,
    QA_FIELDS,
    SUMMARY_FIELDS,
    field_bounds,
    text_record_schema,
)
from synthqa.v1 import synthqa_pb2 as pb

from ..paths import REPO
from .helpers import SAMPLE, TOLERATED_CHUNK_FAILURES, DocumentEvents, by_document
from .serverproc import ServerProcess

TEXT = SAMPLE[:1200]
# The contract before records: what clients built then were built from.
CONTRACT_BEFORE_RECORDS = "6de525f"

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "born": {"type": "integer", "minimum": 1000, "maximum": 2100},
        "role": {"$ref": "#/$defs/role"},
        "places": {"type": "array", "items": {"type": "string", "maxLength": 12},
                   "minItems": 1, "maxItems": 2},
    },
    "required": ["name", "born", "role", "places"],
    "additionalProperties": False,
    "$defs": {"role": {"enum": ["keeper", "engineer", "sailor"]}},
}


def records_of(events: list[pb.GenerateResponse], document_id: str = "document") -> DocumentEvents:
    grouped = by_document(events)
    document = grouped[document_id]
    assert len(document.done) == 1
    for failed in document.failed:
        assert any(words in failed.error.message for words in TOLERATED_CHUNK_FAILURES), failed
    assert document.records, "no record arrived"
    assert not document.pairs, "records were asked for; no QaPair event may come"
    sent = sum(c.pair_count for c in document.completed) + sum(
        f.pair_count for f in document.failed)
    assert sent == len(document.records) == document.done[0].pair_count
    return document


@pytest.mark.parametrize("shape,fields", [("qa", QA_FIELDS), ("cot", COT_FIELDS),
                                          ("summary", SUMMARY_FIELDS)])
def test_each_built_in_shape_streams_schema_valid_records(
    client: SynthQAClient, shape: str, fields: Any
) -> None:
    options = dict(record_shape=shape, num_pairs=2, max_generation_tokens=400, seed=11)
    document = records_of(list(client.generate_document(TEXT, **options)))
    key = "pairs" if shape == "qa" else "records"
    bounds = field_bounds(key, fields, 2, 400)
    assert bounds is not None
    schema = text_record_schema(bounds)
    for record in document.records:
        value = json.loads(record.json)
        jsonschema.validate(value, schema)
        assert list(value) == [field.name for field in fields]
        if shape == "qa":
            assert (record.qa_pair.question, record.qa_pair.answer) == (
                value["question"], value["answer"])
            assert record.qa_pair.pair_index == record.record_index
        else:
            assert not record.HasField("qa_pair")
    indexes = {(r.chunk_index, r.record_index) for r in document.records}
    assert len(indexes) == len(document.records)


def test_default_calls_still_get_qa_pair_events(client: SynthQAClient) -> None:
    grouped = by_document(client.generate_document(TEXT, num_pairs=2, seed=3))
    assert grouped["document"].pairs and not grouped["document"].records


def test_a_callers_json_schema_is_obeyed(client: SynthQAClient) -> None:
    events = client.generate_document(TEXT, record_schema=json.dumps(PERSON), num_pairs=2,
                                      max_generation_tokens=300, seed=5)
    document = records_of(list(events))
    for record in document.records:
        jsonschema.validate(json.loads(record.json), PERSON)


def test_a_regex_and_a_choice_list_are_obeyed(client: SynthQAClient) -> None:
    regex = r"[A-Z][a-z]{2,8} (light|tower|lamp)"
    document = records_of(list(client.generate_document(
        TEXT, record_regex=regex, num_pairs=3, max_generation_tokens=120, seed=5)))
    for record in document.records:
        assert re.fullmatch(regex, json.loads(record.json)), record.json
    choices = ["ancient", "modern", "both", "neither – ünknown"]
    document = records_of(list(client.generate_document(
        TEXT, record_choices=choices, num_pairs=2, max_generation_tokens=64, seed=5)))
    assert {json.loads(record.json) for record in document.records} <= set(choices)


def test_instructions_extend_or_replace_the_task(client: SynthQAClient) -> None:
    def prompt_tokens(**options: Any) -> int:
        grouped = by_document(client.generate_document("A lamp on a rock.", num_pairs=1,
                                                       seed=1, **options))
        assert grouped["document"].done
        if grouped["document"].completed:
            return grouped["document"].completed[0].prompt_token_count
        return 0

    plain = prompt_tokens(record_shape="summary")
    words = "Write for a ten-year-old reader, in plain words, and name every place. " * 3
    extended = prompt_tokens(record_shape="summary", instructions=words)
    replaced = prompt_tokens(record_shape="summary", instructions=words,
                             instructions_mode="replace")
    if 0 in (plain, extended, replaced):
        pytest.fail("a one-line document's chunk failed; see the events")
    assert plain < replaced < extended
    chunked = client.chunk(SAMPLE, instructions=words * 10)
    assert chunked.chunk_token_budget < client.chunk(SAMPLE).chunk_token_budget


HOSTILE = [
    ({"record_schema": "{not json"}, "options.record_schema", "not valid JSON"),
    ({"record_schema": json.dumps({"type": "array", "uniqueItems": True})},
     "options.record_schema", "uniqueItems"),
    ({"record_schema": json.dumps({"type": "string", "maxLength": 10**9})},
     "options.record_schema", "at most"),
    ({"record_schema": '{"items":' * 40 + "{}" + "}" * 40}, "options.record_schema", "levels"),
    ({"record_schema": "[" * 9000 + "]" * 9000}, "options.record_schema", "at most 16384"),
    ({"record_schema": json.dumps({"$ref": "http://169.254.169.254/latest"})},
     "options.record_schema", "own $defs"),
    ({"record_schema": json.dumps({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})},
     "options.record_schema", "no record can match it"),
    ({"record_schema": json.dumps({"type": "integer", "minimum": "x"})},
     "options.record_schema", "not a valid JSON schema"),
    ({"record_regex": "(unclosed"}, "options.record_regex", "missing )"),
    # Would take 2^29 steps in a backtracking matcher, on every record.
    ({"record_regex": "(?=a)(a?){29}a{29}"}, "options.record_regex", "lookarounds"),
    ({"record_regex": '"[a-z]+"'}, "options.record_regex", "double quote or a backslash"),
    # Passes xgrammar's conversion, then fails its compile as the engine runs it.
    ({"record_regex": "x{0,5000}"}, "options.record_regex", "repetition bound"),
    ({"record_choices": ["a", "a"]}, "options.record_choices", "more than once"),
    ({"record_shape": "custom"}, "options.record_shape", "exactly one"),
    ({"record_shape": "summary", "record_regex": "x"}, "options.record_regex", "custom"),
    ({"instructions": "x" * 4001}, "options.instructions", "at most 4000"),
]


@pytest.mark.parametrize("options,field,words", HOSTILE)
def test_broken_or_hostile_record_options_are_refused(
    client: SynthQAClient, options: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SynthQAError) as raised:
        list(client.generate_document(TEXT, **options))
    error = raised.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    violations = {v.field: v.description for v in error.field_violations}
    assert field in violations and words in violations[field], violations
    # The server goes on serving.
    grouped = by_document(client.generate_document("A lamp on a rock.", num_pairs=1))
    assert grouped["document"].done


def test_record_options_are_in_server_info(client: SynthQAClient) -> None:
    defaults = client.server_info().defaults
    assert defaults.record_shape == pb.RECORD_SHAPE_QA
    assert defaults.instructions_mode == pb.INSTRUCTIONS_MODE_EXTEND
    assert not defaults.HasField("record_schema") and not defaults.record_choices


def _old_contract(tmp_path: Path) -> Path:
    """Python stubs of the contract before records, in a package of their own."""
    proto = subprocess.run(
        ["git", "show", f"{CONTRACT_BEFORE_RECORDS}:protos/synthqa/v1/synthqa.proto"],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert proto.returncode == 0, f"the test needs the repository's history: {proto.stderr}"
    (tmp_path / "oldcontract").mkdir()
    (tmp_path / "oldcontract" / "synthqa.proto").write_text(proto.stdout)
    built = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"-I{REPO / 'protos'}",
         f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         "oldcontract/synthqa.proto"], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return tmp_path


OLD_CLIENT = """
import json, sys, grpc
from oldcontract import synthqa_pb2 as pb, synthqa_pb2_grpc as rpc
stub = rpc.SynthQAServiceStub(grpc.insecure_channel(sys.argv[1]))
kinds = {}
request = pb.GenerateDocumentRequest(text=sys.argv[2], options=pb.GenerationOptions(num_pairs=2))
for event in stub.GenerateDocument(request, timeout=240):
    kind = event.WhichOneof("event")
    kinds[str(kind)] = kinds.get(str(kind), 0) + 1
info = stub.GetServerInfo(pb.GetServerInfoRequest())
print(json.dumps({"kinds": kinds, "num_pairs": info.defaults.num_pairs}))
"""


def test_a_client_built_from_the_contract_before_records_still_works(
    server: ServerProcess, tmp_path: Path
) -> None:
    stubs = _old_contract(tmp_path)
    result = subprocess.run([sys.executable, "-c", OLD_CLIENT, server.target, TEXT],
                            cwd=stubs, capture_output=True, text=True, timeout=270, check=False)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["num_pairs"] == 5
    assert seen["kinds"].get("qa_pair", 0) > 0 and "None" not in seen["kinds"]
    assert seen["kinds"]["document_completed"] == 1


MULTILINGUAL = (
    "The Pharos of Alexandria was one of the wonders of the ancient world. It stood for many "
    "centuries. Earthquakes damaged it in the fourteenth century.\n\n"
    "灯台は夜に光を放ち、船を安全に導く。日本の最初の洋式灯台は観音埼灯台である。\n\n"
    "Der Leuchtturm Roter Sand steht in der Nordsee. Er wurde 1885 in Betrieb genommen. "
    "Фонарь маяка виден издалека. Маяк помогает морякам ночью.")


@pytest.mark.parametrize("options", [
    dict(record_shape="qa"),
    dict(record_shape="summary", num_pairs=1),
    dict(record_schema=json.dumps({"type": "object", "properties": {
        "fact": {"type": "string", "maxLength": 60}}, "required": ["fact"]})),
])
def test_evidence_spans_are_real_sentences_of_their_chunk(
    client: SynthQAClient, options: dict[str, Any]
) -> None:
    from synthqa.server.text.sentences import split_sentences

    events = list(client.generate(
        [Document("mixed", MULTILINGUAL), Document("sample", SAMPLE[:2500])],
        evidence=True, max_chunk_tokens=300, chunk_overlap_tokens=0, seed=2,
        **{"num_pairs": 2, "max_generation_tokens": 300, **options}))
    texts = {"mixed": MULTILINGUAL, "sample": SAMPLE[:2500]}
    cited = 0
    for document_id, text in texts.items():
        document = records_of(events, document_id)
        chunks = {c.chunk_index: (c.char_start, c.char_end) for c in document.started}
        for record in document.records:
            start, end = chunks[record.chunk_index]
            sentences = {(start + s.start, start + s.end)
                         for s in split_sentences(text[start:end])}
            assert 1 <= len(record.evidence) <= 3
            numbers = [span.sentence for span in record.evidence]
            assert numbers == sorted(set(numbers))
            for span in record.evidence:
                assert start <= span.char_start < span.char_end <= end
                assert (span.char_start, span.char_end) in sentences, text[
                    span.char_start:span.char_end]
                cited += 1
    assert cited
