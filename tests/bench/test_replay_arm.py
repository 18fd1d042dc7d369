"""The replay arm's bookkeeping without a server: what it counts as once and twice, which
documents it replays, and how the ceiling is summarized beside the real-engine arms."""

from __future__ import annotations

import sys

from synthqa.v1 import synthqa_pb2 as pb

from ..paths import REPO

sys.path.insert(0, str(REPO / "bench"))

from synthqa_bench import arm_replay, report  # noqa: E402
from synthqa_bench.workload import build_workload  # noqa: E402


def started(document: str, count: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(chunk_started=pb.ChunkStarted(
        document_id=document, chunk_index=0, chunk_count=count))


def record(document: str, chunk: int, index: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(record=pb.Record(document_id=document, chunk_index=chunk,
                                                record_index=index))


def completed(document: str, chunk: int, tokens: int) -> pb.GenerateResponse:
    return pb.GenerateResponse(chunk_completed=pb.ChunkCompleted(
        document_id=document, chunk_index=chunk, generated_token_count=tokens))


def test_the_tally_counts_tokens_records_and_events_and_finds_repeats() -> None:
    tally = arm_replay.ReplayTally()
    events = [started("a", 2), record("a", 0, 0), record("a", 0, 1), completed("a", 0, 40),
              record("a", 1, 0), record("a", 1, 0), completed("a", 1, 30),
              completed("a", 1, 30)]
    assert not any(tally.add(event) for event in events)
    assert tally.add(pb.GenerateResponse(document_completed=pb.DocumentCompleted(
        document_id="a")))
    assert (tally.events, tally.records, tally.output_tokens) == (9, 4, 100)
    assert (tally.records_repeated, tally.chunks_ended_twice, tally.chunks_unended()) == (1, 1, 0)
    unfinished = arm_replay.ReplayTally()
    unfinished.add(started("b", 3))
    unfinished.add(completed("b", 0, 5))
    assert unfinished.chunks_unended() == 2


def test_laps_replay_the_recorded_documents_under_fresh_ids() -> None:
    workload = build_workload("quick")
    calls = arm_replay.feature_documents(workload, "qa", arm_replay.Extent(laps=2))
    assert len(calls) == 2 * len(workload.option_groups())  # a lap's calls of its own
    ids = [d.document_id for _, group in calls for d in group]
    assert len(ids) == len(set(ids)) == 2 * len(workload.documents)
    texts = {d.document_id: d.text for d in workload.documents}
    assert all(d.text == texts[d.document_id.split("~")[0]] for _, group in calls for d in group)
    # A few documents of the recorded workload, the dedup feature's repeats among them.
    dedup = arm_replay.feature_documents(workload, "dedup", arm_replay.Extent(1, documents=3))
    assert sum(len(group) for _, group in dedup) == 6


def test_the_committed_recordings_name_one_workload() -> None:
    workload = arm_replay.recorded_workload(list(arm_replay.REPLAY_FEATURES))
    assert workload.name == "quick"
    assert arm_replay.missing_recordings(list(arm_replay.REPLAY_FEATURES)) == []


def test_the_ceiling_sits_beside_vllms_front_end_cost_from_the_same_run() -> None:
    def engine_run(arm: str, main_cpu: float) -> dict[str, object]:
        return {"arm": arm, "concurrency": 16, "repeat": 0, "chunks_failed": 0,
                "output_tokens_per_second": 100.0, "wall_seconds": 10.0,
                "server_main_cpu_seconds": main_cpu, "server_loop_cpu_seconds": main_cpu / 2}

    tally = arm_replay.ReplayTally(output_tokens=10_000, records=50, events=120)
    replayed = {"arm": "replay", "concurrency": 16, "repeat": 0, **arm_replay.figures(
        tally, wall=2.0, front_end_cpu=0.5, server_cpu=0.6, client_cpu=0.4, feature="qa",
        documents=10, front_end_loop_cpu=0.3)}
    runs = [engine_run("inprocess", 0.2), engine_run("synthqa-bidi", 0.4), replayed]
    summary = report.summarize(runs)
    assert {row["arm"] for row in summary} == {"inprocess", "synthqa-bidi"}
    ceiling = report.summarize_ceiling(runs, summary)
    assert ceiling is not None
    # 0.2 s over 1,000 tokens: 200 µs; the replayed front end, 0.5 s over 10,000: 50 µs.
    assert round(ceiling["vllm_front_end_us_per_token"]) == 200
    assert round(ceiling["synthqa_on_engine_front_end_us_per_token"]) == 400
    [row] = ceiling["features"]
    assert round(row["front_end_cpu_us_per_token"]["median"]) == 50
    assert round(row["vs_vllm_front_end"], 2) == 0.25
    assert round(row["one_core_ceiling_tokens_per_second"]["median"]) == 20_000
    # The loop threads alone: vLLM's 0.1 s over 1,000 tokens, the replayed 0.3 s over 10,000.
    assert round(ceiling["vllm_front_end_loop_us_per_token"]) == 100
    assert round(row["front_end_loop_cpu_us_per_token"]["median"]) == 30
    assert round(row["loop_vs_vllm_loop"], 2) == 0.3
    table = report.ceiling_markdown(ceiling)
    assert "| qa | 1 | 16 |" in table and "vLLM's own (`inprocess`) 200.0 µs" in table
    assert "| 30.0 (30.0–30.0) | 0.30× |" in table
    assert "(100.0 µs on its loop thread)" in table
    # Two front-end processes in the same run: their throughput against one's.
    two = {**replayed, "front_ends": 2, "output_tokens_per_second": 7_500.0}
    by_count = {row["front_ends"]: row for row in report.summarize_ceiling(
        [*runs, two], summary)["features"]}
    assert by_count[1]["throughput_vs_one_front_end"] is None
    assert by_count[2]["throughput_vs_one_front_end"] == 1.5
    assert "| qa | 2 | 16 | 7500 (7500–7500) | 1.50× |" in report.ceiling_markdown(
        report.summarize_ceiling([*runs, two], summary))
    # The baseline checkout's replay server in the same run: this one's CPU against its.
    baseline = {**replayed, "baseline": True, "front_end_cpu_us_per_token": 100.0,
                "front_end_loop_cpu_us_per_token": 40.0}
    rows = report.summarize_ceiling([*runs, baseline], summary)
    ours = next(row for row in rows["features"] if not row["baseline"])
    assert ours["front_end_cpu_us_per_token_vs_baseline"] == 0.5
    assert round(ours["front_end_loop_cpu_us_per_token_vs_baseline"], 6) == 0.75
    table = report.ceiling_markdown(rows)
    assert "| qa | 1 (baseline) | 16 |" in table and "| qa | 0.50× | 0.75× |" in table
