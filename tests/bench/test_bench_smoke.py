"""`make bench` in miniature: every arm on two short documents with different options (as the
straggle workload mixes them), one repeat, through the real command. It proves each arm runs,
takes options per document, and the results have every figure; the replay arm (the ceiling with
the model taken out) delivered every record of every feature once. It asserts no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..paths import REPO, TINY_MODEL

pytestmark = pytest.mark.e2e

ENGINE_ARMS = {"inprocess", "inprocess-deltas", "synthqa-bidi", "synthqa-unary",
               "vllm-openai", "batch-wait", "synthqa-traced"}
ARMS = {*ENGINE_ARMS, "replay"}
FEATURES = {"qa", "cot", "custom", "evidence", "judge", "dedup"}
RATES = {"output_tokens_per_second", "records_per_second", "events_per_second"}
# From CPU times, which tick in hundredths of a second: a smoke run's can read zero.
CPU_FIGURES = {"front_end_cpu_us_per_token", "front_end_loop_cpu_us_per_token",
               "client_cpu_us_per_token", "one_core_ceiling_tokens_per_second"}
RUN_FIGURES = {
    "wall_seconds", "output_tokens", "pairs", "chunks_completed", "chunks_failed",
    "documents_completed", "output_tokens_per_second", "pairs_per_second",
    "documents_per_second", "chunk_latency_p50", "chunk_latency_p90", "chunk_latency_p99",
    "chunks_in_flight_mean",
    "time_to_first_pair_p50", "time_to_first_pair_p99", "time_to_first_pair_samples",
    "chunk_first_pair_share_p50", "chunk_first_pair_share_samples",
    "server_cpu_seconds", "server_main_cpu_seconds", "server_loop_cpu_seconds",
    "server_peak_rss_bytes", "client_cpu_seconds",
}


# Seven servers in a row: about 280 s on a quiet day here, over the suite's 300 s default on a
# busy one; the bench's own limit below is what bounds it.
@pytest.mark.timeout(900)
def test_every_arm_runs_and_reports_every_figure(tmp_path: Path) -> None:
    assert (TINY_MODEL / "config.json").exists(), "run `make setup` to build the tiny model"
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench"),
           "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    done = subprocess.run(
        [sys.executable, "-m", "synthqa_bench", "--model", str(TINY_MODEL), "--workload",
         "smoke", "--repeats", "1", "--warm-runs", "1", "--out", str(tmp_path),
         "--no-progress", "--arms", ",".join(sorted(ARMS))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    [results_path] = tmp_path.glob("*.json")
    result = json.loads(results_path.read_text())
    for key in ("machine", "versions", "model", "engine_args", "workload", "runs", "summary"):
        assert result[key], key
    assert "--no-enable-prefix-caching" in result["engine_args"]
    assert result["warm_runs"] == 1
    runs = {run["arm"]: run for run in result["runs"] if run["arm"] != "replay"}
    assert set(runs) == ENGINE_ARMS
    chunks = result["workload"]["chunks"]
    for arm, run in runs.items():
        assert RUN_FIGURES <= set(run), (arm, RUN_FIGURES - set(run))
        # Every arm did the same work, all of it: the same chunks, each with its pairs.
        assert run["chunks_completed"] == chunks and run["chunks_failed"] == 0, (arm, run)
        assert run["pairs"] == result["workload"]["pairs"], arm
        assert run["documents_completed"] == 2 and run["output_tokens"] > 0, arm
        assert run["server_cpu_seconds"] > 0 and run["server_peak_rss_bytes"] > 0, arm
    assert {row["arm"] for row in result["summary"]} == ENGINE_ARMS
    assert all(row["throughput_vs_inprocess"] > 0 for row in result["summary"])
    # The table printed at the end and the plots.
    assert "| synthqa-bidi |" in done.stdout and "| batch-wait |" in done.stdout
    assert "each after 1 unmeasured run of the workload" in done.stdout
    # The traced arm's server really exported its spans, and its cost is reported.
    assert "synthqa-traced: 0 spans" not in done.stdout and " spans exported" in done.stdout
    assert "`synthqa-traced` (tracing on, every span exported) against" in done.stdout
    assert len(list(tmp_path.glob("*-throughput.png"))) == 1
    assert len(list(tmp_path.glob("*-first-pair.png"))) == 1
    assert len(list(tmp_path.glob("*-ceiling.png"))) == 1

    # The replay arm: each feature's documents all done, every record and chunk exactly once.
    replayed = {run["feature"]: run for run in result["runs"] if run["arm"] == "replay"}
    assert set(replayed) == FEATURES
    for feature, run in replayed.items():
        assert run["documents_completed"] == run["documents"] > 0, feature
        assert run["records"] > 0 and run["output_tokens"] > 0, (feature, run)
        assert (run["records_repeated"], run["chunks_ended_twice"], run["chunks_unended"]) == (
            0, 0, 0), (feature, run)
        assert all(run[name] > 0 for name in RATES), (feature, run)
        assert all(run[name] is None or run[name] >= 0 for name in CPU_FIGURES), (feature, run)
        assert run["front_end_cpu_us_per_token"] is not None, (feature, run)
    ceiling = result["ceiling"]
    assert {row["feature"] for row in ceiling["features"]} == FEATURES
    assert ceiling["vllm_front_end_us_per_token"] > 0
    assert ceiling["vllm_front_end_loop_us_per_token"] > 0
    assert ceiling["synthqa_on_engine_front_end_us_per_token"] > 0
    assert all(row["vs_vllm_front_end"] is not None for row in ceiling["features"])
    assert "Ceiling with the model taken out" in done.stdout
