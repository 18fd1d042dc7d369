"""Logic tests: the real tokenizer of the tiny model, no engine."""

from __future__ import annotations

from typing import Any

import pytest
from transformers import AutoTokenizer

from synthqa.server.pipeline.planner import Planner
from synthqa.server.text.prompts import PromptBuilder

from ..paths import TINY_MODEL


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    assert (TINY_MODEL / "config.json").exists(), "run `make setup` to build the tiny model"
    return AutoTokenizer.from_pretrained(TINY_MODEL)


@pytest.fixture(scope="session")
def planner(tokenizer: Any) -> Planner:
    return Planner(PromptBuilder(tokenizer), max_model_len=2048)
