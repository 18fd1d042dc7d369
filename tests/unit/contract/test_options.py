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
        sub = parser.parse_args(["generate", "f.txt", "--out", "o.jsonl", spec.flag, "1"])
        assert getattr(sub, spec.name) == spec.kind(1)
