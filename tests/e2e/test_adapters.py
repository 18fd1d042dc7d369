"""LoRA adapters through a real server started with --lora-modules, the platform server
(tests/e2e/conftest.py): listed by GetServerInfo, named per call, changing the model's outputs;
an unknown one refused."""

from __future__ import annotations

import json

import grpc
import pytest

from synthqa.client import SynthQAClient, SynthQAError

from .helpers import SAMPLE, by_document
from .serverproc import ServerProcess


def greedy_records(client: SynthQAClient, **options: object) -> list[str]:
    # Greedy, and unseeded so the platform server's result cache stays out of it.
    events = client.generate_document(SAMPLE[:700], record_shape="qa", num_pairs=2,
                                      max_generation_tokens=200, temperature=0.0,
                                      **options)  # type: ignore[arg-type]
    document = by_document(events)["document"]
    assert document.done
    return [json.loads(r.json)["question"] for r in document.records]


def test_the_server_lists_its_adapters(platform_server: ServerProcess) -> None:
    with SynthQAClient(platform_server.target, timeout=60) as client:
        assert list(client.server_info().adapters) == ["tiny"]


def test_an_adapter_changes_the_outputs(platform_server: ServerProcess) -> None:
    with SynthQAClient(platform_server.target, timeout=300) as client:
        base = greedy_records(client)
        adapted = greedy_records(client, adapter="tiny")
        assert base == greedy_records(client)  # greedy: the base model repeats itself
        assert adapted and base and adapted != base


def test_an_unknown_adapter_is_refused(platform_server: ServerProcess,
                                       client: SynthQAClient) -> None:
    with SynthQAClient(platform_server.target, timeout=60) as own:
        with pytest.raises(SynthQAError) as raised:
            list(own.generate_document("A lamp.", adapter="huge"))
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        violations = {v.field: v.description for v in raised.value.field_violations}
        assert "tiny" in violations["options.adapter"]
    # The session server has none.
    with pytest.raises(SynthQAError) as raised:
        list(client.generate_document("A lamp.", adapter="tiny"))
    assert "--lora-modules" in raised.value.field_violations[0].description
