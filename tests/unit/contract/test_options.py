"""The option declarations and everything derived from them: the proto, the server's flags and
conversion, the client's keyword arguments and the CLI's flags all agree with one list."""

from __future__ import annotations

import dataclasses

import pytest

from synthqa.client import generation_options
from synthqa.client.cli import build_parser as build_cli_parser
from synthqa.contract.options import OPTIONS, GenerationOptions, check_names
from synthqa.server.grpc_api.convert import options_to_proto, overrides_from_proto
from synthqa.v1 import synthqa_pb2 as pb


def test_every_declared_option_is_a_proto_field_and_back() -> None:
    proto_fields = {f.name for f in pb.GenerationOptions.DESCRIPTOR.fields}
    assert [spec.name for spec in OPTIONS] == [f.name for f in dataclasses.fields(
        GenerationOptions)]
    assert {spec.name for spec in OPTIONS} == proto_fields


def test_proto_conversion_keeps_only_what_the_client_set() -> None:
    message = pb.GenerationOptions(num_pairs=3, seed=7, temperature=0.0)
    assert overrides_from_proto(message) == {"num_pairs": 3, "temperature": 0.0, "seed": 7}
    assert overrides_from_proto(pb.GenerationOptions()) == {}
    round_trip = options_to_proto(GenerationOptions(seed=5))
    assert round_trip.seed == 5 and round_trip.num_pairs == 5 and round_trip.HasField("top_p")
    assert not options_to_proto(GenerationOptions()).HasField("seed")


def test_client_keywords_come_from_the_declarations() -> None:
    message = generation_options(num_pairs=2, top_p=0.5, seed=None)
    assert message == pb.GenerationOptions(num_pairs=2, top_p=0.5)
    with pytest.raises(TypeError, match="num_pair"):
        generation_options(num_pair=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_names(["bogus"])


def test_cli_has_a_typed_flag_for_every_option() -> None:
    parser = build_cli_parser()
    args = parser.parse_args(["chunk", "f.txt", "--num-pairs", "3", "--top-p", "0.5",
                              "--seed", "-4"])
    assert (args.num_pairs, args.top_p, args.seed, args.temperature) == (3, 0.5, -4, None)
    for spec in OPTIONS:
        if spec.kind is bool:
            on = parser.parse_args(["generate", "f.txt", "--out", "o", spec.flag])
            off = parser.parse_args(["generate", "f.txt", "--out", "o", "--no-" + spec.flag[2:]])
            unset = parser.parse_args(["generate", "f.txt", "--out", "o"])
            assert (getattr(on, spec.name), getattr(off, spec.name),
                    getattr(unset, spec.name)) == (True, False, None)
            continue
        value = spec.bounds.choices[-1] if spec.bounds.choices else "1"
        sub = parser.parse_args(["generate", "f.txt", "--out", "o.jsonl", spec.flag, value])
        expected = [value] if spec.is_list else spec.kind(value)
        assert getattr(sub, spec.name) == expected
    args = parser.parse_args(["generate", "f.txt", "--out", "o.jsonl", "--record-choices", "a",
                              "--record-choices", "b", "--record-shape", "custom"])
    assert (args.record_choices, args.record_shape) == (["a", "b"], "custom")


def test_text_options_travel_as_enums_and_lists() -> None:
    message = generation_options(record_shape="cot", record_choices=["yes", "no"],
                                 instructions_mode="replace", instructions="Be brief.")
    assert message.record_shape == pb.RECORD_SHAPE_COT
    assert message.instructions_mode == pb.INSTRUCTIONS_MODE_REPLACE
    assert list(message.record_choices) == ["yes", "no"]
    assert overrides_from_proto(message) == {
        "record_shape": "cot", "record_choices": ("yes", "no"), "instructions": "Be brief.",
        "instructions_mode": "replace"}
    # Unspecified is unset; a number the enum does not know is kept, for validation to refuse.
    assert overrides_from_proto(pb.GenerationOptions(record_shape=0)) == {}
    assert overrides_from_proto(pb.GenerationOptions(record_shape=99)) == {"record_shape": 99}
    with pytest.raises(ValueError, match="record_shape must be one of"):
        generation_options(record_shape="essay")
    defaults = options_to_proto(GenerationOptions())
    assert defaults.record_shape == pb.RECORD_SHAPE_QA and not defaults.HasField("record_schema")
    assert defaults.instructions_mode == pb.INSTRUCTIONS_MODE_EXTEND


def test_text_options_are_bounded() -> None:
    from synthqa.contract.options import MAX_RECORD_CHOICES, OPTIONS_BY_NAME

    shape, choices = OPTIONS_BY_NAME["record_shape"], OPTIONS_BY_NAME["record_choices"]
    assert shape.problem("cot", {}) is None
    assert shape.problem(99, {}) == "must be one of qa, cot, summary, custom, got 99"
    assert choices.problem(("a",) * (MAX_RECORD_CHOICES + 1), {}).startswith("may have at most")
    assert "at most 256 characters" in choices.problem(("x" * 257,), {})
    assert "at most 4000 characters" in OPTIONS_BY_NAME["instructions"].problem("x" * 4001, {})
