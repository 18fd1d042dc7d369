"""The bench's replay server and recorder, without a server or an engine: their flags, the
engine the replay server would start, and how a feature's calls are made."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synthqa.server.engine.replay import FORMAT_VERSION, HEADER_KEY, ReplayEngine, write_recording

from ..paths import REPO, TINY_MODEL

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench import record_replay, replay_server  # noqa: E402
from synthqa_bench.workload import build_workload  # noqa: E402

HEADER = {HEADER_KEY: FORMAT_VERSION, "model": ".cache/tiny-model", "max_model_len": 2048,
          "device": "cpu"}


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "empty.jsonl.gz"
    write_recording(path, HEADER, [])
    return path


def test_its_own_flags_are_taken_and_the_servers_left(recording: Path) -> None:
    own, rest = replay_server.build_parser().parse_known_args(
        ["--recording", str(recording), "--model", "m", "--port", "1", "--no-cache"])
    assert own.recording == [recording] and own.record is None
    assert rest == ["--model", "m", "--port", "1", "--no-cache"]
    with pytest.raises(SystemExit):
        replay_server.build_parser().parse_known_args(
            ["--recording", str(recording), "--record", "x"])
    with pytest.raises(SystemExit):
        replay_server.build_parser().parse_known_args(["--model", "m"])


def test_the_replay_server_starts_a_replay_engine_with_the_recordings_length(
        recording: Path) -> None:
    from synthqa.server.config import parse

    engine_args, _ = parse(["--model", str(TINY_MODEL), "--served-model-name", "tiny"])
    start = replay_server.replaying([recording], engine_args, yield_between_deltas=True)
    engine = start()
    assert isinstance(engine, ReplayEngine)
    assert (engine.model_name, engine.max_model_len, engine.layout.device) == (
        "tiny", 2048, "replay")
    assert engine.tokenizer.encode("lighthouse", add_special_tokens=False)
    engine_args, _ = parse(["--model", str(TINY_MODEL), "--max-model-len", "1024"])
    with pytest.raises(SystemExit, match="recording was made with 2048"):
        replay_server.replaying([recording], engine_args, yield_between_deltas=True)


def test_every_feature_calls_the_workloads_documents() -> None:
    workload = build_workload("smoke")
    for feature in record_replay.FEATURES:
        calls = list(record_replay.feature_calls(workload, feature))
        assert len(calls) == len(workload.option_groups())
        ids = [d.document_id for _, docs in calls for d in docs]
        assert len(ids) == len(set(ids))
        expected = len(workload.documents) * (2 if feature == "dedup" else 1)
        assert len(ids) == expected
        for options, _ in calls:
            assert options["seed"] == workload.options["seed"]
    custom = next(record_replay.feature_calls(workload, "custom"))[0]
    assert json.loads(custom["record_schema"]) == record_replay.CUSTOM_SCHEMA
    assert "record_shape" not in custom


def test_a_features_lines_are_what_the_raw_file_gained(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text('{"a": 1}\n')
    offset = raw.stat().st_size
    with open(raw, "a") as file:
        file.write('{"b": 2}\n{"c": 3}\n')
    assert record_replay.lines_after(raw, offset) == [{"b": 2}, {"c": 3}]
