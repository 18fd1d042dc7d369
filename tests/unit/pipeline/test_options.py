"""Resolving a client's options: defaults fill the gaps, every bad field is named at once."""

from __future__ import annotations

import pytest

from synthqa.contract.options import GenerationOptions
from synthqa.server.pipeline.errors import InvalidArgument
from synthqa.server.pipeline.options import resolve_options

from ..helpers import violations

LIMITS = {"max_num_pairs": 50}


def resolve(**overrides: float | int) -> GenerationOptions:
    return resolve_options(GenerationOptions(), overrides, limits=LIMITS)


def test_unset_fields_take_the_defaults() -> None:
    options = resolve(num_pairs=3)
    assert options == GenerationOptions(num_pairs=3)
    assert (options.max_generation_tokens, options.temperature, options.top_p) == (512, 0.7, 0.95)
    assert (options.chunk_overlap_tokens, options.max_chunk_tokens, options.seed) == (64, 0, None)


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(num_pairs=0, temperature=2.5, top_p=0.0, chunk_overlap_tokens=-1,
                max_chunk_tokens=-5, max_generation_tokens=0)
    assert set(violations(caught.value)) == {
        "options.num_pairs", "options.temperature", "options.top_p",
        "options.chunk_overlap_tokens", "options.max_chunk_tokens",
        "options.max_generation_tokens",
    }
    assert violations(caught.value)["options.top_p"] == "must be greater than 0.0 and at most " \
        "1.0, got 0.0"


def test_a_limit_caps_an_option_and_the_message_names_it() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(num_pairs=51)
    assert violations(caught.value) == {"options.num_pairs": "must be between 1 and 50, got 51"}
    assert resolve_options(GenerationOptions(), {"num_pairs": 51},
                           limits={"max_num_pairs": 60}).num_pairs == 51


def test_nan_temperature_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(temperature=float("nan"))
    assert list(violations(caught.value)) == ["options.temperature"]


def test_seed_minus_one_is_reserved() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(seed=-1)
    assert list(violations(caught.value)) == ["options.seed"]
    for seed in (0, -2, 2**63 - 1, -(2**63)):
        assert resolve(seed=seed).seed == seed


def test_bad_defaults_name_the_server_flag_prefix() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve_options(GenerationOptions(temperature=3.0), {}, limits=LIMITS,
                        field_prefix="defaults")
    assert list(violations(caught.value)) == ["defaults.temperature"]
