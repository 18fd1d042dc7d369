"""vLLM's per-request grammar check is skipped only for grammars synthqa made itself."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import xgrammar
from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.sampling_params import StructuredOutputsParams
from vllm.v1.structured_output import backend_xgrammar

from synthqa.server.engine import vllm_engine
from synthqa.server.engine.grammar import json_schema_grammar

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}},
          "required": ["answer"], "additionalProperties": False}


def validate_as_vllm_does(grammar: str) -> None:
    """The check vLLM runs on every request (SamplingParams.verify calls it)."""
    params = SamplingParams(structured_outputs=StructuredOutputsParams(grammar=grammar))
    params._validate_structured_outputs(SimpleNamespace(is_diffusion=False),
                                        SimpleNamespace(backend="xgrammar"), tokenizer=object())


@pytest.fixture
def skipping(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The skip installed (and taken out afterwards); the grammars vLLM parsed meanwhile."""
    monkeypatch.setattr(backend_xgrammar, "validate_xgrammar_grammar",
                        backend_xgrammar.validate_xgrammar_grammar)
    vllm_engine._skip_rechecking_own_grammars()
    parsed: list[str] = []
    from_ebnf = xgrammar.Grammar.from_ebnf

    def counting(text: str, *args: Any, **kwargs: Any) -> Any:
        parsed.append(text)
        return from_ebnf(text, *args, **kwargs)

    monkeypatch.setattr(xgrammar.Grammar, "from_ebnf", staticmethod(counting))
    return parsed


def test_a_grammar_synthqa_built_is_not_parsed_again(skipping: list[str]) -> None:
    validate_as_vllm_does(json_schema_grammar(SCHEMA))
    assert skipping == []


def test_any_other_grammar_is_still_checked(skipping: list[str]) -> None:
    other = 'root ::= "yes" | "no"'
    validate_as_vllm_does(other)
    assert skipping == [other]
    with pytest.raises(VLLMValidationError):
        validate_as_vllm_does("root ::= (")


def test_installing_twice_wraps_once(skipping: list[str]) -> None:
    installed = backend_xgrammar.validate_xgrammar_grammar
    vllm_engine._skip_rechecking_own_grammars()
    assert backend_xgrammar.validate_xgrammar_grammar is installed
